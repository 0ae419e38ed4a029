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

/// Connects to NATS with the credentials of the environment (`NATS_URL` userinfo,
/// `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS`, `NATS_NKEY`, `NATS_CA`,
/// `NATS_CERT`/`NATS_KEY`: [`shared::connect`]), with a message that says where, which
/// login was tried and what to do.
pub async fn connect(url: &str) -> Result<async_nats::Client, Failure> {
    let settings = shared::Settings::from_env().map_err(Failure::usage)?;
    let credentials = credentials(&settings, url)?;
    shared::connect::connect(
        url,
        &credentials,
        "domain-actions",
        std::time::Duration::from_secs(5),
    )
    .await
    .map_err(|err| {
        Failure::runtime(format!(
            "{err} (start one with `domain-actions dev`, or set NATS_URL and its credentials)"
        ))
    })
}

/// The NATS credentials of the environment for `url`.
pub fn credentials(
    settings: &shared::Settings,
    url: &str,
) -> Result<shared::connect::Credentials, Failure> {
    shared::connect::Credentials::from_settings(settings, url).map_err(Failure::usage)
}
