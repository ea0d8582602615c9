//! `atest test …`: the tests parsed from what jobs left behind.

use crate::output::{clean, opt, print_json, table};
use api::{Client, EntryView, TestQuery};

/// `atest test …`.
#[derive(clap::Subcommand)]
pub enum TestAction {
    /// List tests, newest first.
    List {
        /// Only the tests of this job.
        #[arg(long)]
        job: Option<i64>,
        /// Only the tests run on this host.
        #[arg(long)]
        host: Option<String>,
        /// Only tests with this status (GOOD, WARN, FAIL, ERROR, ABORT, TEST_NA).
        #[arg(long)]
        status: Option<String>,
        /// Only tests whose name matches this glob (`*`, `?`).
        #[arg(long)]
        name: Option<String>,
        /// Only tests started at or after this date (2026-12-07) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (default 100, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after an earlier list: the cursor it printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Tests older than this test id (the same as --cursor ID).
        #[arg(long, hide = true)]
        before: Option<i64>,
        /// Also the tests of earlier attempts (retried after an infra failure).
        #[arg(long)]
        all_attempts: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one test with its attributes, iterations and results URL.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Carries out one `atest test` command.
pub fn run(client: &Client, action: TestAction) -> Result<(), String> {
    match action {
        TestAction::List {
            job,
            host,
            status,
            name,
            since,
            limit,
            cursor,
            before,
            all_attempts,
            json,
        } => {
            let query = TestQuery {
                job,
                host,
                status,
                name,
                since,
                limit,
                cursor,
                before,
                all_attempts,
            };
            let page = client.tests(&query).map_err(|e| e.to_string())?;
            if json {
                print_json(&page);
                return Ok(());
            }
            let next = page.next.clone();
            let rows = page
                .tests
                .into_iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.job_id.to_string(),
                        clean(&opt(&t.host)),
                        clean(&t.name),
                        t.status,
                        clean(&opt(&t.reason)),
                    ]
                })
                .collect();
            table(&["ID", "JOB", "HOST", "TEST", "STATUS", "REASON"], rows);
            if let Some(cursor) = next {
                eprintln!(
                    "more tests: repeat the command with --cursor {}",
                    crate::output::escape(&cursor)
                );
            }
        }
        TestAction::Show { id, json } => {
            let test = client.test(id).map_err(|e| e.to_string())?;
            if json {
                print_json(&test);
                return Ok(());
            }
            let t = &test.test;
            println!("Test {}: {} {}", t.id, clean(&t.name), t.status);
            println!(
                "  job {} entry {} attempt {} host {}",
                t.job_id,
                t.entry_id,
                t.attempt,
                clean(&opt(&t.host))
            );
            println!("  subdir {}", clean(&opt(&t.subdir)));
            println!("  reason {}", clean(&opt(&t.reason)));
            println!(
                "  started {} finished {}",
                opt(&t.started),
                opt(&t.finished)
            );
            println!("  results {}", opt(&test.results));
            for (key, value) in &t.attributes {
                println!("  attribute {} = {}", clean(key), clean(value));
            }
            for iteration in &test.iterations {
                for (key, value) in &iteration.attributes {
                    println!(
                        "  iteration {} {} = {}",
                        iteration.index,
                        clean(key),
                        clean(value)
                    );
                }
                for (key, value) in &iteration.perf {
                    println!(
                        "  iteration {} {} = {value} (perf)",
                        iteration.index,
                        clean(key)
                    );
                }
            }
        }
    }
    Ok(())
}

/// An entry's tests in a few words: counts per status, worst first (`2 FAIL, 5 GOOD`),
/// or `-` when none were parsed.
pub fn summary(entry: &EntryView) -> String {
    const ORDER: [&str; 7] = ["TEST_NA", "ABORT", "ERROR", "FAIL", "WARN", "GOOD", "ALERT"];
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter_map(|status| {
            entry
                .test_counts
                .get(*status)
                .map(|n| format!("{n} {status}"))
        })
        .collect();
    for (status, n) in &entry.test_counts {
        if !ORDER.contains(&status.as_str()) {
            parts.push(format!("{n} {}", clean(status)));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
