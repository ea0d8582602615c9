//! The lab of `deploy/lab.sh`: drones and a results host in network namespaces of
//! their own, workers on least-privilege broker users over the bridge, results pushed
//! with rsync over SSH with host keys checked; the scheduler and the workers installed
//! by `deploy/install-scheduler.sh` and `deploy/install-drone.sh` (over SSH) and run as
//! `autotest`; running `install-drone.sh` again upgrades a drone with a drain; `status`
//! notices a part that is down, and `down` removes everything. Its own test binary: the
//! lab has fixed names and addresses, and adds a listener to the machine's RabbitMQ.

use autotest_tests::http::get as http_get;
use scheduler::api::{CreateHost, CreateJob};
use scheduler::client::Client;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lab(dir: &std::path::Path, port: u16, action: &str) -> std::process::Output {
    Command::new(autotest_tests::repo_root().join("deploy/lab.sh"))
        .arg(action)
        .env("AUTOTEST_LAB_DIR", dir)
        .env("AUTOTEST_LAB_HTTP_PORT", port.to_string())
        // The admin token `up` makes goes where atest looks: here, in the lab's directory.
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env(
            "AUTOTEST_LAB_BIN",
            autotest_tests::binary("drone-worker").parent().unwrap(),
        )
        .output()
        .expect("run deploy/lab.sh")
}

/// `deploy/install-drone.sh` for a drone of the lab, as `deploy/lab.sh up` runs it
/// (started, with stdout and stderr piped).
fn install_drone(dir: &Path, port: u16, drone: &str, address: &str) -> std::process::Child {
    let mut command = Command::new(autotest_tests::repo_root().join("deploy/install-drone.sh"));
    command
        .arg(address)
        .arg("--config")
        .arg(dir.join(format!("{drone}.ini")))
        .args(["--name", drone])
        .arg("--prefix")
        .arg(dir.join(drone))
        .arg("--bin")
        .arg(autotest_tests::binary("drone-worker").parent().unwrap());
    for option in [
        format!("-oIdentityFile={}", dir.join("ssh/lab_key").display()),
        "-oIdentitiesOnly=yes".into(),
        format!(
            "-oUserKnownHostsFile={}",
            dir.join("ssh/known_hosts").display()
        ),
        "-oGlobalKnownHostsFile=/dev/null".into(),
        "-oStrictHostKeyChecking=yes".into(),
        "-oConnectTimeout=5".into(),
    ] {
        command.arg("--ssh-option").arg(option);
    }
    command
        .arg("--known-hosts")
        .arg(dir.join("ssh/known_hosts"))
        .arg("--results-authorized-keys")
        .arg(dir.join("ssh/authorized_keys"))
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .args(["--timeout", "60"])
        // atest reads the lab's admin token, never the account's own.
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run deploy/install-drone.sh")
}

