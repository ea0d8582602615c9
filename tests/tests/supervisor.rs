//! The long-lived supervisor (`autoserv-supervisor --serve`): one per worker, it starts
//! Autoserv for every attempt and answers with its pid and, later, its exit status.

use autotest_tests::World;
use drone_worker::supervise::{self, Order};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const MINUTE: Duration = Duration::from_secs(60);

/// `autoserv-supervisor --serve`, its orders on stdin and its answers on stdout.
fn serve() -> tokio::process::Child {
    tokio::process::Command::new(autotest_tests::binary("autoserv-supervisor"))
        .arg("--serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn it_starts_each_order_records_its_end_and_answers_in_lines() {
    let dir = std::env::temp_dir().join(autotest_tests::unique("autotest_serve"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut process = serve();
    let mut stdin = process.stdin.take().unwrap();
    let mut answers = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let order = |id: u64, argv: &[&str]| Order {
        id,
        dir: dir.clone(),
        stdout: dir.join(format!("out-{id}")),
        stderr: dir.join(format!("err-{id}")),
        lease: Some((dir.join("lease"), 60)),
        prefix: dir.join(format!(".autoserv-{id}")),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cgroup: None,
    };
    std::fs::write(dir.join("lease"), b"").unwrap();
    let orders = [
        order(1, &["sh", "-c", "echo \"in $(pwd)\"; exit 3"]),
        order(2, &["/nonexistent/autoserv"]),
    ];
    for o in &orders {
        let mut line = serde_json::to_vec(o).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
    }
    stdin.write_all(b"not an order\n").await.unwrap();
    // Ends its orders: it exits once what it started has ended.
    drop(stdin);
    let mut lines = Vec::new();
    while let Some(line) = tokio::time::timeout(MINUTE, answers.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        lines.push(line);
    }
    assert!(process.wait().await.unwrap().success());

    let pid_of_1: u32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("pid 1 "))
        .expect("an answer with the first order's pid")
        .parse()
        .unwrap();
    assert!(pid_of_1 > 0);
    assert!(lines.contains(&"exit 1 3".to_string()), "{lines:?}");
    assert!(lines.contains(&"pid 2 0".to_string()), "{lines:?}");
    assert!(lines.contains(&"exit 2 127".to_string()), "{lines:?}");
    // The same files as the one-attempt supervisor writes.
    assert_eq!(supervise::recorded_pid(&orders[0].prefix), Some(pid_of_1));
    assert_eq!(supervise::recorded_exit(&orders[0].prefix), Some(3));
    assert_eq!(supervise::recorded_exit(&orders[1].prefix), Some(127));
    assert_eq!(
        std::fs::read_to_string(dir.join("out-1")).unwrap(),
        format!("in {}\n", dir.display())
    );
    assert!(std::fs::read_to_string(dir.join("err-2"))
        .unwrap()
        .contains("cannot start /nonexistent/autoserv"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_attempt_on_a_drone_runs_under_one_long_lived_supervisor() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1", "host2"]).await;
    // Each job records the parent of the Autoserv running it: its supervisor.
    // (demo-autoserv.sh execs the control file's shell: its parent is the supervisor.)
    let control = format!(
        "echo $PPID > \"{}/parent-$AUTOSERV_HOSTS\"\n",
        world.dir.display()
    );
    let first = world.submit("first", &control, &["host1"]).await;
    world.wait_for_jobs(&[first], MINUTE).await;
    let second = world.submit("second", &control, &["host2"]).await;
    let done = world.wait_for_jobs(&[second], MINUTE).await;
    assert_eq!(done[0].status, "Completed", "{done:?}");
    let parent = |host: &str| {
        std::fs::read_to_string(world.dir.join(format!("parent-{host}")))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(parent("host1"), parent("host2"), "one supervisor for both");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", parent("host1"))).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("--serve"),
        "the supervisor is the long-lived one: {}",
        String::from_utf8_lossy(&cmdline)
    );
    world.stop().await;
}

/// The state letter of `pid` in /proc, or None when it is gone (reaped).
fn proc_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .to_string(),
    )
}

#[tokio::test]
async fn an_orphan_that_exits_while_autoserv_runs_is_reaped_not_left_a_zombie() {
    let dir = std::env::temp_dir().join(autotest_tests::unique("autotest_orphan"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut process = serve();
    let mut stdin = process.stdin.take().unwrap();
    // Autoserv leaves a short sleeper behind (its parent shell exits at once, so the
    // supervisor, a subreaper, inherits it), then waits for `go`.
    let script = "sh -c 'sleep 0.2 & echo $! > orphan.pid'; \
                  while [ ! -e go ]; do sleep 0.05; done";
    let order = Order {
        id: 1,
        dir: dir.clone(),
        stdout: dir.join("out"),
        stderr: dir.join("err"),
        lease: None,
        prefix: dir.join(".autoserv-1"),
        argv: ["sh", "-c", script].iter().map(|a| a.to_string()).collect(),
        cgroup: None,
    };
    let mut line = serde_json::to_vec(&order).unwrap();
    line.push(b'\n');
    stdin.write_all(&line).await.unwrap();
    let deadline = std::time::Instant::now() + MINUTE;
    let orphan: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(dir.join("orphan.pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no orphan started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // It exits after 0.2 s; the supervisor reaps it within its 5 s round, while
    // Autoserv still runs.
    while proc_state(orphan).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan {orphan} is still there ({:?}) a minute on",
            proc_state(orphan)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        supervise::recorded_exit(&order.prefix),
        None,
        "reaped while Autoserv ran, not by the sweep after it"
    );
    std::fs::write(dir.join("go"), "").unwrap();
    drop(stdin);
    assert!(tokio::time::timeout(MINUTE, process.wait())
        .await
        .unwrap()
        .unwrap()
        .success());
    assert_eq!(supervise::recorded_exit(&order.prefix), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
