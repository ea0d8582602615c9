//! `global_config.ini`, Autotest's configuration format, loaded into one typed struct and
//! validated before anything connects anywhere.
//!
//! Format: `[SECTION]` headers, `key: value` or `key = value`, `#`/`;` comments, keys
//! case-insensitive, a blank value means the default. Every key can be overridden by the
//! environment variable `AUTOTEST_<SECTION>_<KEY>` in upper case, with `-` and `.` in the
//! key written as `_` (so `[SCHEDULER] drone-1_max_processes` is
//! `AUTOTEST_SCHEDULER_DRONE_1_MAX_PROCESSES`).

use crate::names::{DroneName, HostName};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A bad configuration value: names the file (or environment variable), section and key.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: [{section}] {key}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub section: String,
    pub key: String,
    pub message: String,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub database: DatabaseConfig,
    pub scheduler: SchedulerConfig,
    pub drone: DroneConfig,
    pub autoserv: AutoservConfig,
    pub broker: BrokerConfig,
    /// Unknown keys and other things worth a warning at start.
    pub warnings: Vec<String>,
}

/// `[AUTOTEST_WEB]`: where the scheduler's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Sqlite {
        path: PathBuf,
    },
    Mysql {
        host: String,
        port: u16,
        user: String,
        password: Secret,
        database: String,
    },
}

/// `[SCHEDULER]`.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub drones: Vec<DroneName>,
    pub results_host: ResultsHost,
    /// On the results host.
    pub results_dir: PathBuf,
    /// `archive_host`: where results no longer on the results host nor on a drone are
    /// sent (`GET /results/...` redirects to `<this>/results/...`): a base URL, or a
    /// host name meaning `http://<host>`.
    pub archive_url: Option<String>,
    /// The drone set of jobs created without `--drone-set` (Autotest's key).
    pub default_drone_set_name: Option<crate::names::DroneSetName>,
    pub max_processes_per_drone: u32,
    pub drone_max_processes: BTreeMap<DroneName, u32>,
    pub drone_disabled: BTreeSet<DroneName>,
    pub max_jobs_started_per_cycle: u32,
    pub http_listen: SocketAddr,
    /// Seconds between SIGTERM and SIGKILL when a running entry is aborted.
    pub abort_grace_sec: u64,
    /// A drone silent (no heartbeat) this long is lost: it gets no new work.
    pub drone_timeout_sec: u64,
    /// How many times an entry that failed for the infrastructure's sake (lost drone,
    /// Autoserv not startable) is retried on another drone before it fails.
    pub max_infra_retries: u32,
}

impl SchedulerConfig {
    /// A drone's capacity from the config: `<drone>_max_processes`, else the default.
    pub fn capacity_of(&self, drone: &DroneName) -> u32 {
        self.drone_max_processes
            .get(drone)
            .copied()
            .unwrap_or(self.max_processes_per_drone)
    }
}

/// Where results are pushed: this machine (a local copy) or `[user@]host` over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsHost {
    Local,
    Remote(String),
}

/// `[DRONE]`: the worker's own settings.
#[derive(Debug, Clone)]
pub struct DroneConfig {
    /// Where the worker runs jobs and keeps its journal.
    pub results_dir: PathBuf,
    /// The worker's own limit on concurrent Autoserv processes; defaults to the drone's
    /// capacity in `[SCHEDULER]`.
    pub max_processes: Option<u32>,
    /// Longest wait between two attempts to push results.
    pub push_retry_max_sec: u64,
    /// Extra options for `ssh` when pushing to a remote results host.
    pub ssh_options: Vec<String>,
    /// Seconds between two heartbeats.
    pub heartbeat_sec: u64,
    /// Where the worker serves its results directory over HTTP (read only), so the
    /// scheduler can send readers to results not on the results host; None: `off`.
    /// Port 0 takes any free port (the address goes to the scheduler in heartbeats).
    pub http_listen: Option<SocketAddr>,
    /// The address the scheduler sends readers to; defaults to
    /// `http://<listen address, or this machine's name if it listens on all>:<port>`.
    pub results_url: Option<String>,
}

