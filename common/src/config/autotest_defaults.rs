//! Autotest's own `global_config.ini`, as a lab moving from Autotest brings it: every
//! key is read or knowingly ignored, and the defaults it sets are the ones in force.

use super::*;

const AUTOTEST: &str = include_str!("../../testdata/autotest_global_config.ini");

fn load(text: &str) -> Config {
    Config::from_parts(
        Path::new("/etc/autotest/global_config.ini"),
        text,
        std::iter::empty(),
    )
    .unwrap()
}

#[test]
fn autotest_s_shipped_file_loads_without_a_warning() {
    let c = load(AUTOTEST);
    assert_eq!(c.warnings, Vec::<String>::new());
    assert!(matches!(
        &c.database,
        DatabaseConfig::Mysql { host, port: 3306, user, database, .. }
            if host == "localhost" && user == "autotest" && database == "autotest_web"
    ));
    let s = &c.scheduler;
    assert!(s.enabled);
    assert_eq!(s.job_timeout_default_hours, Some(72));
    assert_eq!(s.job_max_runtime_default_hours, Some(72));
    assert_eq!(s.max_processes_per_drone, 1000);
    assert_eq!(s.max_jobs_started_per_cycle, 100);
    assert_eq!(s.drones, vec![DroneName::new("localhost").unwrap()]);
    assert_eq!(s.results_host, ResultsHost::Local);
}

#[test]
fn job_limit_defaults_are_hours_and_zero_means_none() {
    let c = load("[AUTOTEST_WEB]\njob_timeout_default: 0\njob_max_runtime_hrs_default: 5\n");
    assert_eq!(c.scheduler.job_timeout_default_hours, None);
    assert_eq!(c.scheduler.job_max_runtime_default_hours, Some(5));
    let c = load("");
    assert_eq!(c.scheduler.job_timeout_default_hours, None);
    assert_eq!(c.scheduler.job_max_runtime_default_hours, None);
    assert!(c.scheduler.enabled);
    for bad in ["-1", "1.5", "lots", "9000"] {
        let error = Config::from_parts(
            Path::new("/etc/autotest/global_config.ini"),
            &format!("[AUTOTEST_WEB]\njob_timeout_default: {bad}\n"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("[AUTOTEST_WEB] job_timeout_default: expected whole hours"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn enable_scheduler_false_is_read() {
    let c = load("[SCHEDULER]\nenable_scheduler: False\n");
    assert!(!c.scheduler.enabled);
}
