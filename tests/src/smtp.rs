//! A real SMTP server for the tests: aiosmtpd (from the harness virtual environment,
//! see [`crate::harness_venv`]) storing every mail it receives in a Maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An SMTP server on 127.0.0.1, stopped when dropped.
pub struct SmtpServer {
    child: Child,
    maildir: PathBuf,
    pub port: u16,
}

/// A free TCP port on 127.0.0.1 (the SMTP server's, chosen before it starts so that
/// the scheduler can be configured with it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// Starts the server on `port`, keeping mail in `dir`/maildir, and waits until it
    /// accepts connections.
    pub fn start(dir: &Path, port: u16) -> Self {
        // aiosmtpd makes the Maildir (with its tmp/new/cur) only where none exists.
        let maildir = dir.join("maildir");
        std::fs::create_dir_all(dir).unwrap();
        let python = crate::harness_venv().join("bin/python");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start aiosmtpd with {}: {e}", python.display()));
        let server = Self {
            child,
            maildir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Every mail received so far, as its raw text, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
