//! `parse_bench`: what parsing an entry's results costs the drone. Each case writes a
//! results directory (a 10-test and a 10,000-test Autotest status log with keyvals, a
//! 10,000-case JUnit file) and parses it with the worker's parser in a child process
//! of its own, which prints its CPU time, wall time and peak memory.
//!
//! usage: parse_bench [--repeat N]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// A status log of `tests` tests, each with a keyval and two iterations of perf values.
fn status_log(dir: &Path, tests: usize) {
    let mut log = String::from("START\t----\t----\ttimestamp=1765000000\t\n");
    for i in 0..tests {
        let name = format!("test{i}");
        log.push_str(&format!(
            "\tSTART\t{name}\t{name}\ttimestamp=1765000001\t\n"
        ));
        let status = if i % 10 == 9 { "FAIL" } else { "GOOD" };
        log.push_str(&format!(
            "\t\t{status}\t{name}\t{name}\ttimestamp=1765000002\tcompleted\n"
        ));
        log.push_str(&format!(
            "\tEND {status}\t{name}\t{name}\ttimestamp=1765000003\t\n"
        ));
        if tests <= 100 {
            let results = dir.join(&name).join("results");
            std::fs::create_dir_all(&results).unwrap();
            std::fs::write(dir.join(&name).join("keyval"), "version=1\n").unwrap();
            std::fs::write(results.join("keyval"), "rate{perf}=1.5\n\nrate{perf}=1.6\n").unwrap();
        }
    }
    log.push_str("END GOOD\t----\t----\ttimestamp=1765000004\t\n");
    std::fs::write(dir.join("status.log"), log).unwrap();
}

/// A JUnit file of `cases` test cases, one in ten failing.
fn junit(dir: &Path, cases: usize) {
    let mut xml =
        String::from("<testsuites><testsuite name=\"bench\" timestamp=\"2026-12-07T09:00:00\">\n");
    for i in 0..cases {
        if i % 10 == 9 {
            xml.push_str(&format!(
                "<testcase classname=\"bench.Suite\" name=\"t{i}\" time=\"0.01\"><failure message=\"expected 1\">trace</failure></testcase>\n"
            ));
        } else {
            xml.push_str(&format!(
                "<testcase classname=\"bench.Suite\" name=\"t{i}\" time=\"0.01\"/>\n"
            ));
        }
    }
    xml.push_str("</testsuite></testsuites>\n");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

/// Peak resident memory of this process (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process (user + system), in milliseconds.
fn cpu_ms() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    ms(usage.user_time()) + ms(usage.system_time())
}

/// The child: parses `dir` `repeat` times and prints `tests cpu_ms wall_ms peak_kib`
/// (per parse, peak over all).
fn child(dir: &Path, repeat: usize) {
    let options = tko::Options::default();
    let before_cpu = cpu_ms();
    let before_peak = peak_kib();
    let started = Instant::now();
    let mut tests = 0;
    for _ in 0..repeat {
        tests = tko::parse(dir, &options).tests.len();
    }
    let wall = started.elapsed().as_secs_f64() * 1000.0 / repeat as f64;
    let cpu = (cpu_ms() - before_cpu) / repeat as f64;
    println!("{tests} {cpu:.3} {wall:.3} {} {before_peak}", peak_kib());
}

/// A case: its name, how its results directory is made, how many parses to average.
type Case<'a> = (&'a str, &'a dyn Fn(&Path), usize);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(Path::new(&args[2]), args[3].parse().unwrap());
        return;
    }
    let repeat: usize = match args.iter().position(|a| a == "--repeat") {
        Some(i) => args[i + 1].parse().expect("--repeat N"),
        None => 20,
    };
    let cases: [Case; 3] = [
        ("status.log, 10 tests", &|d| status_log(d, 10), repeat * 10),
        (
            "status.log, 10,000 tests",
            &|d| status_log(d, 10_000),
            repeat.div_ceil(4),
        ),
        (
            "JUnit, 10,000 cases",
            &|d| junit(d, 10_000),
            repeat.div_ceil(4),
        ),
    ];
    println!(
        "{:<26} {:>6} {:>12} {:>12} {:>14}",
        "case", "tests", "cpu ms/parse", "wall ms", "peak RSS MiB"
    );
    for (name, make, runs) in cases {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path());
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--child", dir.path().to_str().unwrap(), &runs.to_string()])
            .output()
            .expect("run the child");
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [tests, cpu, wall, peak, base] = fields[..] else {
            panic!(
                "child printed {text:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let peak: f64 = peak.parse::<f64>().unwrap() / 1024.0;
        let base: f64 = base.parse::<f64>().unwrap() / 1024.0;
        println!(
            "{name:<26} {tests:>6} {cpu:>12} {wall:>12} {:>14}",
            format!("{peak:.1} (+{:.1})", peak - base)
        );
    }
}
