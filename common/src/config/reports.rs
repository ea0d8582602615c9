//! `[SCHEDULER]` keys that say which drone a status report may come from and where a
//! drone may send readers: `drone_broker_users`, `<drone>_broker_user` and
//! `drone_results_url`. The rules that use them live in the scheduler; here they are
//! read and checked.

use super::raw::{normalize_key, Raw};
use super::ConfigError;
use crate::names::DroneName;
use std::collections::BTreeMap;

/// `[SCHEDULER] drone_broker_users`: which broker user each drone's worker connects
/// with (RabbitMQ stamps nothing itself, but refuses a `user_id` property that is not
/// the connection's user, so a report's `user_id` names its sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DroneBrokerUsers {
    /// `auto` (the default): when the scheduler's own `[BROKER]` user is
    /// `PREFIXscheduler` (as `deploy/rabbitmq-setup.sh` makes it), drone D's user is
    /// `PREFIXdrone-D`; otherwise every drone is taken to share the scheduler's user.
    Auto,
    /// `shared`: all drones use one broker user; reports cannot be told apart.
    Shared,
    /// A user name in which `{drone}` stands for the drone's name.
    Template(String),
}

/// The keys of this module, read from `[SCHEDULER]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOrigin {
    pub drone_broker_users: DroneBrokerUsers,
    /// `<drone>_broker_user`: a drone's broker user, over `drone_broker_users`.
    pub drone_broker_user: BTreeMap<DroneName, String>,
    /// `drone_results_url`: the results URLs a drone's heartbeat may name (`{drone}`
    /// stands for its name, a port `*` for any port); empty: the default rule (an
    /// http(s) URL whose host is the drone's name, a name under it, or loopback).
    pub drone_results_url: Vec<String>,
}

/// The longest broker user name RabbitMQ keeps (a short string).
const MAX_USER: usize = 255;

fn user_name(v: &str) -> Result<String, String> {
    if v.len() > MAX_USER || v.chars().any(|c| c.is_control() || c == ',') {
        Err(format!(
            "expected a broker user name (at most {MAX_USER} bytes, no control characters or commas), got {v:?}"
        ))
    } else {
        Ok(v.to_string())
    }
}

pub(super) fn report_origin(
    raw: &mut Raw,
    drones: &[DroneName],
) -> Result<ReportOrigin, ConfigError> {
    let sched = "SCHEDULER";
    let drone_broker_users = raw.parsed(
        sched,
        "drone_broker_users",
        DroneBrokerUsers::Auto,
        |v| match v.to_ascii_lowercase().as_str() {
            "auto" => Ok(DroneBrokerUsers::Auto),
            "shared" => Ok(DroneBrokerUsers::Shared),
            _ if v.contains("{drone}") => user_name(v).map(DroneBrokerUsers::Template),
            _ => Err(format!(
                "expected auto, shared or a user name with {{drone}} in it, got {v:?}"
            )),
        },
    )?;
    let mut drone_broker_user = BTreeMap::new();
    for drone in drones {
        let key = format!("{}_broker_user", normalize_key(drone.as_str()));
        if let Some(user) = raw.parsed(sched, &key, None, |v| user_name(v).map(Some))? {
            drone_broker_user.insert(drone.clone(), user);
        }
    }
    let drone_results_url = raw.parsed(sched, "drone_results_url", Vec::new(), |v| {
        v.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(results_url_pattern)
            .collect()
    })?;
    Ok(ReportOrigin {
        drone_broker_users,
        drone_broker_user,
        drone_results_url,
    })
}

/// One allowed results URL: `http(s)://HOST[:PORT]`, where HOST may hold `{drone}` and
/// PORT may be `*`; no path, query or credentials.
fn results_url_pattern(pattern: &str) -> Result<String, String> {
    let pattern = pattern.trim_end_matches('/');
    let rest = pattern
        .strip_prefix("http://")
        .or_else(|| pattern.strip_prefix("https://"))
        .ok_or_else(|| format!("expected http(s)://HOST[:PORT] patterns, got {pattern:?}"))?;
    let bad = rest.is_empty()
        || rest
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control());
    if bad || pattern.len() > 1000 {
        return Err(format!(
            "expected http(s)://HOST[:PORT] (no path, no user; {{drone}} and a port * allowed), got {pattern:?}"
        ));
    }
    Ok(pattern.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<ReportOrigin, ConfigError> {
        Config::from_parts(Path::new("/etc/g.ini"), text, std::iter::empty())
            .map(|c| c.scheduler.report_origin)
    }

    #[test]
    fn broker_users_default_to_auto_and_take_a_template_or_a_drone_key() {
        let o = load("[SCHEDULER]\ndrones: d1, d-2\nd_2_broker_user: lab-d2\n").unwrap();
        assert_eq!(o.drone_broker_users, DroneBrokerUsers::Auto);
        let d2 = DroneName::new("d-2").unwrap();
        assert_eq!(
            o.drone_broker_user.get(&d2).map(String::as_str),
            Some("lab-d2")
        );
        let o = load("[SCHEDULER]\ndrone_broker_users: mq-{drone}\n").unwrap();
        assert_eq!(
            o.drone_broker_users,
            DroneBrokerUsers::Template("mq-{drone}".into())
        );
        assert_eq!(
            load("[SCHEDULER]\ndrone_broker_users: SHARED\n")
                .unwrap()
                .drone_broker_users,
            DroneBrokerUsers::Shared
        );
        let error = load("[SCHEDULER]\ndrone_broker_users: everyone\n").unwrap_err();
        assert_eq!(error.key, "drone_broker_users");
    }

    #[test]
    fn results_url_patterns_are_base_urls() {
        let o = load("[SCHEDULER]\ndrone_results_url: http://{drone}:8080/, https://10.0.0.1:*\n")
            .unwrap();
        assert_eq!(
            o.drone_results_url,
            ["http://{drone}:8080", "https://10.0.0.1:*"]
        );
        for bad in ["ftp://x", "http://x/path", "http://u@x", "http://"] {
            let error = load(&format!("[SCHEDULER]\ndrone_results_url: {bad}\n")).unwrap_err();
            assert_eq!(error.key, "drone_results_url", "{bad}");
        }
    }
}
