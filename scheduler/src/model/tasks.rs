//! A job's special tasks (Autotest's pre-job verify and cleanup, post-job cleanup,
//! repair), stored as bit flags in `jobs.tasks`.

use common::protocol::Tasks;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Integer;

/// The special tasks of a job, as stored in `jobs.tasks` (diesel's `Integer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Integer)]
pub struct TaskFlags(i32);

impl<DB> ToSql<Integer, DB> for TaskFlags
where
    DB: Backend,
    i32: ToSql<Integer, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB> FromSql<Integer, DB> for TaskFlags
where
    DB: Backend,
    i32: FromSql<Integer, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Self::from_bits(i32::from_sql(bytes)?))
    }
}

/// When a cleanup runs, as `--reboot-before` / `--reboot-after` say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Never,
    IfDirty,
    Always,
}

impl TaskFlags {
    pub const VERIFY: TaskFlags = TaskFlags(1);
    pub const CLEANUP_BEFORE: TaskFlags = TaskFlags(2);
    pub const CLEANUP_BEFORE_IF_DIRTY: TaskFlags = TaskFlags(4);
    pub const CLEANUP_AFTER: TaskFlags = TaskFlags(8);
    /// `atest host repair`: the job only repairs its host.
    pub const REPAIR_ONLY: TaskFlags = TaskFlags(32);

    const NAMES: [(TaskFlags, &'static str); 5] = [
        (Self::VERIFY, "verify"),
        (Self::CLEANUP_BEFORE, "cleanup-before"),
        (Self::CLEANUP_BEFORE_IF_DIRTY, "cleanup-before-if-dirty"),
        (Self::CLEANUP_AFTER, "cleanup-after"),
        (Self::REPAIR_ONLY, "repair-only"),
    ];

    /// No special task.
    pub const fn none() -> Self {
        TaskFlags(0)
    }

    /// The flags as stored in the database.
    pub const fn from_bits(bits: i32) -> Self {
        TaskFlags(bits)
    }

    /// The stored form.
    pub const fn bits(self) -> i32 {
        self.0
    }

    pub const fn contains(self, other: TaskFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub const fn union(self, other: TaskFlags) -> Self {
        TaskFlags(self.0 | other.0)
    }

    /// The flags' names, as `job show --json` lists them.
    pub fn names(self) -> Vec<String> {
        Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| name.to_string())
            .collect()
    }

    /// The flags for `--run-verify`, `--reboot-before` and `--reboot-after`
    /// (`never`, `if-dirty`, `always`; after the job, `if-dirty` is `always`, since
    /// the job has just made the host dirty).
    pub fn from_options(
        run_verify: bool,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<Self, String> {
        let parse = |option: &str, value: Option<&str>| match value.unwrap_or("never") {
            "never" => Ok(When::Never),
            "if-dirty" => Ok(When::IfDirty),
            "always" => Ok(When::Always),
            other => Err(format!(
                "{option} must be never, if-dirty or always, not {other:?}"
            )),
        };
        let mut flags = if run_verify {
            Self::VERIFY
        } else {
            Self::none()
        };
        flags = flags.union(match parse("--reboot-before", before)? {
            When::IfDirty => Self::CLEANUP_BEFORE_IF_DIRTY,
            When::Always => Self::CLEANUP_BEFORE,
            When::Never => Self::none(),
        });
        if parse("--reboot-after", after)? != When::Never {
            flags = flags.union(Self::CLEANUP_AFTER);
        }
        Ok(flags)
    }

    /// What an attempt of a job with these flags runs on a host that is `dirty` or not.
    pub fn tasks(self, dirty: bool) -> Tasks {
        Tasks {
            cleanup_before: self.contains(Self::CLEANUP_BEFORE)
                || (self.contains(Self::CLEANUP_BEFORE_IF_DIRTY) && dirty),
            verify: self.contains(Self::VERIFY),
            cleanup_after: self.contains(Self::CLEANUP_AFTER),
            repair_only: self.contains(Self::REPAIR_ONLY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_before_if_dirty_cleans_only_a_dirty_host() {
        let flags = TaskFlags::from_options(false, Some("if-dirty"), None).unwrap();
        assert!(flags.tasks(true).cleanup_before);
        assert!(!flags.tasks(false).cleanup_before);
    }

    #[test]
    fn reboot_after_if_dirty_always_cleans_after() {
        let flags = TaskFlags::from_options(false, None, Some("if-dirty")).unwrap();
        assert!(flags.tasks(false).cleanup_after);
    }

    #[test]
    fn an_unknown_reboot_option_is_refused_with_its_name() {
        let error = TaskFlags::from_options(false, Some("sometimes"), None).unwrap_err();
        assert!(error.contains("--reboot-before"), "{error}");
    }

    #[test]
    fn names_list_every_flag_set() {
        let flags = TaskFlags::VERIFY.union(TaskFlags::REPAIR_ONLY);
        assert_eq!(flags.names(), ["verify", "repair-only"]);
        assert_eq!(TaskFlags::from_bits(flags.bits()), flags);
    }

    #[test]
    fn task_flags_round_trip_through_an_integer_column() {
        use diesel::prelude::*;
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let flags = TaskFlags::CLEANUP_BEFORE_IF_DIRTY.union(TaskFlags::CLEANUP_AFTER);
        let back: TaskFlags = diesel::select(flags.into_sql::<Integer>())
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(back, flags);
    }
}
