//! How big a job may be: the hosts it names, checked once each in linear time, and
//! the number of its entries, capped so that one request never holds the database's
//! writer (and the status reports waiting behind it) for long.

use crate::http_error::ApiError;
use common::names::HostName;
use std::collections::HashSet;

/// The most entries (named hosts plus the metahost count) one job may have.
pub const MAX_JOB_ENTRIES: usize = 5000;

/// The named hosts, validated, in order: 400 for a bad name, a host named twice, or
/// more than [`MAX_JOB_ENTRIES`] of them.
pub fn named_hosts(names: Vec<String>) -> Result<Vec<HostName>, ApiError> {
    if names.len() > MAX_JOB_ENTRIES {
        return Err(too_many(names.len()));
    }
    let mut seen = HashSet::with_capacity(names.len());
    let mut hosts = Vec::with_capacity(names.len());
    for name in names {
        let host = HostName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !seen.insert(host.as_str().to_string()) {
            return Err(ApiError::bad_request(format!(
                "host {host} is listed twice"
            )));
        }
        hosts.push(host);
    }
    Ok(hosts)
}

/// The number of metahost entries asked for: 1 to [`MAX_JOB_ENTRIES`], and with the
/// `named` hosts no more than [`MAX_JOB_ENTRIES`] in all.
pub fn metahost_count(count: Option<u32>, named: usize) -> Result<u32, ApiError> {
    let count = count.unwrap_or(1);
    if count == 0 || count as usize > MAX_JOB_ENTRIES {
        return Err(ApiError::bad_request(format!(
            "count must be between 1 and {MAX_JOB_ENTRIES}"
        )));
    }
    if named + count as usize > MAX_JOB_ENTRIES {
        return Err(too_many(named + count as usize));
    }
    Ok(count)
}

fn too_many(asked: usize) -> ApiError {
    ApiError::bad_request(format!(
        "a job may have at most {MAX_JOB_ENTRIES} hosts; this one has {asked}: split it into several jobs"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: ApiError) -> u16 {
        error.0.as_u16()
    }

    #[test]
    fn hosts_are_checked_once_each_and_capped() {
        let names: Vec<String> = (0..MAX_JOB_ENTRIES).map(|i| format!("host{i}")).collect();
        let started = std::time::Instant::now();
        assert_eq!(
            named_hosts(names.clone()).map_err(|e| e.1).unwrap().len(),
            MAX_JOB_ENTRIES
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        let mut twice = names.clone();
        twice[MAX_JOB_ENTRIES - 1] = "host7".into();
        assert_eq!(status(named_hosts(twice).unwrap_err()), 400);

        let mut over = names;
        over.push("one-more".into());
        assert_eq!(status(named_hosts(over).unwrap_err()), 400);
        assert_eq!(status(named_hosts(vec!["a b".into()]).unwrap_err()), 400);
    }

    #[test]
    fn a_metahost_count_stays_within_the_cap_with_the_named_hosts() {
        assert_eq!(metahost_count(None, 0).map_err(|e| e.1).unwrap(), 1);
        assert_eq!(
            metahost_count(Some(5000), 0).map_err(|e| e.1).unwrap(),
            5000
        );
        assert!(metahost_count(Some(0), 0).is_err());
        assert!(metahost_count(Some(5001), 0).is_err());
        assert!(metahost_count(Some(4000), 1001).is_err());
        assert_eq!(
            metahost_count(Some(4000), 1000).map_err(|e| e.1).unwrap(),
            4000
        );
    }
}
