//! Trusting a lab's own certificate authority: the CA certificates (PEM) a client
//! checks an HTTPS server's certificate against, in place of the public roots.

use std::path::{Path, PathBuf};

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} is not PEM: {message}")]
    NotPem { path: PathBuf, message: String },
    #[error("the CA file {path} holds no certificate (-----BEGIN CERTIFICATE-----)")]
    Empty { path: PathBuf },
}

/// Every certificate in the PEM file at `path` (private keys in it are skipped).
pub fn read_ca_file(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(error) => {
                return Err(CaFileError::NotPem {
                    path: path.to_path_buf(),
                    message: error.to_string(),
                })
            }
        }
    }
    if certificates.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// TLS settings that trust exactly the certificates of `ca_file`.
pub fn trusting(ca_file: &Path) -> Result<ureq::tls::TlsConfig, CaFileError> {
    let roots = read_ca_file(ca_file)?;
    Ok(ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_garbled_ca_file_is_named() {
        let error = read_ca_file(Path::new("/nonexistent/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent/ca.pem") && error.contains("No such file"),
            "{error}"
        );
        let file = std::env::temp_dir().join(format!("api-ca-test-{}.pem", std::process::id()));
        std::fs::write(&file, "just text\n").unwrap();
        let error = read_ca_file(&file).unwrap_err().to_string();
        let _ = std::fs::remove_file(&file);
        assert!(error.contains("holds no certificate"), "{error}");
    }
}
