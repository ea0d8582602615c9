//! RabbitMQ as the run drives it through `rabbitmqctl`: its consumer_timeout lowered
//! for the run, and restarts.

use super::CONSUMER_TIMEOUT_MS;
use crate::retry::Retry;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `rabbitmqctl ARGS` (given two minutes): its output, or why it failed.
pub fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("timeout")
        .arg("120")
        .arg("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "rabbitmqctl {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Whether RabbitMQ's management API listens.
pub fn management_up() -> bool {
    port_open(15672)
}

/// Lowers RabbitMQ's consumer_timeout for the run and puts the old value back when
/// dropped, also on a panic.
pub struct ConsumerTimeout {
    /// The Erlang term of the previous value; `None` if it was not set.
    pub previous: Option<String>,
}

impl ConsumerTimeout {
    /// Reads the current value and sets the run's.
    pub fn lower() -> Self {
        let current = rabbitmqctl(&["eval", "application:get_env(rabbit, consumer_timeout)."])
            .expect("read RabbitMQ's consumer_timeout");
        let previous = current
            .strip_prefix("{ok,")
            .and_then(|v| v.strip_suffix('}'))
            .map(str::to_string);
        assert!(
            previous.is_some() || current == "undefined",
            "unexpected consumer_timeout answer: {current}"
        );
        let guard = Self { previous };
        guard.apply();
        guard
    }

    /// Sets the run's value (again after a broker restart).
    pub fn apply(&self) {
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, consumer_timeout, {CONSUMER_TIMEOUT_MS})."),
        ])
        .expect("lower RabbitMQ's consumer_timeout");
    }
}

impl Drop for ConsumerTimeout {
    fn drop(&mut self) {
        let expression = match &self.previous {
            Some(v) => format!("application:set_env(rabbit, consumer_timeout, {v})."),
            None => "application:unset_env(rabbit, consumer_timeout).".to_string(),
        };
        // The broker may be on its way back from a restart.
        let retry = Retry {
            limit: Duration::from_secs(60),
            interval: Duration::from_secs(1),
        };
        let restored = retry.run(
            std::thread::sleep,
            |_| true,
            || rabbitmqctl(&["eval", &expression]),
        );
        if restored.is_err() {
            eprintln!(
                "chaos: could not restore consumer_timeout; run: rabbitmqctl eval '{expression}'"
            );
        }
    }
}