/// `[AUTOSERV]`.
#[derive(Debug, Clone)]
pub struct AutoservConfig {
    pub command: CommandTemplate,
    /// Special tasks on a host (`{hosts}` is the one host, `{results_dir}` the task's
    /// directory under `hosts/<host>/`).
    pub verify_command: CommandTemplate,
    pub repair_command: CommandTemplate,
    pub cleanup_command: CommandTemplate,
}

/// `[BROKER]`.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub url: Secret,
    /// For `amqps://`: the CA certificates (PEM) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// For `amqps://`: a client certificate and its key (PEM), if the broker asks for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// The system's CA certificates on Debian: the default `[BROKER] ca_file`.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A string kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Autoserv's command line, split into arguments once; placeholders are substituted
/// inside each argument, so a value never becomes more than one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    args: Vec<String>,
}

/// The placeholders a command template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "results_dir",
    "hosts",
    "owner",
    "job_name",
    "job_id",
    "control_file",
];

pub const DEFAULT_AUTOSERV_COMMAND: &str = "/usr/local/autotest/server/autoserv -p -r {results_dir} -m {hosts} -u {owner} -l {job_name} {control_file}";
/// Autotest's verify, repair and cleanup special tasks.
pub const DEFAULT_VERIFY_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -v -m {hosts} -r {results_dir}";
pub const DEFAULT_REPAIR_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -R -m {hosts} -r {results_dir}";
pub const DEFAULT_CLEANUP_COMMAND: &str =
    "/usr/local/autotest/server/autoserv -C -m {hosts} -r {results_dir}";

impl CommandTemplate {
    /// Splits `line` like a POSIX shell would (quotes, backslashes) and checks placeholders.
    pub fn parse(line: &str) -> Result<Self, String> {
        let args = shlex::split(line).ok_or("unbalanced quotes")?;
        if args.is_empty() {
            return Err("the command is empty".into());
        }
        for arg in &args {
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in {arg:?}"))?;
                let name = &rest[open + 1..open + close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        PLACEHOLDERS.join(", ")
                    ));
                }
                rest = &rest[open + close + 1..];
            }
        }
        Ok(Self { args })
    }

    /// The program and its arguments with `values` substituted (name → value).
    pub fn render(&self, values: &[(&str, &str)]) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                let mut out = String::with_capacity(arg.len());
                let mut rest = arg.as_str();
                while let Some(open) = rest.find('{') {
                    out.push_str(&rest[..open]);
                    let close = open + rest[open..].find('}').expect("checked at parse");
                    let name = &rest[open + 1..close];
                    let value = values
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or("", |(_, v)| *v);
                    out.push_str(value);
                    rest = &rest[close + 1..];
                }
                out.push_str(rest);
                out
            })
            .collect()
    }
}

/// Raw `section → key → (value, origin)` after parsing the file and the environment.
struct Raw {
    file: String,
    sections: HashMap<String, HashMap<String, (String, String)>>,
    used: BTreeSet<(String, String)>,
}

const SECTIONS: &[&str] = &["AUTOTEST_WEB", "SCHEDULER", "DRONE", "AUTOSERV", "BROKER"];

/// Keys recognised from Autotest that this system accepts and does not need.
const ACCEPTED_UNUSED: &[(&str, &str)] = &[
    ("SCHEDULER", "tick_pause_sec"),
    ("SCHEDULER", "drone_installation_directory"),
];

fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace(['-', '.'], "_")
}

