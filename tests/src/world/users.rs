//! The world's users: the admin `tester` every world starts with, other users a test
//! makes, and calls to the API and `atest` as any of them (or as nobody).

use super::World;
use scheduler::client::Client;

/// The admin every world has, created when its scheduler first starts.
pub const ADMIN: &str = "tester";

/// A raw answer: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's `error`, if it is the API's one-line JSON error.
    pub fn error(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()?
            .get("error")?
            .as_str()
            .map(str::to_string)
    }
}

impl World {
    /// The admin `tester`'s token.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("the scheduler was started")
    }

    /// Calls the API from a blocking thread with `token` (None: anonymously).
    pub async fn api_with<T: Send + 'static>(
        &self,
        token: Option<String>,
        f: impl FnOnce(&Client) -> T + Send + 'static,
    ) -> T {
        let server = self.server.clone();
        let ca_file = self.ca_file.clone();
        tokio::task::spawn_blocking(move || {
            let client = Client::new(&server).with_token(token);
            let client = match &ca_file {
                Some(ca) => client.with_ca_file(ca).expect("the world's CA file"),
                None => client,
            };
            f(&client)
        })
        .await
        .expect("API call")
    }

    /// Calls the API from a blocking thread as the holder of `token`.
    pub async fn api_as<T: Send + 'static>(
        &self,
        token: &str,
        f: impl FnOnce(&Client) -> T + Send + 'static,
    ) -> T {
        self.api_with(Some(token.to_string()), f).await
    }

    /// Runs `atest` with `token` in `$ATEST_TOKEN` (None: without a token).
    pub async fn atest_with(&self, token: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut command = tokio::process::Command::new(crate::binary("atest"));
        command
            .args(["--server", &self.server])
            .args(args)
            .env("USER", ADMIN)
            .env_remove("ATEST_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &self.dir)
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(&self.dir);
        if let Some(ca) = &self.ca_file {
            command.env("ATEST_CA_FILE", ca);
        }
        if let Some(token) = token {
            command.env("ATEST_TOKEN", token);
        }
        command.output().await.expect("run atest")
    }

    /// Runs `atest` as the holder of `token`.
    pub async fn atest_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        self.atest_with(Some(token), args).await
    }

    /// Creates user `name` (through the API, as the admin) and returns its token.
    pub async fn create_user(&self, name: &str, admin: bool) -> String {
        let name = name.to_string();
        self.api(move |c| c.create_user(&name, admin))
            .await
            .expect("user created")
            .token
            .token
    }

    /// Sends one request as written: `method` to `path` with `headers` and a JSON
    /// `body` (None: no body), following no redirect.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.server);
        let method = method.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || send(&method, &url, &headers, body))
            .await
            .expect("request")
    }
}

fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<serde_json::Value>,
) -> Answer {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    if !text.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(text).expect("a request");
    let mut response = agent.run(request).expect("an answer");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}
