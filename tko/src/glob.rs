//! Globs over `/`-separated relative paths: `*` and `?` within one component, `**`
//! for any number of whole components (`**/junit*.xml` matches `junit.xml` and
//! `a/b/junit-1.xml`).

/// Whether `path` matches `pattern`.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    components(&pattern, &path)
}

fn components(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| components(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                component(first.as_bytes(), name.as_bytes()) && components(rest, path_rest)
            }
            None => false,
        },
    }
}

fn component(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| component(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && component(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && component(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn double_star_spans_any_number_of_directories() {
        assert!(matches("**/junit*.xml", "junit.xml"));
        assert!(matches("**/junit*.xml", "a/b/junit-report.xml"));
        assert!(matches("**/TEST-*.xml", "target/surefire/TEST-com.x.Y.xml"));
        assert!(!matches("**/junit*.xml", "a/notjunit.xml"));
        assert!(!matches("**/junit*.xml", "junit.xml/x"));
        assert!(matches("reports/*.xml", "reports/a.xml"));
        assert!(!matches("reports/*.xml", "reports/sub/a.xml"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
    }
}
