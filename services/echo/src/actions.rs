//! Payloads of the echo domain.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use shared::ActionPayload;

/// `echo.ping`: any JSON, returned as it came.
///
/// Kept as the raw JSON text it arrived as: echo never looks inside, so parsing it into a
/// tree only to write it out again would be wasted work on the framework's benchmark path.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Ping(pub Box<RawValue>);

impl Ping {
    /// A ping carrying `data`.
    pub fn new(data: &Value) -> Self {
        // A `Value` always serializes.
        Self(serde_json::value::to_raw_value(data).unwrap_or_else(|_| unreachable!()))
    }
}

impl ActionPayload for Ping {
    const ACTION_TYPE: &'static str = "echo.ping";
    type Output = Box<RawValue>;
}

/// `echo.fail`: fails with `message`; retried with backoff when `retryable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fail {
    /// Whether the error is retryable (`unavailable`) or final (`handler_error`).
    #[serde(default)]
    pub retryable: bool,
    /// The error message.
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_message() -> String {
    "echo.fail was asked to fail".to_owned()
}

impl ActionPayload for Fail {
    const ACTION_TYPE: &'static str = "echo.fail";
    type Output = ();
}

/// `echo.sleep`: sleeps `ms` milliseconds, then succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sleep {
    /// How long.
    pub ms: u64,
}

/// What `echo.sleep` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Slept {
    /// How long it slept.
    pub slept_ms: u64,
}

impl ActionPayload for Sleep {
    const ACTION_TYPE: &'static str = "echo.sleep";
    type Output = Slept;
}

/// `echo.panic`: the handler panics with `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Panic {
    /// The panic message.
    #[serde(default)]
    pub message: Option<String>,
}

impl ActionPayload for Panic {
    const ACTION_TYPE: &'static str = "echo.panic";
    type Output = ();
}
