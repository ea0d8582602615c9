//! What a chaos run does: its options on the command line, the plan of faults they
//! imply, and the seeded random numbers that pick moments and lengths.

use super::faults::Fault;
use std::time::Duration;

/// The command line: `chaos [--short] [--jobs N] [--seed S]`.
pub struct Options {
    /// The short run (`deploy/test.sh`): fewer jobs and faults.
    pub short: bool,
    /// How many jobs to submit (60 short, else 500).
    pub jobs: usize,
    /// Picks the jobs, their moments and the faults: the same seed, the same run.
    pub seed: u64,
}

/// What `chaos --help` prints.
pub const USAGE: &str = "usage: chaos [--short] [--jobs N] [--seed S]";

impl Options {
    /// Reads the options from `args` (without the program's name); `None` for `--help`.
    /// Panics on anything else it does not know.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        parse(args.into_iter())
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Option<Options> {
    let mut short = false;
    let mut jobs = None;
    let mut seed = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--short" => short = true,
            "--jobs" => jobs = Some(value("--jobs") as usize),
            "--seed" => seed = Some(value("--seed")),
            "--help" | "-h" => return None,
            other => panic!("unknown option {other}; {USAGE}"),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
            .unwrap_or(1)
            % 1_000_000_007
    });
    Some(Options {
        short,
        jobs: jobs.unwrap_or(if short { 60 } else { 500 }),
        seed,
    })
}

/// How many faults of each kind, over how long.
pub struct Plan {
    /// Jobs are submitted and faults injected within this long.
    pub window: Duration,
    /// How long to wait for the last jobs to finish after the window.
    pub wait_limit: Duration,
    /// How many of each kind.
    pub faults: Vec<(Fault, usize)>,
}

/// The faults for a run of these options.
pub fn plan(o: &Options) -> Plan {
    let window = Duration::from_secs_f64((o.jobs as f64 * 0.6).max(50.0));
    if o.short {
        Plan {
            window,
            wait_limit: Duration::from_secs(240),
            faults: vec![
                (Fault::WorkerKill, 4),
                (Fault::SchedulerKill, 2),
                (Fault::BrokerRestart, 1),
                (Fault::ResultsOutage, 1),
                (Fault::Abort, 3),
            ],
        }
    } else {
        Plan {
            window,
            wait_limit: Duration::from_secs(600),
            faults: vec![
                (Fault::WorkerKill, 12),
                (Fault::SchedulerKill, 5),
                (Fault::BrokerRestart, 3),
                (Fault::ResultsOutage, 3),
                (Fault::Abort, 10),
            ],
        }
    }
}

/// splitmix64: small, seedable, good enough to pick moments and lengths.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A number in `[low, high)`.
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Option<Options> {
        Options::parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn a_short_run_has_sixty_jobs_unless_told_otherwise() {
        assert_eq!(parsed(&["--short"]).unwrap().jobs, 60);
        assert_eq!(parsed(&[]).unwrap().jobs, 500);
        assert_eq!(parsed(&["--short", "--jobs", "7"]).unwrap().jobs, 7);
    }

    #[test]
    fn help_asks_for_the_usage_instead_of_a_run() {
        assert!(parsed(&["--help"]).is_none());
    }

    #[test]
    fn the_same_seed_draws_the_same_numbers() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        let draws: Vec<u64> = (0..5).map(|_| a.next()).collect();
        assert_eq!(draws, (0..5).map(|_| b.next()).collect::<Vec<_>>());
        assert!((0..1000).all(|_| (0.0..1.0).contains(&a.unit())));
        assert!((0..1000).all(|_| a.below(30) < 30));
    }

    #[test]
    fn the_plan_spreads_a_run_over_at_least_fifty_seconds() {
        let short = plan(&parsed(&["--short"]).unwrap());
        assert_eq!(short.window, Duration::from_secs(50));
        let long = plan(&parsed(&["--jobs", "500"]).unwrap());
        assert_eq!(long.window, Duration::from_secs(300));
    }
}
