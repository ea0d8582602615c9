//! The lab of `deploy/lab.sh`: drones and a results host in network namespaces of
//! their own, workers on least-privilege broker users over the bridge, results pushed
//! with rsync over SSH with host keys checked; `status` notices a part that is down,
//! and `down` removes everything. Its own test binary: the lab has fixed names and
//! addresses, and adds a listener to the machine's RabbitMQ.

use scheduler::api::{CreateHost, CreateJob};
use scheduler::client::Client;
use std::process::Command;
use std::time::{Duration, Instant};

fn lab(dir: &std::path::Path, port: u16, action: &str) -> std::process::Output {
    Command::new(autotest_tests::repo_root().join("deploy/lab.sh"))
        .arg(action)
        .env("AUTOTEST_LAB_DIR", dir)
        .env("AUTOTEST_LAB_HTTP_PORT", port.to_string())
        .env(
            "AUTOTEST_LAB_BIN",
            autotest_tests::binary("drone-worker").parent().unwrap(),
        )
        .output()
        .expect("run deploy/lab.sh")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Takes the lab down even when the test fails.
struct Lab {
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Lab {
    fn drop(&mut self) {
        lab(&self.dir, self.port, "down");
    }
}

#[test]
fn jobs_run_on_drones_in_their_own_namespaces_and_the_lab_comes_down_clean() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        eprintln!("skipped: the lab makes network namespaces and needs root (deploy/test.sh runs as root in CI)");
        return;
    }
    let dir = std::env::temp_dir().join(autotest_tests::unique("lab"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let guard = Lab {
        dir: dir.clone(),
        port,
    };
    let up = lab(&dir, port, "up");
    assert!(up.status.success(), "lab up failed:\n{}", text(&up));
    let export = format!("export ATEST_SERVER=http://127.0.0.1:{port}");
    assert!(
        String::from_utf8_lossy(&up.stdout)
            .trim_end()
            .ends_with(&export),
        "{}",
        text(&up)
    );

    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let hosts: Vec<String> = (1..=4).map(|i| format!("labhost{i}")).collect();
    for host in &hosts {
        client
            .create_host(&CreateHost {
                name: host.clone(),
                labels: vec![],
            })
            .unwrap();
    }
    let id = client
        .create_job(&CreateJob {
            name: "in the lab".into(),
            control_file: "echo \"$AUTOSERV_HOSTS\" > out.txt\n".into(),
            hosts: hosts.clone(),
            label: None,
            count: None,
            dependencies: vec![],
            owner: "tester".into(),
            priority: 0,
            timeout_mins: None,
            max_runtime_mins: None,
            timeout_secs: None,
            max_runtime_secs: None,
            drone_set: None,
            synch_count: None,
            run_verify: false,
            reboot_before: None,
            reboot_after: None,
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let job = loop {
        let job = client.job(id).unwrap();
        if job.status != "Queued" && job.status != "Running" {
            break job;
        }
        assert!(Instant::now() < deadline, "not done: {job:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job.status, "Completed", "{job:?}");
    let drones: std::collections::BTreeSet<_> =
        job.entries.iter().filter_map(|e| e.drone.clone()).collect();
    assert_eq!(drones.len(), 2, "both drones worked: {job:?}");
    for entry in &job.entries {
        let host = entry.host.as_deref().unwrap();
        // Pushed over SSH to the results host's namespace...
        assert!(
            entry
                .results_path
                .as_deref()
                .is_some_and(|p| p.starts_with("root@10.77.0.13:")),
            "{entry:?}"
        );
        // ...which shares this machine's disk, so the copy can be read here.
        let out = dir.join(format!("results/{id}-tester/{host}/out.txt"));
        assert_eq!(autotest_tests::world::read(&out), format!("{host}\n"));
    }
    // The workers really run inside their namespaces.
    for drone in ["drone1", "drone2"] {
        let pid = std::fs::read_to_string(dir.join(format!("run/{drone}.pid"))).unwrap();
        let pids = Command::new("ip")
            .args(["netns", "pids", &format!("atl-{drone}")])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&pids.stdout)
                .lines()
                .any(|p| p.trim() == pid.trim()),
            "worker {drone} (pid {pid}) is not in namespace atl-{drone}"
        );
    }

    let status = lab(&dir, port, "status");
    assert!(status.status.success(), "{}", text(&status));
    let pid = std::fs::read_to_string(dir.join("run/drone2.pid")).unwrap();
    Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = lab(&dir, port, "status");
        if !status.status.success() || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.status.success(), "status missed a dead worker");
    assert!(
        text(&status).contains("DOWN  worker drone2"),
        "{}",
        text(&status)
    );

    drop(guard);
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains("atl-"),
        "namespaces left behind"
    );
    assert!(!Command::new("ip")
        .args(["link", "show", "atl-br"])
        .output()
        .unwrap()
        .status
        .success());
    assert!(!dir.exists(), "the lab directory is left behind");
    let vhosts = autotest_tests::broker::vhost_exists("autotest-lab");
    assert!(!vhosts, "the lab's vhost is left behind");
}
