//! `[AUTH]`, and `[SCHEDULER] public_names`: who the scheduler's HTTP API believes a
//! caller to be, and which names it answers to.

use super::raw::{boolean, positive, Raw};
use super::ConfigError;
use std::net::{IpAddr, SocketAddr};

/// `[AUTH]` (and `[SCHEDULER] public_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Reads (`GET`) without a token are allowed; when false every request needs one,
    /// results included.
    pub anonymous_read: bool,
    /// The header a single-sign-on proxy names the user in (`X-Remote-User`), believed
    /// only from `trusted_proxies`; None: no proxy is trusted.
    pub trusted_proxy_header: Option<String>,
    /// The peer addresses `trusted_proxy_header` is believed from.
    pub trusted_proxies: Vec<IpAddr>,
    /// How long a browser's sign-in lasts, in hours (`session_hours`, default 12).
    pub session_hours: u32,
    /// `[SCHEDULER] public_names`: the host names (lower case) a request's `Host`
    /// header may carry; anything else is refused (against DNS rebinding).
    pub public_names: Vec<String>,
}

/// A header name as HTTP allows it (a token: letters, digits and `!#$%&'*+-.^_|~`).
fn header_name(v: &str) -> Result<Option<String>, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if v.chars().all(token) && v.len() <= 128 {
        Ok(Some(v.to_ascii_lowercase()))
    } else {
        Err(format!("expected an HTTP header name, got {v:?}"))
    }
}

fn addresses(v: &str) -> Result<Vec<IpAddr>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| format!("expected IP addresses separated by commas, got {a:?}"))
        })
        .collect()
}

/// A host name or IP address as a `Host` header carries it, lower case.
fn names(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let ok = bare.parse::<IpAddr>().is_ok() || crate::names::HostName::new(bare).is_ok();
        if !ok {
            return Err(format!(
                "expected host names or IP addresses separated by commas (no port), got {name:?}"
            ));
        }
        out.push(bare.to_ascii_lowercase());
    }
    if out.is_empty() {
        return Err("expected at least one host name".into());
    }
    Ok(out)
}

/// The names a scheduler listening on `listen` answers to by default: its address,
/// `localhost`, `127.0.0.1` and `::1`, and this machine's name when it listens on
/// every address.
pub fn default_public_names(listen: SocketAddr) -> Vec<String> {
    let mut out = vec![
        listen.ip().to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if listen.ip().is_unspecified() {
        if let Ok(host) = crate::hostname() {
            out.push(host.to_ascii_lowercase());
        }
    }
    out.dedup();
    out
}

pub(super) fn auth(raw: &mut Raw, listen: SocketAddr) -> Result<AuthConfig, ConfigError> {
    let section = "AUTH";
    let anonymous_read = raw.parsed(section, "anonymous_read", true, boolean)?;
    let trusted_proxy_header = raw.parsed(section, "trusted_proxy_header", None, header_name)?;
    let session_hours = raw.parsed(section, "session_hours", 12, |v| {
        positive(v).and_then(|h| {
            if h <= 24 * 366 {
                Ok(h)
            } else {
                Err(format!("expected at most a year's hours (8784), got {h}"))
            }
        })
    })?;
    let trusted_proxies = raw.parsed(section, "trusted_proxies", Vec::new(), addresses)?;
    if trusted_proxy_header.is_some() == trusted_proxies.is_empty() {
        let (key, message) = if trusted_proxy_header.is_some() {
            (
                "trusted_proxy_header",
                "needs [AUTH] trusted_proxies (the proxy's addresses)",
            )
        } else {
            (
                "trusted_proxies",
                "needs [AUTH] trusted_proxy_header (the header naming the user)",
            )
        };
        let origin = raw.get(section, key).map(|(_, o)| o).unwrap_or_default();
        return Err(raw.error(&origin, section, key, message));
    }
    let public_names = raw.parsed(
        "SCHEDULER",
        "public_names",
        default_public_names(listen),
        names,
    )?;
    Ok(AuthConfig {
        anonymous_read,
        trusted_proxy_header,
        trusted_proxies,
        session_hours,
        public_names,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_parts(Path::new("/etc/autotest/g.ini"), text, std::iter::empty())
    }

    #[test]
    fn defaults_allow_anonymous_reads_and_answer_to_the_listen_address() {
        let c = load("[SCHEDULER]\nhttp_listen: 10.1.2.3:80\n").unwrap();
        assert!(c.auth.anonymous_read);
        assert_eq!(c.auth.session_hours, 12);
        assert_eq!(c.auth.trusted_proxy_header, None);
        assert_eq!(
            c.auth.public_names,
            ["10.1.2.3", "localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn reads_the_auth_section() {
        let c = load("[AUTH]\nanonymous_read: false\ntrusted_proxy_header: X-Remote-User\ntrusted_proxies: 127.0.0.1, ::1\nsession_hours: 8\n[SCHEDULER]\npublic_names: Autotest.Lab, [::1]\n").unwrap();
        assert!(!c.auth.anonymous_read);
        assert_eq!(c.auth.session_hours, 8);
        assert_eq!(
            c.auth.trusted_proxy_header.as_deref(),
            Some("x-remote-user")
        );
        assert_eq!(c.auth.trusted_proxies.len(), 2);
        assert_eq!(c.auth.public_names, ["autotest.lab", "::1"]);
    }

    #[test]
    fn the_environment_overrides_the_auth_section() {
        let c = Config::from_parts(
            Path::new("/etc/autotest/g.ini"),
            "[AUTH]\nanonymous_read: true\n",
            [("AUTOTEST_AUTH_ANONYMOUS_READ".to_string(), "no".to_string())].into_iter(),
        )
        .unwrap();
        assert!(!c.auth.anonymous_read);
    }

    #[test]
    fn bad_values_name_section_and_key() {
        for (text, key) in [
            ("[AUTH]\nanonymous_read: maybe\n", "anonymous_read"),
            ("[AUTH]\nsession_hours: 0\n", "session_hours"),
            ("[AUTH]\nsession_hours: 9000\n", "session_hours"),
            (
                "[AUTH]\ntrusted_proxy_header: X Remote\ntrusted_proxies: 127.0.0.1\n",
                "trusted_proxy_header",
            ),
            (
                "[AUTH]\ntrusted_proxy_header: X-User\ntrusted_proxies: proxy.lab\n",
                "trusted_proxies",
            ),
            (
                "[AUTH]\ntrusted_proxy_header: X-User\n",
                "trusted_proxy_header",
            ),
            ("[AUTH]\ntrusted_proxies: 127.0.0.1\n", "trusted_proxies"),
            ("[SCHEDULER]\npublic_names: a.lab:8080\n", "public_names"),
        ] {
            let error = load(text).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }
}
