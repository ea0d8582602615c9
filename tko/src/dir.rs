//! Parsing an entry's results directory: which files are read, how, and within what
//! bounds. Nothing here follows a symlink, opens anything but a regular file, or
//! reads more than the bounds allow; what cannot be parsed becomes a one-line error
//! beside the tests that could.

use crate::model::TestResult;
use crate::status_log::{self, Limit, Version};
use crate::{avocado, glob, junit, keyval};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The parsers there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    StatusLog,
    Avocado,
    Junit,
}

impl Parser {
    /// The name `[DRONE] parsers` uses.
    pub fn name(self) -> &'static str {
        match self {
            Parser::StatusLog => "status_log",
            Parser::Avocado => "avocado",
            Parser::Junit => "junit",
        }
    }

    /// The parser `[DRONE] parsers` names `name`.
    pub fn parse(name: &str) -> Option<Parser> {
        match name {
            "status_log" => Some(Parser::StatusLog),
            "avocado" => Some(Parser::Avocado),
            "junit" => Some(Parser::Junit),
            _ => None,
        }
    }
}

/// What to parse and how much.
#[derive(Debug, Clone)]
pub struct Options {
    pub parsers: Vec<Parser>,
    /// Which files are JUnit XML (globs relative to the results directory).
    pub junit_globs: Vec<String>,
    /// Tests kept; the rest are counted.
    pub max_tests: usize,
    /// The most read of any one file.
    pub max_file_bytes: u64,
    /// The most directory entries looked at.
    pub max_entries: usize,
    /// Lines of status log read.
    pub max_lines: u64,
    /// When to stop reading, from the start.
    pub time_limit: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parsers: vec![Parser::StatusLog, Parser::Avocado, Parser::Junit],
            junit_globs: vec!["**/junit*.xml".into(), "**/TEST-*.xml".into()],
            max_tests: 10_000,
            max_file_bytes: 64 << 20,
            max_entries: 100_000,
            max_lines: 2_000_000,
            time_limit: Duration::from_secs(30),
        }
    }
}

/// What parsing found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub tests: Vec<TestResult>,
    /// Tests found past `max_tests`, counted and not kept.
    pub dropped: u64,
    /// What could not be parsed, one short line each.
    pub errors: Vec<String>,
}

impl Parsed {
    /// The errors as one line of at most 500 bytes, for the entry's `parse_error`.
    pub fn error_line(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let mut line: String = self
            .errors
            .join("; ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if line.len() > 500 {
            let mut end = 497;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str("...");
        }
        Some(line)
    }
}

/// A regular file's first `max` bytes, without following a symlink or blocking on a
/// FIFO; whether there was more.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    let more = bytes.len() as u64 > max;
    bytes.truncate(max as usize);
    Ok((bytes, more))
}

/// `relative` under `root`: an error when it leaves the directory or goes through a
/// symlink, `Ok(None)` when it does not exist.
fn inside(root: &Path, relative: &str) -> Result<Option<PathBuf>, String> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(name) => {
                path.push(name);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        return Err(format!("{relative}: a symlink, not followed"))
                    }
                    Ok(_) => {}
                    Err(_) => return Ok(None),
                }
            }
            Component::CurDir => {}
            _ => return Err(format!("{relative}: leaves the results directory")),
        }
    }
    Ok(Some(path))
}

/// The files of the directory, relative to it, as `/`-separated strings: regular
/// files only, never through a symlink, at most `max` entries looked at.
fn files(root: &Path, max: usize, deadline: Instant) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut pending = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > max || Instant::now() > deadline {
                return (out, true);
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if kind.is_dir() && depth < 32 {
                pending.push((entry.path(), relative, depth + 1));
            } else if kind.is_file() {
                out.push(relative);
            }
        }
    }
    out.sort();
    (out, false)
}

