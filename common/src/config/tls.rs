//! The TLS keys of `[SCHEDULER]` and `[DRONE]`: `tls_cert` and `tls_key` (PEM) make a
//! server answer HTTPS, and `[SCHEDULER] drone_ca_file` is the CA the scheduler trusts
//! when it asks a drone's results server. Loading the config records the paths (both
//! or neither); the program that uses them reads and checks them before it binds or
//! connects anything, with an error that names the file, section and key. Both
//! programs read the same file, and a drone has no need of the scheduler's private key
//! (nor the scheduler of a drone's).

use super::raw::Raw;
use super::{ConfigError, DroneConfig, SchedulerConfig};
use crate::tls::TlsError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A path from the config, with where it was given (file or environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    pub path: PathBuf,
    pub origin: String,
}

/// The certificate (PEM, the server's first, then any intermediates) and private key
/// (PEM) a server presents, as `tls_cert` and `tls_key` of `section`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub section: &'static str,
    pub cert: ConfigPath,
    pub key: ConfigPath,
}

impl ServerTls {
    /// Reads and checks the files: the server's rustls configuration, or an error
    /// naming the file, section and key at fault.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        crate::tls::server_config(&self.cert.path, &self.key.path).map_err(|error| {
            let (at, key) = match &error {
                TlsError::Read { path, .. } if *path == self.cert.path => (&self.cert, "tls_cert"),
                TlsError::NoCertificate { .. } | TlsError::BadCertificate { .. } => {
                    (&self.cert, "tls_cert")
                }
                _ => (&self.key, "tls_key"),
            };
            ConfigError {
                origin: at.origin.clone(),
                section: self.section.to_string(),
                key: key.to_string(),
                message: error.to_string(),
            }
        })
    }
}

impl SchedulerConfig {
    /// Reads and checks the scheduler's own TLS files (`tls_cert`, `tls_key`,
    /// `drone_ca_file`): the API's rustls configuration when it serves HTTPS.
    pub fn load_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
        if let Some(ca) = &self.drone_ca {
            crate::tls::read_certificates(&ca.path).map_err(|error| ConfigError {
                origin: ca.origin.clone(),
                section: "SCHEDULER".into(),
                key: "drone_ca_file".into(),
                message: error.to_string(),
            })?;
        }
        self.tls.as_ref().map(ServerTls::load).transpose()
    }
}

impl DroneConfig {
    /// Reads and checks the results server's TLS files: its rustls configuration when
    /// it serves HTTPS.
    pub fn load_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
        self.tls.as_ref().map(ServerTls::load).transpose()
    }
}

/// `tls_cert` and `tls_key` of `section`: both or neither.
pub(super) fn server(
    raw: &mut Raw,
    section: &'static str,
    base: &Path,
) -> Result<Option<ServerTls>, ConfigError> {
    let cert = path(raw, section, "tls_cert", base)?;
    let key = path(raw, section, "tls_key", base)?;
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(ServerTls { section, cert, key })),
        (Some(cert), None) => Err(raw.error(
            &cert.origin,
            section,
            "tls_cert",
            "tls_cert needs tls_key (the certificate's private key, PEM)",
        )),
        (None, Some(key)) => Err(raw.error(
            &key.origin,
            section,
            "tls_key",
            "tls_key needs tls_cert (the server's certificate, PEM)",
        )),
    }
}

/// A path-valued key, relative to the config's directory.
pub(super) fn path(
    raw: &mut Raw,
    section: &str,
    key: &str,
    base: &Path,
) -> Result<Option<ConfigPath>, ConfigError> {
    let Some((value, origin)) = raw.get(section, key) else {
        return Ok(None);
    };
    if value.contains('\0') {
        return Err(raw.error(&origin, section, key, "a path cannot contain NUL"));
    }
    Ok(Some(ConfigPath {
        path: base.join(value),
        origin,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn load(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(&dir.join("global_config.ini"), text, std::iter::empty())
    }

    /// The error of the scheduler's, then the drone's, TLS files of `text`.
    fn tls_error(dir: &Path, text: &str) -> ConfigError {
        let config = load(dir, text).expect("the paths are recorded at load");
        match config.scheduler.load_tls() {
            Err(error) => error,
            Ok(_) => config.drone.load_tls().expect_err("a bad file"),
        }
    }

    /// A self-signed certificate and its key, made by the openssl command.
    fn self_signed(dir: &Path) {
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .args(["-subj", "/CN=localhost"])
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

        let error = tls_error(
            dir.path(),
            "[SCHEDULER]\ntls_cert: missing.pem\ntls_key: key.pem\n",
        );
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("SCHEDULER", "tls_cert")
        );
        assert_eq!(error.origin, file);
        assert!(error.message.contains("missing.pem"), "{error}");
        assert!(error.message.contains("No such file"), "{error}");
        assert!(error
            .to_string()
            .starts_with(&format!("{file}: [SCHEDULER] tls_cert: ")));

        let error = tls_error(
            dir.path(),
            "[DRONE]\ntls_cert: garbage.pem\ntls_key: key.pem\n",
        );
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("DRONE", "tls_cert")
        );
        assert!(error.message.contains("garbage.pem"), "{error}");

        let error = tls_error(
            dir.path(),
            "[DRONE]\ntls_cert: cert.pem\ntls_key: garbage.pem\n",
        );
        assert_eq!(
            (error.section.as_str(), error.key.as_str()),
            ("DRONE", "tls_key")
        );
        assert!(error.message.contains("no PEM private key"), "{error}");

        let error = tls_error(dir.path(), "[SCHEDULER]\ndrone_ca_file: garbage.pem\n");
        assert_eq!(error.key, "drone_ca_file");
        assert!(error.message.contains("garbage.pem"), "{error}");

        // Found out at load: one key without the other.
        let error = load(dir.path(), "[SCHEDULER]\ntls_cert: cert.pem\n").unwrap_err();
        assert_eq!(error.key, "tls_cert");
        assert!(error.message.contains("needs tls_key"), "{error}");
        let error = load(dir.path(), "[DRONE]\ntls_key: key.pem\n").unwrap_err();
        assert_eq!(error.key, "tls_key");
    }

    #[test]
    fn each_program_reads_only_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path());
        // A drone sharing the scheduler's file need not hold the scheduler's key.
        let c = load(
            dir.path(),
            "[SCHEDULER]\ntls_cert: /elsewhere/api.pem\ntls_key: /elsewhere/api.key\n[DRONE]\ntls_cert: cert.pem\ntls_key: key.pem\n",
        )
        .unwrap();
        assert!(c.drone.load_tls().unwrap().is_some());
        assert_eq!(c.scheduler.load_tls().unwrap_err().key, "tls_cert");
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
        let tls = c.scheduler.tls.as_ref().unwrap();
        assert_eq!(tls.cert.path, dir.path().join("cert.pem"));
        assert_eq!(tls.key.path, dir.path().join("key.pem"));
        assert_eq!(
            c.scheduler.drone_ca.as_ref().map(|c| &c.path),
            Some(&dir.path().join("cert.pem"))
        );
        assert!(c.scheduler.load_tls().unwrap().is_some());
        assert!(c.drone.load_tls().unwrap().is_some());
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
