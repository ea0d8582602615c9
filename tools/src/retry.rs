//! Trying a call again while what it needs restarts: the one retry rule of the tools.

use std::time::{Duration, Instant};

/// How long to keep trying, and how long to wait between tries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Give up once this long has passed since the first try.
    pub limit: Duration,
    /// The wait between two tries.
    pub interval: Duration,
}

impl Retry {
    /// Calls `attempt` until it succeeds, fails with an error `transient` does not
    /// accept, or `limit` has passed; `wait` sleeps between tries. Returns the last
    /// result.
    pub fn run<T, E>(
        &self,
        wait: impl Fn(Duration),
        transient: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let deadline = Instant::now() + self.limit;
        loop {
            match attempt() {
                Err(e) if transient(&e) && Instant::now() < deadline => wait(self.interval),
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const QUICK: Retry = Retry {
        limit: Duration::from_secs(60),
        interval: Duration::from_millis(1),
    };

    #[test]
    fn a_transient_error_is_tried_again_until_the_call_succeeds() {
        let tries = Cell::new(0);
        let result: Result<u32, &str> = QUICK.run(
            |_| {},
            |_| true,
            || {
                tries.set(tries.get() + 1);
                if tries.get() < 3 {
                    Err("down")
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(result, Ok(7));
        assert_eq!(tries.get(), 3);
    }

    #[test]
    fn a_lasting_error_is_returned_at_once() {
        let tries = Cell::new(0);
        let result: Result<(), &str> = QUICK.run(
            |_| {},
            |e| *e == "down",
            || {
                tries.set(tries.get() + 1);
                Err("refused")
            },
        );
        assert_eq!(result, Err("refused"));
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn tries_stop_once_the_limit_has_passed() {
        let retry = Retry {
            limit: Duration::from_millis(20),
            interval: Duration::from_millis(5),
        };
        let waits = Cell::new(0);
        let result: Result<(), &str> = retry.run(
            |d| {
                waits.set(waits.get() + 1);
                std::thread::sleep(d);
            },
            |_| true,
            || Err("down"),
        );
        assert_eq!(result, Err("down"));
        assert!(waits.get() >= 1 && waits.get() < 20, "{}", waits.get());
    }
}