impl Raw {
    fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let mut sections: HashMap<String, HashMap<String, (String, String)>> = HashMap::new();
        let mut current: Option<String> = None;
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let name = name.trim().to_ascii_uppercase();
                sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            let split = trimmed.find([':', '=']).ok_or_else(|| ConfigError {
                origin: format!("{file}:{}", number + 1),
                section: current.clone().unwrap_or_default(),
                key: trimmed.to_string(),
                message: "expected `key: value` or `key = value`".into(),
            })?;
            let section = current.clone().ok_or_else(|| ConfigError {
                origin: format!("{file}:{}", number + 1),
                section: String::new(),
                key: trimmed[..split].trim().to_string(),
                message: "key outside of any [SECTION]".into(),
            })?;
            sections.entry(section).or_default().insert(
                normalize_key(&trimmed[..split]),
                (trimmed[split + 1..].trim().to_string(), file.to_string()),
            );
        }
        Ok(Self {
            file: file.to_string(),
            sections,
            used: BTreeSet::new(),
        })
    }

    fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) {
        let mut by_length: Vec<&str> = SECTIONS.to_vec();
        by_length.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("AUTOTEST_") else {
                continue;
            };
            for section in &by_length {
                if let Some(key) = rest.strip_prefix(section).and_then(|k| k.strip_prefix('_')) {
                    self.sections
                        .entry(section.to_string())
                        .or_default()
                        .insert(
                            normalize_key(key),
                            (value.clone(), format!("environment {name}")),
                        );
                    break;
                }
            }
        }
    }

    /// The value of a key, `None` when absent or blank (blank means default).
    fn get(&mut self, section: &str, key: &str) -> Option<(String, String)> {
        self.used.insert((section.to_string(), key.to_string()));
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .filter(|(v, _)| !v.is_empty())
            .cloned()
    }

    fn error(
        &self,
        origin: &str,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            origin: origin.to_string(),
            section: section.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(section, key) {
            None => Ok(default),
            Some((value, origin)) => {
                parse(&value).map_err(|message| self.error(&origin, section, key, message))
            }
        }
    }

    fn string(&mut self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key)
            .map_or(default.to_string(), |(v, _)| v)
    }

    fn path(
        &mut self,
        section: &str,
        key: &str,
        default: &str,
        base: &Path,
    ) -> Result<PathBuf, ConfigError> {
        self.parsed(section, key, base.join(default), |v| {
            if v.contains('\0') {
                return Err("a path cannot contain NUL".into());
            }
            Ok(base.join(v))
        })
    }
}

fn positive(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive integer, got {v:?}")),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn results_host(v: &str) -> Result<ResultsHost, String> {
    if v == "localhost" || v == "127.0.0.1" {
        return Ok(ResultsHost::Local);
    }
    let (user, host) = match v.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, v),
    };
    if let Some(user) = user {
        crate::names::Owner::new(user).map_err(|e| e.to_string())?;
    }
    HostName::new(host).map_err(|e| e.to_string())?;
    Ok(ResultsHost::Remote(v.to_string()))
}

