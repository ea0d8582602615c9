//! Autotest's job-end mail: when a job created while `[NOTIFICATION] smtp_host` was set
//! ends in one of `[SCHEDULER] notify_email_statuses`, its owner (at
//! `[NOTIFICATION] owner_domain`) and the `notify_email` addresses get a plain-text mail
//! with the job's name, status, entries and links, through the lab's SMTP relay.
//!
//! The job stays `pending` in the database until the mail server took the mail, so a
//! relay that is down or a scheduler restart delays mail and loses none; a mail the
//! server refuses for good is logged and marked `failed`.

use crate::db::job_mail::{self, EndedJob, Mailed};
use crate::db::Db;
use common::backoff::Backoff;
use common::config::{Config, NotifyConfig};
use common::shutdown::Shutdown;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// How often the mailer looks for ended jobs.
const POLL: Duration = Duration::from_secs(2);
/// Jobs handled per look.
const BATCH: i64 = 50;

type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// Mails about ended jobs until shutdown (idle when mail is not configured).
pub async fn run(db: Db, config: Arc<Config>, mut shutdown: Shutdown) {
    let notify = &config.notify;
    let Some((host, port)) = notify.smtp.clone().filter(|_| notify.enabled()) else {
        shutdown.wait().await;
        return;
    };
    tracing::info!(smtp = %format!("{host}:{port}"), statuses = ?notify.statuses, "job-end mail on");
    let mailer: Mailer = Mailer::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let pause = match cycle(&db, notify, &mailer).await {
            Ok(handled) if handled as i64 == BATCH => Duration::ZERO,
            Ok(_) => {
                backoff.reset();
                POLL
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "job-end mail not sent; the jobs stay pending");
                delay
            }
        };
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Mails about (or skips) the ended jobs still pending; how many were handled. An
/// error leaves the job it happened on, and those after it, pending.
async fn cycle(db: &Db, notify: &NotifyConfig, mailer: &Mailer) -> anyhow::Result<usize> {
    let jobs = job_mail::ended(db, BATCH).await?;
    for job in &jobs {
        let to = notify.recipients(&job.owner);
        if !notify.statuses.iter().any(|s| s == job.status.as_str()) || to.is_empty() {
            job_mail::mark(db, job.id, Mailed::Skipped).await?;
            continue;
        }
        let mailed = match mailer.send(message(notify, &to, job)?).await {
            Ok(_) => {
                tracing::info!(job = job.id, status = %job.status, to = ?to, "job-end mail sent");
                Mailed::Sent
            }
            Err(error) if error.is_permanent() => {
                tracing::error!(job = job.id, %error, "the mail server refused the job-end mail");
                Mailed::Failed
            }
            Err(error) => return Err(error.into()),
        };
        job_mail::mark(db, job.id, mailed).await?;
    }
    Ok(jobs.len())
}

/// A name or reason as one short line of plain text.
fn line(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// The mail about `job`.
fn message(notify: &NotifyConfig, to: &[String], job: &EndedJob) -> anyhow::Result<Message> {
    let mut builder = Message::builder()
        .from(notify.from.parse::<Mailbox>()?)
        .subject(format!(
            "Autotest job {} {}: {}",
            job.id,
            job.status,
            line(&job.name, 120)
        ));
    for address in to {
        builder = builder.to(address.parse::<Mailbox>()?);
    }
    Ok(builder.body(body(notify, job))?)
}

/// The mail's text: the job, each entry, and where to read more.
pub fn body(notify: &NotifyConfig, job: &EndedJob) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Job {} \"{}\" of {} ended {}.\n",
        job.id,
        line(&job.name, 500),
        job.owner,
        job.status
    );
    for (subdir, status, reason) in &job.entries {
        let _ = write!(text, "  {:<30} {}", line(subdir, 255), status);
        if let Some(reason) = reason {
            let _ = write!(text, "  ({})", line(reason, 300));
        }
        text.push('\n');
    }
    let base = &notify.base_url;
    let _ = write!(
        text,
        "\nJob:     {base}/jobs/{id}\nResults: {base}/results/{id}-{owner}/\n",
        id = job.id,
        owner = job.owner
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryStatus, JobStatus};

    #[test]
    fn the_mail_names_the_job_its_entries_and_links_and_stays_plain() {
        let notify = NotifyConfig {
            smtp: Some(("localhost".into(), 25)),
            to: vec!["lab@x.org".into()],
            from: "autotest@x.org".into(),
            statuses: vec!["Failed".into()],
            owner_domain: None,
            base_url: "http://autotest.lab:13467".into(),
        };
        let job = EndedJob {
            id: 7,
            name: "kernel\r\nBcc: evil@x.org".into(),
            owner: "ann".into(),
            status: JobStatus::Failed,
            entries: vec![
                ("host1".into(), EntryStatus::Completed, None),
                ("host2".into(), EntryStatus::Failed, Some("exit 1".into())),
            ],
        };
        let text = body(&notify, &job);
        assert!(text.starts_with("Job 7 \"kernel  Bcc: evil@x.org\" of ann ended Failed."));
        assert!(text.contains("host2                          Failed  (exit 1)"));
        assert!(text.contains("Job:     http://autotest.lab:13467/jobs/7\n"));
        assert!(text.contains("Results: http://autotest.lab:13467/results/7-ann/\n"));
        let mail = message(&notify, &notify.to, &job).unwrap().formatted();
        let mail = String::from_utf8_lossy(&mail);
        let headers = mail.split("\r\n\r\n").next().unwrap();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
        assert!(
            headers.contains("Subject: Autotest job 7 Failed: kernel  Bcc: evil@x.org"),
            "{headers}"
        );
        assert!(headers.contains("To: lab@x.org"), "{headers}");
    }
}
