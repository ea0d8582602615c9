//! Reasons a drone reports are stored bounded (see `common::text`).

use super::*;
use crate::model::AttemptId;
use common::protocol::StatusEvent;

fn row() -> EntryRow {
    EntryRow {
        attempt: AttemptId::new(1, 1),
        status: EntryStatus::Running,
        drone: Some(DroneName::new("d1").unwrap()),
        host_id: Some(1),
        hostname: Some(HostName::new("host1").unwrap()),
        metahost: false,
        abort_requested: false,
        infra_retries: 0,
        job_tasks: TaskFlags::default(),
        exit_code: None,
        created_on: 0,
        started_on: Some(1),
        finished_on: None,
        failure_kind: None,
        failure_reason: None,
    }
}

#[test]
fn a_long_reported_reason_is_stored_cut_and_marked() {
    let drone = DroneName::new("d1").unwrap();
    let cx = Context {
        drone: &drone,
        now: 10,
        rules: InfraRules {
            max_retries: 0,
            reclaim_after_us: 1,
        },
    };
    let event = StatusEvent::Refused {
        entry_id: 1,
        attempt: 1,
        reason: "ü".repeat(10_000),
    };
    let transition = report(&event, Some(&row()), &[], &cx);
    let reason = transition
        .entry
        .failure_reason
        .flatten()
        .expect("a failure reason");
    assert!(reason.len() <= common::text::MAX_REASON, "{}", reason.len());
    assert!(reason.ends_with(common::text::CUT_MARK));
    let detail = &transition.history.expect("history").detail;
    assert!(
        detail.len() <= common::text::MAX_REASON + 200,
        "{}",
        detail.len()
    );
}
