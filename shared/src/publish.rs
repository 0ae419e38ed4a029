//! [`Publisher`]: sending actions (durable or rpc), results and dead letters.
//!
//! - [`Publisher::enqueue`] publishes to `<domain>.<tenant>.actions` through JetStream with
//!   `Nats-Msg-Id` set to the action id and waits for the stream's acknowledgement: when it
//!   returns, the action is stored (and a duplicate publish was dropped).
//! - [`Publisher::request`] sends to `<domain>.<tenant>.rpc` and waits for the result, on
//!   the tenant's own reply inbox `_INBOX_<tenant>.…` where the server has logins (the
//!   client's `_INBOX.` where it has none); a reply that does not answer this request
//!   (another `correlation_id`) is refused.
//! - [`Publisher::send_result`] delivers a result to its callback subject: through JetStream
//!   (acknowledgement awaited) for a `…callbacks` subject, as a plain publish for an inbox.
//!
//! A body larger than the server's max payload is refused before anything is sent, with
//! `payload_too_large`: it is never truncated.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::{Client, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use serde::Serialize;

use crate::action::{Action, ActionError, ActionPayload, ActionResult, ErrorCode, ResultAddress};
use crate::headers;
use crate::replies::{Replies, ReplyError};
use crate::subject::{self, CallbackSubject, Channel, Inboxes};
use crate::telemetry::{self, TraceParent};

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The message is larger than the server accepts.
    #[error(
        "payload_too_large: message of {size} bytes exceeds the server's max payload of {max} bytes; send large content by reference (object store)"
    )]
    PayloadTooLarge {
        /// Body plus headers.
        size: usize,
        /// The server's limit.
        max: usize,
    },
    /// No stream answered for the subject: none stores it, or (on a cluster) its stream has
    /// no leader for a few seconds after losing one, when sending again with the same id works.
    #[error(
        "no JetStream stream stores {0}: run `domain-actions streams apply` (on a cluster, its stream may be electing a leader: send again)"
    )]
    NoStream(String),
    /// The tenant already has as many unhandled messages on this subject as its stream
    /// keeps for one tenant (`max_msgs_per_subject`): nothing was stored. Its other work,
    /// and every other tenant's, is untouched; send again once some is handled.
    #[error(
        "backlog_full: {0} already holds as many unhandled messages as the stream keeps for one tenant; nothing was stored, send again once some are handled"
    )]
    BacklogFull(String),
    /// The stream holding `{0}` is full (`max_bytes` or `max_msgs`): nothing was stored,
    /// and nothing stored was evicted to make room.
    #[error(
        "stream_full: the stream storing {0} is full; nothing was stored and nothing was evicted, send again once work is handled (or raise the stream's limits)"
    )]
    StreamFull(String),
    /// Nobody answered an rpc request.
    #[error("no service answers on {0}: is its worker running?")]
    NoResponders(String),
    /// The server or the service did not answer in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The answer was not a result action.
    #[error("reply on {0} is not a result: {1}")]
    BadReply(String, String),
    /// Anything else from the client.
    #[error("NATS: {0}")]
    Nats(String),
}

/// How long a sender refused for a full backlog is told to wait: long enough for a
/// worker to handle some of it.
pub const BACKLOG_RETRY: Duration = Duration::from_secs(5);
/// How long a sender refused for a full stream is told to wait: space comes back only as
/// a whole backlog drains or an operator acts.
pub const STREAM_RETRY: Duration = Duration::from_secs(60);

/// A tenant's full backlog is `unavailable` and a full stream `storage_full`, both
/// retryable and saying when to come back: inside a handler (a follow-up that cannot be
/// stored) the worker retries the action later, nothing is dropped. At the HTTP edge the
/// gateway answers 429 and 507 (`platform::http::ApiError`).
impl From<PublishError> for ActionError {
    fn from(err: PublishError) -> Self {
        let (code, retry_after) = match err {
            PublishError::PayloadTooLarge { .. } => (ErrorCode::PayloadTooLarge, None),
            PublishError::Timeout(..) => (ErrorCode::Timeout, None),
            PublishError::BadReply(..) => (ErrorCode::InvalidAction, None),
            PublishError::BacklogFull(_) => (ErrorCode::Unavailable, Some(BACKLOG_RETRY)),
            PublishError::StreamFull(_) => (ErrorCode::StorageFull, Some(STREAM_RETRY)),
            PublishError::NoStream(_) | PublishError::NoResponders(_) | PublishError::Nats(_) => {
                (ErrorCode::Unavailable, None)
            }
        };
        let error = ActionError::new(code, err.to_string());
        match retry_after {
            Some(wait) => error.retry_after(wait),
            None => error,
        }
    }
}

