//! A small client of the scheduler's HTTP API on raw JSON, so the tally reads fields
//! (`failure_kind`) whether or not the API's view types have them.

use super::process::pause;
use crate::retry::Retry;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A small client of the scheduler's HTTP API on raw JSON, so the tally reads fields
/// (`failure_kind`) whether or not the scheduler's own view types have them.
#[derive(Clone)]
pub struct Api {
    pub server: String,
    pub agent: ureq::Agent,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

#[derive(Debug)]
pub enum ApiError {
    Unreachable(String),
    Status(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "scheduler unreachable: {e}"),
            ApiError::Status(status, body) => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl Api {
    /// A client of the scheduler at `server`, each call limited to 30 s.
    pub fn new(server: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Self {
            server: server.to_string(),
            agent: ureq::Agent::new_with_config(config),
            token: None,
        }
    }

    /// One call: POST with a body, else GET; the answer's JSON on a 2xx status.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.server);
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match body {
            Some(body) if method == "POST" => {
                let mut request = self.agent.post(&url);
                if let Some(bearer) = &bearer {
                    request = request.header("Authorization", bearer);
                }
                request.send_json(body)
            }
            _ => {
                let mut request = self.agent.get(&url);
                if let Some(bearer) = &bearer {
                    request = request.header("Authorization", bearer);
                }
                request.call()
            }
        };
        let mut response = result.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        if (200..300).contains(&status) {
            serde_json::from_str(&text)
                .map_err(|e| ApiError::Status(status, format!("{e}: {text}")))
        } else {
            Err(ApiError::Status(status, text))
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None)
    }

    /// Every job, newest first: `GET /api/jobs` page by page, following `next`.
    pub fn jobs(&self) -> Result<Vec<JobSummaryDoc>, ApiError> {
        let mut all = Vec::new();
        let mut path = "/api/jobs?limit=1000".to_string();
        loop {
            let page = self.get(&path)?;
            let jobs: Vec<JobSummaryDoc> = serde_json::from_value(page["jobs"].clone())
                .map_err(|e| ApiError::Status(200, format!("{e}: {page}")))?;
            all.extend(jobs);
            match page["next"].as_str() {
                Some(next) => path = format!("/api/jobs?limit=1000&cursor={next}"),
                None => return Ok(all),
            }
        }
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body))
    }

    /// Whether `/api/health` answers 2xx.
    pub fn healthy(&self) -> bool {
        self.get("/api/health").is_ok()
    }

    /// Retries a call while the scheduler is unreachable (killed and restarting).
    pub fn patiently<T>(&self, what: &str, mut f: impl FnMut(&Api) -> Result<T, ApiError>) -> T {
        let retry = Retry {
            limit: Duration::from_secs(120),
            interval: Duration::from_millis(300),
        };
        retry
            .run(pause, |e| matches!(e, ApiError::Unreachable(_)), || f(self))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

#[derive(Debug, Deserialize)]
pub struct JobDoc {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub entries: Vec<EntryDoc>,
}

#[derive(Debug, Deserialize)]
pub struct EntryDoc {
    pub id: i64,
    pub host: Option<String>,
    pub status: String,
    pub drone: Option<String>,
    #[serde(default)]
    pub attempt: Option<i64>,
    pub exit_code: Option<i64>,
    pub failure_reason: Option<String>,
    /// `test` or `infra` for a Failed entry; absent from schedulers that predate it.
    #[serde(default)]
    pub failure_kind: Option<String>,
    /// Infra failures retried so far.
    #[serde(default)]
    pub infra_retries: i64,
    /// Infra failures and stale reports, oldest first.
    #[serde(default)]
    pub history: Vec<Value>,
    pub aborted_by: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct JobSummaryDoc {
    pub id: i64,
    pub name: String,
    pub status: String,
}

/// Whether a job or entry in `status` has finished.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Aborted")
}
