//! The cases of Autotest's own parser tests and its status file specification,
//! as facts about whole logs.

use super::*;
use crate::model::Status;

fn v1(text: &str) -> Vec<TestResult> {
    let mut limit = Limit::new(1_000_000, 10_000, None);
    parse(text, Version::V1, "Job aborted unexpectedly", &mut limit).tests
}

fn v0(text: &str) -> Vec<TestResult> {
    let mut limit = Limit::new(1_000_000, 10_000, None);
    parse(text, Version::V0, "Job aborted unexpectedly", &mut limit).tests
}

/// (name, status, reason) of each test.
fn summary(tests: &[TestResult]) -> Vec<(String, Status, String)> {
    tests
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.status,
                t.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn row(name: &str, status: Status, reason: &str) -> (String, Status, String) {
    (name.into(), status, reason.into())
}

const ONE_TEST: &str = "\
START\t----\t----\ttimestamp=100\tlocaltime=Jan 01 00:01:40\t
\tSTART\tsleeptest\tsleeptest\ttimestamp=101\t
\t\tGOOD\tsleeptest\tsleeptest\ttimestamp=110\tcompleted successfully
\tEND GOOD\tsleeptest\tsleeptest\ttimestamp=111\t
END GOOD\t----\t----\ttimestamp=112\t
";

#[test]
fn a_test_group_inside_the_job_group_is_a_test_with_its_times_and_subdir() {
    let tests = v1(ONE_TEST);
    assert_eq!(
        summary(&tests),
        [
            row("sleeptest", Status::Good, "completed successfully"),
            row("CLIENT_JOB.0", Status::Good, ""),
        ]
    );
    let test = &tests[0];
    assert_eq!(test.subdir.as_deref(), Some("sleeptest"));
    assert_eq!((test.started, test.finished), (Some(101), Some(111)));
    assert_eq!(
        (tests[1].started, tests[1].finished),
        (Some(100), Some(112))
    );
}

#[test]
fn a_worse_status_wins_and_its_reasons_are_joined_in_order() {
    let log = "\
START\t----\t----\t
\tSTART\tdbench\tdbench\t
\t\tWARN\tdbench\tdbench\tslow disk
\t\tFAIL\tdbench\tdbench\tthroughput too low
\t\tFAIL\tdbench\tdbench\tchecksum mismatch
\t\tGOOD\tdbench\tdbench\tfine after all
\tEND FAIL\tdbench\tdbench\t
END GOOD\t----\t----\t
";
    assert_eq!(
        summary(&v1(log))[0],
        row(
            "dbench",
            Status::Fail,
            "checksum mismatch, slow disk, throughput too low"
        )
    );
}

#[test]
fn a_job_is_not_failed_by_its_tests_but_is_by_an_abort() {
    let log = "\
START\t----\t----\t
\tSTART\tt1\tt1\t
\tEND FAIL\tt1\tt1\tbroken
END FAIL\t----\t----\t
START\t----\t----\t
\tSTART\tt2\tt2\t
\tEND ABORT\tt2\tt2\tkilled
END ABORT\t----\t----\t
";
    assert_eq!(
        summary(&v1(log)),
        [
            row("t1", Status::Fail, "broken"),
            row("CLIENT_JOB.0", Status::Good, ""),
            row("t2", Status::Abort, "killed"),
            row("CLIENT_JOB.1", Status::Abort, ""),
        ]
    );
}

#[test]
fn nested_groups_inside_a_test_make_its_status_and_not_tests_of_their_own() {
    let log = "\
START\t----\t----\t
\tSTART\tkernbench\tkernbench\t
\t\tSTART\t----\tkernbench.build\t
\t\t\tGOOD\t----\tkernbench.build\tbuilt
\t\tEND GOOD\t----\tkernbench.build\t
\t\tSTART\t----\tkernbench.run\t
\t\t\tERROR\t----\tkernbench.run\tno space left
\t\tEND ERROR\t----\tkernbench.run\t
\tEND GOOD\tkernbench\tkernbench\t
END GOOD\t----\t----\t
";
    let tests = v1(log);
    assert_eq!(tests.len(), 2, "{tests:?}");
    assert_eq!(tests[0].name, "kernbench");
    assert_eq!(tests[0].status, Status::Error);
    assert_eq!(tests[0].reason.as_deref(), Some("built, no space left"));
}

#[test]
fn a_log_cut_short_ends_every_open_group_as_abort() {
    let log = "\
START\t----\t----\ttimestamp=100\t
\tSTART\tsleeptest\tsleeptest\ttimestamp=101\t
\t\tINFO\t----\t----\tstill going
";
    let mut limit = Limit::new(1_000, 10, None);
    let tests = parse(
        log,
        Version::V1,
        "Job aborted by ann at Jan 01 00:02:00",
        &mut limit,
    )
    .tests;
    assert_eq!(
        summary(&tests),
        [
            row(
                "sleeptest",
                Status::Abort,
                "Job aborted by ann at Jan 01 00:02:00"
            ),
            row(
                "CLIENT_JOB.0",
                Status::Abort,
                "Job aborted by ann at Jan 01 00:02:00"
            ),
        ]
    );
    assert_eq!(tests[0].subdir.as_deref(), Some("sleeptest"));
    assert_eq!(tests[0].started, Some(101));
}

#[test]
fn a_line_indented_less_than_its_groups_need_aborts_the_inner_group_first() {
    let log = "\
START\t----\t----\t
\tSTART\tt1\tt1\t
\t\tGOOD\tt1\tt1\tstep one
\tSTART\tt2\tt2\t
\tEND GOOD\tt2\tt2\t
END GOOD\t----\t----\t
";
    let tests = v1(log);
    // `\tSTART t2` arrives while t1 is open: t1 is ended as ABORT, then t2 is read.
    assert_eq!(tests[0].name, "t1");
    assert_eq!(tests[0].status, Status::Abort);
    assert_eq!(tests[1].name, "t2");
    assert_eq!(tests[1].status, Status::Good);
}

#[test]
fn lines_indented_more_than_expected_and_stray_text_are_ignored() {
    let log = "\
some output that is not a status line
START\t----\t----\t
\t\t\tFAIL\tx\tx\tignored: too deep
\tSTART\tt1\tt1\t
\tEND GOOD\tt1\tt1\t
END GOOD\t----\t----\t
\u{0}\u{1}binary\u{ff}
";
    assert_eq!(
        summary(&v1(log)),
        [
            row("t1", Status::Good, ""),
            row("CLIENT_JOB.0", Status::Good, "")
        ]
    );
}

#[test]
fn info_lines_set_the_kernel_of_the_tests_that_follow() {
    let log = "\
START\t----\t----\t
\tINFO\t----\t----\tkernel=2.6.24-rc40-autotest\tpatch0=first_patch 0 0\t
\tSTART\tt1\tt1\t
\tEND GOOD\tt1\tt1\t
END GOOD\t----\t----\t
";
    let tests = v1(log);
    assert_eq!(
        tests[0].attributes.get("kernel").map(String::as_str),
        Some("2.6.24-rc40")
    );
}

#[test]
fn reboots_become_boot_tests_numbered_in_order_and_change_the_kernel() {
    let log = "\
START\t----\t----\t
\tSTART\t----\treboot\t
\t\tGOOD\t----\treboot.start\t
\t\tGOOD\t----\treboot.verify\t2.6.30
\tEND GOOD\t----\treboot\tkernel=2.6.30-autotest\t
\tSTART\t----\treboot\t
\t\tGOOD\t----\treboot.start\t
\tEND FAIL\t----\treboot\tkernel=2.6.31\tdid not come back
\tSTART\tt1\tt1\t
\tEND GOOD\tt1\tt1\t
END GOOD\t----\t----\t
";
    let tests = v1(log);
    let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["boot.0", "boot.1", "t1", "CLIENT_JOB.0"]);
    assert_eq!(tests[0].status, Status::Good);
    assert_eq!(tests[1].status, Status::Fail);
    // A failed reboot leaves the kernel of the last good one.
    assert_eq!(tests[2].attributes["kernel"], "2.6.30");
}