/// The part of a result action [`Publisher::request`] reads: what it returns, and the
/// request id the result answers (checked, so no other message passes for the reply).
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "R: serde::de::DeserializeOwned"))]
struct ResultData<R> {
    correlation_id: Option<uuid::Uuid>,
    data: ActionResult<R>,
}

/// Refuses a result action that does not answer the request `id` (its body's
/// `correlation_id` is the id of the request it answers).
fn result_answers(id: uuid::Uuid, result: &Action<serde_json::Value>) -> Result<(), String> {
    let correlation = result
        .correlation_id
        .as_deref()
        .and_then(|c| c.parse().ok());
    answers(id, correlation)
}

/// Refuses a reply that does not answer the request `id`.
fn answers(id: uuid::Uuid, correlation: Option<uuid::Uuid>) -> Result<(), String> {
    match correlation {
        Some(c) if c == id => Ok(()),
        other => Err(format!(
            "the reply answers {} instead of request {id}",
            other.map_or_else(|| "no request".to_owned(), |c| c.to_string())
        )),
    }
}

/// A stored action: where JetStream put it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The action's id (its `Nats-Msg-Id`).
    pub action_id: uuid::Uuid,
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence there.
    pub sequence: u64,
    /// True when the stream already had this id inside its duplicate window (not stored twice).
    pub duplicate: bool,
}

/// Sends actions, results and dead letters over one NATS connection. Cloning is one
/// reference count: every handler's context holds one.
#[derive(Clone, Debug)]
pub struct Publisher {
    inner: Arc<Connection>,
}

#[derive(Debug)]
struct Connection {
    client: Client,
    jetstream: jetstream::Context,
    /// The tenant reply inboxes rpc replies come on ([`Inboxes::Tenant`]); `None`: the
    /// client's own `_INBOX.` requests ([`Inboxes::Shared`]).
    replies: Option<Replies>,
}

impl Publisher {
    /// A publisher on `client`. Its rpc replies come on the tenant's own inboxes
    /// (`_INBOX_<tenant>.…`) when the server asks for logins, where the workers accept no
    /// other ([`Inboxes::Tenant`]); on a server without logins, on the client's `_INBOX.`
    /// inboxes, one hop shorter ([`Publisher::with_inboxes`] decides otherwise).
    pub fn new(client: Client) -> Self {
        let inboxes = if client.server_info().auth_required {
            Inboxes::Tenant
        } else {
            Inboxes::Shared
        };
        Self::with_inboxes(client, inboxes)
    }

