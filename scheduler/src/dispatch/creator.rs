//! Job creation with group commit, and dispatch in the same transaction when it can.

use super::plan::Decision;
use super::Shared;
use crate::db::assign::{self, Assignment};
use crate::db::dispatch_view;
use crate::db::job_create::{self, NewJob};
use crate::db::{Conn, Db, DbError};
use crate::write_txn;
use std::sync::Arc;

/// Job creation with group commit: jobs submitted while a transaction is being
/// committed go into the next one together (one fsync for all of them, where each used
/// to wait for its own), each in a savepoint of its own, so a job naming an unknown
/// host is refused alone.
///
/// With the dispatcher's [`Shared`] part, the same transaction also dispatches: it
/// reads the dispatch view and records the assignments (single entries only;
/// synchronous jobs are left to the dispatcher), then the job messages are published
/// once it has committed. In an idle lab a job then costs one commit before its message
/// goes out instead of two, and no wake-up of the dispatcher in between.
#[derive(Clone)]
pub struct Creator {
    tx: tokio::sync::mpsc::UnboundedSender<Submitted>,
}

/// A job, when it was submitted, and where its id goes.
type Submitted = (
    NewJob,
    i64,
    tokio::sync::oneshot::Sender<Result<i64, DbError>>,
);

/// The most jobs stored in one transaction, and the most entries (hosts and metahost
/// counts) a group takes more jobs up to: status reports wait for the writer meanwhile.
const GROUP_MAX: usize = 64;
const GROUP_ENTRIES: usize = 1000;

/// What the dispatch inside a creation transaction did.
#[derive(Default)]
struct Dispatched {
    /// Assignments recorded, to publish.
    runs: Vec<Assignment>,
    /// The dispatcher has work left (more may start, or synchronous jobs wait).
    wake: bool,
}

impl Creator {
    /// Starts the task that stores jobs, dispatching them with `dispatch` when given
    /// and counting each stored job in `created`; it ends when every handle is dropped.
    pub fn start(
        db: Db,
        dispatch: Option<Arc<Shared>>,
        created: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Submitted>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let group = next_group(first, &mut rx);
                let (jobs, replies): (Vec<(NewJob, i64)>, Vec<_>) = group
                    .into_iter()
                    .map(|(job, created, reply)| ((job, created), reply))
                    .unzip();
                if jobs.len() > 1 {
                    tracing::debug!(jobs = jobs.len(), "storing jobs submitted together");
                }
                let (results, dispatched) = store(&db, jobs, dispatch.clone()).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    if result.is_ok() {
                        created.inc();
                    }
                    let _ = reply.send(result);
                }
                let Some(shared) = &dispatch else {
                    continue;
                };
                if dispatched.wake {
                    shared.wake.notify_one();
                }
                if !dispatched.runs.is_empty() {
                    let shared = shared.clone();
                    tokio::spawn(async move { shared.publish_recorded(dispatched.runs).await });
                }
            }
        });
        Self { tx }
    }

    /// Stores the job and its Queued entries (one per named host, `count` per
    /// metahost label), or nothing if a host or label is unknown or a named host
    /// lacks a dependency. `created_on` is now, when the job is handed over.
    pub async fn create(&self, job: NewJob) -> Result<i64, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let created = common::time::now_micros();
        let stopping = || DbError::Failed("the scheduler is shutting down".into());
        self.tx
            .send((job, created, reply))
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}

/// `first` and the jobs submitted since, up to [`GROUP_MAX`] jobs or
/// [`GROUP_ENTRIES`] entries.
fn next_group(
    first: Submitted,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Submitted>,
) -> Vec<Submitted> {
    let mut entries = first.0.entries();
    let mut group = vec![first];
    while group.len() < GROUP_MAX && entries < GROUP_ENTRIES {
        match rx.try_recv() {
            Ok(next) => {
                entries += next.0.entries();
                group.push(next);
            }
            Err(_) => break,
        }
    }
    group
}

