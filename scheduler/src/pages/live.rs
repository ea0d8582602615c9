//! The small JSON endpoints the pages poll (`static/app.js`):
//!
//! - `GET /live/jobs?ids=1,2,3`: each job's status, entry counts and entries'
//!   statuses, in one query;
//! - `GET /live/log/<entry_id>?file=<relative path>&offset=N`: the bytes of a running
//!   entry's log from `offset`, at most [`MAX_CHUNK`], fetched from the drone that
//!   runs it with a `Range` request.

use crate::db::host_pages::LiveEntry;
use crate::db::job_pages::{self, MAX_LIVE_JOBS};
use crate::http::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::time::Duration;

/// The most bytes one answer of the live log carries.
pub const MAX_CHUNK: u64 = 64 * 1024;

/// How long the scheduler waits for a drone's bytes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The query string of `/live/jobs`.
#[derive(Debug, serde::Deserialize)]
pub struct LiveJobsQuery {
    pub ids: Option<String>,
}

/// Job ids from `1,2,3`: at most [`MAX_LIVE_JOBS`], each a number.
pub fn job_ids(text: &str) -> Result<Vec<i64>, ApiError> {
    let ids: Vec<i64> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "ids: expected numbers separated by commas, got {t:?}"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_LIVE_JOBS {
        return Err(ApiError::bad_request(format!(
            "ids: at most {MAX_LIVE_JOBS} jobs at a time"
        )));
    }
    Ok(ids)
}

/// `GET /live/jobs?ids=1,2,3`.
pub async fn jobs(
    State(state): State<AppState>,
    _viewer: super::Viewer,
    Query(query): Query<LiveJobsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ids = job_ids(query.ids.as_deref().unwrap_or_default())?;
    let jobs = job_pages::live(&state.db, &ids).await?;
    Ok(Json(serde_json::json!({ "jobs": jobs })))
}

/// The query string of `/live/log/<entry>`.
#[derive(Debug, serde::Deserialize)]
pub struct LiveLogQuery {
    pub file: Option<String>,
    pub offset: Option<u64>,
}

/// What a drone answered for a range of a log.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// These bytes, from the requested offset.
    Bytes(Vec<u8>),
    /// Nothing new (past the end, or not written yet).
    Nothing,
}

/// `GET /live/log/<entry_id>?file=&offset=`: `{"data", "offset", "running"}`.
pub async fn log(
    State(state): State<AppState>,
    _viewer: super::Viewer,
    Path(entry_id): Path<String>,
    Query(query): Query<LiveLogQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entry_id: i64 = entry_id.parse().map_err(|_| {
        ApiError::bad_request(format!("no entry {entry_id:?}: an entry id is a number"))
    })?;
    let file = query.file.as_deref().unwrap_or(super::job::DEFAULT_LOG);
    let relative = common::results_http::check(file)
        .map_err(|(code, message)| ApiError::new(code, message))?;
    let offset = query.offset.unwrap_or(0);
    let entry = crate::db::host_pages::live_entry(&state.db, entry_id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no entry {entry_id}")))?;
    let answer = |data: &str, offset: u64, running: bool| {
        Json(serde_json::json!({ "data": data, "offset": offset, "running": running }))
    };
    if !entry.status.is_active() {
        return Ok(answer("", offset, false));
    }
    let url = drone_url(&entry, &relative)?;
    let ca_file = state
        .config
        .scheduler
        .drone_ca
        .as_ref()
        .map(|c| c.path.clone());
    let fetched = tokio::task::spawn_blocking(move || fetch(&url, ca_file.as_deref(), offset))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let running = entry.status.is_on_drone();
    Ok(match fetched {
        Fetched::Nothing => answer("", offset, running),
        Fetched::Bytes(bytes) => {
            let (text, used) = utf8_prefix(&bytes);
            answer(&text, offset + used as u64, running)
        }
    })
}

/// The URL of `relative` in a running entry's results on its drone.
fn drone_url(entry: &LiveEntry, relative: &std::path::Path) -> Result<String, ApiError> {
    let drone = entry.drone.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the entry is not on a drone yet".to_string(),
        )
    })?;
    let base = entry.results_url.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("drone {drone} serves no results (no results URL in its heartbeats)"),
        )
    })?;
    let path = format!("{}/{}", entry.path, relative.display());
    let checked = common::results_http::check(&path)
        .map_err(|(code, message)| ApiError::new(code, message))?;
    Ok(format!(
        "{}/results/{}",
        base.trim_end_matches('/'),
        common::results_http::encode(&checked)
    ))
}

/// Reads at most [`MAX_CHUNK`] bytes of `url` from `offset` (blocking).
fn fetch(url: &str, ca_file: Option<&std::path::Path>, offset: u64) -> Result<Fetched, ApiError> {
    let agent = crate::results::drone_agent(ca_file, FETCH_TIMEOUT).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[SCHEDULER] drone_ca_file: {e}"),
        )
    })?;
    let unreachable = |e: ureq::Error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the drone did not answer: {e}"),
        )
    };
    let mut response = agent
        .get(url)
        .header(
            "Range",
            &format!("bytes={offset}-{}", offset + MAX_CHUNK - 1),
        )
        .call()
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let skip = match status {
        206 => 0,
        // A server without ranges: the whole file, from which the new part is cut.
        200 => offset,
        404 | 416 => return Ok(Fetched::Nothing),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the drone answered {other} for the log"),
            ))
        }
    };
    use std::io::Read;
    let failed = |e: std::io::Error| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string());
    let mut reader = response.body_mut().as_reader();
    std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink()).map_err(failed)?;
    let mut bytes = Vec::new();
    reader
        .take(MAX_CHUNK)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    Ok(if bytes.is_empty() {
        Fetched::Nothing
    } else {
        Fetched::Bytes(bytes)
    })
}

/// The longest prefix of `bytes` that does not end inside a UTF-8 character, as text
/// (invalid bytes inside it replaced), and its length in bytes: a character cut by the
/// chunk's end comes whole with the next answer.
pub fn utf8_prefix(bytes: &[u8]) -> (String, usize) {
    let mut end = bytes.len();
    if let Err(error) = std::str::from_utf8(bytes) {
        if error.error_len().is_none() {
            end = error.valid_up_to();
        }
    }
    // A character is at most 4 bytes: a longer invalid tail is not a cut character.
    if bytes.len() - end > 3 {
        end = bytes.len();
    }
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_a_bounded_list_of_numbers() {
        assert_eq!(job_ids("1,2, 3,").ok(), Some(vec![1, 2, 3]));
        assert_eq!(job_ids("").ok(), Some(Vec::new()));
        assert_eq!(
            job_ids("1,x").err().map(|e| e.0).unwrap(),
            StatusCode::BAD_REQUEST
        );
        let many = (0..=MAX_LIVE_JOBS)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            job_ids(&many).err().map(|e| e.0).unwrap(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_character_cut_at_the_chunk_end_waits_for_the_next_chunk() {
        let text = "ok é";
        let bytes = text.as_bytes();
        assert_eq!(utf8_prefix(bytes), (text.to_string(), bytes.len()));
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(utf8_prefix(cut), ("ok ".to_string(), 3));
        let invalid = b"a\xffb";
        assert_eq!(utf8_prefix(invalid), ("a\u{fffd}b".to_string(), 3));
    }
}
