//! Turning a received message into a [`RawAction`], or a [`Rejection`] that says why not.
//!
//! This is the edge where anything a client sends is checked: the subject's names, the
//! body's JSON, header/body agreement, the tenant, the callback. A rejection keeps whatever
//! could be read (callback, ids), so the sender still hears why.

use std::borrow::Cow;

use async_nats::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::envelope::id_text;
use super::{
    Action, ActionError, ActionType, Domain, ErrorCode, RawAction, ResultAddress, TenantId,
};
use crate::headers;
use crate::subject::{ActionSubject, CallbackSubject, Inboxes};
use crate::telemetry::TraceParent;

/// A message that decoded and validated.
#[derive(Debug)]
pub struct Received {
    /// The action, with defaults filled in and the tenant checked against the subject.
    pub action: RawAction,
    /// The subject it arrived on.
    pub subject: ActionSubject,
    /// The checked callback subject, if any.
    pub callback: Option<CallbackSubject>,
}

/// A message that did not decode, with what could be read of it.
#[derive(Debug)]
pub struct Rejection {
    /// Why (becomes the error result and `dlq_reason`).
    pub error: ActionError,
    /// The domain, if the subject named a valid one.
    pub domain: Option<Domain>,
    /// The subject's tenant, if valid.
    pub tenant: Option<TenantId>,
    /// Where to send the error result, if a valid callback could be read.
    pub callback: Option<CallbackSubject>,
    /// Enough to address an error result, if the tenant could be read.
    pub address: Option<Box<ResultAddress>>,
}

/// The body as a client may write it: everything optional, checked afterwards. Strings
/// borrow from the message where they can (no escapes), so decoding allocates little.
#[derive(Deserialize)]
struct WireBody<'a> {
    #[serde(borrow)]
    action_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant_id: Option<Cow<'a, str>>,
    session_id: Option<String>,
    task_id: Option<String>,
    correlation_id: Option<String>,
    #[serde(borrow)]
    callback_subject: Option<Cow<'a, str>>,
    #[serde(borrow)]
    created_at: Option<Cow<'a, str>>,
    data: Option<Box<RawValue>>,
    metadata: Option<Map<String, Value>>,
}

/// The headers the contract defines, read once.
#[derive(Default)]
struct WireHeaders<'a> {
    action_type: Option<&'a str>,
    msg_id: Option<&'a str>,
    callback: Option<&'a str>,
    correlation: Option<&'a str>,
    trace: Option<TraceParent>,
}

impl<'a> WireHeaders<'a> {
    fn read(headers: Option<&'a HeaderMap>) -> Self {
        let Some(h) = headers else {
            return Self::default();
        };
        // One pass over the few headers a message has, comparing names: cheaper than five
        // hashed lookups. A repeated header counts by its first value, as `get` would.
        let mut wire = Self::default();
        for (name, values) in h.iter() {
            let Some(value) = values.first().map(|v| v.as_str()) else {
                continue;
            };
            match name.as_ref() {
                headers::ACTION_TYPE => wire.action_type = Some(value),
                headers::MSG_ID => wire.msg_id = Some(value),
                headers::CALLBACK_SUBJECT => wire.callback = Some(value),
                headers::CORRELATION_ID => wire.correlation = Some(value),
                headers::TRACEPARENT => wire.trace = TraceParent::parse(value),
                _ => {}
            }
        }
        wire
    }
}

/// Action type used on the error result of a message whose own type could not be read.
pub fn unreadable_type(domain: &Domain) -> ActionType {
    // `<domain>.invalid` is always a valid action type for a valid domain.
    ActionType::new(&format!("{domain}.invalid")).unwrap_or_else(|_| unreachable!())
}

/// Decodes a message received on `subject`, as stored actions are read back by tools:
/// callbacks checked with [`Inboxes::Shared`] (workers pass their own rule to
/// [`decode_or`]). `fallback_id` names an action that came without an `action_id`; pass an
/// id derived from its stream sequence so redeliveries agree on it.
pub fn decode(
    subject: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
    fallback_id: Uuid,
) -> Result<Received, Rejection> {
    decode_or(subject, headers, body, Inboxes::Shared, || fallback_id)
}

