//! Where `atest` finds the API token it sends: `--token`, else `$ATEST_TOKEN` (both
//! through clap), else the token file, `$XDG_CONFIG_HOME/autotest/token` or
//! `~/.config/autotest/token`.

use std::path::{Path, PathBuf};

/// The token file's path, when a home or config directory is known.
pub fn file_path() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(config.join("autotest").join("token"))
}

/// The token to send: the one given on the command line or in the environment, else
/// the token file's first line. A missing file means no token (reads may still be
/// allowed); an unreadable or malformed one is an error.
pub fn resolve(given: Option<String>) -> Result<Option<String>, String> {
    if let Some(token) = given.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_string()));
    }
    match file_path() {
        Some(path) => read_file(&path),
        None => Ok(None),
    }
}

/// The token in `path`: its first non-blank line, trimmed.
fn read_file(path: &Path) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot read token file {}: {error}",
                path.display()
            ))
        }
    };
    warn_if_readable_by_others(path);
    let token = text.lines().map(str::trim).find(|line| !line.is_empty());
    match token {
        Some(token) if token.chars().all(|c| c.is_ascii_graphic()) => Ok(Some(token.into())),
        Some(_) => Err(format!(
            "token file {} holds something that is not a token",
            path.display()
        )),
        None => Ok(None),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "atest: warning: token file {} is readable by other users (chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_token_wins_over_the_file() {
        assert_eq!(
            resolve(Some(" abc \n".into())).unwrap(),
            Some("abc".to_string())
        );
    }

    #[test]
    fn the_file_gives_its_first_non_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n  at_123  \nsecond\n").unwrap();
        assert_eq!(read_file(&path).unwrap(), Some("at_123".to_string()));
    }

    #[test]
    fn a_missing_file_is_no_token_and_a_binary_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_file(&dir.path().join("absent")).unwrap(), None);
        let path = dir.path().join("token");
        std::fs::write(&path, "at_1\u{1b}[2J\n").unwrap();
        let error = read_file(&path).unwrap_err();
        assert!(error.contains("not a token"), "{error}");
    }
}
