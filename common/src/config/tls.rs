//! The TLS keys of `[SCHEDULER]` and `[DRONE]`: `tls_cert` and `tls_key` (PEM) make a
//! server answer HTTPS, and `[SCHEDULER] drone_ca_file` is the CA the scheduler trusts
//! when it asks a drone's results server. Each file is read and parsed at load, so a
//! bad one stops the program before it binds anything.

use super::raw::Raw;
use super::ConfigError;
use crate::tls::{ServerTls, TlsError};
use std::path::Path;

/// `tls_cert` and `tls_key` of `section`: both or neither.
pub(super) fn server(
    raw: &mut Raw,
    section: &str,
    base: &Path,
) -> Result<Option<ServerTls>, ConfigError> {
    let cert = raw.get(section, "tls_cert");
    let key = raw.get(section, "tls_key");
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some((_, origin)), None) => {
            return Err(raw.error(
                &origin,
                section,
                "tls_cert",
                "tls_cert needs tls_key (the certificate's private key, PEM)",
            ))
        }
        (None, Some((_, origin))) => {
            return Err(raw.error(
                &origin,
                section,
                "tls_key",
                "tls_key needs tls_cert (the server's certificate, PEM)",
            ))
        }
    };
    let files = ServerTls {
        cert: base.join(&cert.0),
        key: base.join(&key.0),
    };
    crate::tls::server_config(&files).map_err(|error| {
        let (origin, name) = match &error {
            TlsError::Read { path, .. } if *path == files.cert => (&cert.1, "tls_cert"),
            TlsError::NoCertificate { .. } | TlsError::BadCertificate { .. } => {
                (&cert.1, "tls_cert")
            }
            _ => (&key.1, "tls_key"),
        };
        raw.error(origin, section, name, error.to_string())
    })?;
    Ok(Some(files))
}

/// `[SCHEDULER] drone_ca_file`: CA certificates (PEM) that drones' results servers'
/// certificates must chain to; None: the public roots.
pub(super) fn ca_file(
    raw: &mut Raw,
    section: &str,
    key: &str,
    base: &Path,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    raw.parsed(section, key, None, |v| {
        let path = base.join(v);
        crate::tls::read_certificates(&path)
            .map(|_| Some(path))
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn load(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(&dir.join("global_config.ini"), text, std::iter::empty())
    }

    /// A self-signed certificate and its key, made by the openssl command.
    fn self_signed(dir: &Path) {
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                "/CN=localhost",
            ])
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed (deploy/test.sh installs it)");
        assert!(status.success());
    }

    #[test]
    fn a_bad_certificate_or_key_names_file_section_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("garbage.pem"), "hello\n").unwrap();
        self_signed(dir.path());
        let file = dir.path().join("global_config.ini").display().to_string();

        let error = load(
            dir.path(),
            "[SCHEDULER]\ntls_cert: missing.pem\ntls_key: key.pem\n",
        )
        .unwrap_err();
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("SCHEDULER", "tls_cert")
        );
        assert_eq!(error.origin, file);
        assert!(error.message.contains("missing.pem"), "{error}");
        assert!(error.message.contains("No such file"), "{error}");

        let error = load(
            dir.path(),
            "[DRONE]\ntls_cert: garbage.pem\ntls_key: key.pem\n",
        )
        .unwrap_err();
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("DRONE", "tls_cert")
        );
        assert!(error.to_string().contains("garbage.pem"), "{error}");

        let error = load(
            dir.path(),
            "[DRONE]\ntls_cert: cert.pem\ntls_key: garbage.pem\n",
        )
        .unwrap_err();
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("DRONE", "tls_key")
        );
        assert!(error.message.contains("no PEM private key"), "{error}");

        let error = load(dir.path(), "[SCHEDULER]\ntls_cert: cert.pem\n").unwrap_err();
        assert_eq!(error.key, "tls_cert");
        assert!(error.message.contains("needs tls_key"), "{error}");

        let error = load(dir.path(), "[SCHEDULER]\ndrone_ca_file: garbage.pem\n").unwrap_err();
        assert_eq!(error.key, "drone_ca_file");
        assert!(error.message.contains("garbage.pem"), "{error}");
    }

    #[test]
    fn good_files_make_the_servers_answer_https() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path());
        let c = load(
            dir.path(),
            "[SCHEDULER]\ntls_cert: cert.pem\ntls_key: key.pem\ndrone_ca_file: cert.pem\n[DRONE]\ntls_cert: cert.pem\ntls_key: key.pem\nresults_url: https://drone1:8080/\n",
        )
        .unwrap();
        let tls = c.scheduler.tls.unwrap();
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert_eq!(tls.key, dir.path().join("key.pem"));
        assert_eq!(c.scheduler.drone_ca_file, Some(dir.path().join("cert.pem")));
        assert!(c.drone.tls.is_some());
        assert_eq!(c.drone.results_url.as_deref(), Some("https://drone1:8080"));

        // A drone serving HTTPS cannot send readers to plain HTTP.
        let error = load(
            dir.path(),
            "[DRONE]\ntls_cert: cert.pem\ntls_key: key.pem\nresults_url: http://drone1:8080\n",
        )
        .unwrap_err();
        assert_eq!(error.key, "results_url");
    }

    #[test]
    fn a_missing_config_file_says_so_plainly() {
        let error = Config::load(Path::new("/nonexistent/global_config.ini")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read config file /nonexistent/global_config.ini: No such file or directory (os error 2)"
        );
    }
}