/// [`decode`] with the fallback id made only when it is needed: almost every action
/// carries its own id, and making one (a hash, or a clock read) costs on every message.
/// `inboxes` says which reply inboxes a callback may name.
pub fn decode_or(
    subject: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
    inboxes: Inboxes,
    fallback_id: impl FnOnce() -> Uuid,
) -> Result<Received, Rejection> {
    let subject = match ActionSubject::parse(subject) {
        Ok(subject) => subject,
        Err(err) => {
            let domain = subject.split('.').next().and_then(|d| Domain::new(d).ok());
            return Err(Rejection {
                error: ActionError::invalid(err.to_string()),
                domain,
                tenant: None,
                callback: None,
                address: None,
            });
        }
    };
    let wire = WireHeaders::read(headers);
    let body = match std::str::from_utf8(body) {
        Err(err) => Err(ActionError::invalid(format!("body is not UTF-8: {err}"))),
        Ok(text) => serde_json::from_str::<WireBody>(text)
            .map_err(|err| ActionError::invalid(format!("body is not a JSON action: {err}"))),
    };
    let body = match body {
        Ok(body) => body,
        Err(error) => return Err(reject(&subject, &wire, None, inboxes, fallback_id, error)),
    };
    let Checked {
        callback,
        action_type,
        action_id,
        created_at,
    } = match check(&subject, &wire, &body, inboxes) {
        Ok(checked) => checked,
        Err(error) => {
            return Err(reject(
                &subject,
                &wire,
                Some(&body),
                inboxes,
                fallback_id,
                error,
            ));
        }
    };
    let action_id = action_id.unwrap_or_else(fallback_id);
    let created_at = created_at.unwrap_or_else(OffsetDateTime::now_utc);
    let correlation_id = body
        .correlation_id
        .or_else(|| wire.correlation.map(str::to_owned));
    Ok(Received {
        action: Action {
            action_id,
            action_type,
            tenant_id: subject.tenant.clone(),
            session_id: body.session_id,
            task_id: body.task_id,
            correlation_id,
            callback_subject: callback.as_ref().map(|cb| cb.as_str().to_owned()),
            created_at,
            data: body.data.unwrap_or_else(null_data),
            metadata: body.metadata.unwrap_or_default(),
            traceparent: wire.trace,
        },
        subject,
        callback,
    })
}

/// What [`check`] parsed while validating, so nothing is parsed twice.
struct Checked {
    callback: Option<CallbackSubject>,
    action_type: ActionType,
    action_id: Option<Uuid>,
    created_at: Option<OffsetDateTime>,
}

/// Every rule a parsed body must meet, in the order a sender would fix them.
fn check(
    subject: &ActionSubject,
    wire: &WireHeaders<'_>,
    body: &WireBody<'_>,
    inboxes: Inboxes,
) -> Result<Checked, ActionError> {
    let tenant = &subject.tenant;
    let callback = match (wire.callback, body.callback_subject.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ActionError::invalid(format!(
                "callback_subject header {h:?} disagrees with body {b:?}"
            )));
        }
        (Some(cb), _) | (None, Some(cb)) => Some(CallbackSubject::parse(cb, tenant, inboxes)?),
        (None, None) => None,
    };
    let action_type = match (wire.action_type, body.action_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ActionError::invalid(format!(
                "action_type header {h:?} disagrees with body {b:?}"
            )));
        }
        (Some(t), _) | (None, Some(t)) => {
            ActionType::new(t).map_err(|err| ActionError::invalid(err.to_string()))?
        }
        (None, None) => {
            return Err(ActionError::invalid(
                "no action_type: set the action_type header or body field",
            ));
        }
    };
    if let Some(body_tenant) = body.tenant_id.as_deref()
        && body_tenant != tenant.as_str()
    {
        return Err(ActionError::new(
            ErrorCode::TenantMismatch,
            format!("tenant_id {body_tenant:?} in the body is not the subject's tenant {tenant:?}"),
        ));
    }
    let action_id = match body.action_id.as_deref() {
        Some(id) => Some(Uuid::parse_str(id).map_err(|err| {
            ActionError::invalid(format!("action_id {id:?} is not a UUID: {err}"))
        })?),
        None => None,
    };
    if let Some(correlation) = body.correlation_id.as_deref()
        && !fits_a_header(correlation)
    {
        return Err(ActionError::invalid(format!(
            "correlation_id {correlation:?} cannot be a header value: no control characters"
        )));
    }
    if let Some(data) = &body.data
        && nested_deeper_than(data.get(), MAX_DATA_DEPTH)
    {
        return Err(ActionError::invalid(format!(
            "data is nested deeper than {MAX_DATA_DEPTH} levels"
        )));
    }
    let created_at = match body.created_at.as_deref() {
        Some(at) => Some(OffsetDateTime::parse(at, &Rfc3339).map_err(|err| {
            ActionError::invalid(format!("created_at {at:?} is not RFC 3339: {err}"))
        })?),
        None => None,
    };
    Ok(Checked {
        callback,
        action_type,
        action_id,
        created_at,
    })
}

