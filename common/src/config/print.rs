//! The config as the programs print it for scripts and operators: `--print-config`
//! (the whole resolved config as JSON, secrets left out) and `--get SECTION.KEY` (one
//! value as the file and the environment give it).

use super::{Config, ConfigError, DatabaseConfig, ResultsHost};
use serde_json::{json, Value};
use std::path::Path;

/// One value as the programs read it: `name` is `SECTION.KEY` (case-insensitive, `-`
/// and `.` in the key read as `_`), the `AUTOTEST_<SECTION>_<KEY>` environment
/// variable wins over the file, and an absent or blank key is `""`. The text is as
/// written, before defaults and before relative paths are resolved, so an install
/// script can resolve them where the file will be.
pub fn value(path: &Path, name: &str) -> Result<String, ConfigError> {
    let text = super::read_file(path)?;
    value_from_parts(path, &text, std::env::vars(), name)
}

/// [`value`] of `text` as if read from `path`, with `env` as the environment.
pub fn value_from_parts(
    path: &Path,
    text: &str,
    env: impl Iterator<Item = (String, String)>,
    name: &str,
) -> Result<String, ConfigError> {
    let Some((section, key)) = name.split_once('.') else {
        return Err(ConfigError {
            origin: "--get".into(),
            section: "-".into(),
            key: name.into(),
            message: "expected SECTION.KEY".into(),
        });
    };
    let mut raw = super::Raw::parse(&path.display().to_string(), text)?;
    raw.apply_env(env);
    let section = section.trim().to_ascii_uppercase();
    let key = super::raw::normalize_key(key);
    Ok(raw.get(&section, &key).map(|(v, _)| v).unwrap_or_default())
}

/// A URL without its password.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let password = if userinfo.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            format!(
                "{scheme}://{user}{password}@{host}{}",
                &rest[authority_end..]
            )
        }
        None => url.to_string(),
    }
}

