//! The key of one dispatch of an entry: the fencing token every report carries.

use std::fmt;

/// One attempt of a host-queue entry. Reports about an older attempt than the
/// entry's current one are stale and never override it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId {
    /// The host-queue entry's id.
    pub entry: i64,
    /// The attempt number, counting from 1 for the first dispatch.
    pub attempt: i32,
}

impl AttemptId {
    pub fn new(entry: i64, attempt: i32) -> Self {
        Self { entry, attempt }
    }
}

impl From<(i64, i32)> for AttemptId {
    fn from((entry, attempt): (i64, i32)) -> Self {
        Self { entry, attempt }
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.entry, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_reads_as_entry_dot_attempt() {
        assert_eq!(AttemptId::new(12, 3).to_string(), "12.3");
    }

    #[test]
    fn attempts_of_one_entry_order_by_attempt_number() {
        assert!(AttemptId::new(5, 1) < AttemptId::new(5, 2));
    }
}