#[test]
fn a_status_line_outside_any_test_is_a_test_of_its_own() {
    let log = "\
GOOD\t----\tAutotest.install\ttimestamp=50\tinstalled
FAIL\tcheck\t----\tthe host check failed
GOOD\t----\t----\tjob-level line, not a test
";
    let tests = v1(log);
    assert_eq!(
        summary(&tests),
        [
            row("Autotest.install", Status::Good, "installed"),
            row("check", Status::Fail, "the host check failed"),
        ]
    );
    assert_eq!(tests[0].finished, Some(50));
    assert_eq!(tests[1].subdir.as_deref(), Some("check"));
}

#[test]
fn a_test_na_status_overrides_everything() {
    let log = "\
START\t----\t----\t
\tSTART\tt1\tt1\t
\t\tFAIL\tt1\tt1\tbroken
\t\tTEST_NA\tt1\tt1\tnot on this hardware
\tEND GOOD\tt1\tt1\t
END GOOD\t----\t----\t
";
    assert_eq!(v1(log)[0].status, Status::TestNa);
}

#[test]
fn an_end_without_a_start_is_ignored() {
    let log = "\tEND GOOD\tt1\tt1\t\nEND GOOD\t----\t----\t\n";
    assert!(v1(log).is_empty());
}

#[test]
fn the_test_budget_keeps_the_first_tests_and_counts_the_rest() {
    let mut log = String::new();
    for i in 0..50 {
        log.push_str(&format!("GOOD\t----\tt{i}\t\n"));
    }
    let mut limit = Limit::new(1_000, 10, None);
    let found = parse(&log, Version::V1, "", &mut limit);
    assert_eq!(found.tests.len(), 10);
    assert_eq!(limit.dropped, 40);
    assert!(!found.truncated);
    let mut limit = Limit::new(20, 100, None);
    let found = parse(&log, Version::V1, "", &mut limit);
    assert!(found.truncated);
    assert_eq!(found.tests.len(), 20);
}

