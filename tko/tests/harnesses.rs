//! The parsers on what real harnesses write: avocado-framework 113's `results.json`
//! and pytest's JUnit XML, from the virtual environment `deploy/test.sh` makes.

use std::path::{Path, PathBuf};
use std::process::Command;
use tko::{Options, Parser, Status};

/// The harnesses' virtual environment.
fn venv() -> PathBuf {
    let venv = std::env::var_os("AUTOTEST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/harness-venv"));
    assert!(
        venv.join("bin/avocado").is_file() && venv.join("bin/pytest").is_file(),
        "no avocado and pytest in {}: deploy/test.sh makes it (or set AUTOTEST_TEST_VENV)",
        venv.display()
    );
    venv
}

/// (name, status, reason) of each test, sorted by name.
fn summary(parsed: &tko::Parsed) -> Vec<(String, Status, Option<String>)> {
    let mut rows: Vec<_> = parsed
        .tests
        .iter()
        .map(|t| (t.name.clone(), t.status, t.reason.clone()))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[test]
fn avocado_results_json_gives_a_pass_a_failure_and_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let test = dir.path().join("demo.py");
    std::fs::write(
        &test,
        "from avocado import Test, skip\n\n\
         class Demo(Test):\n\
         \x20   def test_pass(self):\n\
         \x20       self.log.info('fine')\n\n\
         \x20   def test_fail(self):\n\
         \x20       self.fail('the answer was 41')\n\n\
         \x20   @skip('not on this machine')\n\
         \x20   def test_skip(self):\n\
         \x20       pass\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = Command::new(venv().join("bin/avocado"))
        .args(["run", "--disable-sysinfo", "--job-results-dir"])
        .arg(&results)
        .arg(&test)
        .current_dir(dir.path())
        .output()
        .expect("run avocado");
    // avocado exits 1 when a test fails, as it must here.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let options = Options {
        parsers: vec![Parser::Avocado],
        ..Options::default()
    };
    let parsed = tko::parse(&results, &options);
    assert_eq!(parsed.errors, Vec::<String>::new());
    let rows = summary(&parsed);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names.len(), 3, "{rows:?}");
    assert!(names[0].ends_with("Demo.test_fail"), "{names:?}");
    assert_eq!(
        (rows[0].1, rows[0].2.as_deref()),
        (Status::Fail, Some("the answer was 41"))
    );
    assert!(names[1].ends_with("Demo.test_pass"));
    assert_eq!((rows[1].1, rows[1].2.as_deref()), (Status::Good, None));
    assert!(names[2].ends_with("Demo.test_skip"));
    assert_eq!(rows[2].1, Status::TestNa);
    let pass = parsed
        .tests
        .iter()
        .find(|t| t.name.ends_with("test_pass"))
        .unwrap();
    assert!(pass.started.is_some() && pass.finished >= pass.started);
    let subdir = pass.subdir.as_deref().expect("the test's log directory");
    assert!(results.join(subdir).join("debug.log").is_file(), "{subdir}");
}

#[test]
fn pytest_junit_xml_gives_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_demo.py"),
        "import pytest\n\n\
         def test_pass():\n    print('to stdout')\n\n\
         def test_fail():\n    assert 6 * 7 == 41\n\n\
         @pytest.mark.skip(reason='not here')\n\
         def test_skip():\n    pass\n\n\
         @pytest.fixture\n\
         def broken():\n    raise RuntimeError('fixture broke')\n\n\
         def test_error(broken):\n    pass\n",
    )
    .unwrap();
    let out = Command::new(venv().join("bin/pytest"))
        .args([
            "-q",
            "-p",
            "no:cacheprovider",
            "--junitxml=reports/junit.xml",
            "test_demo.py",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run pytest");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let parsed = tko::parse(dir.path(), &Options::default());
    assert_eq!(parsed.errors, Vec::<String>::new());
    let rows = summary(&parsed);
    let statuses: Vec<(&str, Status)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        statuses,
        [
            ("test_demo.test_error", Status::Error),
            ("test_demo.test_fail", Status::Fail),
            ("test_demo.test_pass", Status::Good),
            ("test_demo.test_skip", Status::TestNa),
        ]
    );
    assert!(rows[1].2.as_deref().unwrap().contains("41"), "{rows:?}");
    assert_eq!(rows[3].2.as_deref(), Some("not here"));
}
