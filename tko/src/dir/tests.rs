//! Parsing real directories, hostile ones included.

use super::*;
use crate::model::Status;
use std::os::unix::ffi::OsStrExt;

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const LOG: &str = "\
START\t----\t----\ttimestamp=100\t
\tSTART\tsleeptest\tsleeptest\ttimestamp=101\t
\t\tGOOD\tsleeptest\tsleeptest\ttimestamp=110\tcompleted successfully
\tEND GOOD\tsleeptest\tsleeptest\ttimestamp=111\t
END GOOD\t----\t----\ttimestamp=112\t
";

#[test]
fn a_status_log_with_keyvals_gives_attributes_and_iterations() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "status.log", LOG);
    write(dir.path(), "sleeptest/keyval", "version=1\nseconds=1\n");
    write(
        dir.path(),
        "sleeptest/results/keyval",
        "rate{perf}=12.5\nmode{attr}=fast\n\nrate{perf}=13\n",
    );
    let parsed = parse(dir.path(), &Options::default());
    assert_eq!(parsed.errors, Vec::<String>::new());
    let test = &parsed.tests[0];
    assert_eq!(test.name, "sleeptest");
    assert_eq!(test.attributes["version"], "1");
    assert_eq!(test.iterations.len(), 2);
    assert_eq!(test.iterations[0].perf["rate"], 12.5);
    assert_eq!(test.iterations[0].attributes["mode"], "fast");
    assert_eq!(test.iterations[1].perf["rate"], 13.0);
}

#[test]
fn version_0_is_read_from_status_when_the_job_keyval_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "keyval", "status_version=0\n");
    write(
        dir.path(),
        "status",
        "START\t----\t----\t\n\tGOOD\tt\tt\tfine\nEND GOOD\t----\t----\t\n",
    );
    write(dir.path(), "status.log", LOG);
    let parsed = parse(dir.path(), &Options::default());
    let names: Vec<&str> = parsed.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t"]);
}

#[test]
fn an_aborted_job_names_who_aborted_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "keyval", "aborted_by=ann\n");
    write(
        dir.path(),
        "status.log",
        "START\t----\t----\t\n\tSTART\tt\tt\t\n",
    );
    let parsed = parse(dir.path(), &Options::default());
    assert_eq!(parsed.tests[0].status, Status::Abort);
    assert_eq!(
        parsed.tests[0].reason.as_deref(),
        Some("Job aborted by ann")
    );
}

#[test]
fn symlinks_are_never_followed_and_subdirs_never_leave_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "keyval", "secret=1\n");
    write(outside.path(), "status.log", LOG);
    let log = LOG.replace("\tsleeptest\tsleeptest", "\t../escape\tsleeptest");
    write(dir.path(), "status.log", &log);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sleeptest")).unwrap();
    let parsed = parse(dir.path(), &Options::default());
    assert!(parsed
        .tests
        .iter()
        .all(|t| !t.attributes.contains_key("secret")));
    assert!(
        parsed
            .errors
            .iter()
            .any(|e| e.contains("leaves the results directory")),
        "{:?}",
        parsed.errors
    );

    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("status.log"),
        linked.path().join("status.log"),
    )
    .unwrap();
    let parsed = parse(linked.path(), &Options::default());
    assert!(parsed.tests.is_empty());
    assert!(
        parsed.error_line().unwrap().contains("symlink"),
        "{:?}",
        parsed.errors
    );
}

#[test]
fn a_fifo_or_a_device_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("status.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("results.json")).unwrap();
    let parsed = parse(dir.path(), &Options::default());
    assert!(parsed.tests.is_empty());
    assert!(
        parsed.error_line().unwrap().contains("not a regular file"),
        "{:?}",
        parsed.errors
    );
}

#[test]
fn a_huge_file_is_read_only_up_to_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("results.json")).unwrap();
    file.set_len(1 << 30).unwrap(); // 1 GiB, sparse
    let options = Options {
        max_file_bytes: 1 << 20,
        ..Options::default()
    };
    let started = Instant::now();
    let parsed = parse(dir.path(), &options);
    assert!(started.elapsed() < Duration::from_secs(10));
    let line = parsed.error_line().unwrap();
    assert!(line.contains("results.json: larger than 1 MiB"), "{line}");
    assert!(parsed.tests.is_empty());
}

#[test]
fn a_million_test_lines_keep_the_first_tests_and_count_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::with_capacity(30_000_000);
    for i in 0..1_000_000 {
        log.push_str("GOOD\t----\tt");
        log.push_str(&i.to_string());
        log.push_str("\t\n");
    }
    write(dir.path(), "status.log", &log);
    let options = Options {
        max_tests: 10_000,
        ..Options::default()
    };
    let parsed = parse(dir.path(), &options);
    assert_eq!(parsed.tests.len(), 10_000);
    assert_eq!(parsed.dropped, 990_000);
}

#[test]
fn binary_and_truncated_logs_and_odd_names_do_no_harm() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    bytes.extend_from_slice(b"\nGOOD\t----\tsurvivor\t\n\tSTART\tcut");
    std::fs::write(dir.path().join("status.log"), bytes).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"junit-\xff.xml");
    std::fs::write(
        dir.path().join(odd),
        "<testsuite><testcase name='x'/></testsuite>",
    )
    .unwrap();
    write(
        dir.path(),
        "reports/junit.xml",
        "<testsuite><testcase name='broken'>",
    );
    let parsed = parse(dir.path(), &Options::default());
    let names: Vec<&str> = parsed.tests.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"survivor"), "{names:?}");
    assert!(
        parsed.error_line().unwrap().contains("reports/junit.xml"),
        "{:?}",
        parsed.errors
    );
}

#[test]
fn the_three_formats_together_and_only_the_chosen_parsers_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "status.log", LOG);
    write(
        dir.path(),
        "out/junit-1.xml",
        "<testsuite><testcase classname='c' name='j'/></testsuite>",
    );
    write(
        dir.path(),
        "out/other.xml",
        "<testsuite><testcase name='ignored'/></testsuite>",
    );
    let root = dir.path().to_str().unwrap();
    write(
        dir.path(),
        "avocado/job-1/results.json",
        &format!(
            r#"{{"tests":[{{"name":"a.py:T.t","status":"SKIP","logdir":"{root}/avocado/job-1/test-results/1"}}]}}"#
        ),
    );
    std::fs::create_dir_all(dir.path().join("avocado/job-1/test-results/1")).unwrap();
    let parsed = parse(dir.path(), &Options::default());
    let mut names: Vec<&str> = parsed.tests.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["CLIENT_JOB.0", "a.py:T.t", "c.j", "sleeptest"]);
    let avocado = parsed.tests.iter().find(|t| t.name == "a.py:T.t").unwrap();
    assert_eq!(
        avocado.subdir.as_deref(),
        Some("avocado/job-1/test-results/1")
    );
    let only_junit = Options {
        parsers: vec![Parser::Junit],
        ..Options::default()
    };
    let parsed = parse(dir.path(), &only_junit);
    let names: Vec<&str> = parsed.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c.j"]);
}
