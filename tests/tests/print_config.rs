//! `--print-config` and `--get SECTION.KEY` on both programs: the config as they read
//! it, with the `AUTOTEST_*` environment overrides, for the deploy scripts.

use std::process::Command;

/// A config file in a directory of its own.
fn config_file(text: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("autotest_print_config")
        .tempdir()
        .expect("temp dir");
    std::fs::write(dir.path().join("global_config.ini"), text).expect("write config");
    dir
}

/// Runs `program` with `args` and `env`; its standard output, which must succeed.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(autotest_tests::binary(program))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the program");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn both_programs_print_the_config_with_environment_overrides_and_no_secrets() {
    let dir = config_file(
        "[AUTOTEST_WEB]\ndb_type: mysql\npassword: hunter2\n[SCHEDULER]\ndrones: drone1\nhttp_listen: 0.0.0.0:8080\n[BROKER]\nurl: amqp://sched:s3cret@127.0.0.1:5672/%2f\n",
    );
    let config = dir.path().join("global_config.ini");
    let config = config.to_str().unwrap();
    let env = [("AUTOTEST_SCHEDULER_DRONE1_MAX_PROCESSES", "7")];
    for program in ["autotest-scheduler", "drone-worker"] {
        let printed = run(program, &["--config", config, "--print-config"], &env);
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cret"),
            "{printed}"
        );
        let json: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
        assert_eq!(
            json["scheduler"]["drone_max_processes"]["drone1"], 7,
            "{json}"
        );
        assert_eq!(json["scheduler"]["http_listen"], "0.0.0.0:8080", "{json}");
        assert_eq!(json["database"]["db_type"], "mysql", "{json}");
    }
}

#[test]
fn get_prints_one_value_as_written_with_environment_overrides() {
    let dir = config_file("[SCHEDULER]\ndrones: drone1, drone2\nresults_dir: results\n");
    let config = dir.path().join("global_config.ini");
    let config = config.to_str().unwrap();
    for program in ["autotest-scheduler", "drone-worker"] {
        let get = |name: &str, env: &[(&str, &str)]| {
            run(program, &["--config", config, "--get", name], env)
        };
        assert_eq!(get("SCHEDULER.drones", &[]), "drone1, drone2\n");
        assert_eq!(get("scheduler.results_dir", &[]), "results\n");
        assert_eq!(get("SCHEDULER.http_listen", &[]), "\n");
        let over = [("AUTOTEST_SCHEDULER_HTTP_LISTEN", "127.0.0.1:9")];
        assert_eq!(get("SCHEDULER.http_listen", &over), "127.0.0.1:9\n");
    }
    let out = Command::new(autotest_tests::binary("autotest-scheduler"))
        .args(["--config", config, "--get", "http_listen"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a name without a section is refused");
}