/// Stores a group of jobs, one result per job in order, and dispatches with `dispatch`
/// (holding its lock for that transaction only). When the transaction fails (a
/// deadlock, a host deleted meanwhile, a failure while dispatching), each job is tried
/// again on its own, without dispatching (the dispatcher is woken instead), so one
/// job's failure stays its own and a job is never refused for the dispatch's sake; a
/// panic while storing fails the jobs it was storing, not the creator.
async fn store(
    db: &Db,
    jobs: Vec<(NewJob, i64)>,
    dispatch: Option<Arc<Shared>>,
) -> (Vec<Result<i64, DbError>>, Dispatched) {
    let jobs = Arc::new(jobs);
    let count = jobs.len();
    let fallback = Dispatched {
        runs: Vec::new(),
        wake: true,
    };
    let dispatching = dispatch.is_some();
    let stored = match dispatch {
        Some(shared) => {
            let _dispatching = shared.lock.lock().await;
            store_range(db, &jobs, 0..count, Some(shared.clone())).await
        }
        None => store_range(db, &jobs, 0..count, None).await,
    };
    match stored {
        Ok(stored) => stored,
        // A job alone and refused (unknown host or label, missing dependency, ACL
        // groups) stays so.
        Err(refused @ (DbError::NotFound(_) | DbError::Invalid(_) | DbError::Forbidden(_)))
            if count == 1 =>
        {
            (vec![Err(refused)], fallback)
        }
        Err(error) if count == 1 && !dispatching => (vec![Err(error)], fallback),
        Err(error) => {
            tracing::warn!(%error, jobs = count, "storing jobs failed; storing them one by one without dispatching");
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                out.push(match store_range(db, &jobs, i..i + 1, None).await {
                    Ok((mut one, _)) => one.remove(0),
                    Err(error) => Err(error),
                });
            }
            (out, fallback)
        }
    }
}

async fn store_range(
    db: &Db,
    jobs: &Arc<Vec<(NewJob, i64)>>,
    range: std::ops::Range<usize>,
    dispatch: Option<Arc<Shared>>,
) -> Result<(Vec<Result<i64, DbError>>, Dispatched), DbError> {
    let (db, jobs) = (db.clone(), jobs.clone());
    tokio::spawn(async move { create_group(&db, &jobs[range], dispatch.as_deref()).await })
        .await
        .unwrap_or_else(|panic| Err(DbError::Failed(format!("storing jobs failed: {panic}"))))
}

/// Stores a group of jobs in one transaction (see [`job_create::insert_group`]) and,
/// with `dispatch`, when one was stored, dispatches in the same transaction.
async fn create_group(
    db: &Db,
    group: &[(NewJob, i64)],
    dispatch: Option<&Shared>,
) -> Result<(Vec<Result<i64, DbError>>, Dispatched), DbError> {
    write_txn!(db, |conn, last_id| {
        let mut conn = Conn::from(conn);
        let stored = job_create::insert_group(&mut conn, group, last_id).await?;
        let dispatched = match dispatch {
            Some(shared) if stored.iter().any(Result::is_ok) => {
                dispatch_here(&mut conn, shared).await?
            }
            _ => Dispatched::default(),
        };
        Ok((stored, dispatched))
    })
}