/// How deep `data` may nest: serde_json's own recursion limit. Data kept as raw JSON is not
/// parsed into a tree, so serde_json never checks its depth; checking it here refuses the
/// same hostile data whatever type the handler takes, and spares non-Rust receivers of
/// the result a stack overflow.
const MAX_DATA_DEPTH: usize = 128;

/// Whether the valid JSON text `json` nests arrays and objects more than `limit` deep: one
/// pass over the bytes, skipping strings.
fn nested_deeper_than(json: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether `value` can travel as a header value: results carry the body's `correlation_id`
/// in their `correlation_id` header, and a line break there made the result's encoding
/// panic (found by `fuzz/fuzz_targets/decode.rs`).
fn fits_a_header(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

fn null_data() -> Box<RawValue> {
    serde_json::value::to_raw_value(&Value::Null).unwrap_or_else(|_| unreachable!())
}

/// A rejection carrying whatever could be read: a valid callback (never a foreign one),
/// the action's id and type, session, task and trace.
fn reject(
    subject: &ActionSubject,
    wire: &WireHeaders<'_>,
    body: Option<&WireBody<'_>>,
    inboxes: Inboxes,
    fallback_id: impl FnOnce() -> Uuid,
    error: ActionError,
) -> Rejection {
    let tenant = &subject.tenant;
    let valid_callback =
        |cb: Option<&str>| cb.and_then(|cb| CallbackSubject::parse(cb, tenant, inboxes).ok());
    let callback = valid_callback(wire.callback)
        .or_else(|| valid_callback(body.and_then(|b| b.callback_subject.as_deref())));
    let action_type = [
        wire.action_type,
        body.and_then(|b| b.action_type.as_deref()),
    ]
    .into_iter()
    .flatten()
    .find_map(|t| ActionType::new(t).ok());
    let action_id = [body.and_then(|b| b.action_id.as_deref()), wire.msg_id]
        .into_iter()
        .flatten()
        .find_map(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(fallback_id);
    Rejection {
        error,
        domain: Some(subject.domain.clone()),
        tenant: Some(tenant.clone()),
        callback,
        address: Some(Box::new(ResultAddress {
            request_id: action_id,
            request_type: action_type.unwrap_or_else(|| unreadable_type(&subject.domain)),
            tenant_id: tenant.clone(),
            session_id: body.and_then(|b| b.session_id.clone()),
            task_id: body.and_then(|b| b.task_id.clone()),
            metadata: body.and_then(|b| b.metadata.clone()).unwrap_or_default(),
            trace: wire.trace,
            chain_correlation: body
                .and_then(|b| b.correlation_id.clone())
                .filter(|c| fits_a_header(c))
                .or_else(|| wire.correlation.map(str::to_owned))
                .unwrap_or_else(|| id_text(&action_id)),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

    #[test]
    fn data_nested_too_deep_is_found_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nested_deeper_than(&deep(MAX_DATA_DEPTH), MAX_DATA_DEPTH));
        assert!(nested_deeper_than(
            &deep(MAX_DATA_DEPTH + 1),
            MAX_DATA_DEPTH
        ));
        let in_a_string = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(500), "{".repeat(500));
        assert!(!nested_deeper_than(&in_a_string, MAX_DATA_DEPTH));
        let body = format!(r#"{{"data":{}}}"#, deep(1000));
        assert_eq!(
            code("echo.acme.actions", &[("action_type", "echo.ping")], &body),
            ErrorCode::InvalidAction
        );
    }

    fn code(subject: &str, h: &[(&str, &str)], body: &str) -> ErrorCode {
        decode(subject, Some(&hdrs(h)), body.as_bytes(), Uuid::nil())
            .unwrap_err()
            .error
            .code
    }

    #[test]
    fn minimal_hand_written_action_decodes() {
        let r = decode(
            "echo.acme.actions",
            Some(&hdrs(&[("action_type", "echo.ping")])),
            br#"{"data":{"x":1}}"#,
            Uuid::nil(),
        )
        .unwrap();
        assert_eq!(r.action.action_type.as_str(), "echo.ping");
        assert_eq!(r.action.tenant_id.as_str(), "acme");
        assert_eq!(r.action.action_id, Uuid::nil());
        assert_eq!(r.action.data.get(), r#"{"x":1}"#);
    }

    #[test]
    fn every_rejection_has_its_code() {
        let ping = [("action_type", "echo.ping")];
        assert_eq!(
            code("echo.acme.actions", &ping, "{not json"),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.acme.actions", &[], r#"{"data":1}"#),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.acme.actions", &[("action_type", "Echo")], "{}"),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.acme.actions", &ping, r#"{"action_type":"echo.fail"}"#),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.acme.actions", &ping, r#"{"tenant_id":"globex"}"#),
            ErrorCode::TenantMismatch
        );
        assert_eq!(
            code(
                "echo.acme.actions",
                &ping,
                r#"{"callback_subject":"echo.globex.callbacks"}"#
            ),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code("echo.acme.actions", &ping, r#"{"action_id":"nope"}"#),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.acme.actions", &ping, r#"{"created_at":"yesterday"}"#),
            ErrorCode::InvalidAction
        );
        assert_eq!(
            code("echo.a!b.actions", &ping, "{}"),
            ErrorCode::InvalidAction
        );
        let not_utf8 = decode(
            "echo.acme.actions",
            Some(&hdrs(&ping)),
            &[0xff, 0xfe],
            Uuid::nil(),
        );
        assert_eq!(not_utf8.unwrap_err().error.code, ErrorCode::InvalidAction);
    }

    #[test]
    fn rejection_keeps_the_callback_from_headers() {
        let h = hdrs(&[
            ("action_type", "echo.ping"),
            ("callback_subject", "_INBOX.x"),
        ]);
        let r = decode("echo.acme.actions", Some(&h), b"garbage", Uuid::nil()).unwrap_err();
        assert_eq!(r.callback.unwrap().as_str(), "_INBOX.x");
        assert_eq!(r.address.unwrap().request_type.as_str(), "echo.ping");
    }

    #[test]
    fn rejection_of_unreadable_type_uses_the_invalid_result_type() {
        let r = decode("echo.acme.actions", None, b"[]", Uuid::nil()).unwrap_err();
        assert_eq!(
            r.address.unwrap().request_type.result_type().as_str(),
            "echo.invalid.result"
        );
    }

    /// Regression input of `fuzz/fuzz_targets/decode.rs`: a `correlation_id` with a line
    /// break decoded, and encoding the result's `correlation_id` header then panicked.
    #[test]
    fn correlation_id_that_cannot_be_a_header_is_refused() {
        let h = hdrs(&[("action_type", "echo.ping"), ("correlation_id", "chain-1")]);
        for body in [
            r#"{"correlation_id":"a\r\nPUB x 1"}"#,
            r#"{"correlation_id":"a\nb"}"#,
            r#"{"correlation_id":"\u0000"}"#,
        ] {
            let r =
                decode("echo.acme.actions", Some(&h), body.as_bytes(), Uuid::nil()).unwrap_err();
            assert_eq!(r.error.code, ErrorCode::InvalidAction, "{body}");
            let address = r.address.unwrap();
            assert_eq!(address.chain_correlation, "chain-1", "{body}");
            let result = address.result::<()>(crate::action::ActionResult::failure(r.error, 0));
            crate::publish::encode_result(&result, &address.chain_correlation).unwrap();
        }
    }

    #[test]
    fn foreign_callback_never_gets_a_result() {
        let h = hdrs(&[
            ("action_type", "echo.ping"),
            ("callback_subject", "orchestrator.globex.callbacks"),
        ]);
        let r = decode("echo.acme.actions", Some(&h), b"{}", Uuid::nil()).unwrap_err();
        assert_eq!(r.error.code, ErrorCode::Forbidden);
        assert!(r.callback.is_none());
    }
}
