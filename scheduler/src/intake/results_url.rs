//! Where a drone may send readers: the `results_url` of its heartbeats is used only if
//! it matches `[SCHEDULER] drone_results_url`, else it is ignored. Pure.

use common::names::DroneName;

/// A URL split into what the rule compares: scheme, host (lower case) and port.
#[derive(Debug, PartialEq, Eq)]
struct Base<'a> {
    scheme: &'a str,
    host: String,
    port: Option<&'a str>,
}

/// `http(s)://HOST[:PORT]` with nothing after but an optional `/`; None otherwise.
fn base(url: &str) -> Option<Base<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    Some(Base {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` is an address `drone` may send readers to. With no `patterns` (the
/// default): an http(s) URL whose host is the drone's name, a name under it
/// (`<drone>.lab.example`) or a loopback address, on any port. Otherwise it must match
/// one pattern, `{drone}` standing for the drone's name and a port `*` for any port.
pub fn allowed(url: &str, drone: &DroneName, patterns: &[String]) -> bool {
    let Some(url) = base(url) else {
        return false;
    };
    if url.port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return false;
    }
    let name = drone.as_str().to_ascii_lowercase();
    if patterns.is_empty() {
        return url.host == name
            || url
                .host
                .strip_prefix(&name)
                .is_some_and(|r| r.starts_with('.'))
            || is_loopback(&url.host);
    }
    patterns.iter().any(|pattern| {
        let pattern = pattern.replace("{drone}", drone.as_str());
        base(&pattern).is_some_and(|p| {
            p.scheme == url.scheme
                && p.host == url.host
                && (p.port == Some("*") || p.port == url.port)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str, patterns: &[&str]) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        allowed(url, &DroneName::new("drone1").unwrap(), &patterns)
    }

    #[test]
    fn by_default_the_drones_own_name_or_loopback() {
        assert!(ok("http://drone1:8080", &[]));
        assert!(ok("https://DRONE1.lab.example:443/", &[]));
        assert!(ok("http://127.0.0.1:41234", &[]));
        assert!(ok("http://localhost:1", &[]));
        assert!(ok("http://[::1]:1", &[]));
        assert!(!ok("http://drone2:8080", &[]));
        assert!(!ok("http://drone1x:8080", &[]));
        assert!(!ok("http://evil.example/drone1", &[]));
        assert!(!ok("http://drone1@evil.example", &[]));
        assert!(!ok("ftp://drone1", &[]));
        assert!(!ok("http://drone1:port", &[]));
        assert!(!ok("http://10.0.0.1:80", &[]));
    }

    #[test]
    fn a_template_or_a_list_replaces_the_default() {
        assert!(ok("http://drone1:8080", &["http://{drone}:8080"]));
        assert!(!ok("http://drone1:8081", &["http://{drone}:8080"]));
        assert!(!ok("https://drone1:8080", &["http://{drone}:8080"]));
        assert!(!ok("http://127.0.0.1:8080", &["http://{drone}:8080"]));
        assert!(ok(
            "http://10.77.0.11:39001",
            &["http://{drone}:8080", "http://10.77.0.11:*"]
        ));
        assert!(ok("http://10.77.0.11", &["http://10.77.0.11:*"]));
        assert!(ok("http://10.77.0.11", &["http://10.77.0.11"]));
    }
}
