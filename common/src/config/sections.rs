//! The typed sections of the config, each read from the raw ini with its defaults
//! and checks.

use super::raw::{boolean, normalize_key, positive, results_host, Raw, ACCEPTED_UNUSED, SECTIONS};
use super::*;

pub(super) fn database(raw: &mut Raw, base: &Path) -> Result<DatabaseConfig, ConfigError> {
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
            path: raw.path(web, "database", "autotest.db", base)?,
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

    Ok(database)
}

pub(super) fn scheduler(raw: &mut Raw, base: &Path) -> Result<SchedulerConfig, ConfigError> {
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
    let max_processes_per_drone = raw.parsed(sched, "max_processes_per_drone", 1000, positive)?;
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
    let report_origin = super::reports::report_origin(raw, &drones)?;
    let (job_timeout_default_hours, job_max_runtime_default_hours) = job_limits(raw)?;
    let scheduler = SchedulerConfig {
        report_origin,
        job_timeout_default_hours,
        job_max_runtime_default_hours,
        enabled: raw.parsed(sched, "enable_scheduler", true, boolean)?,
        results_host: raw.parsed(sched, "results_host", ResultsHost::Local, results_host)?,
        results_dir: raw.path(sched, "results_dir", "/usr/local/autotest/results", base)?,
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
        tls: super::tls::server(raw, sched, base)?,
        drone_ca: super::tls::path(raw, sched, "drone_ca_file", base)?,
        rabbitmq_management_url: raw.parsed(sched, "rabbitmq_management_url", None, |v| {
            if v.is_empty() {
                Ok(None)
            } else if v.starts_with("http://") || v.starts_with("https://") {
                Ok(Some(v.trim_end_matches('/').to_string()))
            } else {
                Err(format!("expected an http(s):// URL, got {v:?}"))
            }
        })?,
        drones,
    };

    Ok(scheduler)
}

/// `[DRONE] parsers` by default: every parser.
const DEFAULT_PARSERS: [tko::Parser; 3] = [
    tko::Parser::StatusLog,
    tko::Parser::Avocado,
    tko::Parser::Junit,
];

/// `[DRONE] junit_glob` by default.
const DEFAULT_JUNIT_GLOBS: [&str; 2] = ["**/junit*.xml", "**/TEST-*.xml"];

/// `status_log, avocado, junit`, any of them, or `none`.
fn parsers(value: &str) -> Result<Vec<tko::Parser>, String> {
    if value.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let parser = tko::Parser::parse(name).ok_or_else(|| {
            format!("unknown parser {name:?}: expected status_log, avocado, junit, or none")
        })?;
        if !out.contains(&parser) {
            out.push(parser);
        }
    }
    Ok(out)
}

pub(super) fn drone(raw: &mut Raw, base: &Path) -> Result<DroneConfig, ConfigError> {
    let drone = "DRONE";
    let tls = super::tls::server(raw, drone, base)?;
    let drone_config = DroneConfig {
        results_dir: raw.path(
            drone,
            "results_dir",
            "/var/lib/autotest/drone-results",
            base,
        )?,
        max_processes: raw.parsed(drone, "max_processes", None, |v| positive(v).map(Some))?,
        push_retry_max_sec: raw.parsed(drone, "push_retry_max_sec", 30, |v| {
            positive(v).map(u64::from)
        })?,
        ssh_options: raw.parsed(drone, "ssh_options", Vec::new(), |v| {
            shlex::split(v).ok_or_else(|| "unbalanced quotes".to_string())
        })?,
        heartbeat_sec: raw.parsed(drone, "heartbeat_sec", 10, |v| positive(v).map(u64::from))?,
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
            } else if v.starts_with("https://") || (v.starts_with("http://") && tls.is_none()) {
                Ok(Some(v.trim_end_matches('/').to_string()))
            } else if v.starts_with("http://") {
                Err(format!(
                    "the results server answers HTTPS (tls_cert is set): expected an https:// URL, got {v:?}"
                ))
            } else {
                Err(format!("expected an http(s):// URL, got {v:?}"))
            }
        })?,
        containment: raw.parsed(drone, "containment", Containment::Auto, |v| {
            match v.to_ascii_lowercase().as_str() {
                "auto" => Ok(Containment::Auto),
                "cgroup" => Ok(Containment::Cgroup),
                "process-group" => Ok(Containment::ProcessGroup),
                _ => Err(format!("expected auto, cgroup or process-group, got {v:?}")),
            }
        })?,
        max_results_mb: raw.parsed(drone, "max_results_mb", 10240, |v| {
            positive(v).map(u64::from)
        })?,
        min_free_mb: raw.parsed(drone, "min_free_mb", 2048, |v| {
            v.parse::<u32>()
                .map(u64::from)
                .map_err(|_| format!("expected a number of MiB (0 to 4294967295), got {v:?}"))
        })?,
        tls,
        parsers: raw.parsed(drone, "parsers", DEFAULT_PARSERS.to_vec(), parsers)?,
        junit_globs: raw.parsed(
            drone,
            "junit_glob",
            DEFAULT_JUNIT_GLOBS.iter().map(|g| g.to_string()).collect(),
            |v| {
                let globs: Vec<String> = v.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
                if globs.is_empty() || globs.iter().any(|g| g.starts_with('/') || g.split('/').any(|c| c == "..")) {
                    Err(format!("expected comma-separated globs relative to the results directory, got {v:?}"))
                } else {
                    Ok(globs)
                }
            },
        )?,
        max_parsed_tests: raw.parsed(drone, "max_parsed_tests", 10_000, |v| {
            positive(v).map(|n| n as usize)
        })?,
    };

    Ok(drone_config)
}

pub(super) fn autoserv(raw: &mut Raw) -> Result<AutoservConfig, ConfigError> {
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

    Ok(AutoservConfig {
        command,
        verify_command,
        repair_command,
        cleanup_command,
    })
}

pub(super) fn broker(raw: &mut Raw, base: &Path) -> Result<BrokerConfig, ConfigError> {
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

    Ok(BrokerConfig {
        url: Secret::new(url),
        ca_file,
        client_cert,
        client_key,
    })
}

/// `[AUTOTEST_WEB] job_timeout_default` and `job_max_runtime_hrs_default`, in hours
/// (absent or 0: no limit).
fn job_limits(raw: &mut Raw) -> Result<(Option<u32>, Option<u32>), ConfigError> {
    let hours = |v: &str| match v.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= 24 * 366 => Ok(Some(n)),
        _ => Err(format!(
            "expected whole hours (0 for no limit, at most a year), got {v:?}"
        )),
    };
    Ok((
        raw.parsed("AUTOTEST_WEB", "job_timeout_default", None, hours)?,
        raw.parsed("AUTOTEST_WEB", "job_max_runtime_hrs_default", None, hours)?,
    ))
}

/// Unknown keys in the sections this system reads.
pub(super) fn warnings(raw: &Raw) -> Vec<String> {
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
    warnings
}
