//! The lab benchmark's figures, computed from what the run recorded (pure: unit-tested
//! without the system).

use std::collections::{BTreeMap, VecDeque};

/// For each drone, pairs each slot freed (an Autoserv ending, µs) with the next entry
/// recorded Running on that drone after it, first freed first filled; returns each
/// pair's wait in ms. Only slots freed in `[from, until)` count; starts with no freed
/// slot waiting (a drone filling up) are not waits.
pub fn slot_waits(
    frees: &BTreeMap<String, Vec<i64>>,
    starts: &BTreeMap<String, Vec<i64>>,
    from: i64,
    until: i64,
) -> Vec<f64> {
    let mut waits = Vec::new();
    for (drone, freed) in frees {
        let mut freed: Vec<i64> = freed
            .iter()
            .copied()
            .filter(|t| (from..until).contains(t))
            .collect();
        freed.sort_unstable();
        let mut started = starts.get(drone).cloned().unwrap_or_default();
        started.sort_unstable();
        let mut waiting: VecDeque<i64> = VecDeque::new();
        let mut next_free = freed.into_iter().peekable();
        for start in started {
            while let Some(free) = next_free.next_if(|f| *f <= start) {
                waiting.push_back(free);
            }
            if let Some(free) = waiting.pop_front() {
                waits.push((start - free) as f64 / 1000.0);
            }
        }
    }
    waits
}

/// A histogram's cumulative bucket counts by upper bound (`le`), as Prometheus gives
/// them; `+Inf` as `f64::INFINITY`.
pub type Buckets = Vec<(f64, f64)>;

/// The bucket counts of `after` minus those of `before` (what happened between two
/// scrapes).
pub fn bucket_delta(before: &Buckets, after: &Buckets) -> Buckets {
    after
        .iter()
        .map(|(le, n)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - earlier)
        })
        .collect()
}

/// The `q` quantile (0..1) of a cumulative histogram, interpolated linearly inside
/// its bucket as Prometheus's `histogram_quantile` does; None when it is empty.
pub fn quantile(buckets: &Buckets, q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let fraction = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// The cumulative buckets of histogram `name` in a Prometheus text answer.
pub fn buckets_of(text: &str, name: &str) -> Buckets {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Buckets = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_drone(pairs: &[(&str, &[i64])]) -> BTreeMap<String, Vec<i64>> {
        pairs
            .iter()
            .map(|(d, t)| (d.to_string(), t.to_vec()))
            .collect()
    }

    #[test]
    fn each_freed_slot_is_filled_by_the_next_start_on_its_own_drone_in_order() {
        let frees = by_drone(&[("d1", &[1_000, 2_000]), ("d2", &[1_500])]);
        // d1: two slots freed before the first start; the second start fills the
        // second slot. d2's start at 1_600 is not d1's.
        let starts = by_drone(&[("d1", &[500, 3_000, 4_000]), ("d2", &[1_600])]);
        let mut waits = slot_waits(&frees, &starts, 0, 10_000);
        waits.sort_by(f64::total_cmp);
        assert_eq!(waits, vec![0.1, 2.0, 2.0]);
    }

    #[test]
    fn slots_freed_outside_the_window_are_not_counted() {
        let frees = by_drone(&[("d1", &[100, 5_000, 20_000])]);
        let starts = by_drone(&[("d1", &[200, 6_000, 21_000])]);
        assert_eq!(slot_waits(&frees, &starts, 1_000, 10_000), vec![1.0]);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        let text = "x_bucket{le=\"0.01\"} 50\nx_bucket{le=\"0.1\"} 90\nx_bucket{le=\"1\"} 100\nx_bucket{le=\"+Inf\"} 100\nx_count 100\n";
        let b = buckets_of(text, "x");
        assert_eq!(b.len(), 4);
        assert_eq!(quantile(&b, 0.5), Some(0.01));
        let p99 = quantile(&b, 0.99).unwrap();
        assert!((p99 - 0.91).abs() < 1e-9, "{p99}");
        let before = vec![
            (0.01, 40.0),
            (0.1, 40.0),
            (1.0, 40.0),
            (f64::INFINITY, 40.0),
        ];
        let delta = bucket_delta(&before, &b);
        assert_eq!(delta[0], (0.01, 10.0));
        let p50 = quantile(&delta, 0.5).unwrap();
        assert!((p50 - 0.055).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&vec![(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }
}