const V0_LOG: &str = "\
START\t----\t----\t
\tGOOD\t----\tAutotest.install\t
\tGOOD\tsleeptest\tsleeptest\ttimestamp=5\tcompleted
\tALERT\t----\t----\tdisk is failing
\tFAIL\tdbench\tdbench\tfailed here
\tSTART\tkernbench\tkernbench\ttimestamp=10\t
\t\tGOOD\tkernbench\tkernbench.1\t
\t\tWARN\tkernbench\tkernbench.2\tslow
\tEND GOOD\t----\tkernbench\ttimestamp=20\t
\tGOOD\t----\treboot.start\ttimestamp=30\t
\tGOOD\t----\treboot.verify\ttimestamp=40\t2.6.30
\tABORT\t----\t----\tclient died
END GOOD\t----\t----\t
";

#[test]
fn version_0_tests_are_the_lines_at_the_sought_level() {
    let tests = v0(V0_LOG);
    assert_eq!(
        summary(&tests),
        [
            row("sleeptest", Status::Good, "completed"),
            row("dbench", Status::Fail, "disk is failing"),
            row("kernbench", Status::Warn, ""),
            row("boot.0", Status::Good, "2.6.30"),
            row("CLIENT_JOB", Status::Abort, "client died"),
        ]
    );
    assert_eq!(tests[0].finished, Some(5));
    assert_eq!(tests[2].subdir.as_deref(), Some("kernbench"));
    assert_eq!((tests[2].started, tests[2].finished), (Some(10), Some(20)));
    assert_eq!((tests[3].started, tests[3].finished), (Some(30), Some(40)));
    assert_eq!(tests[4].attributes["kernel"], "2.6.30");
}

#[test]
fn version_0_a_reboot_that_never_returns_is_an_aborted_boot() {
    let log = "START\t----\t----\t\n\tGOOD\t----\treboot.start\ttimestamp=30\t\n";
    assert_eq!(
        summary(&v0(log)),
        [row(
            "boot.0",
            Status::Abort,
            "machine did not return from reboot"
        )]
    );
}

#[test]
fn version_0_has_no_info_lines_and_uses_a_dotted_subdir_as_the_name() {
    let log = "INFO\t----\t----\tkernel=1\t\nGOOD\tsleeptest.quick\tsleeptest\t\nGOOD\tkernel.1\tkernel.build\t\n";
    let names: Vec<String> = v0(log).into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["sleeptest.quick", "kernel.build"]);
}
