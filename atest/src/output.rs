//! How `atest` prints: pretty JSON for `--json`, aligned columns otherwise.

use serde::Serialize;

/// Prints an API document as pretty JSON.
pub fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("API types serialize")
    );
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    print!("{}", format_table(header, rows));
}

/// The text [`table`] prints: one line per row, columns two spaces apart, no trailing
/// blanks.
pub fn format_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
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
        format!("{}\n", out.join("  ").trim_end())
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push_str(&line(row));
    }
    text
}

/// The value, or `-` when there is none.
pub fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let text = format_table(
            &["HOST", "STATUS"],
            vec![
                vec!["h1".into(), "Ready".into()],
                vec!["a-long-name".into(), "Running".into()],
            ],
        );
        assert_eq!(
            text,
            "HOST         STATUS\nh1           Ready\na-long-name  Running\n"
        );
    }

    #[test]
    fn a_missing_value_prints_as_a_dash() {
        assert_eq!(opt::<i32>(&None), "-");
        assert_eq!(opt(&Some(3)), "3");
    }
}