impl Config {
    /// The resolved config (defaults filled in, environment applied, paths resolved)
    /// as JSON; the database password is left out and the broker URL's is redacted.
    pub fn to_json(&self) -> Value {
        let database = match &self.database {
            DatabaseConfig::Sqlite { path } => json!({ "db_type": "sqlite", "path": path }),
            DatabaseConfig::Mysql {
                host,
                port,
                user,
                database,
                ..
            } => json!({
                "db_type": "mysql", "host": host, "port": port, "user": user, "database": database,
            }),
        };
        let s = &self.scheduler;
        let scheduler = json!({
            "drones": s.drones,
            "results_host": match &s.results_host {
                ResultsHost::Local => "localhost",
                ResultsHost::Remote(host) => host.as_str(),
            },
            "results_dir": s.results_dir,
            "archive_url": s.archive_url,
            "default_drone_set_name": s.default_drone_set_name.as_ref().map(|n| n.to_string()),
            "max_processes_per_drone": s.max_processes_per_drone,
            "drone_max_processes": s.drone_max_processes,
            "drone_disabled": s.drone_disabled,
            "max_jobs_started_per_cycle": s.max_jobs_started_per_cycle,
            "http_listen": s.http_listen,
            "abort_grace_sec": s.abort_grace_sec,
            "drone_timeout_sec": s.drone_timeout_sec,
            "max_infra_retries": s.max_infra_retries,
            "tls_cert": s.tls.as_ref().map(|t| &t.cert.path),
            "tls_key": s.tls.as_ref().map(|t| &t.key.path),
            "drone_ca_file": s.drone_ca.as_ref().map(|c| &c.path),
            "rabbitmq_management_url": self.management_url(),
            "drone_broker_users": match &s.report_origin.drone_broker_users {
                super::DroneBrokerUsers::Auto => "auto",
                super::DroneBrokerUsers::Shared => "shared",
                super::DroneBrokerUsers::Template(t) => t.as_str(),
            },
            "drone_broker_user": s.report_origin.drone_broker_user,
            "drone_results_url": s.report_origin.drone_results_url,
            "enable_scheduler": s.enabled,
            "job_timeout_default_hours": s.job_timeout_default_hours,
            "job_max_runtime_default_hours": s.job_max_runtime_default_hours,
        });
        let d = &self.drone;
        let drone = json!({
            "results_dir": d.results_dir,
            "max_processes": d.max_processes,
            "push_retry_max_sec": d.push_retry_max_sec,
            "ssh_options": d.ssh_options,
            "heartbeat_sec": d.heartbeat_sec,
            "http_listen": d.http_listen,
            "results_url": d.results_url,
            "containment": d.containment.as_str(),
            "max_results_mb": d.max_results_mb,
            "min_free_mb": d.min_free_mb,
            "tls_cert": d.tls.as_ref().map(|t| &t.cert.path),
            "tls_key": d.tls.as_ref().map(|t| &t.key.path),
            "parsers": d.parsers.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "junit_glob": d.junit_globs,
            "max_parsed_tests": d.max_parsed_tests,
        });
        let a = &self.autoserv;
        let autoserv = json!({
            "command": a.command.args(),
            "verify_command": a.verify_command.args(),
            "repair_command": a.repair_command.args(),
            "cleanup_command": a.cleanup_command.args(),
        });
        let b = &self.broker;
        let broker = json!({
            "url": without_password(b.url.expose()),
            "ca_file": b.ca_file,
            "client_cert": b.client_cert,
            "client_key": b.client_key,
        });
        let auth = json!({
            "anonymous_read": self.auth.anonymous_read,
            "trusted_proxy_header": self.auth.trusted_proxy_header,
            "trusted_proxies": self.auth.trusted_proxies,
            "session_hours": self.auth.session_hours,
            "public_names": self.auth.public_names,
        });
        let n = &self.notify;
        let notification = json!({
            "smtp_host": n.smtp.as_ref().map(|(host, _)| host),
            "smtp_port": n.smtp.as_ref().map(|(_, port)| port),
            "owner_domain": n.owner_domain,
            "notify_email": n.to,
            "notify_email_from": n.from,
            "notify_email_statuses": n.statuses,
            "base_url": n.base_url,
        });
        let r = &self.retention;
        let days = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() / 86_400.0);
        let retention = json!({
            "keep_pushed_hours": r.keep_pushed.as_secs_f64() / 3600.0,
            "archive_after_days": days(r.archive_after),
            "delete_after_days": days(r.delete_after),
            "archive_rsync": r.archive_rsync.as_ref().map(super::ArchiveRsync::as_text),
            "archive_ssh_options": r.archive_ssh_options,
            "retention_pass_sec": r.pass.as_secs(),
        });
        json!({
            "path": self.path,
            "database": database,
            "scheduler": scheduler,
            "drone": drone,
            "autoserv": autoserv,
            "broker": broker,
            "auth": auth,
            "notification": notification,
            "retention": retention,
            "warnings": self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/autotest/global_config.ini";

    fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn a_value_is_read_as_written_and_the_environment_wins() {
        let text = "[scheduler]\nHTTP-Listen = 0.0.0.0:80\nresults_dir: results\n";
        let get = |name: &str, vars: &[(&str, &str)]| {
            value_from_parts(Path::new(FILE), text, env(vars), name).unwrap()
        };
        assert_eq!(get("SCHEDULER.http_listen", &[]), "0.0.0.0:80");
        assert_eq!(get("scheduler.results_dir", &[]), "results");
        assert_eq!(get("SCHEDULER.drones", &[]), "");
        let over = [("AUTOTEST_SCHEDULER_HTTP_LISTEN", "127.0.0.1:9")];
        assert_eq!(get("SCHEDULER.http_listen", &over), "127.0.0.1:9");
        assert!(value_from_parts(Path::new(FILE), text, env(&[]), "http_listen").is_err());
    }

    #[test]
    fn the_printed_config_is_resolved_and_keeps_secrets_out() {
        let text = "[AUTOTEST_WEB]\ndb_type: mysql\npassword: hunter2\n[BROKER]\nurl: amqp://sched:s3cret@mq:5672/%2f\n[SCHEDULER]\ndrones: d1\nresults_dir: results\n";
        let config = Config::from_parts(
            Path::new(FILE),
            text,
            env(&[("AUTOTEST_SCHEDULER_D1_MAX_PROCESSES", "3")]),
        )
        .unwrap();
        let json = config.to_json();
        let printed = json.to_string();
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cret"),
            "{printed}"
        );
        assert_eq!(json["broker"]["url"], "amqp://sched:<redacted>@mq:5672/%2f");
        assert_eq!(json["database"]["db_type"], "mysql");
        assert_eq!(json["scheduler"]["results_dir"], "/etc/autotest/results");
        assert_eq!(json["scheduler"]["drone_max_processes"]["d1"], 3);
        assert_eq!(json["scheduler"]["http_listen"], "127.0.0.1:13467");
    }

    #[test]
    fn a_url_without_a_password_is_printed_as_it_is() {
        assert_eq!(without_password("amqp://mq/%2f"), "amqp://mq/%2f");
        assert_eq!(without_password("amqp://u@mq/%2f"), "amqp://u@mq/%2f");
    }
}
