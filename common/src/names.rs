//! Names that end up in paths, queue names and command lines, validated once where
//! they enter the system: a `DroneName`, `HostName` or `Owner` that exists is safe to
//! use as a path component or a routing key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct InvalidName {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn check(kind: &'static str, value: &str, max: usize, extra: &[char]) -> Result<(), InvalidName> {
    let fail = |reason| {
        Err(InvalidName {
            kind,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > max {
        return fail("it is too long");
    }
    if !value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return fail("it must start with a letter or a digit");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    {
        return fail("only letters, digits, '-', '_' and '.' are allowed");
    }
    if value.contains("..") {
        return fail("it must not contain '..'");
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(
            feature = "diesel",
            derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow),
            diesel(sql_type = diesel::sql_types::Text)
        )]
        pub struct $name(String);

        impl $name {
            /// Validates `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                check($kind, &value, $max, $extra)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(value: String) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, InvalidName> {
                Self::new(s)
            }
        }

        #[cfg(feature = "diesel")]
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.0.as_str().to_sql(out)
            }
        }

        /// A stored name is validated again when read: a row edited by hand into an
        /// invalid name is an error naming it, never a name used as a path.
        #[cfg(feature = "diesel")]
        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                Ok(Self::new(String::from_sql(bytes)?)?)
            }
        }
    };
}

validated_name!(
    /// A drone's name: a routing key and part of a queue name.
    DroneName, "drone name", 63, &['.']
);
validated_name!(
    /// A host under test: a path component of results directories.
    HostName, "host name", 253, &['.']
);
validated_name!(
    /// A job owner (user name): part of `<job_id>-<owner>`.
    Owner, "owner", 64, &['.']
);
validated_name!(
    /// A user of the API (the same rules as [`Owner`]: a user's jobs are owned by
    /// that name).
    UserName, "user name", 64, &['.']
);
validated_name!(
    /// A label name on hosts.
    LabelName, "label", 128, &['.', ':', '=']
);
validated_name!(
    /// A drone set (Autotest's drone sets: the drones a job may run on).
    DroneSetName, "drone set name", 128, &['.']
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["drone1", "host-3.lab", "a_b", "9x"] {
            assert!(HostName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_a_path_or_a_queue() {
        for bad in [
            "", "../etc", "a/b", ".hidden", "a..b", "x y", "$(id)", "é", "-rf",
        ] {
            assert!(HostName::new(bad).is_err(), "{bad:?} was accepted");
            assert!(DroneName::new(bad).is_err(), "{bad:?} was accepted");
            assert!(Owner::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(DroneName::new("d".repeat(64)).is_err());
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<HostName, _> = serde_json::from_str("\"../x\"");
        assert!(bad.is_err());
    }
}
