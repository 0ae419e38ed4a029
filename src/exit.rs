//! How the command fails: a message on stderr and an exit code a script can act on.

use std::fmt::Display;

/// A failure to report before exiting.
#[derive(Debug)]
pub struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    /// Bad flags or input (exit 2), like clap's own usage errors.
    pub fn usage(message: impl Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The action failed, or something outside went wrong (exit 1).
    pub fn runtime(message: impl Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }

    /// Prints the message and exits.
    pub fn exit(self) -> ! {
        eprintln!("error: {}", self.message);
        std::process::exit(self.code)
    }
}

impl Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthand for commands.
pub type Outcome = Result<(), Failure>;

/// Connects to NATS, with a message that says where and what to do.
pub async fn connect(url: &str) -> Result<async_nats::Client, Failure> {
    async_nats::ConnectOptions::new()
        .name("domain-actions")
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(shared::settings::server_urls(url))
        .await
        .map_err(|err| Failure::runtime(format!("cannot connect to NATS at {url}: {err} (start one with `domain-actions dev`, or set NATS_URL)")))
}
