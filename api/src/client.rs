//! A blocking client of the HTTP API: what `atest` (and tests) call.

use crate::{
    ChangeLabels, CreateHost, CreateJob, DroneSetView, DroneView, ErrorBody, HostView, JobCreated,
    JobSummary, JobView, LabelView, LockHost, SetCapacity,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A failed call, worded for a one-line message on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the scheduler at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The scheduler's own error message.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from the scheduler: {0}")]
    Protocol(String),
}

/// The API client.
pub struct Client {
    server: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Self {
            server: server.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response = result.map_err(|e| ClientError::Unreachable {
            server: self.server.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if status.is_success() {
            serde_json::from_str(&text).map_err(|e| ClientError::Protocol(format!("{e}: {text}")))
        } else {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(body) => Err(ClientError::Refused(body.error)),
                Err(_) => Err(ClientError::Protocol(format!("HTTP {status}: {text}"))),
            }
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.finish(self.agent.get(format!("{}{path}", self.server)).call())
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.finish(
            self.agent
                .post(format!("{}{path}", self.server))
                .send_json(body),
        )
    }

    pub fn create_host(&self, body: &CreateHost) -> Result<HostView, ClientError> {
        self.post("/api/hosts", body)
    }
    pub fn hosts(&self) -> Result<Vec<HostView>, ClientError> {
        self.get("/api/hosts")
    }
    pub fn create_job(&self, body: &CreateJob) -> Result<i64, ClientError> {
        self.post::<JobCreated>("/api/jobs", body).map(|c| c.id)
    }
    pub fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.get("/api/jobs")
    }
    pub fn job(&self, id: i64) -> Result<JobView, ClientError> {
        self.get(&format!("/api/jobs/{id}"))
    }
    pub fn drones(&self) -> Result<Vec<DroneView>, ClientError> {
        self.get("/api/drones")
    }
    pub fn create_drone_set(
        &self,
        name: &str,
        drones: Vec<String>,
    ) -> Result<DroneSetView, ClientError> {
        self.post(
            "/api/drone-sets",
            DroneSetView {
                name: name.into(),
                drones,
            },
        )
    }
    pub fn drone_sets(&self) -> Result<Vec<DroneSetView>, ClientError> {
        self.get("/api/drone-sets")
    }
    pub fn create_label(&self, name: &str) -> Result<LabelView, ClientError> {
        self.post("/api/labels", LabelView { name: name.into() })
    }
    pub fn labels(&self) -> Result<Vec<LabelView>, ClientError> {
        self.get("/api/labels")
    }
    pub fn change_labels(
        &self,
        host: &str,
        body: &ChangeLabels,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(&format!("/api/hosts/{host}/labels"), body)
    }
    pub fn lock_host(
        &self,
        host: &str,
        reason: Option<String>,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(&format!("/api/hosts/{host}/lock"), LockHost { reason })
    }
    pub fn unlock_host(&self, host: &str) -> Result<serde_json::Value, ClientError> {
        self.post(&format!("/api/hosts/{host}/unlock"), serde_json::json!({}))
    }
    /// `atest host repair`: the id of the repair job.
    pub fn repair_host(&self, host: &str, by: &str) -> Result<i64, ClientError> {
        let created: JobCreated = self.post(
            &format!("/api/hosts/{host}/repair"),
            crate::AbortJob {
                by: by.into(),
                reason: None,
            },
        )?;
        Ok(created.id)
    }
    pub fn abort_job(
        &self,
        id: i64,
        by: &str,
        reason: Option<String>,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/jobs/{id}/abort"),
            crate::AbortJob {
                by: by.into(),
                reason,
            },
        )
    }
    pub fn enable_drone(&self, drone: &str) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/drones/{drone}/enable"),
            serde_json::json!({}),
        )
    }
    pub fn disable_drone(&self, drone: &str) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/drones/{drone}/disable"),
            serde_json::json!({}),
        )
    }
    pub fn set_capacity(
        &self,
        drone: &str,
        capacity: i32,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/drones/{drone}/capacity"),
            SetCapacity { capacity },
        )
    }
}
