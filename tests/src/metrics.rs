//! Reading a `/metrics` answer as Prometheus does: parsed by `prometheus-parse` (the
//! text format, each sample typed by its family), and checked line by line for what a
//! scraper and the naming conventions need: every sample in a family with `# HELP`
//! and `# TYPE` before it, names under `autotest_`, counters ending in `_total`,
//! histograms with rising buckets up to `+Inf` equal to their `_count`.

use prometheus_parse::{Scrape, Value};
use std::collections::BTreeMap;

/// A parsed and checked `/metrics` answer.
pub struct Exposition {
    pub text: String,
    pub scrape: Scrape,
    /// Each family's type, by name.
    pub types: BTreeMap<String, String>,
}

/// Parses and checks `text`; panics saying what is wrong with it.
pub fn parse(text: &str) -> Exposition {
    let types = check(text);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = Scrape::parse(lines).expect("the text format parses");
    for sample in &scrape.samples {
        let histogram_part = ["_sum", "_count"].iter().any(|suffix| {
            sample
                .metric
                .strip_suffix(suffix)
                .is_some_and(|family| types.get(family).map(String::as_str) == Some("histogram"))
        });
        if let Value::Untyped(_) = sample.value {
            assert!(histogram_part, "a sample of no typed family: {sample:?}");
        }
    }
    Exposition {
        text: text.to_string(),
        scrape,
        types,
    }
}

/// The family a sample named `name` belongs to, given the families declared so far.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = name.strip_suffix(suffix)?;
        (types.get(family).map(String::as_str) == Some("histogram")).then_some(family)
    })
}

/// Checks every line; returns each family's type.
fn check(text: &str) -> BTreeMap<String, String> {
    let mut helps = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP NAME TEXT");
            assert!(!help.trim().is_empty(), "empty help: {line}");
            assert!(
                helps.insert(name.to_string(), ()).is_none(),
                "help twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type: {line}"
            );
            assert!(name.starts_with("autotest_"), "name: {line}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "name: {line}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            let first = types.insert(name.to_string(), kind.to_string());
            assert!(first.is_none(), "type twice: {line}");
            continue;
        }
        assert!(
            !line.starts_with('#'),
            "a comment Prometheus text has no use for: {line}"
        );
        let name_end = line.find(['{', ' ']).expect("NAME VALUE");
        let name = &line[..name_end];
        assert!(
            family_of(name, &types).is_some(),
            "a sample before its family: {line}"
        );
        let value = line.rsplit(' ').next().expect("a value");
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "value: {line}"
        );
    }
    check_histograms(text, &types);
    types
}

/// Buckets rise, end at `+Inf`, and `+Inf` is the `_count`.
fn check_histograms(text: &str, types: &BTreeMap<String, String>) {
    for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
        // Buckets by their other labels, in order of appearance.
        let mut series: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        let bucket = format!("{family}_bucket{{");
        for line in text.lines().filter(|l| l.starts_with(&bucket)) {
            let labels = &line[bucket.len()..line.rfind('}').expect("labels")];
            let (others, le) = labels.rsplit_once("le=").expect("an le label");
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            series
                .entry(others.trim_end_matches(',').to_string())
                .or_default()
                .push((le.trim_matches('"').to_string(), value));
        }
        for (others, buckets) in series {
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {{{others}}}: {buckets:?}"
            );
            let (le, inf) = buckets.last().expect("buckets");
            assert_eq!(le, "+Inf", "{family} {{{others}}}");
            let count_prefix = match others.is_empty() {
                true => format!("{family}_count "),
                false => format!("{family}_count{{{others}}} "),
            };
            let count = text
                .lines()
                .find_map(|l| l.strip_prefix(&count_prefix))
                .unwrap_or_else(|| panic!("no {count_prefix}"));
            assert_eq!(count.parse::<f64>().unwrap(), *inf, "{family} {{{others}}}");
        }
    }
}

impl Exposition {
    /// The value of the counter or gauge `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && s.labels.len() == labels.len())
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .find_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// [`Exposition::value`], which must be there.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    /// The sum of `name` over all its label sets (0 when it has none).
    pub fn sum(&self, name: &str) -> f64 {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .sum()
    }

    /// How many observations the histogram `name` with `labels` has.
    pub fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(&format!("{name}_count"), labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP autotest_things_total Things.\n# TYPE autotest_things_total counter\nautotest_things_total{kind=\"a\"} 3\n# HELP autotest_wait_seconds Waits.\n# TYPE autotest_wait_seconds histogram\nautotest_wait_seconds_bucket{le=\"1\"} 1\nautotest_wait_seconds_bucket{le=\"+Inf\"} 2\nautotest_wait_seconds_sum 3.5\nautotest_wait_seconds_count 2\n";

    #[test]
    fn a_well_formed_answer_reads_back() {
        let exposition = parse(GOOD);
        assert_eq!(
            exposition.get("autotest_things_total", &[("kind", "a")]),
            3.0
        );
        assert_eq!(exposition.observations("autotest_wait_seconds", &[]), 2.0);
        assert_eq!(exposition.types["autotest_wait_seconds"], "histogram");
    }

    #[test]
    #[should_panic(expected = "a sample before its family")]
    fn an_undeclared_sample_is_refused() {
        parse("autotest_things_total 1\n");
    }

    #[test]
    #[should_panic]
    fn a_counter_without_total_is_refused() {
        parse(
            "# HELP autotest_things Things.\n# TYPE autotest_things counter\nautotest_things 1\n",
        );
    }

    #[test]
    #[should_panic]
    fn a_count_that_is_not_the_inf_bucket_is_refused() {
        parse(&GOOD.replace("_count 2", "_count 3"));
    }
}
