//! Header names of the wire contract, written once.

/// Routing key; must agree with the body's `action_type` when both are present.
pub const ACTION_TYPE: &str = "action_type";
/// The action id; JetStream drops a duplicate publish inside the stream's window.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Where the result goes.
pub const CALLBACK_SUBJECT: &str = "callback_subject";
/// Id of the action that started the chain.
pub const CORRELATION_ID: &str = "correlation_id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Always `application/json`.
pub const CONTENT_TYPE: &str = "content-type";
/// The only body format.
pub const JSON: &str = "application/json";
/// Set by `replay --republish` on actions sent again from history: `<stream>:<sequence>` of
/// the original, so an operator can tell a replayed action from a first one and find its source.
pub const REPLAYED_FROM: &str = "replayed_from";
/// Set by `dlq redrive` on dead letters sent back to their subject: `DLQ:<sequence>` of the
/// dead letter, so a redriven action can be told apart and traced to the letter it came from.
pub const REDRIVEN_FROM: &str = "redriven_from";

/// Dead-letter headers: why, and where the original came from.
pub mod dlq {
    /// An error code (docs/wire.md, "Error codes").
    pub const REASON: &str = "dlq_reason";
    /// The error message.
    pub const ERROR: &str = "dlq_error";
    /// The stream the original was stored in (`rpc` for a request that was never stored).
    pub const STREAM: &str = "dlq_stream";
    /// The original's stream sequence.
    pub const SEQUENCE: &str = "dlq_sequence";
    /// How many times it was delivered.
    pub const DELIVERIES: &str = "dlq_deliveries";
    /// The consumer that gave up on it.
    pub const CONSUMER: &str = "dlq_consumer";
    /// The subject it was published to.
    pub const SUBJECT: &str = "dlq_subject";
}

/// The contract's header names as [`HeaderName`](async_nats::HeaderName) values, for the
/// hot path: looking a header up or inserting it by `&str` validates the name and copies
/// it into a new allocation every time; these are built at compile time and free to clone.
pub mod name {
    use async_nats::HeaderName;

    /// [`super::ACTION_TYPE`].
    pub const ACTION_TYPE: HeaderName = HeaderName::from_static(super::ACTION_TYPE);
    /// [`super::MSG_ID`].
    pub const MSG_ID: HeaderName = HeaderName::from_static(super::MSG_ID);
    /// [`super::CALLBACK_SUBJECT`].
    pub const CALLBACK_SUBJECT: HeaderName = HeaderName::from_static(super::CALLBACK_SUBJECT);
    /// [`super::CORRELATION_ID`].
    pub const CORRELATION_ID: HeaderName = HeaderName::from_static(super::CORRELATION_ID);
    /// [`super::TRACEPARENT`].
    pub const TRACEPARENT: HeaderName = HeaderName::from_static(super::TRACEPARENT);

    #[cfg(test)]
    mod tests {
        use async_nats::HeaderMap;

        #[test]
        fn names_match_their_strings() {
            let mut by_str = HeaderMap::new();
            for name in [
                super::super::ACTION_TYPE,
                super::super::MSG_ID,
                super::super::CALLBACK_SUBJECT,
                super::super::CORRELATION_ID,
                super::super::TRACEPARENT,
            ] {
                by_str.insert(name, name);
            }
            for name in [
                super::ACTION_TYPE,
                super::MSG_ID,
                super::CALLBACK_SUBJECT,
                super::CORRELATION_ID,
                super::TRACEPARENT,
            ] {
                let text: &str = name.as_ref();
                assert_eq!(by_str.get(name.clone()).map(|v| v.as_str()), Some(text));
            }
        }
    }
}
