//! A results host reached over real SSH: an `sshd` of our own on 127.0.0.1, with its
//! own host key, client key, `authorized_keys`, `known_hosts` and config in a directory
//! of the caller's, so neither the machine's sshd nor the user's `~/.ssh` is touched.
//!
//! Workers push to it with `[SCHEDULER] results_host = Sshd::results_host()` and
//! `[DRONE] ssh_options = Sshd::ssh_options().join(" ")`. `stop` makes the results host
//! unreachable (connection refused, open sessions cut), `start_again` brings it back
//! on the same port with the same keys. Dropping it kills it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// How long `start` waits for the port to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) private sshd.
pub struct Sshd {
    dir: PathBuf,
    port: u16,
    config: PathBuf,
    client_key: PathBuf,
    known_hosts: PathBuf,
    user: String,
    child: Option<Child>,
}

impl Sshd {
    /// Generates keys and config in `dir` (created if missing) and starts sshd on a
    /// free port of 127.0.0.1. Panics with the reason if it cannot.
    pub fn start(dir: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (deploy/lib.sh ensure_sshd does)"
        );
        std::fs::create_dir_all(dir).expect("sshd directory");
        let dir = dir.canonicalize().expect("sshd directory path");
        if current_uid() == 0 && !Path::new("/run/sshd").exists() {
            // sshd run as root insists on its privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let client_key = dir.join("client_ed25519_key");
        keygen(&host_key);
        keygen(&client_key);
        let authorized_keys = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized_keys)
            .expect("write authorized_keys");
        let port = free_port();
        let host_public = std::fs::read_to_string(host_key.with_extension("pub"))
            .expect("read the host public key");
        let mut fields = host_public.split_whitespace();
        let (kind, key) = (
            fields.next().expect("host key type"),
            fields.next().expect("host key"),
        );
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n"))
            .expect("write known_hosts");
        // `SetEnv SHLVL=1`: bash, the login shell that runs `rsync --server`, sources
        // ~/.bashrc for commands from sshd only at shell level 1; a user's bashrc (a
        // pyenv rehash waiting on a lock left by a session cut in an outage, say) must
        // not slow down or block the results host. `PermitUserRC no` skips ~/.ssh/rc.
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {host_key}\n\
                 AuthorizedKeysFile {authorized_keys}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 UseDNS no\n\
                 PermitUserRC no\n\
                 SetEnv SHLVL=1\n\
                 MaxStartups 100\n\
                 MaxSessions 100\n\
                 PidFile {pid}\n\
                 LogLevel INFO\n",
                host_key = host_key.display(),
                authorized_keys = authorized_keys.display(),
                pid = dir.join("sshd.pid").display(),
            ),
        )
        .expect("write sshd_config");
        let mut sshd = Sshd {
            dir,
            port,
            config,
            client_key,
            known_hosts,
            user: current_user(),
            child: None,
        };
        sshd.start_again();
        sshd
    }

    /// The port sshd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Options for `ssh` (each one argument) that reach this sshd with its own keys and
    /// nothing from `~/.ssh`.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.client_key.display().to_string(),
            "-oIdentitiesOnly=yes".into(),
            format!("-oUserKnownHostsFile={}", self.known_hosts.display()),
            "-oGlobalKnownHostsFile=/dev/null".into(),
            "-oStrictHostKeyChecking=yes".into(),
            "-oBatchMode=yes".into(),
            "-oConnectTimeout=3".into(),
        ]
    }

    /// `user@127.0.0.1`, the current user on this sshd.
    pub fn results_host(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    /// sshd's own log (its stderr, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// Whether sshd is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills sshd and every session it forked, and waits: connecting is then refused
    /// and transfers in progress are cut. Does nothing if it is stopped already.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Stopped, it accepts nothing more while its sessions are collected. Each
        // session calls setsid(), so a process group would not reach them.
        signal("STOP", &[pid]);
        let sessions = descendants(pid);
        signal("KILL", &sessions);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts sshd again, on the same port with the same keys, and waits until the
    /// port accepts connections. Does nothing if it is running.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("sshd log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "sshd exited ({status}) before listening on {address}; see {}",
                    self.log_path().display()
                );
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "sshd did not accept connections on {address} within {START_TIMEOUT:?}; see {}",
                    self.log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path) {
    if path.exists() {
        return;
    }
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "autotest-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen (openssh-client): {e}"));
    assert!(
        output.status.success(),
        "ssh-keygen -f {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// (pid, parent pid) of every process, from /proc.
fn process_table() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// Every process below `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let table = process_table();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &table {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn current_user() -> String {
    let uid = current_uid();
    if uid == 0 {
        return "root".into();
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_string())
            })
        })
        .expect("the current user's name")
}
