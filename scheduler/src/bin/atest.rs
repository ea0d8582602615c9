//! `atest`: the command-line client of the scheduler's HTTP API.

use clap::{Parser, Subcommand};
use scheduler::api::{CreateHost, CreateJob};
use scheduler::client::Client;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Submit and follow Autotest jobs")]
struct Args {
    /// The scheduler's URL.
    #[arg(
        long,
        global = true,
        env = "ATEST_SERVER",
        default_value = "http://127.0.0.1:13467"
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hosts under test.
    Host {
        #[command(subcommand)]
        action: HostAction,
    },
    /// Jobs.
    Job {
        #[command(subcommand)]
        action: JobAction,
    },
    /// Drones.
    Drone {
        #[command(subcommand)]
        action: DroneAction,
    },
    /// Host labels.
    Label {
        #[command(subcommand)]
        action: LabelAction,
    },
    /// Drone sets: the drones a job may run on.
    #[command(name = "drone-set")]
    DroneSet {
        #[command(subcommand)]
        action: DroneSetAction,
    },
}

#[derive(Subcommand)]
enum DroneSetAction {
    /// Create a drone set.
    Create {
        name: String,
        /// Its drones (names from [SCHEDULER] drones).
        #[arg(long, value_delimiter = ',', required = true)]
        drones: Vec<String>,
    },
    /// List drone sets.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LabelAction {
    /// Create a label.
    Create { name: String },
    /// List labels.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HostAction {
    /// Add a host.
    Create {
        name: String,
        /// A label for the host (repeat for several); created if new.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List hosts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add or remove labels of a host.
    Label {
        name: String,
        #[arg(long = "add")]
        add: Vec<String>,
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// Lock a host: it gets no new work; what runs on it finishes.
    Lock {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Unlock a host (a host whose repair failed goes back in service as it is).
    Unlock { name: String },
    /// Run Autoserv's repair on a host (even one whose repair failed); prints the
    /// repair job's id. A repair that passes puts the host back in service.
    Repair { name: String },
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    control_file: PathBuf,
    /// Comma-separated host names: one entry per host.
    #[arg(long, value_delimiter = ',', required_unless_present = "label")]
    hosts: Vec<String>,
    /// Metahost: run on any ready host carrying this label.
    #[arg(long)]
    label: Option<String>,
    /// How many hosts with --label (default 1).
    #[arg(long, requires = "label")]
    count: Option<u32>,
    /// Comma-separated labels every host of the job must carry.
    #[arg(long, value_delimiter = ',')]
    dependencies: Vec<String>,
    /// Default: $USER, else the current user's name.
    #[arg(long)]
    owner: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Abort entries not started this many minutes after creation.
    #[arg(long)]
    timeout_mins: Option<u32>,
    /// Abort entries still running this many minutes after they started.
    #[arg(long)]
    max_runtime_mins: Option<u32>,
    /// Run only on the drones of this drone set (default: [SCHEDULER]
    /// default_drone_set_name, else any drone).
    #[arg(long)]
    drone_set: Option<String>,
    /// Synchronous job: entries wait (Pending) until N hosts are ready, then one
    /// Autoserv runs for all N (results in <job>-<owner>/group0/, group1/, ...).
    #[arg(long)]
    synch_count: Option<u32>,
    /// Verify each host before the job; a host that fails is repaired, and one
    /// whose repair fails is taken out of service.
    #[arg(long)]
    run_verify: bool,
    /// Clean the host up before the job: never, if-dirty or always.
    #[arg(long)]
    reboot_before: Option<String>,
    /// Clean the host up after the job: never, if-dirty or always.
    #[arg(long)]
    reboot_after: Option<String>,
}

#[derive(Subcommand)]
enum JobAction {
    /// Submit a job; prints its id.
    Create(Box<CreateArgs>),
    /// List jobs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Wait until the jobs have finished, printing progress to stderr; exits non-zero
    /// if one of them did not complete.
    Wait {
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Give up after this many seconds (default: wait forever).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Abort a job: queued entries at once, running ones get SIGTERM, then SIGKILL
    /// after [SCHEDULER] abort_grace_sec; their results are still pushed.
    Abort {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a job and its entries.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DroneAction {
    /// List drones with their load.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let the drone take new work.
    Enable { name: String },
    /// Send the drone no new work; what runs on it finishes.
    Disable { name: String },
    /// Change how many entries the drone runs at once (kept across restarts).
    SetCapacity { name: String, capacity: i32 },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atest: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("API types serialize")
    );
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let out: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// $USER, $LOGNAME, or the name of this process's uid in /etc/passwd.
fn current_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    })
}

/// Polls the jobs every half second until all are final.
fn wait(client: &Client, ids: &[i64], timeout: Option<u64>) -> Result<(), String> {
    let start = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        let mut done = 0;
        let mut failed = Vec::new();
        for id in ids {
            let job = client.job(*id).map_err(|e| e.to_string())?;
            let finished = scheduler::api::status::FINAL.contains(&job.status.as_str());
            if finished {
                done += 1;
                if job.status != scheduler::api::status::COMPLETED {
                    failed.push(format!("{} ({})", job.id, job.status));
                }
            }
            for entry in job.entries {
                *counts.entry(entry.status).or_default() += 1;
            }
        }
        let line = format!(
            "{done}/{} jobs finished; entries: {}",
            ids.len(),
            counts
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if done == ids.len() {
            return if failed.is_empty() {
                Ok(())
            } else {
                Err(format!("not completed: {}", failed.join(", ")))
            };
        }
        if timeout.is_some_and(|t| start.elapsed().as_secs() >= t) {
            return Err(format!(
                "timed out after {}s with {done}/{} jobs finished",
                start.elapsed().as_secs(),
                ids.len()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn run(args: Args) -> Result<(), String> {
    let client = Client::new(&args.server);
    let e = |e: scheduler::client::ClientError| e.to_string();
    match args.command {
        Command::Host {
            action: HostAction::Create { name, labels },
        } => {
            let host = client
                .create_host(&CreateHost { name, labels })
                .map_err(e)?;
            println!("{}", host.name);
        }
        Command::Host {
            action: HostAction::List { json },
        } => {
            let hosts = client.hosts().map_err(e)?;
            if json {
                print_json(&hosts);
            } else {
                table(
                    &["HOST", "STATUS", "LOCKED", "LABELS"],
                    hosts
                        .into_iter()
                        .map(|h| vec![h.name, h.status, h.locked.to_string(), h.labels.join(",")])
                        .collect(),
                );
            }
        }
        Command::Job {
            action: JobAction::Create(args),
        } => {
            let CreateArgs {
                name,
                control_file,
                hosts,
                label,
                count,
                dependencies,
                owner,
                priority,
                timeout_mins,
                max_runtime_mins,
                drone_set,
                synch_count,
                run_verify,
                reboot_before,
                reboot_after,
            } = *args;
            let owner = owner
                .or_else(current_user)
                .ok_or("cannot tell who you are; pass --owner")?;
            let control = std::fs::read_to_string(&control_file).map_err(|err| {
                format!("cannot read control file {}: {err}", control_file.display())
            })?;
            let id = client
                .create_job(&CreateJob {
                    name,
                    control_file: control,
                    hosts,
                    label,
                    count,
                    dependencies,
                    owner,
                    priority,
                    timeout_mins,
                    max_runtime_mins,
                    timeout_secs: None,
                    max_runtime_secs: None,
                    drone_set,
                    synch_count,
                    run_verify,
                    reboot_before,
                    reboot_after,
                })
                .map_err(e)?;
            println!("{id}");
        }
        Command::Job {
            action: JobAction::List { json },
        } => {
            let jobs = client.jobs().map_err(e)?;
            if json {
                print_json(&jobs);
            } else {
                table(
                    &["ID", "NAME", "OWNER", "PRIORITY", "STATUS", "CREATED"],
                    jobs.into_iter()
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
            }
        }
        Command::Job {
            action: JobAction::Wait { ids, timeout },
        } => wait(&client, &ids, timeout)?,
        Command::Job {
            action: JobAction::Abort { id, reason },
        } => {
            let by = current_user().ok_or("cannot tell who you are; set $USER")?;
            client.abort_job(id, &by, reason).map_err(e)?;
            println!("job {id} aborted");
        }
        Command::Job {
            action: JobAction::Show { id, json },
        } => {
            let job = client.job(id).map_err(e)?;
            if json {
                print_json(&job);
            } else {
                println!(
                    "Job {}: {} (owner {}, priority {}) {}",
                    job.id, job.name, job.owner, job.priority, job.status
                );
                table(
                    &["HOST", "STATUS", "DRONE", "EXIT", "RESULTS"],
                    job.entries
                        .iter()
                        .map(|en| {
                            vec![
                                en.host.clone().unwrap_or_else(|| {
                                    format!("(any {})", en.label.as_deref().unwrap_or("host"))
                                }),
                                en.status.clone(),
                                opt(&en.drone),
                                opt(&en.exit_code),
                                en.results_path
                                    .clone()
                                    .or_else(|| en.failure_reason.clone())
                                    .unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect(),
                );
            }
        }
        Command::Drone {
            action: DroneAction::Enable { name },
        } => {
            client.enable_drone(&name).map_err(e)?;
            println!("drone {name} enabled");
        }
        Command::Drone {
            action: DroneAction::Disable { name },
        } => {
            client.disable_drone(&name).map_err(e)?;
            println!("drone {name} disabled: it gets no new work; running entries finish");
        }
        Command::Drone {
            action: DroneAction::SetCapacity { name, capacity },
        } => {
            client.set_capacity(&name, capacity).map_err(e)?;
            println!("drone {name} capacity {capacity}");
        }
        Command::Host {
            action: HostAction::Label { name, add, remove },
        } => {
            client
                .change_labels(&name, &scheduler::api::ChangeLabels { add, remove })
                .map_err(e)?;
            println!("{name}");
        }
        Command::Host {
            action: HostAction::Lock { name, reason },
        } => {
            client.lock_host(&name, reason).map_err(e)?;
            println!("{name} locked");
        }
        Command::Host {
            action: HostAction::Repair { name },
        } => {
            let by = current_user().ok_or("cannot tell who you are; set $USER")?;
            let id = client.repair_host(&name, &by).map_err(e)?;
            println!("{id}");
        }
        Command::Host {
            action: HostAction::Unlock { name },
        } => {
            client.unlock_host(&name).map_err(e)?;
            println!("{name} unlocked");
        }
        Command::Label {
            action: LabelAction::Create { name },
        } => {
            client.create_label(&name).map_err(e)?;
            println!("{name}");
        }
        Command::Label {
            action: LabelAction::List { json },
        } => {
            let labels = client.labels().map_err(e)?;
            if json {
                print_json(&labels);
            } else {
                for label in labels {
                    println!("{}", label.name);
                }
            }
        }
        Command::DroneSet {
            action: DroneSetAction::Create { name, drones },
        } => {
            client.create_drone_set(&name, drones).map_err(e)?;
            println!("{name}");
        }
        Command::DroneSet {
            action: DroneSetAction::List { json },
        } => {
            let sets = client.drone_sets().map_err(e)?;
            if json {
                print_json(&sets);
            } else {
                table(
                    &["DRONE SET", "DRONES"],
                    sets.into_iter()
                        .map(|s| vec![s.name, s.drones.join(",")])
                        .collect(),
                );
            }
        }
        Command::Drone {
            action: DroneAction::List { json },
        } => {
            let drones = client.drones().map_err(e)?;
            if json {
                print_json(&drones);
            } else {
                table(
                    &[
                        "DRONE",
                        "STATUS",
                        "ENABLED",
                        "RUNNING",
                        "QUEUED",
                        "CAPACITY",
                        "LAST HEARTBEAT",
                    ],
                    drones
                        .into_iter()
                        .map(|d| {
                            vec![
                                d.name,
                                d.status,
                                d.enabled.to_string(),
                                d.running.to_string(),
                                opt(&d.queued),
                                d.capacity.to_string(),
                                opt(&d.last_heartbeat),
                            ]
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}
