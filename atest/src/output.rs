//! How `atest` prints: pretty JSON for `--json`, aligned columns otherwise. Text
//! that comes from users (job names, reasons, file names) is printed with its control
//! characters escaped, so it cannot move the cursor, recolour or clear a terminal, nor
//! pass for another line.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

/// `text` with control characters (and the invisible ones that reorder a line)
/// written as escapes: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`; a backslash before
/// them is left as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

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
/// blanks, each cell [`escape`]d.
pub fn format_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
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

/// [`escape`], owned.
pub fn clean(text: &str) -> String {
    escape(text).into_owned()
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
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain name"), "plain name");
        assert_eq!(
            escape("a\u{1b}[2Jb\nc\td\r\u{7f}\u{202e}é"),
            "a\\x1b[2Jb\\nc\\td\\r\\x7f\\u{202e}é"
        );
        let text = format_table(&["NAME"], vec![vec!["x\u{1b}]0;owned\u{7}".into()]]);
        assert_eq!(text, "NAME\nx\\x1b]0;owned\\x07\n");
    }

    #[test]
    fn a_missing_value_prints_as_a_dash() {
        assert_eq!(opt::<i32>(&None), "-");
        assert_eq!(opt(&Some(3)), "3");
    }
}