/// Reads the dispatch view in the creation transaction (so it sees the jobs just
/// stored) and records what can start, when that is single entries only.
async fn dispatch_here(conn: &mut Conn<'_>, shared: &Shared) -> Result<Dispatched, DbError> {
    let mut view =
        dispatch_view::view_in(conn, shared.drone_names(), shared.alive_since(), |free| {
            shared.fetch(free)
        })
        .await?;
    Ok(match shared.decide(&mut view).map(Decision::only_picks) {
        None => Dispatched::default(),
        Some(Err(_)) => Dispatched {
            runs: Vec::new(),
            wake: true,
        },
        Some(Ok((picks, more))) => {
            let now = common::time::now_micros();
            Dispatched {
                runs: assign::assign_in(conn, picks, now).await?,
                wake: more,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::list;
    use crate::model::TaskFlags;
    use common::config::DatabaseConfig;
    use common::names::{HostName, Owner};
    use diesel_async::SimpleAsyncConnection;

    fn job(name: &str, host: &HostName) -> NewJob {
        NewJob {
            name: name.to_string(),
            owner: Owner::new("tester").unwrap(),
            priority: 0,
            control_file: "job.run_test('sleeptest')\n".to_string(),
            hosts: vec![host.clone()],
            label: None,
            dependencies: Vec::new(),
            timeout_us: None,
            max_runtime_us: None,
            drone_set: None,
            synch_count: 1,
            tasks: TaskFlags::none(),
            notify: false,
        }
    }

    /// Runs `sql` on the test's SQLite database as it is (a trigger, a heartbeat).
    async fn execute(db: &Db, sql: &str) {
        let Db::Sqlite(pool, _) = db else {
            unreachable!("opened as SQLite")
        };
        pool.get().await.unwrap().batch_execute(sql).await.unwrap();
    }

    /// A database with one live drone of capacity 2 and one host, and the dispatcher's
    /// shared part for it (its publisher connects only when used).
    async fn lab(name: &str) -> (std::path::PathBuf, Db, Arc<Shared>, HostName) {
        let dir = std::env::temp_dir().join(format!(
            "autotest-{name}-{}-{}",
            std::process::id(),
            common::time::now_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[AUTOTEST_WEB]\ndatabase: {}\n[SCHEDULER]\ndrones: drone1\nmax_processes_per_drone: 2\n",
            dir.join("autotest.db").display()
        );
        let config = common::config::Config::from_parts(
            &dir.join("global_config.ini"),
            &text,
            std::iter::empty(),
        )
        .unwrap();
        let db = Db::open(&config.database).await.unwrap();
        crate::db::drones::sync_from_config(&db, &config.scheduler)
            .await
            .unwrap();
        execute(
            &db,
            &format!(
                "UPDATE drones SET last_heartbeat = {}",
                common::time::now_micros()
            ),
        )
        .await;
        let host = HostName::new("host1").unwrap();
        crate::db::hosts::create(&db, &host, &[]).await.unwrap();
        let shared = Arc::new(Shared::new(
            Arc::new(config),
            Arc::new(tokio::sync::Notify::new()),
            "test",
        ));
        (dir, db, shared, host)
    }

    async fn statuses(db: &Db) -> Vec<(String, String)> {
        let mut jobs: Vec<(String, String)> = list(db)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.name, j.status.to_string()))
            .collect();
        jobs.sort();
        jobs
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_is_dispatched_in_the_transaction_that_stores_it() {
        let (dir, db, shared, host) = lab("dispatch-on-create").await;
        let now = common::time::now_micros();
        let (results, dispatched) =
            store(&db, vec![(job("first", &host), now)], Some(shared.clone())).await;
        let id = *results[0].as_ref().unwrap();
        assert_eq!(dispatched.runs.len(), 1, "assigned in the same transaction");
        let Assignment { candidate, drone } = &dispatched.runs[0];
        assert_eq!((candidate.job_id, candidate.attempt), (id, 1));
        assert_eq!(drone.as_str(), "drone1");
        assert!(!dispatched.wake, "nothing left for the dispatcher");
        // A job's summed-up status is Running from its dispatch on.
        assert_eq!(
            statuses(&db).await,
            vec![("first".to_string(), "Running".to_string())]
        );
        // The host is taken: a second job for it waits, and is not assigned twice.
        let (results, dispatched) =
            store(&db, vec![(job("second", &host), now)], Some(shared)).await;
        assert!(results[0].is_ok());
        assert!(dispatched.runs.is_empty());
        assert_eq!(statuses(&db).await[1].1, "Queued");
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A failure while dispatching never refuses the job: it is stored again without
    /// dispatching, and the dispatcher is woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_dispatch_fails_is_stored_all_the_same() {
        let (dir, db, shared, host) = lab("dispatch-fails").await;
        execute(
            &db,
            "CREATE TRIGGER no_start BEFORE UPDATE OF status ON host_queue_entries \
                 WHEN NEW.status = 'Starting' BEGIN SELECT RAISE(ABORT, 'cannot start'); END;",
        )
        .await;
        let now = common::time::now_micros();
        let (results, dispatched) = store(&db, vec![(job("lone", &host), now)], Some(shared)).await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(dispatched.runs.is_empty());
        assert!(dispatched.wake, "the dispatcher is told to try");
        assert_eq!(
            statuses(&db).await,
            vec![("lone".to_string(), "Queued".to_string())]
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A job naming as many hosts as a job may is stored in a few statements (under
    /// the backends' limits on bound values), its dependency checked on each host.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_of_the_largest_size_is_stored_whole() {
        let (dir, db, _shared, _host) = lab("largest-job").await;
        let size = crate::job_limits::MAX_JOB_ENTRIES;
        execute(
            &db,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {size}) \
                 INSERT INTO hosts (hostname, created_on) SELECT 'big' || i, 0 FROM n; \
                 INSERT INTO labels (name) VALUES ('lab'); \
                 INSERT INTO host_labels (host_id, label_id) \
                 SELECT id, (SELECT id FROM labels WHERE name = 'lab') FROM hosts WHERE hostname LIKE 'big%'; \
                 INSERT INTO acl_group_hosts (acl_group_id, host_id) \
                 SELECT (SELECT id FROM acl_groups WHERE name = 'Everyone'), id FROM hosts WHERE hostname LIKE 'big%';"
            ),
        )
        .await;
        let mut big = job("big", &HostName::new("big1").unwrap());
        big.hosts = (1..=size)
            .map(|i| HostName::new(format!("big{i}")).unwrap())
            .collect();
        big.dependencies = vec![common::names::LabelName::new("lab").unwrap()];
        let now = common::time::now_micros();
        let (results, _) = store(&db, vec![(big, now)], None).await;
        let id = *results[0].as_ref().expect("stored");
        let job = crate::db::jobs::show(&db, id).await.unwrap();
        assert_eq!(job.entries.len(), size);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A group whose transaction fails for one job's sake is stored again job by job:
    /// the others are stored, the one the database refuses fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_the_database_refuses_fails_alone_when_stored_with_others() {
        let dir = std::env::temp_dir().join(format!(
            "autotest-group-commit-{}-{}",
            std::process::id(),
            common::time::now_micros()
        ));
        let path = dir.join("autotest.db");
        let db = Db::open(&DatabaseConfig::Sqlite { path }).await.unwrap();
        let host = HostName::new("host1").unwrap();
        crate::db::hosts::create(&db, &host, &[]).await.unwrap();
        // A failure of the database itself, not a refusal the query layer knows about
        // (unknown host or label): a trigger that aborts one job's insert.
        execute(
            &db,
            "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.name = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned job'); END;",
        )
        .await;
        let now = common::time::now_micros();
        let group = ["first", "poison", "third"]
            .iter()
            .map(|name| (job(name, &host), now))
            .collect();
        let (results, _) = store(&db, group, None).await;
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok(), "{:?}", results[0]);
        match &results[1] {
            Err(DbError::Query(error)) => assert!(error.to_string().contains("poisoned job")),
            other => panic!("the poisoned job should fail with the database's error: {other:?}"),
        }
        assert!(results[2].is_ok(), "{:?}", results[2]);
        assert_eq!(
            statuses(&db).await,
            vec![
                ("first".to_string(), "Queued".to_string()),
                ("third".to_string(), "Queued".to_string())
            ],
            "the other jobs are stored once each, with their entries"
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
