//! [`ErrorCode`] and [`ActionError`]: how a failure is named on the wire.
//!
//! Every error a sender can hear about carries one of the codes of docs/wire.md, a human message
//! and whether trying again may help. Workers decide between retrying and dead-lettering
//! from `retryable` alone.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The error codes of the wire contract. A dead letter's `dlq_reason` is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a name does not parse or validate.
    InvalidAction,
    /// No handler is registered for the action type.
    UnknownActionType,
    /// The body's tenant is not the subject's tenant.
    TenantMismatch,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The handler refused the action.
    HandlerError,
    /// The handler panicked; the worker caught it and carried on.
    HandlerPanic,
    /// Something took longer than it was allowed to.
    Timeout,
    /// A dependency is down; trying again later may work.
    Unavailable,
    /// No or bad credentials.
    Unauthorized,
    /// The credentials do not allow this, e.g. a callback aimed at another tenant.
    Forbidden,
    /// Dead-letter reason only: every delivery ended without a verdict.
    MaxDeliveries,
}

impl ErrorCode {
    /// Every code, in the order docs/wire.md lists them.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidAction,
        ErrorCode::UnknownActionType,
        ErrorCode::TenantMismatch,
        ErrorCode::PayloadTooLarge,
        ErrorCode::HandlerError,
        ErrorCode::HandlerPanic,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::MaxDeliveries,
    ];

    /// The code as written on the wire, e.g. `invalid_action`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidAction => "invalid_action",
            ErrorCode::UnknownActionType => "unknown_action_type",
            ErrorCode::TenantMismatch => "tenant_mismatch",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::HandlerPanic => "handler_panic",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::MaxDeliveries => "max_deliveries",
        }
    }

    /// Whether errors with this code are worth retrying unless the handler says otherwise.
    pub fn retryable_by_default(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Timeout)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as the sender hears it: the `error` object of an error result.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, schemars::JsonSchema,
)]
#[error("{code}: {message}")]
pub struct ActionError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Whether the worker should try again (with backoff) before giving up.
    #[serde(default)]
    pub retryable: bool,
}

impl ActionError {
    /// An error with the code's default retryability.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: code.retryable_by_default(),
        }
    }

    /// The handler refused the action for good (`handler_error`, not retried).
    pub fn handler(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::HandlerError, message)
    }

    /// A dependency is down (`unavailable`, retried with backoff).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The action did not parse or validate (`invalid_action`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidAction, message)
    }

    /// Overrides whether this error is retried.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_snake_case() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn only_transient_codes_retry_by_default() {
        assert!(ActionError::unavailable("down").retryable);
        assert!(!ActionError::handler("no").retryable);
        assert!(ActionError::handler("busy").retryable(true).retryable);
    }
}
