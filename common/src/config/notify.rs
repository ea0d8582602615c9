//! Autotest's job-end mail: `[SCHEDULER] notify_email`, `notify_email_from` and
//! `notify_email_statuses` (Autotest's keys), sent through `[NOTIFICATION] smtp_host`
//! and `smtp_port`; `[NOTIFICATION] owner_domain` mails a job's owner too, and
//! `[AUTOTEST_WEB] base_url` is where the mail's links point.

use super::raw::Raw;
use super::ConfigError;
use std::net::SocketAddr;

/// The statuses a job can end in (its entries' summary, as `atest job show` gives it).
pub const END_STATUSES: [&str; 3] = ["Completed", "Failed", "Aborted"];

/// Who is mailed when a job ends, and through which server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `[NOTIFICATION] smtp_host` and `smtp_port` (default 25); None: no mail is sent.
    pub smtp: Option<(String, u16)>,
    /// `notify_email`: addresses mailed about every job that ends in `statuses`.
    pub to: Vec<String>,
    /// `notify_email_from` (default `autotest@localhost`).
    pub from: String,
    /// `notify_email_statuses` (default `Completed,Failed,Aborted`).
    pub statuses: Vec<String>,
    /// `[NOTIFICATION] owner_domain`: the owner `ann` is mailed at `ann@<domain>`;
    /// None: owners are not mailed.
    pub owner_domain: Option<String>,
    /// `[AUTOTEST_WEB] base_url`: the scheduler's address as readers reach it, for the
    /// links in mail; default `http://<[SCHEDULER] http_listen>`.
    pub base_url: String,
}

impl NotifyConfig {
    /// Whether jobs are mailed about at all.
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
            && !self.statuses.is_empty()
            && (!self.to.is_empty() || self.owner_domain.is_some())
    }

    /// Whom to mail about a job of `owner`.
    pub fn recipients(&self, owner: &str) -> Vec<String> {
        let mut to = self.to.clone();
        if let Some(domain) = &self.owner_domain {
            let address = format!("{owner}@{domain}");
            if address_ok(&address) && !to.contains(&address) {
                to.push(address);
            }
        }
        to
    }
}

/// A domain name: dot-separated labels of letters, digits and `-`.
fn domain_ok(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A plain mail address `local@domain` (letters, digits and `._%+-` before the `@`):
/// nothing a mail header could be bent with.
pub fn address_ok(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && domain_ok(domain)
}

fn addresses(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for address in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !address_ok(address) {
            return Err(format!("{address:?} is not a mail address (name@domain)"));
        }
        out.push(address.to_string());
    }
    Ok(out)
}

pub(super) fn notify(raw: &mut Raw, http_listen: SocketAddr) -> Result<NotifyConfig, ConfigError> {
    let (sched, section) = ("SCHEDULER", "NOTIFICATION");
    let to = raw.parsed(sched, "notify_email", Vec::new(), addresses)?;
    let from = raw.parsed(sched, "notify_email_from", None, |v| {
        if v.is_empty() {
            Ok(None)
        } else if address_ok(v) {
            Ok(Some(v.to_string()))
        } else {
            Err(format!("{v:?} is not a mail address (name@domain)"))
        }
    })?;
    let statuses = raw.parsed(
        sched,
        "notify_email_statuses",
        END_STATUSES.map(String::from).to_vec(),
        |v| {
            let mut out = Vec::new();
            for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some(status) = END_STATUSES.iter().find(|e| e.eq_ignore_ascii_case(s)) else {
                    return Err(format!(
                        "{s:?} is not a status a job ends in ({})",
                        END_STATUSES.join(", ")
                    ));
                };
                out.push(status.to_string());
            }
            Ok(out)
        },
    )?;
    let host = raw.parsed(section, "smtp_host", None, |v| {
        if v.is_empty() {
            Ok(None)
        } else if domain_ok(v) || v.parse::<std::net::IpAddr>().is_ok() {
            Ok(Some(v.to_string()))
        } else {
            Err(format!("expected a host name or IP address, got {v:?}"))
        }
    })?;
    let port = raw.parsed(section, "smtp_port", 25, |v| {
        v.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("expected a TCP port, got {v:?}"))
    })?;
    let owner_domain = raw.parsed(section, "owner_domain", None, |v| {
        if v.is_empty() {
            Ok(None)
        } else if domain_ok(v) {
            Ok(Some(v.to_ascii_lowercase()))
        } else {
            Err(format!("expected a mail domain, got {v:?}"))
        }
    })?;
    let base_url = raw.parsed(
        "AUTOTEST_WEB",
        "base_url",
        format!("http://{http_listen}"),
        |v| {
            let ok = (v.starts_with("http://") || v.starts_with("https://"))
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(v.trim_end_matches('/').to_string())
            } else {
                Err(format!("expected an http(s):// URL, got {v:?}"))
            }
        },
    )?;
    Ok(NotifyConfig {
        smtp: host.map(|h| (h, port)),
        to,
        from: from.unwrap_or_else(|| "autotest@localhost".into()),
        statuses,
        owner_domain,
        base_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_addresses_are_plain() {
        for ok in ["ann@lab.example", "a.b+c@x-y.org", "lab@localhost"] {
            assert!(address_ok(ok), "{ok}");
        }
        for bad in [
            "ann",
            "@lab",
            "ann@",
            "ann@lab..example",
            "a b@lab",
            "ann@lab\r\nBcc: x@y",
            "<ann@lab>",
            "ann@la_b",
        ] {
            assert!(!address_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn recipients_are_the_list_and_the_owner_once() {
        let config = NotifyConfig {
            smtp: Some(("localhost".into(), 25)),
            to: vec!["lab@x.org".into(), "ann@x.org".into()],
            from: "autotest@localhost".into(),
            statuses: vec!["Failed".into()],
            owner_domain: Some("x.org".into()),
            base_url: "http://s".into(),
        };
        assert!(config.enabled());
        assert_eq!(config.recipients("ann"), ["lab@x.org", "ann@x.org"]);
        assert_eq!(
            config.recipients("bob"),
            ["lab@x.org", "ann@x.org", "bob@x.org"]
        );
        let off = NotifyConfig {
            smtp: None,
            ..config
        };
        assert!(!off.enabled());
    }
}