    /// A publisher whose rpc replies come where `inboxes` says: a worker's own publisher
    /// follows the worker's rule, so its handlers' requests meet it at every other worker.
    pub fn with_inboxes(client: Client, inboxes: Inboxes) -> Self {
        let jetstream = jetstream::new(client.clone());
        let replies = (inboxes == Inboxes::Tenant).then(|| Replies::new(client.clone()));
        Self {
            inner: Arc::new(Connection {
                client,
                jetstream,
                replies,
            }),
        }
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The JetStream context of the connection.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    /// Publishes `action` durably to `<domain>.<tenant>.actions` and waits until it is stored.
    pub async fn enqueue<T: Serialize>(
        &self,
        action: &Action<T>,
    ) -> Result<Enqueued, PublishError> {
        let subject = subject::for_action(&action.action_type, &action.tenant_id, Channel::Actions);
        let (headers, body) = encode(action)?;
        let ack = self.publish_stored(subject, headers, body).await?;
        Ok(Enqueued {
            action_id: action.action_id,
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Publishes `action` durably with its result sent to a fresh inbox of its tenant
    /// (`_INBOX_<tenant>.…`), and waits up to `timeout` for that result. Messages on the
    /// inbox that do not answer this action (another `correlation_id`) are skipped.
    /// `Ok((stored, None))`: stored, but no result in time.
    pub async fn enqueue_and_wait<T: Serialize>(
        &self,
        mut action: Action<T>,
        timeout: Duration,
    ) -> Result<(Enqueued, Option<Action<serde_json::Value>>), PublishError> {
        let inbox = subject::tenant_inbox(&action.tenant_id);
        let mut results = self
            .inner
            .client
            .subscribe(inbox.as_str().to_owned())
            .await
            .map_err(|err| PublishError::Nats(format!("subscribing to {inbox}: {err}")))?;
        action = action.with_callback(&inbox);
        let stored = self.enqueue(&action).await?;
        let id = action.action_id;
        let answer = async {
            while let Some(message) = futures::StreamExt::next(&mut results).await {
                let Ok(result) =
                    serde_json::from_slice::<Action<serde_json::Value>>(&message.payload)
                else {
                    tracing::warn!(%inbox, "skipped a message that is not a result action");
                    continue;
                };
                match result_answers(id, &result) {
                    Ok(()) => return Some(result),
                    Err(why) => tracing::warn!(%inbox, why, "skipped a message on the inbox"),
                }
            }
            None
        };
        let result = tokio::time::timeout(timeout, answer).await.ok().flatten();
        Ok((stored, result))
    }

    /// Sends `action` to `<domain>.<tenant>.rpc` and waits up to `timeout` for its result.
    pub async fn request<T: ActionPayload>(
        &self,
        action: &Action<T>,
        timeout: Duration,
    ) -> Result<T::Output, ActionError> {
        let reply = self.request_reply(action, timeout).await?;
        // Straight into the typed result, reading only the `data` the caller gets: no JSON
        // tree in between, and no envelope fields checked only to be thrown away.
        let result: ResultData<T::Output> =
            serde_json::from_slice(&reply.payload).map_err(|err| {
                ActionError::invalid(format!("result of {} does not fit: {err}", T::ACTION_TYPE))
            })?;
        answers(action.action_id, result.correlation_id).map_err(ActionError::invalid)?;
        result.data.into_result()
    }

    /// Like [`Publisher::request`] for any serializable data, returning the whole result action.
    pub async fn request_result<T: Serialize>(
        &self,
        action: &Action<T>,
        timeout: Duration,
    ) -> Result<Action<serde_json::Value>, PublishError> {
        let reply = self.request_reply(action, timeout).await?;
        let bad = |why: String| {
            let subject = subject::for_action(&action.action_type, &action.tenant_id, Channel::Rpc);
            PublishError::BadReply(subject, why)
        };
        let result: Action<serde_json::Value> =
            serde_json::from_slice(&reply.payload).map_err(|err| bad(err.to_string()))?;
        result_answers(action.action_id, &result).map_err(bad)?;
        Ok(result)
    }

    /// Sends `action` to its rpc subject and returns the reply message, unread. The reply
    /// comes on the tenant's own inbox ([`Replies`]) or the client's, as [`Publisher::new`]
    /// says.
    async fn request_reply<T: Serialize>(
        &self,
        action: &Action<T>,
        timeout: Duration,
    ) -> Result<async_nats::Message, PublishError> {
        // Built again for an error message rather than cloned for every request.
        let subject = || subject::for_action(&action.action_type, &action.tenant_id, Channel::Rpc);
        let (headers, body) = encode(action)?;
        self.check_size(&headers, &body)?;
        if let Some(replies) = &self.inner.replies {
            return replies
                .request(&action.tenant_id, subject(), headers, body, timeout)
                .await
                .map_err(|err| match err {
                    ReplyError::NoResponders => PublishError::NoResponders(subject()),
                    ReplyError::TimedOut => PublishError::Timeout(timeout, subject()),
                    ReplyError::Nats(err) => PublishError::Nats(err),
                });
        }
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(timeout));
        self.inner
            .client
            .send_request(subject(), request)
            .await
            .map_err(|err| match err.kind() {
                RequestErrorKind::NoResponders => PublishError::NoResponders(subject()),
                RequestErrorKind::TimedOut => PublishError::Timeout(timeout, subject()),
                _ => PublishError::Nats(err.to_string()),
            })
    }

    /// Delivers a result to `to`. A durable callbacks subject goes through JetStream with
    /// `Nats-Msg-Id` = the result's id (a redelivered request yields one stored result);
    /// an inbox gets a plain publish.
    pub async fn send_result<R: Serialize>(
        &self,
        to: &CallbackSubject,
        result: &Action<ActionResult<R>>,
        chain_correlation: &str,
    ) -> Result<(), PublishError> {
        let (headers, body) = encode_result(result, chain_correlation)?;
        if to.is_durable() {
            self.publish_stored(to.as_str().to_owned(), headers, body)
                .await?;
        } else {
            self.check_size(&headers, &body)?;
            self.inner
                .client
                .publish_with_headers(to.as_str().to_owned(), headers, body)
                .await
                .map_err(|err| PublishError::Nats(err.to_string()))?;
        }
        Ok(())
    }

    /// Publishes through JetStream and waits for the stream's acknowledgement.
    pub async fn publish_stored(
        &self,
        subject: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<jetstream::publish::PublishAck, PublishError> {
        self.check_size(&headers, &body)?;
        let map = |err: jetstream::context::PublishError| match err.kind() {
            PublishErrorKind::StreamNotFound => PublishError::NoStream(subject.clone()),
            PublishErrorKind::TimedOut => PublishError::Timeout(Duration::ZERO, subject.clone()),
            _ => refusal(&err.to_string(), &subject)
                .unwrap_or_else(|| PublishError::Nats(err.to_string())),
        };
        let pending = self
            .inner
            .jetstream
            .publish_with_headers(subject.clone(), headers, body)
            .await
            .map_err(map)?;
        pending.await.map_err(map)
    }

    /// Refuses a message the server would refuse, with a message that says how to fix it.
    fn check_size(&self, headers: &HeaderMap, body: &Bytes) -> Result<(), PublishError> {
        let max = self.inner.client.max_payload();
        let size = body.len() + header_size(headers);
        if size > max {
            return Err(PublishError::PayloadTooLarge { size, max });
        }
        Ok(())
    }
}

/// The stream's refusal to store, read from the server's error text (the client gives no
/// code for these): a tenant's full backlog (`discard_new_per_subject`, err_code 10077
/// "maximum messages per subject exceeded") or a full stream ("maximum bytes exceeded",
/// "maximum messages exceeded").
fn refusal(error: &str, subject: &str) -> Option<PublishError> {
    if error.contains("maximum messages per subject exceeded") {
        Some(PublishError::BacklogFull(subject.to_owned()))
    } else if error.contains("maximum bytes exceeded")
        || error.contains("maximum messages exceeded")
    {
        Some(PublishError::StreamFull(subject.to_owned()))
    } else {
        None
    }
}

/// The action's headers and JSON body as they go on the wire.
pub fn encode<T: Serialize>(action: &Action<T>) -> Result<(HeaderMap, Bytes), PublishError> {
    encode_with(action, action.correlation_id.as_deref())
}

/// A result's headers and JSON body: those of any action, with the `correlation_id` header
/// set to the chain's (the body's `correlation_id` is the request's id).
pub fn encode_result<R: Serialize>(
    result: &Action<ActionResult<R>>,
    chain_correlation: &str,
) -> Result<(HeaderMap, Bytes), PublishError> {
    encode_with(result, Some(chain_correlation))
}

/// The result of the request at `address`, encoded as [`encode_result`] encodes
/// `address.result(data)` but for `Nats-Msg-Id` (a reply is never stored), and written
/// straight from the request's fields: nothing of the request is copied into a result
/// action first. The rpc endpoint answers every request through here.
pub(crate) fn encode_answer<R: Serialize>(
    address: &ResultAddress,
    data: &ActionResult<R>,
) -> Result<(HeaderMap, Bytes), PublishError> {
    encode_answer_at(address, data, time::OffsetDateTime::now_utc())
}

/// [`encode_answer`] with its `created_at` given (the tests compare it with [`encode_result`]).
fn encode_answer_at<R: Serialize>(
    address: &ResultAddress,
    data: &ActionResult<R>,
    created_at: time::OffsetDateTime,
) -> Result<(HeaderMap, Bytes), PublishError> {
    /// A result action as [`Action`] serializes it, its fields borrowed from the request.
    #[derive(Serialize)]
    struct Body<'a, R> {
        action_id: uuid::Uuid,
        action_type: &'a str,
        tenant_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        task_id: Option<&'a str>,
        correlation_id: uuid::Uuid,
        #[serde(with = "crate::action::envelope::rfc3339")]
        created_at: time::OffsetDateTime,
        data: &'a ActionResult<R>,
        #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
        metadata: &'a serde_json::Map<String, serde_json::Value>,
    }
    let result_type = address.request_type.result_type();
    let result_id = address.result_id();
    let body = Body {
        action_id: result_id,
        action_type: result_type.as_str(),
        tenant_id: address.tenant_id.as_str(),
        session_id: address.session_id.as_deref(),
        task_id: address.task_id.as_deref(),
        correlation_id: address.request_id,
        created_at,
        data,
        metadata: &address.metadata,
    };
    let mut bytes = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut bytes, &body)
        .map_err(|err| PublishError::Nats(format!("cannot encode action: {err}")))?;
    let trace = address.trace.as_ref().map(TraceParent::child);
    // No `Nats-Msg-Id`: a reply goes to the requester's inbox and is never stored, so there
    // is nothing for a dedupe id to dedupe (the body's `action_id` names the result).
    let headers = standard_headers(
        result_type.as_str(),
        None,
        None,
        Some(&address.chain_correlation),
        trace,
    );
    Ok((headers, Bytes::from(bytes)))
}

/// Room for a typical body (envelope, ids, timestamps and a small payload) so serializing
/// does not grow the buffer several times; a larger body grows it as usual.
const BODY_CAPACITY: usize = 512;

/// [`encode`] with the `correlation_id` header given: every message goes through here, so
/// headers are inserted by prebuilt name and each value is allocated once.
fn encode_with<T: Serialize>(
    action: &Action<T>,
    correlation: Option<&str>,
) -> Result<(HeaderMap, Bytes), PublishError> {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut body, action)
        .map_err(|err| PublishError::Nats(format!("cannot encode action: {err}")))?;
    let headers = standard_headers(
        action.action_type.as_str(),
        Some(&action.action_id),
        action.callback_subject.as_deref(),
        correlation,
        action.traceparent,
    );
    Ok((headers, Bytes::from(body)))
}

/// The headers our publishers set (docs/wire.md, "Headers"), inserted by prebuilt name:
/// `Nats-Msg-Id` is `dedupe_id`, given for whatever may be stored. A trace context is
/// invented only when this process exports traces.
fn standard_headers(
    action_type: &str,
    dedupe_id: Option<&uuid::Uuid>,
    callback: Option<&str>,
    correlation: Option<&str>,
    trace: Option<TraceParent>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(headers::name::ACTION_TYPE, action_type);
    if let Some(id) = dedupe_id {
        let mut buffer = uuid::Uuid::encode_buffer();
        let id: &str = id.hyphenated().encode_lower(&mut buffer);
        headers.insert(headers::name::MSG_ID, id);
    }
    if let Some(callback) = callback {
        headers.insert(headers::name::CALLBACK_SUBJECT, callback);
    }
    if let Some(correlation) = correlation {
        headers.insert(headers::name::CORRELATION_ID, correlation);
    }
    if let Some(trace) = trace.or_else(telemetry::new_trace) {
        headers.insert(headers::name::TRACEPARENT, trace.to_header());
    }
    headers
}

/// Bytes the headers take in the protocol (`NATS/1.0\r\n`, a line each, a blank line).
pub(crate) fn header_size(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|v| name.len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    10 + lines + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionType, TenantId};

