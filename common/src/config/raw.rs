//! The ini file as text: `section → key → (value, origin)`, with the environment
//! overrides applied, and the value checks the sections share.

use super::{ConfigError, ResultsHost};
use crate::names::HostName;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Raw `section → key → (value, origin)` after parsing the file and the environment.
pub(super) struct Raw {
    pub(super) file: String,
    pub(super) sections: HashMap<String, HashMap<String, (String, String)>>,
    pub(super) used: BTreeSet<(String, String)>,
}

pub(super) const SECTIONS: &[&str] = &[
    "AUTOTEST_WEB",
    "SCHEDULER",
    "DRONE",
    "AUTOSERV",
    "BROKER",
    "AUTH",
    "NOTIFICATION",
];

/// Keys of Autotest's own `global_config.ini` that this system accepts without a
/// warning and does not need (docs/configuration.md says why, key by key).
pub(super) const ACCEPTED_UNUSED: &[(&str, &str)] = &[
    ("AUTOTEST_WEB", "parse_failed_repair_default"),
    ("SCHEDULER", "die_on_orphans"),
    ("SCHEDULER", "max_parse_processes"),
    ("SCHEDULER", "max_transfer_processes"),
    ("SCHEDULER", "tick_pause_sec"),
    ("SCHEDULER", "clean_interval_minutes"),
    ("SCHEDULER", "synch_job_start_timeout_minutes"),
    ("SCHEDULER", "drone_installation_directory"),
    ("SCHEDULER", "secs_to_wait_for_atomic_group_hosts"),
    ("AUTOSERV", "require_atfork_module"),
];

pub(super) fn normalize_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace(['-', '.'], "_")
}

impl Raw {
    pub(super) fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
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

    pub(super) fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) {
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
    pub(super) fn get(&mut self, section: &str, key: &str) -> Option<(String, String)> {
        self.used.insert((section.to_string(), key.to_string()));
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .filter(|(v, _)| !v.is_empty())
            .cloned()
    }

    pub(super) fn error(
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

    pub(super) fn parsed<T>(
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

    pub(super) fn string(&mut self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key)
            .map_or(default.to_string(), |(v, _)| v)
    }

    pub(super) fn path(
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

pub(super) fn positive(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive integer, got {v:?}")),
    }
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

pub(super) fn results_host(v: &str) -> Result<ResultsHost, String> {
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