/// Parses the results directory `root` with `options`.
pub fn parse(root: &Path, options: &Options) -> Parsed {
    let deadline = Instant::now() + options.time_limit;
    let mut parsed = Parsed::default();
    let read = |relative: &str, parsed: &mut Parsed| -> Option<String> {
        let path = match inside(root, relative) {
            Ok(path) => path?,
            Err(error) => {
                parsed.errors.push(error);
                return None;
            }
        };
        match read_bounded(&path, options.max_file_bytes) {
            Ok((bytes, more)) => {
                if more {
                    parsed.errors.push(format!(
                        "{relative}: larger than {} MiB, only the start was parsed",
                        options.max_file_bytes >> 20
                    ));
                }
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                parsed.errors.push(format!("{relative}: {error}"));
                None
            }
        }
    };
    if options.parsers.contains(&Parser::StatusLog) {
        status_logs(options, deadline, &read, &mut parsed);
    }
    let wants_files = options.parsers.iter().any(|p| *p != Parser::StatusLog);
    if wants_files {
        let (files, cut) = files(root, options.max_entries, deadline);
        if cut {
            parsed.errors.push(format!(
                "more than {} entries (or past the time limit): the rest were not looked at",
                options.max_entries
            ));
        }
        for file in files {
            if Instant::now() > deadline {
                parsed.errors.push("parsing took too long: stopped".into());
                break;
            }
            let name = file.rsplit('/').next().unwrap_or(&file);
            let room = options.max_tests.saturating_sub(parsed.tests.len());
            if options.parsers.contains(&Parser::Avocado) && name == "results.json" {
                let Some(text) = read(&file, &mut parsed) else {
                    continue;
                };
                let dir = root.to_path_buf();
                match avocado::parse(&text, |logdir| subdir_under(&dir, logdir)) {
                    Ok(tests) => keep(&mut parsed, tests, room),
                    Err(error) => parsed.errors.push(format!("{file}: {error}")),
                }
            } else if options.parsers.contains(&Parser::Junit)
                && options.junit_globs.iter().any(|g| glob::matches(g, &file))
            {
                let Some(text) = read(&file, &mut parsed) else {
                    continue;
                };
                let mut dropped = 0;
                match junit::parse(&text, &file, room, &mut dropped) {
                    Ok(tests) => parsed.tests.extend(tests),
                    Err(error) => parsed.errors.push(error),
                }
                parsed.dropped += dropped;
            }
        }
    }
    parsed
}

fn keep(parsed: &mut Parsed, tests: Vec<TestResult>, room: usize) {
    let total = tests.len();
    parsed.tests.extend(tests.into_iter().take(room));
    parsed.dropped += total.saturating_sub(room) as u64;
}

/// A test's log directory as written on the drone, relative to the results
/// directory when it lies under it (as given, or as resolved).
fn subdir_under(root: &Path, logdir: &str) -> Option<String> {
    let logdir = Path::new(logdir);
    let relative = logdir
        .strip_prefix(root)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| {
            let canonical = root.canonicalize().ok()?;
            logdir.strip_prefix(canonical).ok().map(Path::to_path_buf)
        })?;
    let relative = relative.to_str()?.trim_matches('/');
    let exists = matches!(inside(root, relative), Ok(Some(_)));
    (!relative.is_empty() && exists).then(|| relative.to_string())
}

/// `status.log` (version 1), or `status` when the job's keyval says
/// `status_version=0`, with each test's keyval files.
fn status_logs(
    options: &Options,
    deadline: Instant,
    read: &dyn Fn(&str, &mut Parsed) -> Option<String>,
    parsed: &mut Parsed,
) {
    let job = read("keyval", parsed)
        .map(|t| keyval::attributes(&t))
        .unwrap_or_default();
    let (file, version) = match job.get("status_version").map(String::as_str) {
        Some("0") => ("status", Version::V0),
        _ => ("status.log", Version::V1),
    };
    let Some(text) = read(file, parsed) else {
        return;
    };
    let abort_reason = match job.get("aborted_by") {
        Some(by) => format!("Job aborted by {by}"),
        None => "Job aborted unexpectedly".to_string(),
    };
    let room = options.max_tests.saturating_sub(parsed.tests.len());
    let mut limit = Limit::new(options.max_lines, room, Some(deadline));
    let found = status_log::parse(&text, version, &abort_reason, &mut limit);
    if found.truncated {
        parsed.errors.push(format!(
            "{file}: too long to read in full: the rest was not parsed"
        ));
    }
    parsed.dropped += limit.dropped;
    for mut test in found.tests {
        if let Some(subdir) = test.subdir.clone() {
            if let Some(text) = read(&format!("{subdir}/keyval"), parsed) {
                test.attributes.extend(keyval::attributes(&text));
            }
            if let Some(text) = read(&format!("{subdir}/results/keyval"), parsed) {
                test.iterations = keyval::iterations(&text);
            }
        }
        parsed.tests.push(test);
    }
}

#[cfg(test)]
mod tests;
