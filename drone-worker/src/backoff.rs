//! The one backoff of the worker's retry loops: exponential, doubling from a first
//! delay up to a ceiling, never giving up (built on `backon`).

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// Delays between the tries of something retried until it succeeds.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            delays: Self::delays(first, max),
        }
    }

    fn delays(first: Duration, max: Duration) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times()
            .build()
    }

    /// How long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }

    /// Waits before the next try.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// A try succeeded: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.delays = Self::delays(self.first, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_start_over_after_a_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(200), ms(1000));
        // Whole milliseconds: the doubling is in floating point.
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(200));
    }
}