/// A pid written in a pid file of the install scripts' services.
fn pid_in(path: &Path) -> u32 {
    autotest_tests::world::read(path)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// When a process started, in microseconds since the epoch (from /proc, to ~10 ms).
fn started_micros(pid: u32) -> i64 {
    let stat = autotest_tests::world::read(Path::new(&format!("/proc/{pid}/stat")));
    // Field 22, starttime, in clock ticks since boot; the fields after `comm` start at 3.
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: f64 = after_comm
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let per_sec: f64 = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let uptime: f64 = autotest_tests::world::read(Path::new("/proc/uptime"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    common::time::now_micros() - ((uptime - ticks / per_sec) * 1e6) as i64
}

/// Waits (`secs` at most) until a job is neither Queued nor Running.
fn wait_done(client: &Client, id: i64, secs: u64) -> scheduler::api::JobView {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let job = client.job(id).unwrap();
        if job.status != "Queued" && job.status != "Running" {
            return job;
        }
        assert!(Instant::now() < deadline, "not done: {job:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn process_user(pid: u32) -> String {
    let out = Command::new("ps")
        .args(["-o", "user=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success()
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
    let user_before = user_exists("autotest");
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

    let token = std::fs::read_to_string(dir.join("config/autotest/token"))
        .expect("lab up leaves atest an admin token");
    let client =
        Client::new(&format!("http://127.0.0.1:{port}")).with_token(Some(token.trim().into()));
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
        .create_job(&CreateJob::new(
            "in the lab",
            "echo \"$AUTOSERV_HOSTS\" > out.txt\n",
            hosts.clone(),
            "tester",
        ))
        .unwrap();
    let job = wait_done(&client, id, 90);
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
    // A job that fails ends Failed with its exit code, its results on the results host
    // all the same, checked against its manifest.
    let failing = client
        .create_job(&CreateJob::new(
            "fails in the lab",
            "echo broken >&2\nexit 3\n",
            vec!["labhost2".into()],
            "tester",
        ))
        .unwrap();
    let job = wait_done(&client, failing, 60);
    let entry = &job.entries[0];
    assert_eq!(
        (job.status.as_str(), entry.exit_code),
        ("Failed", Some(3)),
        "{job:?}"
    );
    assert!(entry.manifest.is_some_and(|m| m.files >= 3), "{entry:?}");
    assert_eq!(
        autotest_tests::world::read(
            &dir.join(format!("results/{failing}-tester/labhost2/autoserv.stderr"))
        ),
        "broken\n"
    );

    // A job name with quotes, $(...) and backticks reaches Autoserv on the drone as one
    // argument and runs nothing.
    let marker = dir.join("name-ran");
    let name = format!(
        "it's \"quoted\" $(touch {m}) `touch {m}` and  spaces",
        m = marker.display()
    );
    let quoted = client
        .create_job(&CreateJob::new(
            name.clone(),
            "true\n",
            vec!["labhost3".into()],
            "tester",
        ))
        .unwrap();
    let job = wait_done(&client, quoted, 60);
    assert_eq!(job.status, "Completed", "{job:?}");
    let args = autotest_tests::world::read(
        &dir.join(format!("results/{quoted}-tester/labhost3/autoserv.args")),
    );
    let args: Vec<&str> = args.lines().collect();
    let label = args
        .iter()
        .position(|a| *a == "-l")
        .expect("-l in the args");
    assert_eq!(args[label + 1], name, "{args:?}");
    assert!(!marker.exists(), "the job name ran a command");

    // A malformed message on a drone's queue (put there with the scheduler's broker
    // user, over the lab's network) is dead-lettered; the workers go on working.
    let credentials = autotest_tests::world::read(&dir.join("rabbitmq/credentials"));
    let scheduler_url = credentials
        .lines()
        .find_map(|l| l.strip_prefix("autotest-lab-scheduler "))
        .expect("the scheduler's broker URL")
        .to_string();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let connection = common::broker::connect(&scheduler_url, "lab test")
            .await
            .expect("connect as the scheduler");
        let channel = common::broker::confirm_channel(&connection).await.unwrap();
        common::broker::publish_confirmed(
            &channel,
            common::broker::JOBS_EXCHANGE,
            "drone1",
            format!(
                "{{\"schema\": {}, \"not\": \"a job\"}}",
                common::protocol::SCHEMA_VERSION
            )
            .as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("published");
        let _ = connection.close(200, "done".into()).await;
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !autotest_tests::broker::queues("autotest-lab")
        .iter()
        .any(|q| q.name == common::broker::DEAD_LETTER_QUEUE && q.messages_ready >= 1)
    {
        assert!(
            Instant::now() < deadline,
            "the malformed message never reached the dead-letter queue"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Capacity holds on the lab's drones (4 each): jobs record when they ran.
    let times = dir.join("times");
    std::fs::create_dir_all(&times).unwrap();
    // The jobs run as the drones' unprivileged user.
    std::fs::set_permissions(&times, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut capacity_jobs = Vec::new();
    for i in 0..12 {
        let host = format!("cap{i}");
        client
            .create_host(&CreateHost {
                name: host.clone(),
                labels: vec![],
            })
            .unwrap();
        let control = format!(
            "s=$(date +%s%N)\nsleep 0.4\necho \"$s $(date +%s%N)\" > {}/{host}\n",
            times.display()
        );
        capacity_jobs.push(
            client
                .create_job(&CreateJob::new(
                    format!("capacity {i}"),
                    control,
                    vec![host],
                    "tester",
                ))
                .unwrap(),
        );
    }
    let mut spans: std::collections::BTreeMap<String, Vec<(u128, u128)>> = Default::default();
    for id in capacity_jobs {
        let job = wait_done(&client, id, 60);
        assert_eq!(job.status, "Completed", "{job:?}");
        let entry = &job.entries[0];
        let line = autotest_tests::world::read(&times.join(entry.host.as_deref().expect("a host")));
        let (start, end) = line.trim().split_once(' ').unwrap();
        spans
            .entry(entry.drone.clone().expect("a drone"))
            .or_default()
            .push((start.parse().unwrap(), end.parse().unwrap()));
    }
    assert_eq!(spans.len(), 2, "both drones ran capacity jobs: {spans:?}");
    for (drone, spans) in &spans {
        let most = spans
            .iter()
            .map(|(start, _)| {
                spans
                    .iter()
                    .filter(|(s, e)| s <= start && start < e)
                    .count()
            })
            .max()
            .unwrap();
        assert!(most <= 4, "{drone} ran {most} jobs at once (capacity 4)");
    }

    // The workers really run inside their namespaces, as the unprivileged autotest.
    for drone in ["drone1", "drone2"] {
        let pid = pid_in(&dir.join(format!("{drone}/run/drone-worker.pid")));
        let pids = Command::new("ip")
            .args(["netns", "pids", &format!("atl-{drone}")])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&pids.stdout)
                .lines()
                .any(|p| p.trim() == pid.to_string()),
            "worker {drone} (pid {pid}) is not in namespace atl-{drone}"
        );
        assert_eq!(process_user(pid), "autotest", "worker {drone} (pid {pid})");
    }
    let scheduler = pid_in(&dir.join("scheduler/run/scheduler.pid"));
    assert_eq!(
        process_user(scheduler),
        "autotest",
        "the scheduler (pid {scheduler})"
    );

    // Each drone's own key may only write into the results directory, through rrsync.
    let authorized = autotest_tests::world::read(&dir.join("ssh/authorized_keys"));
    let forced = format!(
        "command=\"rrsync -wo -absolute -no-lock {}\",restrict ",
        dir.join("results").display()
    );
    let drone_key_lines = |drone: &str| -> Vec<String> {
        let public =
            autotest_tests::world::read(&dir.join(format!("{drone}/etc/ssh/id_ed25519.pub")));
        let blob = public.split_whitespace().nth(1).unwrap().to_string();
        authorized
            .lines()
            .filter(|line| line.split_whitespace().any(|w| w == blob))
            .map(str::to_string)
            .collect()
    };
    for drone in ["drone1", "drone2"] {
        let lines = drone_key_lines(drone);
        assert_eq!(
            lines.len(),
            1,
            "{drone}'s key in authorized_keys:\n{authorized}"
        );
        assert!(lines[0].starts_with(&forced), "{drone}: {}", lines[0]);
    }

    // Upgrade drone1 while it runs a job: install-drone.sh again drains the worker. The
    // job runs until the test lets it end, once the drain has begun.
    client
        .create_drone_set("only-drone1", vec!["drone1".into()])
        .unwrap();
    let release = dir.join("release-the-job");
    let control = format!(
        "echo started > early.txt\nwhile [ ! -e {} ]; do sleep 0.1; done\necho \"$AUTOSERV_HOSTS\" > out.txt\n",
        release.display()
    );
    let long = client
        .create_job(&CreateJob {
            drone_set: Some("only-drone1".into()),
            ..CreateJob::new(
                "during the upgrade",
                control,
                vec!["labhost1".into()],
                "tester",
            )
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = client.job(long).unwrap();
        if job.entries[0].status == "Running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the long job did not start: {job:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its logs are only on drone1 yet: the scheduler sends readers there, over the
    // lab's network.
    let early = format!("/results/{long}-tester/labhost1/early.txt");
    let (status, location, _) = http_get(&format!("http://127.0.0.1:{port}"), &early);
    assert_eq!(status, 307, "a redirect to the drone");
    let location = location.expect("a Location");
    assert!(
        location.starts_with("http://10.77.0.11:") && location.ends_with(&early),
        "{location}"
    );
    let (base, path) = location.split_at(location.find("/results/").unwrap());
    assert_eq!(http_get(base, path), (200, None, "started\n".to_string()));

    let old_worker = pid_in(&dir.join("drone1/run/drone-worker.pid"));
    let mut upgrade = install_drone(&dir, port, "drone1", "10.77.0.11");
    let stdout = upgrade.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = upgrade.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut heard = String::new();
    loop {
        let line = said
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| {
                panic!(
                    "install-drone.sh never said the worker was draining ({e}); it said:\n{heard}"
                )
            });
        if line.contains("draining") {
            break;
        }
        heard.push_str(&line);
        heard.push('\n');
    }
    // The old worker has its SIGTERM and waits for the job, which still runs.
    let log_path = dir.join("drone1/log/drone-worker.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !autotest_tests::world::read(&log_path)
        .contains("stopped consuming; waiting for running entries to finish entries=1")
    {
        assert!(
            Instant::now() < deadline,
            "the old worker does not say it drains:\n{}",
            autotest_tests::world::read(&log_path)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        Path::new(&format!("/proc/{old_worker}")).exists(),
        "the old worker exited before its job ended"
    );
    assert_eq!(client.job(long).unwrap().entries[0].status, "Running");
    // The scheduler hears that drone1 is stopping, and sends it nothing new.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let drones = client.drones().unwrap();
        let drone1 = drones.iter().find(|d| d.name == "drone1").unwrap();
        if drone1.status == "stopping" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drone1 not shown stopping: {drones:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&release, "").unwrap();
    let upgraded = upgrade.wait().unwrap();
    let upgrade_text = format!("{}{}", stdout.join().unwrap(), stderr.join().unwrap());
    assert!(upgraded.success(), "upgrade failed:\n{upgrade_text}");
    assert!(
        upgrade_text.contains("1 entries running on drone1"),
        "{upgrade_text}"
    );
    let job = wait_done(&client, long, 30);
    let entry = &job.entries[0];
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(entry.drone.as_deref(), Some("drone1"), "{entry:?}");
    assert_eq!(
        (entry.attempt, entry.infra_retries),
        (1, 0),
        "run once: {entry:?}"
    );
    assert_eq!(
        autotest_tests::world::read(&dir.join(format!("results/{long}-tester/labhost1/out.txt"))),
        "labhost1\n"
    );
    let new_worker = pid_in(&dir.join("drone1/run/drone-worker.pid"));
    assert_ne!(new_worker, old_worker, "the worker was not restarted");
    assert!(
        !Path::new(&format!("/proc/{old_worker}")).exists(),
        "the old worker (pid {old_worker}) still runs"
    );
    assert_eq!(process_user(new_worker), "autotest");
    let finished = common::time::parse_micros(entry.finished_on.as_deref().unwrap()).unwrap();
    let started = started_micros(new_worker);
    assert!(
        started > finished,
        "the new worker (pid {new_worker}) started at {}, before the job ended at {}",
        common::time::format_micros(started),
        common::time::format_micros(finished)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let drone1 = client
            .drones()
            .unwrap()
            .into_iter()
            .find(|d| d.name == "drone1")
            .unwrap();
        let heard = drone1
            .last_heartbeat
            .as_deref()
            .and_then(common::time::parse_micros)
            .is_some_and(|at| at > started);
        if heard && drone1.status == "ok" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat from the new worker: {drone1:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Installing again added no second line for drone1's key.
    let authorized = autotest_tests::world::read(&dir.join("ssh/authorized_keys"));
    let public = autotest_tests::world::read(&dir.join("drone1/etc/ssh/id_ed25519.pub"));
    let blob = public.split_whitespace().nth(1).unwrap();
    assert_eq!(
        authorized.lines().filter(|l| l.contains(blob)).count(),
        1,
        "{authorized}"
    );

    // drone2 moves to this machine: `install-drone.sh localhost`, no SSH to the drone.
    // Its results server listens on this machine's side of the bridge now.
    let ini = dir.join("drone2.ini");
    let config = autotest_tests::world::read(&ini)
        .replace("http_listen: 10.77.0.12:0", "http_listen: 10.77.0.1:0");
    std::fs::write(&ini, config).unwrap();
    let in_namespace = pid_in(&dir.join("drone2/run/drone-worker.pid"));
    let moved = install_drone(&dir, port, "drone2", "localhost")
        .wait_with_output()
        .unwrap();
    assert!(
        moved.status.success(),
        "install on localhost:\n{}",
        text(&moved)
    );
    let local = pid_in(&dir.join("drone2/run/drone-worker.pid"));
    assert_ne!(local, in_namespace, "drone2's worker was not replaced");
    let identify = Command::new("ip")
        .args(["netns", "identify", &local.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&identify.stdout).trim(),
        "",
        "the local worker runs in a namespace"
    );
    assert_eq!(process_user(local), "autotest");
    client
        .create_drone_set("only-drone2", vec!["drone2".into()])
        .unwrap();
    let here = client
        .create_job(&CreateJob {
            drone_set: Some("only-drone2".into()),
            ..CreateJob::new(
                "on the local drone",
                "echo local > out.txt\n",
                vec!["labhost4".into()],
                "tester",
            )
        })
        .unwrap();
    let job = wait_done(&client, here, 60);
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].drone.as_deref(), Some("drone2"));
    assert_eq!(
        autotest_tests::world::read(&dir.join(format!("results/{here}-tester/labhost4/out.txt"))),
        "local\n",
        "pushed over SSH to the results host's namespace"
    );

    let status = lab(&dir, port, "status");
    assert!(status.status.success(), "{}", text(&status));
    // drone2 dies: its supervisor loop and its worker.
    for file in ["drone-worker-loop.pid", "drone-worker.pid"] {
        let pid = pid_in(&dir.join(format!("drone2/run/{file}")));
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
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
    if !user_before {
        assert!(!user_exists("autotest"), "the user autotest is left behind");
    }
    // No process of the lab is left: none runs from, or names, the lab directory.
    let lab_path = dir.display().to_string();
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(proc.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&lab_path),
            "left behind: pid {} {cmdline}",
            proc.file_name().to_string_lossy()
        );
    }
    let vhosts = autotest_tests::broker::vhost_exists("autotest-lab");
    assert!(!vhosts, "the lab's vhost is left behind");
}
