//! Version 0 of the status log (the older `status` file, `status_version=0` in the
//! job's keyval): tests are the lines at the level being sought, reboots are
//! `reboot.start` / `reboot.verify` lines, and job-level ALERTs mark the next test.

use super::line::{Kind, Line};
use super::{Found, Limit};
use crate::model::Status;

/// Reads a version 0 log.
pub fn parse(lines: Vec<String>, limit: &mut Limit) -> Found {
    let mut found = Found::default();
    let mut stack = vec![Status::NoStatus];
    let mut sought = 0usize;
    let mut group_subdir: Option<String> = None;
    let mut started: Option<i64> = None;
    let mut kernel: Option<String> = None;
    let mut boots = 0u32;
    let mut booting = false;
    let mut alert: Option<String> = None;
    for raw in lines {
        if !limit.line() {
            found.truncated = true;
            break;
        }
        let Some(mut line) = Line::parse(&raw, false) else {
            continue;
        };
        let unnamed = line.subdir.is_none() && line.testname.is_none();
        match line.kind {
            Kind::Start if unnamed => {
                // The job begins: its tests are one level in.
                sought = 1;
                continue;
            }
            Kind::End(_) if unnamed => sought = 0,
            _ => {}
        }
        let status = match line.kind {
            Kind::Start => {
                group_subdir = None;
                stack.push(Status::NoStatus);
                if line.indent == sought {
                    started = line.timestamp();
                }
                continue;
            }
            Kind::End(status) | Kind::Status(status) => status,
            Kind::Info => continue,
        };
        let top = stack.last_mut().expect("base status");
        if status < *top {
            *top = status;
        }
        if status == Status::Alert {
            alert = Some(line.reason.clone());
            continue;
        }
        let testname = line.testname.clone();
        if testname.as_deref() == Some("Autotest.install") && status == Status::Good {
            continue;
        }
        let is_end = matches!(line.kind, Kind::End(_));
        if testname.as_deref() == Some("reboot") && is_end {
            continue;
        }
        let mut testname = match testname {
            Some(name) => name,
            // A job-level ABORT is recorded as a CLIENT_JOB test; other job-level
            // lines are not tests.
            None if status == Status::Abort && !is_end => "CLIENT_JOB".to_string(),
            None => continue,
        };
        if is_end {
            line.subdir = group_subdir.clone();
        }
        if line.indent != sought && status != Status::Abort && !testname.starts_with("reboot.") {
            // Inside a group: remember its subdir for the END line.
            if line.subdir.is_some() {
                group_subdir = line.subdir.clone();
            }
            continue;
        }
        testname = test_name(testname, line.subdir.as_deref());
        if testname == "reboot.start" {
            started = line.timestamp();
            booting = true;
            continue;
        }
        if testname == "reboot.verify" {
            testname = format!("boot.{boots}");
            booting = false;
            kernel = Some(line.reason.trim().to_string()).filter(|k| !k.is_empty());
            boots += 1;
        }
        // A job-level ALERT before a test becomes that test's reason.
        let reason = alert.take().unwrap_or_else(|| line.reason.clone());
        let final_status = stack.pop().expect("base status");
        if stack.is_empty() {
            stack.push(Status::NoStatus);
        }
        found.push(
            limit,
            testname,
            line.subdir.clone(),
            final_status,
            (!reason.is_empty()).then_some(reason),
            started.take(),
            line.timestamp(),
            kernel.clone(),
        );
    }
    if booting {
        found.push(
            limit,
            format!("boot.{boots}"),
            None,
            Status::Abort,
            Some("machine did not return from reboot".into()),
            None,
            None,
            kernel,
        );
    }
    found
}

/// The name a test is recorded under: its subdir when that has a dot in it, except
/// for `boot`, `boot.N` and `kernel.*` tests.
fn test_name(testname: String, subdir: Option<&str>) -> String {
    let boot_or_kernel = testname
        .strip_prefix("boot")
        .is_some_and(|rest| rest.is_empty() || rest.strip_prefix('.').is_some_and(all_digits))
        || testname.starts_with("kernel.");
    match subdir {
        Some(subdir) if !boot_or_kernel && subdir.contains('.') => subdir.to_string(),
        _ => testname,
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
