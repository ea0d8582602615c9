//! Retention of finished jobs' results on the results host (when it is this machine):
//! `[SCHEDULER] archive_after_days` moves them to `archive_rsync`, `delete_after_days`
//! removes them; `atest job archive` and `atest job purge` do either at once. Where
//! each job's results are is `jobs.results_place`. One transfer at a time, never
//! under a database transaction: the place is recorded in one short statement after
//! the files are where it says.

pub mod rules;
pub mod transfer;

use crate::db::{self, results_place::JobPlace, Db, DbError};
use crate::metrics::Metrics;
use common::config::{Config, ResultsHost};
use common::shutdown::Shutdown;
use rules::{Action, Place, Rules};
use std::sync::Arc;

/// Jobs read per query of a pass.
const PAGE: i64 = 500;

/// Why results could not be archived or purged.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// Entries still active.
    #[error("job {id} is not finished: {active} of its entries are still active; abort it or wait until it ends")]
    NotFinished { id: i64, active: i64 },
    /// The results host is another machine, or no archive is configured.
    #[error("{0}")]
    NotHere(String),
    /// The results are not on the results host any more.
    #[error("job {id}'s results are {place} already")]
    Already { id: i64, place: &'static str },
    #[error("{0}")]
    Transfer(String),
}

/// The results keeper: the background pass and the at-once requests share it.
pub struct Keeper {
    db: Db,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// One transfer or removal at a time.
    busy: tokio::sync::Mutex<()>,
}

impl Keeper {
    pub fn new(db: Db, config: Arc<Config>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            db,
            config,
            metrics,
            busy: tokio::sync::Mutex::new(()),
        })
    }

    fn rules(&self) -> Rules {
        Rules {
            archive_after: self.config.retention.archive_after,
            delete_after: self.config.retention.delete_after,
        }
    }

    /// Why this scheduler cannot do `action` at all, if it cannot.
    fn refusal(&self, action: Action) -> Option<String> {
        let scheduler = &self.config.scheduler;
        if let ResultsHost::Remote(host) = &scheduler.results_host {
            return Some(format!(
                "the results are on {host} ([SCHEDULER] results_host), not on this machine: they can be archived or removed only by a scheduler whose results_host is localhost"
            ));
        }
        if action == Action::Archive && self.config.retention.archive_rsync.is_none() {
            return Some("no archive: set [SCHEDULER] archive_rsync".into());
        }
        None
    }

    /// Archives (or purges) job `id`'s results now; where they are afterwards.
    pub async fn act_now(&self, id: i64, action: Action) -> Result<Place, RetentionError> {
        if let Some(why) = self.refusal(action) {
            return Err(RetentionError::NotHere(why));
        }
        let _busy = self.busy.lock().await;
        let job = db::results_place::of_job(&self.db, id).await?;
        if job.active > 0 {
            return Err(RetentionError::NotFinished {
                id,
                active: job.active,
            });
        }
        match (job.place, action) {
            (Place::ResultsHost, _) | (Place::Archived, Action::Purge) => {}
            (place, _) => {
                return Err(RetentionError::Already {
                    id,
                    place: place.as_str(),
                })
            }
        }
        let applied = self.apply(&job, action).await;
        self.metrics.results_moved(action.as_str(), applied.is_ok());
        applied?;
        Ok(action.place())
    }

    /// Moves or removes `job`'s results, then records where they are.
    async fn apply(&self, job: &JobPlace, action: Action) -> Result<(), RetentionError> {
        let results_dir = self.config.scheduler.results_dir.clone();
        let tag = format!("{}-{}", job.id, job.owner);
        let started = std::time::Instant::now();
        let present = {
            let (dir, tag) = (results_dir.clone(), tag.clone());
            blocking(move || transfer::present(&dir, &tag)).await?
        };
        if action == Action::Archive && present {
            let retention = &self.config.retention;
            let archive = retention
                .archive_rsync
                .as_ref()
                .expect("checked by refusal");
            transfer::archive(&results_dir, &tag, archive, &retention.archive_ssh_options)
                .await
                .map_err(RetentionError::Transfer)?;
        }
        if present {
            let (dir, tag) = (results_dir.clone(), tag.clone());
            blocking(move || transfer::remove(&dir, &tag)).await?;
        }
        db::results_place::set(&self.db, job.id, action.place(), common::time::now_micros())
            .await?;
        tracing::info!(
            job.id = job.id,
            results = %tag,
            place = action.place().as_str(),
            present,
            ms = started.elapsed().as_millis() as u64,
            "job results moved off the results host"
        );
        Ok(())
    }

    /// One pass over finished jobs: what the rules make due, one at a time; how many
    /// were acted on.
    pub async fn pass(&self) -> Result<usize, RetentionError> {
        let rules = self.rules();
        let mut done = 0;
        let mut after = 0;
        loop {
            let page = db::results_place::finished_on_results_host(&self.db, after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(done);
            };
            after = last.0;
            let now = common::time::now_micros();
            for (id, _, ended) in page {
                let Some(action) = rules.due(Place::ResultsHost, ended, now) else {
                    continue;
                };
                match self.act_now(id, action).await {
                    Ok(_) => done += 1,
                    // Became active again, or taken by a request meanwhile.
                    Err(RetentionError::NotFinished { .. } | RetentionError::Already { .. }) => {}
                    Err(error) => {
                        tracing::error!(job.id = id, %error, "cannot move job results off the results host; tried again at the next pass")
                    }
                }
            }
        }
    }

    /// Runs a pass every `retention_pass_sec` until `shutdown`; nothing when no rule
    /// can act here.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        if self.config.scheduler.results_host == ResultsHost::Local {
            // What a removal cut short at the last stop left (by age or asked for).
            let dir = self.config.scheduler.results_dir.clone();
            let swept = blocking(move || Ok(transfer::sweep(&dir)))
                .await
                .unwrap_or(0);
            if swept > 0 {
                tracing::info!(
                    swept,
                    "finished removing job results a removal interrupted at the last stop left"
                );
            }
        }
        let rules = self.rules();
        if !rules.any() {
            return shutdown.wait().await;
        }
        if let Some(why) = self.refusal(if rules.archive_after.is_some() {
            Action::Archive
        } else {
            Action::Purge
        }) {
            tracing::warn!(%why, "results retention is configured but cannot run here");
            return shutdown.wait().await;
        }
        let every = self.config.retention.pass;
        loop {
            match self.pass().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "results retention pass"),
                Err(error) => tracing::error!(%error, "results retention pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait() => return,
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, RetentionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RetentionError::Transfer(e.to_string()))?
        .map_err(RetentionError::Transfer)
}

/// `atest job show`'s words for where results are.
pub fn describe(place: Place, on: Option<i64>) -> String {
    match on {
        Some(on) if place != Place::ResultsHost => {
            format!("{} ({})", place.as_str(), common::time::format_micros(on))
        }
        _ => place.as_str().to_string(),
    }
}