impl Config {
    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            section: "-".into(),
            key: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::from_parts(path, &text, std::env::vars())
    }

    /// Parses `text` as if read from `path`, with `env` as the environment.
    pub fn from_parts(
        path: &Path,
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut raw = Raw::parse(&file, text)?;
        raw.apply_env(env);

        let web = "AUTOTEST_WEB";
        let db_type = raw.parsed(web, "db_type", "sqlite".to_string(), |v| {
            match v.to_ascii_lowercase().as_str() {
                "sqlite" | "sqlite3" => Ok("sqlite".into()),
                "mysql" | "mariadb" => Ok("mysql".into()),
                _ => Err(format!("expected sqlite or mysql, got {v:?}")),
            }
        })?;
        let database = if db_type == "sqlite" {
            DatabaseConfig::Sqlite {
                path: raw.path(web, "database", "autotest.db", &base)?,
            }
        } else {
            let name = raw.parsed(web, "database", "autotest_web".to_string(), |v| {
                if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && v.len() <= 64 {
                    Ok(v.to_string())
                } else {
                    Err(format!(
                        "{v:?} is not a valid MySQL database name (letters, digits, '_')"
                    ))
                }
            })?;
            DatabaseConfig::Mysql {
                host: raw.string(web, "host", "127.0.0.1"),
                port: raw.parsed(web, "port", 3306, |v| {
                    v.parse::<u16>()
                        .map_err(|_| format!("expected a TCP port, got {v:?}"))
                })?,
                user: raw.string(web, "user", "autotest"),
                password: Secret::new(raw.string(web, "password", "")),
                database: name,
            }
        };

        let sched = "SCHEDULER";
        let drones: Vec<DroneName> = raw.parsed(sched, "drones", Vec::new(), |v| {
            let mut out = Vec::new();
            for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let drone = DroneName::new(name).map_err(|e| e.to_string())?;
                if out.contains(&drone) {
                    return Err(format!("drone {name:?} is listed twice"));
                }
                out.push(drone);
            }
            Ok(out)
        })?;
        let max_processes_per_drone =
            raw.parsed(sched, "max_processes_per_drone", 1000, positive)?;
        let mut drone_max_processes = BTreeMap::new();
        let mut drone_disabled = BTreeSet::new();
        for drone in &drones {
            let prefix = normalize_key(drone.as_str());
            if let Some(n) = raw.parsed(sched, &format!("{prefix}_max_processes"), None, |v| {
                positive(v).map(Some)
            })? {
                drone_max_processes.insert(drone.clone(), n);
            }
            if raw.parsed(sched, &format!("{prefix}_disabled"), false, boolean)? {
                drone_disabled.insert(drone.clone());
            }
        }
        let scheduler = SchedulerConfig {
            results_host: raw.parsed(sched, "results_host", ResultsHost::Local, results_host)?,
            results_dir: raw.path(sched, "results_dir", "/usr/local/autotest/results", &base)?,
            archive_url: raw.parsed(sched, "archive_host", None, |v| {
                if v.is_empty() {
                    Ok(None)
                } else if v.starts_with("http://") || v.starts_with("https://") {
                    Ok(Some(v.trim_end_matches('/').to_string()))
                } else if v.contains("://") {
                    Err(format!(
                        "expected a host name or an http(s):// URL, got {v:?}"
                    ))
                } else {
                    // A host name, with or without a port.
                    let (host, port) = match v.rsplit_once(':') {
                        Some((host, port)) => (host, Some(port)),
                        None => (v, None),
                    };
                    let host = crate::names::HostName::new(host).map_err(|e| e.to_string())?;
                    match port {
                        None => Ok(Some(format!("http://{host}"))),
                        Some(port) => port
                            .parse::<u16>()
                            .map(|port| Some(format!("http://{host}:{port}")))
                            .map_err(|_| format!("expected HOST[:PORT] or a URL, got {v:?}")),
                    }
                }
            })?,
            default_drone_set_name: raw.parsed(sched, "default_drone_set_name", None, |v| {
                if v.is_empty() {
                    return Ok(None);
                }
                crate::names::DroneSetName::new(v)
                    .map(Some)
                    .map_err(|e| e.to_string())
            })?,
            max_processes_per_drone,
            drone_max_processes,
            drone_disabled,
            drone_timeout_sec: raw.parsed(sched, "drone_timeout_sec", 60, |v| {
                positive(v).map(u64::from)
            })?,
            max_infra_retries: raw.parsed(sched, "max_infra_retries", 2, |v| {
                v.parse::<u32>()
                    .map_err(|_| format!("expected a number of retries (0 or more), got {v:?}"))
            })?,
            abort_grace_sec: raw.parsed(sched, "abort_grace_sec", 60, |v| {
                v.parse::<u64>()
                    .map_err(|_| format!("expected a number of seconds, got {v:?}"))
            })?,
            max_jobs_started_per_cycle: raw.parsed(
                sched,
                "max_jobs_started_per_cycle",
                100,
                positive,
            )?,
            http_listen: raw.parsed(
                sched,
                "http_listen",
                SocketAddr::from(([127, 0, 0, 1], 13467)),
                |v| {
                    v.parse()
                        .map_err(|_| format!("expected ADDRESS:PORT, got {v:?}"))
                },
            )?,
            drones,
        };

        let drone = "DRONE";
        let drone_config = DroneConfig {
            results_dir: raw.path(
                drone,
                "results_dir",
                "/var/lib/autotest/drone-results",
                &base,
            )?,
            max_processes: raw.parsed(drone, "max_processes", None, |v| positive(v).map(Some))?,
            push_retry_max_sec: raw.parsed(drone, "push_retry_max_sec", 30, |v| {
                positive(v).map(u64::from)
            })?,
            ssh_options: raw.parsed(drone, "ssh_options", Vec::new(), |v| {
                shlex::split(v).ok_or_else(|| "unbalanced quotes".to_string())
            })?,
            heartbeat_sec: raw
                .parsed(drone, "heartbeat_sec", 10, |v| positive(v).map(u64::from))?,
            http_listen: raw.parsed(
                drone,
                "http_listen",
                Some(SocketAddr::from(([0, 0, 0, 0], 0))),
                |v| {
                    if v == "off" {
                        return Ok(None);
                    }
                    v.parse()
                        .map(Some)
                        .map_err(|_| format!("expected ADDRESS:PORT or off, got {v:?}"))
                },
            )?,
            results_url: raw.parsed(drone, "results_url", None, |v| {
                if v.len() > 1000 {
                    Err(format!("expected at most 1000 characters, got {}", v.len()))
                } else if v.starts_with("http://") || v.starts_with("https://") {
                    Ok(Some(v.trim_end_matches('/').to_string()))
                } else {
                    Err(format!("expected an http(s):// URL, got {v:?}"))
                }
            })?,
        };

        let command = raw.parsed(
            "AUTOSERV",
            "command",
            CommandTemplate::parse(DEFAULT_AUTOSERV_COMMAND).expect("default is valid"),
            CommandTemplate::parse,
        )?;
        let mut task_command = |key: &str, default: &str| {
            raw.parsed(
                "AUTOSERV",
                key,
                CommandTemplate::parse(default).expect("default is valid"),
                CommandTemplate::parse,
            )
        };
        let verify_command = task_command("verify_command", DEFAULT_VERIFY_COMMAND)?;
        let repair_command = task_command("repair_command", DEFAULT_REPAIR_COMMAND)?;
        let cleanup_command = task_command("cleanup_command", DEFAULT_CLEANUP_COMMAND)?;

        let url = raw.parsed(
            "BROKER",
            "url",
            "amqp://guest:guest@127.0.0.1:5672/%2f".to_string(),
            |v| {
                if v.starts_with("amqp://") || v.starts_with("amqps://") {
                    Ok(v.to_string())
                } else {
                    Err("expected an amqp:// or amqps:// URL".into())
                }
            },
        )?;

        let tls = url.starts_with("amqps://");
        let readable = |v: &str| -> Result<PathBuf, String> {
            let path = base.join(v);
            // Checked now only where it will be used, so a bad path stops the program
            // before it connects.
            if tls {
                std::fs::File::open(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            }
            Ok(path)
        };
        let ca_file = raw.parsed("BROKER", "ca_file", PathBuf::from(DEFAULT_CA_FILE), |v| {
            readable(v)
        })?;
        let client_cert = raw.parsed("BROKER", "client_cert", None, |v| readable(v).map(Some))?;
        let client_key = raw.parsed("BROKER", "client_key", None, |v| {
            if client_cert.is_none() {
                return Err("client_key needs client_cert".into());
            }
            readable(v).map(Some)
        })?;
        if client_cert.is_some() && client_key.is_none() {
            let origin = raw
                .get("BROKER", "client_cert")
                .map(|(_, origin)| origin)
                .unwrap_or_default();
            return Err(raw.error(
                &origin,
                "BROKER",
                "client_cert",
                "client_cert needs client_key (its private key, PEM)",
            ));
        }

        let mut warnings = Vec::new();
        let mut names: Vec<_> = raw.sections.keys().cloned().collect();
        names.sort();
        for section in names {
            if !SECTIONS.contains(&section.as_str()) {
                continue; // Autotest's other sections (CLIENT, SERVER…) are not ours.
            }
            let mut keys: Vec<_> = raw.sections[&section].iter().collect();
            keys.sort();
            for (key, (_, origin)) in keys {
                let known = raw.used.contains(&(section.clone(), key.clone()))
                    || ACCEPTED_UNUSED.contains(&(section.as_str(), key.as_str()));
                if !known {
                    warnings.push(format!("{origin}: [{section}] {key}: unknown key, ignored"));
                }
            }
        }
        let _ = &raw.file;

        Ok(Self {
            path: path.to_path_buf(),
            database,
            scheduler,
            drone: drone_config,
            autoserv: AutoservConfig {
                command,
                verify_command,
                repair_command,
                cleanup_command,
            },
            broker: BrokerConfig {
                url: Secret::new(url),
                ca_file,
                client_cert,
                client_key,
            },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_parts(
            Path::new("/etc/autotest/global_config.ini"),
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn reads_autotest_format_with_defaults() {
        let c = load(
            "[AUTOTEST_WEB]\nDB_TYPE: sqlite\ndatabase =\n[SCHEDULER]\ndrones: d1, d2\nd2_max_processes: 3\nmax_processes_per_drone = 5\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.database,
            DatabaseConfig::Sqlite {
                path: PathBuf::from("/etc/autotest/autotest.db")
            }
        );
        let d1 = DroneName::new("d1").unwrap();
        let d2 = DroneName::new("d2").unwrap();
        assert_eq!(c.scheduler.capacity_of(&d1), 5);
        assert_eq!(c.scheduler.capacity_of(&d2), 3);
        assert_eq!(c.scheduler.http_listen.port(), 13467);
        assert_eq!(c.scheduler.results_host, ResultsHost::Local);
    }

    #[test]
    fn archive_host_is_a_url_or_a_host_with_an_optional_port() {
        let archive = |v: &str| {
            load(&format!("[SCHEDULER]\narchive_host: {v}\n"), &[]).map(|c| c.scheduler.archive_url)
        };
        assert_eq!(archive("arch1").unwrap().as_deref(), Some("http://arch1"));
        assert_eq!(
            archive("arch1:8080").unwrap().as_deref(),
            Some("http://arch1:8080")
        );
        assert_eq!(
            archive("https://arch.lab/x/").unwrap().as_deref(),
            Some("https://arch.lab/x")
        );
        for bad in ["arch1:http", "ftp://arch1", "a b"] {
            let error = archive(bad).unwrap_err().to_string();
            assert!(error.contains("archive_host"), "{bad}: {error}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "[SCHEDULER]\ndrones: drone-1\n",
            &[
                ("AUTOTEST_SCHEDULER_DRONE_1_MAX_PROCESSES", "7"),
                ("AUTOTEST_AUTOTEST_WEB_DB_TYPE", "mysql"),
                ("AUTOTEST_AUTOTEST_WEB_DATABASE", "lab"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.scheduler.capacity_of(&DroneName::new("drone-1").unwrap()),
            7
        );
        assert!(
            matches!(c.database, DatabaseConfig::Mysql { ref database, .. } if database == "lab")
        );
    }

    #[test]
    fn a_bad_value_names_file_section_and_key() {
        let err = load("[SCHEDULER]\nmax_processes_per_drone: lots\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/autotest/global_config.ini: [SCHEDULER] max_processes_per_drone: expected a positive integer, got \"lots\""
        );
        let err = load("", &[("AUTOTEST_SCHEDULER_HTTP_LISTEN", "nowhere")]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("environment AUTOTEST_SCHEDULER_HTTP_LISTEN: [SCHEDULER] http_listen"));
        let err = load("[SCHEDULER]\ndrones: ../evil\n", &[]).unwrap_err();
        assert_eq!(err.key, "drones");
        let err = load("[AUTOSERV]\ncommand: autoserv {nope}\n", &[]).unwrap_err();
        assert_eq!(
            (err.section.as_str(), err.key.as_str()),
            ("AUTOSERV", "command")
        );
    }

    #[test]
    fn unknown_keys_are_warned_about() {
        let c = load(
            "[SCHEDULER]\nfrobnicate: 1\ntick_pause_sec: 5\n[SERVER]\nhostname: x\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("frobnicate"));
    }

    #[test]
    fn command_substitutes_within_arguments_only() {
        let t = CommandTemplate::parse("autoserv -l {job_name} -r {results_dir}/x '{owner} y'")
            .unwrap();
        let args = t.render(&[
            ("job_name", "a b; $(rm -rf /)"),
            ("results_dir", "/r"),
            ("owner", "me"),
        ]);
        assert_eq!(
            args,
            ["autoserv", "-l", "a b; $(rm -rf /)", "-r", "/r/x", "me y"]
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = load("[BROKER]\nurl: amqp://u:hunter2@h/%2f\n", &[]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
