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

/// `text` with its control characters escaped (`\n`, `\t`, `\x1b`, `\u{..}`), so a
/// name or reason from a user, a job or a drone can never move the cursor or change the
/// terminal.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
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
    fn control_characters_are_shown_escaped() {
        assert_eq!(clean("plain name"), "plain name");
        assert_eq!(clean("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(clean("\u{1b}[2Jx"), "\\x1b[2Jx");
        assert_eq!(clean("\u{9b}"), "\\x9b");
    }

    #[test]
    fn a_missing_value_prints_as_a_dash() {
        assert_eq!(opt::<i32>(&None), "-");
        assert_eq!(opt(&Some(3)), "3");
    }
}
