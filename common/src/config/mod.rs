//! `global_config.ini`, Autotest's configuration format, loaded into one typed struct and
//! validated before anything connects anywhere.
//!
//! Format: `[SECTION]` headers, `key: value` or `key = value`, `#`/`;` comments, keys
//! case-insensitive, a blank value means the default. Every key can be overridden by the
//! environment variable `AUTOTEST_<SECTION>_<KEY>` in upper case, with `-` and `.` in the
//! key written as `_` (so `[SCHEDULER] drone-1_max_processes` is
//! `AUTOTEST_SCHEDULER_DRONE_1_MAX_PROCESSES`).

mod auth;
mod command;
mod management;
mod notify;
mod print;
mod raw;
mod reports;
mod retention;
mod sections;
mod tls;

pub use auth::{default_public_names, AuthConfig};
pub use command::{
    CommandTemplate, DEFAULT_AUTOSERV_COMMAND, DEFAULT_CLEANUP_COMMAND, DEFAULT_REPAIR_COMMAND,
    DEFAULT_VERIFY_COMMAND, PLACEHOLDERS,
};
pub use notify::{NotifyConfig, END_STATUSES};
pub use print::value;
pub use reports::{DroneBrokerUsers, ReportOrigin};
pub use retention::{ArchiveRsync, RetentionConfig};
pub use tls::{ConfigPath, ServerTls};

use crate::names::DroneName;
use raw::Raw;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A bad configuration value: names the file (or environment variable), section and key.
/// An error about the file as a whole (it cannot be read) has no section nor key and
/// is its message alone.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    pub origin: String,
    pub section: String,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn describe(&self) -> String {
        if self.section.is_empty() && self.key.is_empty() {
            self.message.clone()
        } else {
            format!(
                "{}: [{}] {}: {}",
                self.origin, self.section, self.key, self.message
            )
        }
    }
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
    /// `[AUTH]`, with `[SCHEDULER] public_names`.
    pub auth: AuthConfig,
    /// Job-end mail (`[SCHEDULER] notify_email*`, `[NOTIFICATION]`).
    pub notify: NotifyConfig,
    /// Retention of results on drones and the results host (`keep_pushed_hours`,
    /// `archive_after_days`, `delete_after_days`, `archive_rsync`).
    pub retention: RetentionConfig,
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
    /// `tls_cert` and `tls_key`: the API answers HTTPS with this certificate; None:
    /// plain HTTP.
    pub tls: Option<ServerTls>,
    /// `drone_ca_file`: CA certificates (PEM) the drones' HTTPS results servers are
    /// trusted through; None: the public roots.
    pub drone_ca: Option<ConfigPath>,
    /// Seconds between SIGTERM and SIGKILL when a running entry is aborted.
    pub abort_grace_sec: u64,
    /// A drone silent (no heartbeat) this long is lost: it gets no new work.
    pub drone_timeout_sec: u64,
    /// How many times an entry that failed for the infrastructure's sake (lost drone,
    /// Autoserv not startable) is retried on another drone before it fails.
    pub max_infra_retries: u32,
    /// Which broker user each drone reports as, and which results URLs it may name.
    pub report_origin: ReportOrigin,
    /// `[AUTOTEST_WEB] job_timeout_default`, in hours: the queue timeout of jobs created
    /// without one (Autotest's key); None (absent or 0): no limit.
    pub job_timeout_default_hours: Option<u32>,
    /// `[AUTOTEST_WEB] job_max_runtime_hrs_default`: the longest run of an entry of a
    /// job created without `--max-runtime-mins`; None (absent or 0): no limit.
    pub job_max_runtime_default_hours: Option<u32>,
    /// `enable_scheduler` (Autotest's key): false keeps the scheduler from starting.
    pub enabled: bool,
    /// `rabbitmq_management_url`: RabbitMQ's management UI, linked from the drones
    /// page; None: `http://<broker host>:15672` (see [`Config::management_url`]).
    pub rabbitmq_management_url: Option<String>,
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
    /// How an attempt's processes are kept together and ended with it.
    pub containment: Containment,
    /// The most one entry's results may take on the drone, in MiB (`max_results_mb`).
    pub max_results_mb: u64,
    /// Below this much free space on the results filesystem, in MiB, the drone takes no
    /// new work (`min_free_mb`; 0: never).
    pub min_free_mb: u64,
    /// `tls_cert` and `tls_key`: the results server answers HTTPS; None: plain HTTP.
    pub tls: Option<ServerTls>,
    /// Which parsers read an entry's results after Autoserv exits (`parsers`, default
    /// `status_log, avocado, junit`; `none` for none).
    pub parsers: Vec<tko::Parser>,
    /// Which files are JUnit XML (`junit_glob`, comma-separated).
    pub junit_globs: Vec<String>,
    /// Tests sent per entry; past it they are counted (`max_parsed_tests`).
    pub max_parsed_tests: usize,
}

