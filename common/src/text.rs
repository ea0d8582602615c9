//! Free text the scheduler stores (failure, lock and abort reasons) is bounded: longer
//! text is cut at a character boundary and marked as cut.

use std::borrow::Cow;

/// The most bytes of a stored reason (a failure, lock or abort reason).
pub const MAX_REASON: usize = 4096;

/// What ends a text that was cut.
pub const CUT_MARK: &str = "… [cut]";

/// `text` if it has at most `max` bytes; otherwise its longest start that, with
/// [`CUT_MARK`] after it, fits in `max` bytes.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(CUT_MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARK}", &text[..end]))
}

/// [`bounded`] at [`MAX_REASON`].
pub fn reason(text: &str) -> Cow<'_, str> {
    bounded(text, MAX_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_and_marked() {
        assert_eq!(reason("disk full"), "disk full");
        let exact = "x".repeat(MAX_REASON);
        assert_eq!(reason(&exact), exact);
        let long = "y".repeat(MAX_REASON + 1);
        let cut = reason(&long);
        assert_eq!(cut.len(), MAX_REASON);
        assert!(cut.ends_with(CUT_MARK));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 'é' is two bytes: every cut point is tried.
        let text = "é".repeat(50);
        for max in 10..20 {
            let cut = bounded(&text, max);
            assert!(cut.len() <= max, "{max}: {cut}");
            assert!(cut.ends_with(CUT_MARK));
        }
    }
}
