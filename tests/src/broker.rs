//! The RabbitMQ side of a test world: a vhost of its own, made and removed through the
//! management API, and a look at its queues.

use serde::Deserialize;

fn api_base() -> String {
    std::env::var("AUTOTEST_TEST_RABBITMQ_API")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into())
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

fn authorization(base: &str) -> (String, String) {
    // ureq 3 does not take credentials from the URL: split them off.
    let rest = base.trim_start_matches("http://");
    let (creds, host) = rest.split_once('@').unwrap_or(("guest:guest", rest));
    let token = base64(creds.as_bytes());
    (format!("http://{host}"), format!("Basic {token}"))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn call(method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let (base, auth) = authorization(&api_base());
    let url = format!("{base}{path}");
    let agent = agent();
    let result = match (method, body) {
        ("PUT", Some(body)) => agent
            .put(&url)
            .header("Authorization", &auth)
            .send_json(body),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    };
    let mut response = result.unwrap_or_else(|e| {
        panic!("RabbitMQ management API at {base} unreachable ({e}); deploy/test.sh enables it")
    });
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Creates a vhost and gives guest all rights on it; returns the AMQP URL.
pub fn create_vhost(name: &str) -> String {
    let (status, body) = call(
        "PUT",
        &format!("/api/vhosts/{name}"),
        Some(serde_json::json!({})),
    );
    assert!(status < 300, "creating vhost {name}: {status} {body}");
    let (status, body) = call(
        "PUT",
        &format!("/api/permissions/{name}/guest"),
        Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
    );
    assert!(status < 300, "permissions on vhost {name}: {status} {body}");
    format!("amqp://guest:guest@127.0.0.1:5672/{name}")
}

/// Removes a vhost and everything in it.
pub fn delete_vhost(name: &str) {
    let _ = call("DELETE", &format!("/api/vhosts/{name}"), None);
}

/// One queue as the management UI shows it.
#[derive(Debug, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    #[serde(default)]
    pub messages_ready: u64,
    #[serde(default)]
    pub messages_unacknowledged: u64,
    #[serde(default)]
    pub consumers: u64,
}

/// The vhost's queues (the management API's figures lag by up to a few seconds).
pub fn queues(vhost: &str) -> Vec<QueueInfo> {
    let (status, body) = call("GET", &format!("/api/queues/{vhost}"), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("queue list")
}

/// The vhost's connections as (client-provided name, connected_at in ms), from the
/// management API.
pub fn connections(vhost: &str) -> Vec<(String, u64)> {
    let (status, body) = call("GET", &format!("/api/vhosts/{vhost}/connections"), None);
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("connection list");
    list.iter()
        .map(|c| {
            (
                c["client_properties"]["connection_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["connected_at"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Has the broker close every connection of the vhost the management API lists (as
/// an operator's "Force Close" does); returns how many it closed.
pub fn close_connections(vhost: &str) -> usize {
    let (status, body) = call("GET", &format!("/api/vhosts/{vhost}/connections"), None);
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("connection list");
    let mut closed = 0;
    for name in list.iter().filter_map(|c| c["name"].as_str()) {
        let encoded = common::percent_encode(name.as_bytes());
        let (status, body) = call("DELETE", &format!("/api/connections/{encoded}"), None);
        assert!(status < 300, "closing {name}: HTTP {status} {body}");
        closed += 1;
    }
    closed
}

/// Holds the machine's broker for broker-wide changes (restarts, `consumer_timeout`):
/// the broker-fault tests and the chaos run take it, so one never restores a setting
/// the other still needs. Released when the file is dropped (or the process dies).
pub fn exclusive() -> std::fs::File {
    let path = std::env::temp_dir().join("autotest-broker-wide.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

/// Removes a broker user.
pub fn delete_user(name: &str) {
    let _ = call("DELETE", &format!("/api/users/{name}"), None);
}

/// The vhost's connections as (client-provided name, user).
pub fn connections_with_users(vhost: &str) -> Vec<(String, String)> {
    let (status, body) = call("GET", &format!("/api/vhosts/{vhost}/connections"), None);
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("connection list");
    list.iter()
        .map(|c| {
            (
                c["client_properties"]["connection_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["user"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The client-provided names of the vhost's TLS connections.
pub fn tls_connections(vhost: &str) -> Vec<String> {
    let (status, body) = call("GET", &format!("/api/vhosts/{vhost}/connections"), None);
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("connection list");
    list.iter()
        .filter(|c| c["ssl"].as_bool() == Some(true))
        .map(|c| {
            c["client_properties"]["connection_name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Whether a vhost exists.
pub fn vhost_exists(name: &str) -> bool {
    call("GET", &format!("/api/vhosts/{name}"), None).0 == 200
}
