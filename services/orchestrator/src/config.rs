//! [`ChatConfig`]: the limits of chat connections, from [`shared::Settings`].
//!
//! | variable | default | what |
//! |---|---|---|
//! | `DA_CHAT_AUTH_TIMEOUT` | `10s` | how long a connection opened without a key may take to send its `auth` frame |
//! | `DA_CHAT_HISTORY_TIMEOUT` | `10s` | how long `GET /v1/sessions/{id}` waits for execution |
//! | `DA_CHAT_MAX_SESSIONS` | `32` | sessions one connection may follow at once |
//! | `DA_CHAT_SOCKETS_PER_TENANT` | `16` | chat WebSockets one tenant may hold open at once per gateway (`0`: no cap); 429 past it |

use std::time::Duration;

use shared::Settings;
use shared::settings::SettingsError;

/// Limits of the chat routes. Every open socket holds a task and NATS subscriptions, so
/// each way a client could hold more than it needs is bounded here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// How long a connection opened without a key may wait before its `auth` frame; one
    /// that never authenticates is closed rather than kept open for free.
    pub auth_timeout: Duration,
    /// How long `GET /v1/sessions/{id}` waits for execution's answer.
    pub history_timeout: Duration,
    /// Sessions one connection may follow at once: each is a NATS subscription.
    pub max_sessions: usize,
    /// The largest frame a client may send: a message of
    /// [`crate::protocol::MAX_MESSAGE_BYTES`] JSON-escaped at worst, plus ids. Larger frames
    /// close the connection before they are buffered.
    pub max_frame_bytes: usize,
    /// Sockets one tenant may hold open at once on this instance (each holds a task and
    /// NATS subscriptions); `0`: no cap.
    pub sockets_per_tenant: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            history_timeout: Duration::from_secs(10),
            max_sessions: 32,
            max_frame_bytes: 256 * 1024,
            sockets_per_tenant: 16,
        }
    }
}

impl ChatConfig {
    /// The defaults, overridden by the `DA_CHAT_*` variables.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        Ok(Self {
            auth_timeout: settings
                .duration_var("DA_CHAT_AUTH_TIMEOUT")?
                .unwrap_or(defaults.auth_timeout),
            history_timeout: settings
                .duration_var("DA_CHAT_HISTORY_TIMEOUT")?
                .unwrap_or(defaults.history_timeout),
            max_sessions: settings
                .parsed_var("DA_CHAT_MAX_SESSIONS")?
                .unwrap_or(defaults.max_sessions),
            sockets_per_tenant: settings
                .parsed_var("DA_CHAT_SOCKETS_PER_TENANT")?
                .unwrap_or(defaults.sockets_per_tenant),
            ..defaults
        })
    }
}
