//! One line of Autotest's status log: `<tabs><command>\t<subdir>\t<testname>\t
//! [key=value\t...]<reason>`, where `----` stands for no subdir or no testname.

use crate::model::Status;
use std::collections::BTreeMap;

/// What a line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `START`: a group begins.
    Start,
    /// `END <status>`: the innermost group ends with that status.
    End(Status),
    /// `<status>`: a status inside the current group (or a test of its own).
    Status(Status),
    /// `INFO`: information (a kernel version), no status. Version 1 only.
    Info,
}

/// A parsed status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The number of leading tabs.
    pub indent: usize,
    pub kind: Kind,
    pub subdir: Option<String>,
    pub testname: Option<String>,
    pub reason: String,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// The line's status, for `END` and status lines.
    pub fn status(&self) -> Option<Status> {
        match self.kind {
            Kind::End(status) | Kind::Status(status) => Some(status),
            Kind::Start | Kind::Info => None,
        }
    }

    /// The `timestamp=` field, in seconds since the epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.fields.get("timestamp")?.trim().parse().ok()
    }

    /// The kernel a line names (`kernel=`), without Autotest's `-autotest` suffix.
    pub fn kernel(&self) -> Option<String> {
        let kernel = self.fields.get("kernel")?;
        let base = kernel.strip_suffix("-autotest").unwrap_or(kernel);
        (!base.is_empty()).then(|| base.to_string())
    }

    /// Parses one logical line; `None` for anything that is not a status line (a
    /// stray message, fewer than three tab-ended columns, an unknown command).
    /// `info_allowed` is false for version 0 logs, where `INFO` is not a command.
    pub fn parse(raw: &str, info_allowed: bool) -> Option<Line> {
        let raw = raw.strip_suffix('\n').unwrap_or(raw);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let body = raw.trim_start_matches('\t');
        let indent = raw.len() - body.len();
        let parts: Vec<&str> = body.split('\t').collect();
        // At least three columns, each ending in a tab, the first not blank.
        if parts.len() < 4 || parts[..3].iter().any(|p| p.is_empty()) {
            return None;
        }
        if parts[0].starts_with(char::is_whitespace) {
            return None;
        }
        let kind = match parts[0] {
            "START" => Kind::Start,
            "INFO" if info_allowed => Kind::Info,
            command => match command.strip_prefix("END ") {
                Some(status) => Kind::End(Status::parse(status)?),
                None => Kind::Status(Status::parse(command)?),
            },
        };
        let rest = &parts[3..];
        // The last column is always (part of) the reason; `key=value` columns before
        // it are fields, and the reason runs from the first column that is not one.
        let mut fields = BTreeMap::new();
        let mut reason_from = rest.len() - 1;
        for (i, part) in rest[..rest.len() - 1].iter().enumerate() {
            match field(part) {
                Some((key, value)) => {
                    fields.insert(key.to_string(), value.to_string());
                }
                None => {
                    reason_from = i;
                    break;
                }
            }
        }
        Some(Line {
            indent,
            kind,
            subdir: name(parts[1]),
            testname: name(parts[2]),
            reason: rest[reason_from..].join("\t"),
            fields,
        })
    }
}

/// `----` is Autotest's "none".
fn name(column: &str) -> Option<String> {
    (column != "----").then(|| column.to_string())
}

/// A `key=value` column: a key without blanks or `=`, then the value.
fn field(part: &str) -> Option<(&str, &str)> {
    let (key, value) = part.split_once('=')?;
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some((key, value))
}

