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
    /// The tenant sent more than its limit allows right now (requests per minute,
    /// concurrent actions); sending again after `retry_after_ms` will work. Never a dead
    /// letter: the sender is told, nothing is wrong with the action.
    RateLimited,
    /// The tenant has used up a quota for its period (LLM tokens per day); refused until
    /// the period ends (`retry_after_ms`). Never a dead letter, like `rate_limited`.
    QuotaExceeded,
    /// Where the work would be kept is full (a domain's stream, the documents store):
    /// nothing was stored, and nothing stored was evicted to make room; retry once work is
    /// handled or space is freed (`retry_after_ms`).
    StorageFull,
}

impl ErrorCode {
    /// Every code, in the order docs/wire.md lists them.
    pub const ALL: [ErrorCode; 14] = [
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
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::StorageFull,
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
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::StorageFull => "storage_full",
        }
    }

    /// Whether errors with this code are worth retrying unless the handler says otherwise.
    pub fn retryable_by_default(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable
                | ErrorCode::Timeout
                | ErrorCode::RateLimited
                | ErrorCode::StorageFull
        )
    }

    /// Whether this code means the tenant's limits refused the action (`rate_limited`,
    /// `quota_exceeded`): the sender is answered, and the action is never dead-lettered,
    /// since nothing is wrong with it and a flood of refusals must not bury real failures.
    pub fn is_quota_refusal(self) -> bool {
        matches!(self, ErrorCode::RateLimited | ErrorCode::QuotaExceeded)
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
    /// How long the sender should wait before sending again, in milliseconds: set on
    /// `rate_limited` and `quota_exceeded`, so a client can back off exactly as long as
    /// needed instead of guessing. Absent otherwise. (32 bits, more than 49 days, keep
    /// the error as small as it was: it travels inside every rejection.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<std::num::NonZeroU32>,
}

impl ActionError {
    /// An error with the code's default retryability.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: code.retryable_by_default(),
            retry_after_ms: None,
        }
    }

    /// The tenant is over a limit (`rate_limited`, retryable): `message` says which, and
    /// the sender may try again after `retry_after`.
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self::new(ErrorCode::RateLimited, message).retry_after(retry_after)
    }

    /// The tenant has used up a quota for its period (`quota_exceeded`, not retryable by
    /// the worker: waiting for a redelivery would not end the period); `retry_after` is
    /// how long until it does.
    pub fn quota_exceeded(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self::new(ErrorCode::QuotaExceeded, message).retry_after(retry_after)
    }

    /// Says how long to wait before sending again (rounded up to whole milliseconds, at
    /// least one).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let partial = !wait.subsec_nanos().is_multiple_of(1_000_000);
        let ms = wait.as_millis().saturating_add(u128::from(partial)).max(1);
        let ms = u32::try_from(ms).unwrap_or(u32::MAX);
        self.retry_after_ms = std::num::NonZeroU32::new(ms);
        self
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
