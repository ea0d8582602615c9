//! `atest job list`: the caller's jobs (or `--owner`'s, or `--all`), newest first, a
//! page at a time; the cursor of the next page goes to stderr (in `--json`, `next`).

use crate::output::{print_json, table};
use crate::user::current_user;
use api::{Client, JobPage, JobQuery};

/// `atest job list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only this user's jobs (default: yours, the user your token belongs to).
    #[arg(long, conflicts_with = "all")]
    owner: Option<String>,
    /// Everyone's jobs.
    #[arg(long)]
    all: bool,
    /// Only jobs in this state: Queued, Running, Completed, Failed or Aborted.
    #[arg(long)]
    status: Option<String>,
    /// Only jobs whose name contains this text, or matches this glob (`*`, `?`).
    #[arg(long)]
    name: Option<String>,
    /// Only jobs created at or after this date (2026-12-07) or time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// At most this many jobs (at most 1000).
    #[arg(long, default_value_t = api::DEFAULT_LIMIT)]
    limit: u32,
    /// Continue after an earlier list: the cursor it printed.
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    json: bool,
}

/// The query of the first request: whose jobs, and the filters as given.
fn query(args: &ListArgs, me: impl FnOnce() -> Result<String, String>) -> Result<JobQuery, String> {
    let owner = match (&args.owner, args.all) {
        (Some(owner), _) => Some(owner.clone()),
        (None, true) => None,
        (None, false) => Some(me()?),
    };
    Ok(JobQuery {
        owner,
        status: args.status.clone(),
        name: args.name.clone(),
        since: args.since.clone(),
        limit: Some(args.limit),
        cursor: args.cursor.clone(),
    })
}

/// Up to `limit` jobs: pages are asked for until that many came or none are left (a
/// page may come back short when the scheduler bounds its scan).
fn fetch(client: &Client, mut query: JobQuery) -> Result<JobPage, String> {
    let limit = query.limit.unwrap_or(api::DEFAULT_LIMIT) as usize;
    let mut jobs = Vec::new();
    loop {
        query.limit = Some((limit - jobs.len()) as u32);
        let page = client.jobs_page(&query).map_err(|e| e.to_string())?;
        jobs.extend(page.jobs);
        match page.next {
            Some(next) if jobs.len() < limit => query.cursor = Some(next),
            next => return Ok(JobPage { jobs, next }),
        }
    }
}

/// The command that lists the next page.
fn next_command(args: &ListArgs, owner: Option<&str>, cursor: &str) -> String {
    let mut words = vec!["atest job list".to_string()];
    let quoted = |v: &str| shell_word(v);
    match owner {
        Some(owner) => words.push(format!("--owner {}", quoted(owner))),
        None => words.push("--all".into()),
    }
    for (flag, value) in [
        ("--status", &args.status),
        ("--name", &args.name),
        ("--since", &args.since),
    ] {
        if let Some(value) = value {
            words.push(format!("{flag} {}", quoted(value)));
        }
    }
    if args.limit != api::DEFAULT_LIMIT {
        words.push(format!("--limit {}", args.limit));
    }
    words.push(format!("--cursor {}", quoted(cursor)));
    words.join(" ")
}

/// `value` as one shell word.
fn shell_word(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:+/@".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Carries out `atest job list`.
pub fn list(client: &Client, args: ListArgs) -> Result<(), String> {
    if args.limit == 0 || args.limit > api::MAX_LIMIT {
        return Err(format!("--limit must be from 1 to {}", api::MAX_LIMIT));
    }
    let query = query(&args, || current_user(client))?;
    let owner = query.owner.clone();
    let page = fetch(client, query)?;
    if args.json {
        print_json(&page);
        return Ok(());
    }
    let next = page.next.clone();
    table(
        &["ID", "NAME", "OWNER", "PRIORITY", "STATUS", "CREATED"],
        page.jobs
            .into_iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.name,
                    j.owner,
                    j.priority.to_string(),
                    j.status,
                    j.created_on,
                ]
            })
            .collect(),
    );
    if let Some(cursor) = next {
        eprintln!(
            "more jobs: {}",
            crate::output::escape(&next_command(&args, owner.as_deref(), &cursor))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ListArgs,
    }

    fn args(words: &[&str]) -> ListArgs {
        let mut argv = vec!["list"];
        argv.extend_from_slice(words);
        Cli::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn without_owner_or_all_the_list_is_the_callers() {
        let mine = query(&args(&[]), || Ok("ann".into())).unwrap();
        assert_eq!(mine.owner.as_deref(), Some("ann"));
        assert_eq!(mine.limit, Some(100));
        let all = query(&args(&["--all"]), || panic!("no whoami for --all")).unwrap();
        assert_eq!(all.owner, None);
        let bob = query(&args(&["--owner", "bob"]), || panic!("no whoami")).unwrap();
        assert_eq!(bob.owner.as_deref(), Some("bob"));
        assert!(Cli::try_parse_from(["list", "--all", "--owner", "bob"]).is_err());
    }

    #[test]
    fn the_next_page_command_repeats_the_filters_with_the_cursor() {
        let given = args(&[
            "--status",
            "Failed",
            "--name",
            "nightly run",
            "--limit",
            "5",
        ]);
        assert_eq!(
            next_command(&given, Some("ann"), "120"),
            "atest job list --owner ann --status Failed --name 'nightly run' --limit 5 --cursor 120"
        );
        assert_eq!(
            next_command(&args(&["--all"]), None, "7"),
            "atest job list --all --cursor 7"
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