/// Joins the physical lines of a log into logical ones: Autotest writes the further
/// lines of a multi-line reason indented by the line's tabs and two spaces, and drops
/// `\r\0` pairs (`clean_raw_line`).
pub fn logical_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for physical in text.split('\n') {
        let physical = physical.replace("\r\0", "");
        let body = physical.trim_start_matches('\t');
        if let (Some(continued), Some(last)) = (body.strip_prefix("  "), lines.last_mut()) {
            if Line::parse(last, true).is_some() {
                last.push('\n');
                last.push_str(continued);
                continue;
            }
        }
        lines.push(physical);
    }
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn start_info_status_and_end_lines_are_told_apart() {
        let start = Line::parse("START\t----\ttest\t", true).unwrap();
        assert_eq!((start.kind, start.status()), (Kind::Start, None));
        let info = Line::parse("INFO\t----\t----\t", true).unwrap();
        assert_eq!((info.kind, info.status()), (Kind::Info, None));
        for status in ["GOOD", "WARN", "FAIL", "ABORT", "ERROR", "TEST_NA", "ALERT"] {
            let line = Line::parse(&format!("{status}\t----\ttest\t"), true).unwrap();
            assert_eq!(line.kind, Kind::Status(Status::parse(status).unwrap()));
            let end = Line::parse(&format!("END {status}\t----\ttest\t"), true).unwrap();
            assert_eq!(end.kind, Kind::End(Status::parse(status).unwrap()));
        }
    }

    #[test]
    fn an_unknown_command_is_not_a_status_line() {
        for status in ["GOOD", "WARN", "FAIL", "ABORT"] {
            assert_eq!(
                Line::parse(&format!("BAD {status}\t----\ttest\t"), true),
                None
            );
        }
        assert_eq!(Line::parse("END\t----\ttest\t", true), None);
    }

    #[test]
    fn info_is_a_command_only_in_version_1() {
        assert!(Line::parse("INFO\t----\t----\t", true).is_some());
        assert_eq!(Line::parse("INFO\t----\t----\t", false), None);
    }

    #[test]
    fn every_column_is_kept() {
        let line = Line::parse(
            "\t\t\t\t\tGOOD\tsubdir_name\ttest_name\tkey1=value\tkey2=another value\tkey3=value3\tmy reason here",
            true,
        )
        .unwrap();
        assert_eq!(line.indent, 5);
        assert_eq!(line.status(), Some(Status::Good));
        assert_eq!(line.subdir.as_deref(), Some("subdir_name"));
        assert_eq!(line.testname.as_deref(), Some("test_name"));
        assert_eq!(line.reason, "my reason here");
        assert_eq!(
            line.fields,
            fields(&[
                ("key1", "value"),
                ("key2", "another value"),
                ("key3", "value3")
            ])
        );
    }

    #[test]
    fn dashes_mean_no_subdir_and_no_testname() {
        let line = Line::parse("GOOD\t----\ttest\t", true).unwrap();
        assert_eq!(line.subdir, None);
        let line = Line::parse("GOOD\tsubdir\t----\t", true).unwrap();
        assert_eq!(line.testname, None);
    }

    #[test]
    fn fields_and_reason_with_or_without_a_final_newline() {
        for suffix in ["", "\n"] {
            let line = Line::parse(
                &format!(
                    "\t\tGOOD\t----\t----\tfield1=val1\tfield2=val2\tNo newline here!{suffix}"
                ),
                true,
            )
            .unwrap();
            assert_eq!(line.indent, 2);
            assert_eq!((line.subdir, line.testname), (None, None));
            assert_eq!(line.reason, "No newline here!");
            assert_eq!(
                line.fields,
                fields(&[("field1", "val1"), ("field2", "val2")])
            );
        }
    }

    #[test]
    fn lines_indented_with_spaces_or_missing_a_column_are_not_status_lines() {
        assert_eq!(Line::parse("   GOOD\trandom\tfields\tof text", true), None);
        let line = Line::parse("GOOD\trandom\tfields\tof text", true).unwrap();
        assert_eq!(line.indent, 0);
        assert_eq!(line.subdir.as_deref(), Some("random"));
        assert_eq!(line.testname.as_deref(), Some("fields"));
        assert_eq!(line.reason, "of text");
        assert!(line.fields.is_empty());
        assert_eq!(Line::parse("\t\tGOOD\tfield\tsecond field", true), None);
        let line = Line::parse("\t\tGOOD\tfield\tsecond field\tneeded last field", true).unwrap();
        assert_eq!(line.reason, "needed last field");
    }

    #[test]
    fn a_reason_may_hold_tabs_and_newlines() {
        let line = Line::parse(
            "\tEND FAIL\t----\ttest\tfield1=val1\tfield2=val2\tReason with\ta\tcouple\ttabs",
            true,
        )
        .unwrap();
        assert_eq!(line.kind, Kind::End(Status::Fail));
        assert_eq!(line.reason, "Reason with\ta\tcouple\ttabs");
        assert_eq!(
            line.fields,
            fields(&[("field1", "val1"), ("field2", "val2")])
        );
        let line = Line::parse(
            "\tEND FAIL\t----\ttest\tfield1=val1\tStatus\nwith\nembedded\nnew lines\n",
            true,
        )
        .unwrap();
        assert_eq!(line.reason, "Status\nwith\nembedded\nnew lines");
    }

    #[test]
    fn continuation_lines_join_the_reason_and_carriage_return_nuls_go() {
        let text = "START\t----\tt\t\n\tFAIL\t----\tt\tfirst\n\t  second\n\t  third\nnoise\r\0\nEND FAIL\t----\tt\t\n";
        let lines = logical_lines(text);
        assert_eq!(lines.len(), 4, "{lines:?}");
        let fail = Line::parse(&lines[1], true).unwrap();
        assert_eq!(fail.reason, "first\nsecond\nthird");
        assert_eq!(lines[2], "noise");
    }

    #[test]
    fn timestamps_and_kernels_come_from_fields() {
        let line = Line::parse(
            "GOOD\tsubdir\ttestname\ttimestamp=16200\tkernel=2.6.24-rc40-autotest\treason text",
            true,
        )
        .unwrap();
        assert_eq!(line.timestamp(), Some(16200));
        assert_eq!(line.kernel().as_deref(), Some("2.6.24-rc40"));
        let line = Line::parse("GOOD\tsubdir\ttestname\treason text", true).unwrap();
        assert_eq!((line.timestamp(), line.kernel()), (None, None));
    }
}