/// `[DRONE] containment`: how everything an attempt started is ended with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containment {
    /// A cgroup v2 per attempt where the machine allows it, else process groups.
    Auto,
    /// A cgroup v2 per attempt; the worker refuses to start without one.
    Cgroup,
    /// The attempt's process group, and the orphans it leaves to the supervisor.
    ProcessGroup,
}

impl Containment {
    pub fn as_str(self) -> &'static str {
        match self {
            Containment::Auto => "auto",
            Containment::Cgroup => "cgroup",
            Containment::ProcessGroup => "process-group",
        }
    }
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

/// The text of the configuration file at `path`.
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: path.display().to_string(),
        section: String::new(),
        key: String::new(),
        message: format!("cannot read config file {}: {e}", path.display()),
    })
}

impl Config {
    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_file(path)?;
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

        let database = sections::database(&mut raw, &base)?;
        let scheduler = sections::scheduler(&mut raw, &base)?;
        let drone = sections::drone(&mut raw, &base)?;
        let autoserv = sections::autoserv(&mut raw)?;
        let broker = sections::broker(&mut raw, &base)?;
        let auth = auth::auth(&mut raw, scheduler.http_listen)?;
        let notify = notify::notify(&mut raw, scheduler.http_listen)?;
        let retention = retention::retention(&mut raw)?;
        Ok(Self {
            path: path.to_path_buf(),
            database,
            scheduler,
            drone,
            autoserv,
            broker,
            auth,
            notify,
            retention,
            warnings: sections::warnings(&raw),
        })
    }
}

#[cfg(test)]
mod autotest_defaults;

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
    fn containment_and_the_results_cap_are_read_and_checked() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.drone.containment, Containment::Auto);
        assert_eq!(c.drone.max_results_mb, 10240);
        let c = load(
            "[DRONE]\ncontainment: Process-Group\nmax_results_mb = 5\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.drone.containment, Containment::ProcessGroup);
        assert_eq!(c.drone.max_results_mb, 5);
        let err = load("[DRONE]\ncontainment: jail\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/autotest/global_config.ini: [DRONE] containment: expected auto, cgroup or process-group, got \"jail\""
        );
        let err = load("[DRONE]\nmax_results_mb: 0\n", &[]).unwrap_err();
        assert_eq!(
            (err.section.as_str(), err.key.as_str()),
            ("DRONE", "max_results_mb")
        );
    }

    #[test]
    fn the_free_space_floor_is_read_and_checked() {
        assert_eq!(load("", &[]).unwrap().drone.min_free_mb, 2048);
        let c = load("[DRONE]\nmin_free_mb = 0\n", &[]).unwrap();
        assert_eq!(c.drone.min_free_mb, 0);
        for bad in ["-1", "2GB", "99999999999"] {
            let err = load(&format!("[DRONE]\nmin_free_mb = {bad}\n"), &[]).unwrap_err();
            assert_eq!(
                (err.section.as_str(), err.key.as_str()),
                ("DRONE", "min_free_mb"),
                "{bad}"
            );
        }
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
