//! A blocking client of the HTTP API: what `atest`, the tests and the tools call.

use crate::{
    ChangeLabels, CreateHost, CreateJob, DroneSetView, DroneView, ErrorBody, HostView, JobCreated,
    JobView, LabelView, LockHost, SetCapacity,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A failed call, worded for a one-line message on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: the scheduler is down, or not at that address.
    #[error("cannot reach the scheduler at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The scheduler's own error message.
    #[error("{0}")]
    Refused(String),
    /// 401: no token, or one the scheduler does not know (or has revoked).
    #[error("{0} (atest takes a token from --token, $ATEST_TOKEN or ~/.config/autotest/token)")]
    Unauthorized(String),
    /// 403: a valid token whose user may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// An answer that is not the API's (a proxy's page, a cut body).
    #[error("unexpected answer from the scheduler: {0}")]
    Protocol(String),
}

/// The API client: one connection pool, shared by every call.
pub struct Client {
    server: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer TOKEN` on every call.
    token: Option<String>,
}

impl Client {
    /// A client of the scheduler at `server` (`http://host:port`, or `https://` with
    /// a certificate the public roots vouch for), each call limited to a minute.
    pub fn new(server: &str) -> Self {
        Self {
            server: server.trim_end_matches('/').to_string(),
            agent: agent(ureq::tls::TlsConfig::default()),
            token: None,
        }
    }

    /// The same client, trusting only the CA certificates (PEM) in `ca_file` for an
    /// `https://` scheduler: a lab's own certificate authority.
    pub fn with_ca_file(mut self, ca_file: &std::path::Path) -> Result<Self, crate::CaFileError> {
        self.agent = agent(crate::tls::trusting(ca_file)?);
        Ok(self)
    }

    /// The same client, sending `token` as `Authorization: Bearer TOKEN`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
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
                Ok(body) if status.as_u16() == 401 => Err(ClientError::Unauthorized(body.error)),
                Ok(body) if status.as_u16() == 403 => Err(ClientError::Forbidden(body.error)),
                Ok(body) => Err(ClientError::Refused(body.error)),
                Err(_) => Err(ClientError::Protocol(format!("HTTP {status}: {text}"))),
            }
        }
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let mut request = self.agent.get(format!("{}{path}", self.server));
        if let Some(value) = self.authorization() {
            request = request.header("Authorization", value);
        }
        self.finish(request.call())
    }

    pub(crate) fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let mut request = self.agent.post(format!("{}{path}", self.server));
        if let Some(value) = self.authorization() {
            request = request.header("Authorization", value);
        }
        self.finish(request.send_json(body))
    }

    /// `POST /api/hosts`: the host as created.
    pub fn create_host(&self, body: &CreateHost) -> Result<HostView, ClientError> {
        self.post("/api/hosts", body)
    }
    /// `POST /api/jobs`: the new job's id.
    pub fn create_job(&self, body: &CreateJob) -> Result<i64, ClientError> {
        self.post::<JobCreated>("/api/jobs", body).map(|c| c.id)
    }
    /// `GET /api/jobs/{id}`.
    pub fn job(&self, id: i64) -> Result<JobView, ClientError> {
        self.get(&format!("/api/jobs/{id}"))
    }
    /// `GET /api/drones`.
    pub fn drones(&self) -> Result<Vec<DroneView>, ClientError> {
        self.get("/api/drones")
    }
    /// `POST /api/drone-sets`.
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
    /// `GET /api/drone-sets`.
    pub fn drone_sets(&self) -> Result<Vec<DroneSetView>, ClientError> {
        self.get("/api/drone-sets")
    }
    /// `POST /api/labels`.
    pub fn create_label(&self, name: &str) -> Result<LabelView, ClientError> {
        self.post("/api/labels", LabelView { name: name.into() })
    }
    /// `GET /api/labels`.
    pub fn labels(&self) -> Result<Vec<LabelView>, ClientError> {
        self.get("/api/labels")
    }
    /// `POST /api/hosts/{host}/labels`: adds and removes labels.
    pub fn change_labels(
        &self,
        host: &str,
        body: &ChangeLabels,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(&format!("/api/hosts/{host}/labels"), body)
    }
    /// `POST /api/hosts/{host}/lock`.
    pub fn lock_host(
        &self,
        host: &str,
        reason: Option<String>,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(&format!("/api/hosts/{host}/lock"), LockHost { reason })
    }
    /// `POST /api/hosts/{host}/unlock`.
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
    /// `POST /api/jobs/{id}/abort`, as user `by`.
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
    /// `POST /api/jobs/{id}/archive` (admins only).
    pub fn archive_job(&self, id: i64) -> Result<crate::ResultsMoved, ClientError> {
        self.post(&format!("/api/jobs/{id}/archive"), serde_json::json!({}))
    }

    /// `POST /api/jobs/{id}/purge` (admins only).
    pub fn purge_job(&self, id: i64) -> Result<crate::ResultsMoved, ClientError> {
        self.post(&format!("/api/jobs/{id}/purge"), serde_json::json!({}))
    }

    /// `POST /api/drones/{drone}/enable`.
    pub fn enable_drone(&self, drone: &str) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/drones/{drone}/enable"),
            serde_json::json!({}),
        )
    }
    /// `POST /api/drones/{drone}/disable`.
    pub fn disable_drone(&self, drone: &str) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/drones/{drone}/disable"),
            serde_json::json!({}),
        )
    }
    /// `POST /api/drones/{drone}/capacity`.
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

/// The agent every client uses: errors as values, a minute per call, `tls` for
/// `https://`.
fn agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build();
    ureq::Agent::new_with_config(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server that answers one request with `status` and `body`, on a port of its own.
    fn answer_once(status: &'static str, body: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).expect("write");
        });
        format!("http://{address}")
    }

    #[test]
    fn a_success_answer_is_decoded_into_the_view() {
        let server = answer_once("200 OK", r#"[{"name":"drone1-set","drones":["drone1"]}]"#);
        let sets = Client::new(&server).drone_sets().expect("answer");
        assert_eq!(
            sets,
            vec![DroneSetView {
                name: "drone1-set".into(),
                drones: vec!["drone1".into()]
            }]
        );
    }

    #[test]
    fn a_refusal_carries_the_schedulers_own_message() {
        let server = answer_once("400 Bad Request", r#"{"error":"no such host: h9"}"#);
        let error = Client::new(&server).unlock_host("h9").unwrap_err();
        assert!(matches!(error, ClientError::Refused(_)), "{error:?}");
        assert_eq!(error.to_string(), "no such host: h9");
    }

    #[test]
    fn an_answer_that_is_not_the_apis_is_a_protocol_error() {
        let server = answer_once("502 Bad Gateway", "<html>proxy</html>");
        let error = Client::new(&server).jobs().unwrap_err();
        assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
    }

    #[test]
    fn a_closed_port_is_unreachable_and_names_the_server() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let server = format!("http://127.0.0.1:{port}/");
        let error = Client::new(&server).hosts().unwrap_err();
        assert!(
            matches!(error, ClientError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }
}
