//! Certificates made for one test by the openssl command: a lab CA, a server
//! certificate it signed for `127.0.0.1` and `localhost`, and another CA that signed
//! nothing here (what a client trusting the wrong authority holds).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, a server certificate it signed, and an unrelated CA, in a directory of
/// their own (removed with this value).
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("autotest_test_ca_")
            .tempdir()
            .expect("temp dir");
        let openssl = |args: &[&str]| openssl(dir.path(), args);
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=autotest test {ca}"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        // An X.509 v3 server certificate (rustls takes no v1 ones).
        std::fs::write(
            dir.path().join("server.cnf"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.cnf");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.cnf",
        ]);
        Self { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The lab CA's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// Another CA's certificate: trusting it must not be enough.
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// The server certificate (PEM) for 127.0.0.1 and localhost, signed by [`Self::ca`].
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// The server certificate's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The directory holding them all.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client certificate for `name` signed by [`Self::ca`]: (certificate, key), PEM.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        // An X.509 v3 certificate (rustls takes no v1 ones) for a client.
        std::fs::write(
            dir.join("client.cnf"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write client.cnf");
        let (key, csr, cert) = (
            format!("client-{name}.key"),
            format!("client-{name}.csr"),
            format!("client-{name}.pem"),
        );
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                &subject,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                "client.cnf",
            ],
        );
        (self.file(&cert), self.file(&key))
    }

    /// Lets a server running as another user (RabbitMQ's own) read the CA, the server
    /// certificate and its key.
    pub fn readable_by_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        let set = |path: PathBuf, mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()))
        };
        set(self.dir.path().to_path_buf(), 0o755);
        for file in ["ca.pem", "server.pem", "server.key"] {
            set(self.file(file), 0o644);
        }
    }
}

/// Runs `openssl ARGS` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (deploy/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
