//! The scheduler's metrics as Prometheus reads them.

use super::*;
use common::names::DroneName;

fn report(event: StatusEvent) -> Report {
    Report {
        drone: DroneName::new("d1").unwrap(),
        event,
        refused: None,
        url_ignored: false,
        sent_at: 0,
    }
}

fn text(metrics: &Metrics) -> String {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, metrics.registry()).unwrap();
    text
}

fn tests_part(parse_error: Option<&str>) -> StatusEvent {
    StatusEvent::Tests {
        entry_id: 1,
        attempt: 1,
        part: 0,
        parts: 1,
        tests: vec![],
        dropped: 0,
        parse_error: parse_error.map(str::to_string),
    }
}

#[test]
fn reports_count_by_what_applying_them_did() {
    let metrics = Metrics::new();
    let running = StatusEvent::Running {
        entry_id: 1,
        attempt: 1,
        pid: 9,
    };
    let heartbeat = StatusEvent::Heartbeat {
        running: vec![],
        results_url: None,
        stopping: false,
        free_mb: None,
        low_disk: false,
    };
    let reports = [
        report(running.clone()),
        report(heartbeat),
        report(running.clone()),
        report(running),
        report(tests_part(Some("status.log: line 3 unreadable"))),
        report(tests_part(None)),
        report(tests_part(Some("stale"))),
    ];
    let changed = Applied::Changed { slot_freed: false };
    let outcomes = [
        changed,
        Applied::Heartbeat { reclaimed: false },
        Applied::Refused,
        Applied::UnknownEntry,
        changed,
        changed,
        Applied::Stale,
    ];
    let tally = Tally {
        infra_retries: 2,
        started: vec![0.02, 7.0],
        ended: vec![(EntryStatus::Completed, 12.0), (EntryStatus::Failed, 0.5)],
    };
    metrics.reports(&reports, &outcomes, &tally);
    let text = text(&metrics);
    for line in [
        "autotest_status_reports_applied_total{event=\"running\"} 1\n",
        "autotest_status_reports_applied_total{event=\"push_failing\"} 0\n",
        "autotest_status_reports_applied_total{event=\"heartbeat\"} 1\n",
        "autotest_status_reports_applied_total{event=\"tests\"} 2\n",
        "autotest_status_reports_refused_total 1\n",
        "autotest_status_reports_ignored_total{reason=\"unknown_entry\"} 1\n",
        "autotest_status_reports_ignored_total{reason=\"stale\"} 1\n",
        "autotest_parse_errors_total 1\n",
        "autotest_infra_retries_total 2\n",
        "autotest_dispatch_latency_seconds_count 2\n",
        "autotest_dispatch_latency_seconds_bucket{le=\"0.025\"} 1\n",
        "autotest_dispatch_latency_seconds_bucket{le=\"10\"} 2\n",
        "autotest_end_to_end_latency_seconds_count{status=\"Completed\"} 1\n",
        "autotest_end_to_end_latency_seconds_sum{status=\"Failed\"} 0.5\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

#[test]
fn report_lag_is_from_sending_to_commit_with_a_clock_ahead_as_none() {
    let metrics = Metrics::new();
    let sent = |sent_at| Report {
        sent_at,
        ..report(StatusEvent::Heartbeat {
            running: vec![],
            results_url: None,
            stopping: false,
            free_mb: None,
            low_disk: false,
        })
    };
    let now = 10_000_000;
    metrics.report_lags(
        now,
        &[
            sent(now - 3_000),
            sent(now - 2_000_000),
            sent(now + 500_000),
        ],
    );
    let text = text(&metrics);
    for line in [
        "autotest_status_report_lag_seconds_count 3\n",
        "autotest_status_report_lag_seconds_bucket{le=\"0.001\"} 1\n",
        "autotest_status_report_lag_seconds_bucket{le=\"0.005\"} 2\n",
        "autotest_status_report_lag_seconds_bucket{le=\"1\"} 2\n",
        "autotest_status_report_lag_seconds_bucket{le=\"2.5\"} 3\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
}

#[test]
fn the_oldest_unapplied_report_ages_until_its_batch_is_applied() {
    let metrics = Metrics::new();
    assert_eq!(metrics.oldest_unapplied_age(5_000_000), 0.0);
    metrics.reports_received(1_000_000);
    // A later batch received meanwhile does not make the oldest younger.
    metrics.reports_received(3_000_000);
    assert_eq!(metrics.oldest_unapplied_age(4_500_000), 3.5);
    metrics.set_oldest_unapplied(4_500_000);
    assert!(text(&metrics).contains("autotest_oldest_unapplied_report_age_seconds 3.5\n"));
    metrics.reports_settled();
    assert_eq!(metrics.oldest_unapplied_age(9_000_000), 0.0);
}

#[test]
fn entries_show_every_status_with_zero_for_none() {
    let metrics = Metrics::new();
    metrics.set_entries(&[(EntryStatus::Completed, 3), (EntryStatus::Failed, 1)]);
    let text = text(&metrics);
    assert!(
        text.contains("autotest_entries{status=\"Completed\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("autotest_entries{status=\"Failed\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("autotest_entries{status=\"Queued\"} 0\n"),
        "{text}"
    );
    let statuses = text
        .lines()
        .filter(|l| l.starts_with("autotest_entries{"))
        .count();
    assert_eq!(statuses, EntryStatus::ALL.len());
}

#[test]
fn every_metric_is_named_by_prometheus_conventions_and_documented() {
    let metrics = Metrics::new();
    let reports = [report(tests_part(None)), report(tests_part(None))];
    let outcomes = [Applied::Changed { slot_freed: false }, Applied::Stale];
    let tally = Tally {
        ended: vec![(EntryStatus::Completed, 1.0)],
        ..Tally::default()
    };
    metrics.reports(&reports, &outcomes, &tally);
    metrics.set_entries(&[]);
    let drone = DroneLabel { drone: "d1".into() };
    metrics.drone_running.get_or_create(&drone).set(1);
    metrics.drone_capacity.get_or_create(&drone).set(2);
    metrics
        .drones
        .get_or_create(&StatusLabel { status: "ok" })
        .set(1);
    let text = text(&metrics);
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line["# TYPE ".len()..].split(' ');
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        families += 1;
        assert!(name.starts_with("autotest_"), "{line}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{line}"
        );
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        if name.contains("latency") || name.contains("_lag") || name.ends_with("_age_seconds") {
            assert!(name.ends_with("_seconds"), "{line}");
        }
        assert!(text.contains(&format!("# HELP {name} ")), "no help: {name}");
    }
    assert_eq!(families, 17, "{text}");
}
