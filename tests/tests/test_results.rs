//! Tests parsed on the drone from what jobs left behind, stored by the scheduler and
//! read through `atest`: Autotest's status log with its keyvals, real avocado and
//! real pytest runs, results large enough to travel in several parts, and broken ones.

use autotest_tests::World;
use serde_json::Value;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// `atest ARGS --json`, parsed.
async fn atest_json(world: &World, args: &[&str]) -> Value {
    let out = world.atest(args).await;
    assert!(
        out.status.success(),
        "atest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// (name, status) of each test, sorted by name.
fn statuses(tests: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = tests
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// A control file (run as a shell script by the stand-in Autoserv, in the entry's
/// results directory) that leaves an Autotest status log with keyvals behind.
const STATUS_LOG_JOB: &str = r#"
mkdir -p sleeptest/results dbench
printf 'START\t----\t----\ttimestamp=1765000000\t\n' > status.log
printf '\tSTART\tsleeptest\tsleeptest\ttimestamp=1765000001\t\n' >> status.log
printf '\t\tGOOD\tsleeptest\tsleeptest\ttimestamp=1765000009\tcompleted successfully\n' >> status.log
printf '\tEND GOOD\tsleeptest\tsleeptest\ttimestamp=1765000010\t\n' >> status.log
printf '\tSTART\tdbench\tdbench\ttimestamp=1765000011\t\n' >> status.log
printf '\t\tFAIL\tdbench\tdbench\ttimestamp=1765000019\tthroughput too low\n' >> status.log
printf '\tEND FAIL\tdbench\tdbench\ttimestamp=1765000020\t\n' >> status.log
printf 'END GOOD\t----\t----\ttimestamp=1765000021\t\n' >> status.log
printf 'version=1\n' > sleeptest/keyval
printf 'rate{perf}=12.5\nmode{attr}=fast\n\nrate{perf}=13\n' > sleeptest/results/keyval
echo log > sleeptest/debug.txt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_log_becomes_tests_with_attributes_iterations_and_a_results_link() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let id = world.submit("status log", STATUS_LOG_JOB, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    // The job's status is Autoserv's exit code, whatever its tests say.
    assert_eq!(job.status, "Completed", "{job:?}");

    let id_text = id.to_string();
    let tests =
        atest_json(&world, &["test", "list", "--job", &id_text, "--json"]).await["tests"].clone();
    assert_eq!(
        statuses(&tests),
        [
            ("CLIENT_JOB.0".into(), "GOOD".into()),
            ("dbench".into(), "FAIL".into()),
            ("sleeptest".into(), "GOOD".into()),
        ]
    );
    let dbench = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "dbench")
        .unwrap();
    assert_eq!(dbench["reason"], "throughput too low");
    assert_eq!(dbench["host"], "host1");
    assert_eq!(dbench["job_id"], id);
    assert_eq!(dbench["started"], "2025-12-06T05:46:51.000000Z");
    let failed = atest_json(
        &world,
        &[
            "test", "list", "--status", "FAIL", "--name", "db*", "--json",
        ],
    )
    .await["tests"]
        .clone();
    assert_eq!(statuses(&failed), [("dbench".into(), "FAIL".into())]);

    let shown = atest_json(&world, &["job", "show", &id_text, "--json"]).await;
    let entry = &shown["entries"][0];
    assert_eq!(entry["test_counts"]["GOOD"], 2);
    assert_eq!(entry["test_counts"]["FAIL"], 1);
    assert_eq!(entry["tests"].as_array().unwrap().len(), 3);
    assert!(entry["parse_error"].is_null(), "{entry}");
    let text = world.atest(&["job", "show", &id_text]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 FAIL, 2 GOOD"));

    let sleeptest = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sleeptest")
        .unwrap();
    let test_id = sleeptest["id"].as_i64().unwrap().to_string();
    let detail = atest_json(&world, &["test", "show", &test_id, "--json"]).await;
    assert_eq!(detail["attributes"]["version"], "1");
    assert_eq!(detail["iterations"][0]["perf"]["rate"], 12.5);
    assert_eq!(detail["iterations"][0]["attributes"]["mode"], "fast");
    assert_eq!(detail["iterations"][1]["perf"]["rate"], 13.0);
    let results = detail["results"].as_str().expect("a results link");
    assert_eq!(results, format!("/results/{id}-tester/host1/sleeptest/"));
    // After the job the results are on the results host: no redirect, the file itself.
    let server = world.server().to_string();
    let path = format!("{results}debug.txt");
    let (status, _, body) =
        tokio::task::spawn_blocking(move || autotest_tests::http::get(&server, &path))
            .await
            .unwrap();
    assert_eq!((status, body.trim()), (200, "log"));
    world.stop().await;
}

/// `[AUTOSERV] command` for a harness: `script` (written in `dir`) is called with the
/// results directory and the control file.
fn harness_autoserv(dir: &std::path::Path, script: &str) -> String {
    let path = dir.join("harness-autoserv.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!("{} {{results_dir}} {{control_file}}", path.display())
}

const AVOCADO_TEST: &str = "\
from avocado import Test, skip


class Demo(Test):
    def test_pass(self):
        self.log.info('fine')

    def test_fail(self):
        self.fail('the answer was 41')

    @skip('not on this machine')
    def test_skip(self):
        pass
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn avocado_run_as_autoserv_leaves_a_pass_a_failure_and_a_skip() {
    let venv = autotest_tests::harness_venv();
    let scripts = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\nset -e\ncp \"$2\" \"$1/demo.py\"\ncd \"$1\"\nexec {} run --disable-sysinfo --job-results-dir \"$1/avocado\" \"$1/demo.py\"\n",
        venv.join("bin/avocado").display()
    );
    let command = harness_autoserv(scripts.path(), &script);
    let world = World::builder()
        .drone("drone1", 1)
        .config("AUTOSERV", "command", &command)
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let id = world.submit("avocado", AVOCADO_TEST, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], 2 * MINUTE).await.remove(0);
    // avocado exits 1 when a test fails: Autoserv's exit code makes the job's status.
    assert_eq!(job.status, "Failed", "{job:?}");
    assert_eq!(job.entries[0].exit_code, Some(1));
    let tests = atest_json(
        &world,
        &["test", "list", "--job", &id.to_string(), "--json"],
    )
    .await["tests"]
        .clone();
    let rows = statuses(&tests);
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|(name, status)| (name.rsplit(':').next().unwrap(), status.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("Demo.test_fail", "FAIL"),
            ("Demo.test_pass", "GOOD"),
            ("Demo.test_skip", "TEST_NA")
        ]
    );
    let fail = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "FAIL")
        .unwrap();
    assert_eq!(fail["reason"], "the answer was 41");
    world.stop().await;
}