    fn header_lines(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut lines: Vec<(String, String)> = headers
            .iter()
            .flat_map(|(name, values)| {
                let name: &str = name.as_ref();
                values
                    .iter()
                    .map(move |v| (name.to_owned(), v.as_str().to_owned()))
            })
            .collect();
        lines.sort();
        lines
    }

    /// The header lines of a result sent to a callback or inbox, as an rpc reply has them:
    /// all but `Nats-Msg-Id`.
    fn reply_lines(result: &HeaderMap) -> Vec<(String, String)> {
        let mut lines = header_lines(result);
        lines.retain(|(name, _)| name != headers::MSG_ID);
        lines
    }

    #[test]
    fn an_answer_is_encoded_as_its_result_action_is() {
        let mut metadata = serde_json::Map::new();
        metadata.insert("k".into(), serde_json::json!([1, "two"]));
        for (session, metadata) in [
            (None, serde_json::Map::new()),
            (Some("s \"1\"".to_owned()), metadata),
        ] {
            let address = ResultAddress {
                request_id: uuid::Uuid::now_v7(),
                request_type: ActionType::new("echo.ping").unwrap(),
                tenant_id: TenantId::new("acme").unwrap(),
                session_id: session,
                task_id: Some("t1".into()),
                metadata,
                // No trace: a child context would differ by its random span id.
                trace: None,
                chain_correlation: "chain-1".into(),
            };
            let output = serde_json::value::to_raw_value(&serde_json::json!({"x": "é\n"})).unwrap();
            let failure = ActionResult::<()>::failure(ActionError::handler("no \"way\""), 3);
            let success = ActionResult::success(output, 7);
            let at = time::OffsetDateTime::now_utc();

            let mut result = address.result(success.clone());
            result.created_at = at;
            let expected = encode_result(&result, &address.chain_correlation).unwrap();
            let answer = encode_answer_at(&address, &success, at).unwrap();
            assert_eq!(answer.1, expected.1);
            assert_eq!(header_lines(&answer.0), reply_lines(&expected.0));

            let mut result = address.result(failure.clone());
            result.created_at = at;
            let expected = encode_result(&result, &address.chain_correlation).unwrap();
            let answer = encode_answer_at(&address, &failure, at).unwrap();
            assert_eq!(answer.1, expected.1);
            assert_eq!(header_lines(&answer.0), reply_lines(&expected.0));
            assert!(
                answer.0.get(headers::MSG_ID).is_none(),
                "a reply has no dedupe id"
            );
        }
    }
}
