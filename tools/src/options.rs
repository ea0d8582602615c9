//! The command lines of `bench` and `scale_bench`: `--name N` pairs of whole numbers.

/// The `--name N` pairs of a command line (without the program's name), in order;
/// `None` when it asks for help. Panics on a value that is missing or not a number.
pub fn numeric_pairs(args: impl IntoIterator<Item = String>) -> Option<Vec<(String, usize)>> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return None;
    }
    let pairs = args
        .chunks(2)
        .map(|pair| {
            let value: usize = pair
                .get(1)
                .and_then(|v| v.parse().ok())
                .expect("numeric option value");
            (pair[0].clone(), value)
        })
        .collect();
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn pairs_come_back_in_order_and_help_is_none() {
        let pairs = numeric_pairs(strings(&["--jobs", "5", "--hosts", "7"])).unwrap();
        assert_eq!(
            pairs,
            [("--jobs".to_string(), 5), ("--hosts".to_string(), 7)]
        );
        assert!(numeric_pairs(strings(&["--jobs", "5", "--help"])).is_none());
    }

    #[test]
    #[should_panic(expected = "numeric option value")]
    fn a_value_that_is_not_a_number_is_refused() {
        numeric_pairs(strings(&["--jobs", "many"]));
    }
}