const PYTEST_TEST: &str = "\
import pytest


def test_pass():
    print('to stdout')


def test_fail():
    assert 6 * 7 == 41


@pytest.mark.skip(reason='not here')
def test_skip():
    pass
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pytest_junit_xml_is_parsed_into_tests() {
    let venv = autotest_tests::harness_venv();
    let scripts = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\ncp \"$2\" \"$1/test_demo.py\"\ncd \"$1\"\n{} -q -p no:cacheprovider -o junit_logging=system-out --junitxml=\"$1/reports/junit.xml\" test_demo.py\nexit 0\n",
        venv.join("bin/pytest").display()
    );
    let command = harness_autoserv(scripts.path(), &script);
    let world = World::builder()
        .drone("drone1", 1)
        .config("AUTOSERV", "command", &command)
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let id = world.submit("pytest", PYTEST_TEST, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], 2 * MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let tests = atest_json(
        &world,
        &["test", "list", "--job", &id.to_string(), "--json"],
    )
    .await["tests"]
        .clone();
    assert_eq!(
        statuses(&tests),
        [
            ("test_demo.test_fail".into(), "FAIL".into()),
            ("test_demo.test_pass".into(), "GOOD".into()),
            ("test_demo.test_skip".into(), "TEST_NA".into()),
        ]
    );
    let pass = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "GOOD")
        .unwrap();
    assert_eq!(pass["attributes"]["system_out"], "reports/junit.xml");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tests_travel_in_parts_and_past_the_limit_are_counted() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("DRONE", "max_parsed_tests", "3000")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    // 3,500 JUnit tests with long names: over 1 MiB, so several parts; 500 past the limit.
    let control = r#"
mkdir -p out
{
  echo '<testsuite name="big">'
  i=0
  while [ $i -lt 3500 ]; do
    printf '<testcase classname="suite.%0200d" name="t%d"/>\n' $i $i
    i=$((i + 1))
  done
  echo '</testsuite>'
} > out/junit-big.xml
"#;
    let id = world.submit("big", control, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], 2 * MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let entry = &job.entries[0];
    assert_eq!(entry.test_counts.get("GOOD"), Some(&3000), "{entry:?}");
    assert_eq!(entry.tests_dropped, Some(500));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_and_hostile_results_leave_a_parse_error_and_the_entry_ends_normally() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let control = r#"
mkfifo status.log
ln -s /etc/passwd keyval
printf '<testsuite><testcase name="cut">' > junit.xml
head -c 100000 /dev/urandom > TEST-binary.xml
printf '\377\376' > "$(printf 'junit-\377.xml')"
"#;
    let id = world.submit("hostile", control, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let entry = &job.entries[0];
    let error = entry.parse_error.as_deref().expect("a parse error");
    assert!(!error.contains('\n') && error.len() <= 4096, "{error}");
    assert!(error.contains("junit.xml"), "{error}");
    assert!(entry.tests.is_empty(), "{entry:?}");
    world.stop().await;
}
