//! Autotest's keyval files: a test's `keyval` (its attributes) and its
//! `results/keyval` (one block of `key{perf}=value` / `key{attr}=value` lines per
//! iteration, blocks separated by blank lines).

use crate::model::Iteration;
use std::collections::BTreeMap;

/// A plain keyval file: `key=value` lines; `#` starts a comment; lines that are not
/// `key=value` with a key of letters, digits, `_`, `-`, `.` (and an optional
/// `{type}` suffix, dropped) are skipped.
pub fn attributes(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim_end();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.split_once('{').map_or(key, |(plain, _)| plain);
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            continue;
        }
        out.insert(key.to_string(), value.to_string());
    }
    out
}

/// One line of an iteration block, into the iteration's attributes or perf values:
/// `key{attr}=v` is an attribute, `key{perf}=v` and an untyped `key=v` are perf values
/// (numbers only); any other type, or a perf value that is not a number, is skipped.
pub fn iteration_line(line: &str, iteration: &mut Iteration) {
    let Some((key, value)) = line.split_once('=') else {
        return;
    };
    let (key, kind) = match key.strip_suffix('}').and_then(|k| k.rsplit_once('{')) {
        Some((key, kind)) if kind.chars().all(|c| c.is_alphanumeric() || c == '_') => (key, kind),
        Some(_) => return,
        None => (key, "perf"),
    };
    match kind {
        "attr" => {
            iteration
                .attributes
                .insert(key.to_string(), value.to_string());
        }
        "perf" => {
            if let Ok(number) = value.trim().parse::<f64>() {
                if number.is_finite() {
                    iteration.perf.insert(key.to_string(), number);
                }
            }
        }
        _ => {}
    }
}

/// The iterations of a `results/keyval` file, numbered from 1.
pub fn iterations(text: &str) -> Vec<Iteration> {
    let mut out = Vec::new();
    let mut current = Iteration {
        index: 1,
        ..Iteration::default()
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            let next = current.index + 1;
            out.push(std::mem::replace(
                &mut current,
                Iteration {
                    index: next,
                    ..Iteration::default()
                },
            ));
        } else {
            iteration_line(line, &mut current);
        }
    }
    if !current.attributes.is_empty() || !current.perf.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, f64>) {
        let mut iteration = Iteration::default();
        iteration_line(text, &mut iteration);
        (iteration.attributes, iteration.perf)
    }

    #[test]
    fn typed_and_untyped_iteration_lines() {
        assert_eq!(
            line("perf-val{perf}=-173").1,
            [("perf-val".to_string(), -173.0)].into()
        );
        assert_eq!(
            line("attr-val{attr}=173").0,
            [("attr-val".to_string(), "173".to_string())].into()
        );
        assert_eq!(
            line("untagged=-678.5e5").1,
            [("untagged".to_string(), -678.5e5)].into()
        );
    }

    #[test]
    fn unknown_types_and_non_numbers_are_skipped() {
        assert_eq!(line("bad-tag{invalid}=56"), Default::default());
        assert_eq!(line("perf-val{perf}=FooBar"), Default::default());
        assert_eq!(line("untagged=FooBar"), Default::default());
        assert_eq!(line("no equals sign"), Default::default());
        assert_eq!(line("inf{perf}=inf"), Default::default());
    }

    #[test]
    fn blank_lines_separate_iterations_numbered_from_one() {
        let found = iterations("a{perf}=1\nb{attr}=x\n\na{perf}=2\n\n\n");
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].index, 1);
        assert_eq!(found[0].perf["a"], 1.0);
        assert_eq!(found[0].attributes["b"], "x");
        assert_eq!(found[1].perf["a"], 2.0);
        assert!(found[2].perf.is_empty());
        assert_eq!(iterations("").len(), 0);
        assert_eq!(iterations("a=1").len(), 1);
    }

    #[test]
    fn attributes_skip_comments_and_malformed_lines() {
        let found = attributes(
            "version=1 # comment\n# all comment\nbad key=2\nsysinfo-cmdline=ro quiet\nx{attr}=y\n",
        );
        assert_eq!(
            found,
            [
                ("version".to_string(), "1".to_string()),
                ("sysinfo-cmdline".to_string(), "ro quiet".to_string()),
                ("x".to_string(), "y".to_string()),
            ]
            .into()
        );
    }
}
