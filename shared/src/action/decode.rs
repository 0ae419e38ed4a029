//! Turning a received message into a [`RawAction`], or a [`Rejection`] that says why not.
//!
//! This is the edge where anything a client sends is checked: the subject's names, the
//! body's JSON, header/body agreement, the tenant, the callback. A rejection keeps whatever
//! could be read (callback, ids), so the sender still hears why.

use async_nats::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{Action, ActionError, ActionType, Domain, ErrorCode, RawAction, ResultAddress, TenantId};
use crate::headers;
use crate::subject::{ActionSubject, CallbackSubject};
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
    pub address: Option<ResultAddress>,
}

/// The body as a client may write it: everything optional, checked afterwards.
#[derive(Deserialize)]
struct WireBody {
    action_id: Option<String>,
    action_type: Option<String>,
    tenant_id: Option<String>,
    session_id: Option<String>,
    task_id: Option<String>,
    correlation_id: Option<String>,
    callback_subject: Option<String>,
    created_at: Option<String>,
    data: Option<Box<RawValue>>,
    metadata: Option<Map<String, Value>>,
}

/// Action type used on the error result of a message whose own type could not be read.
pub fn unreadable_type(domain: &Domain) -> ActionType {
    // `<domain>.invalid` is always a valid action type for a valid domain.
    ActionType::new(&format!("{domain}.invalid")).unwrap_or_else(|_| unreachable!())
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// Decodes a message received on `subject`. `fallback_id` names an action that came
/// without an `action_id`; pass an id derived from its stream sequence so redeliveries
/// agree on it.
pub fn decode(
    subject: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
    fallback_id: Uuid,
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
    let tenant = subject.tenant.clone();
    let mut partial = Partial::new(&subject, fallback_id);
    partial.read_headers(headers);

    let body: WireBody = match std::str::from_utf8(body) {
        Err(err) => return Err(partial.reject(ActionError::invalid(format!("body is not UTF-8: {err}")))),
        Ok(text) => match serde_json::from_str(text) {
            Ok(body) => body,
            Err(err) => return Err(partial.reject(ActionError::invalid(format!("body is not a JSON action: {err}")))),
        },
    };
    partial.session_id = body.session_id.clone();
    partial.task_id = body.task_id.clone();
    partial.metadata = body.metadata.clone().unwrap_or_default();
    if let Some(id) = body.action_id.as_deref().and_then(|id| Uuid::parse_str(id).ok()) {
        partial.action_id = id;
    }

    // The callback first: even a rejected action deserves an error result where it asked.
    let callback_header = header(headers, headers::CALLBACK_SUBJECT);
    let callback = match (callback_header, body.callback_subject.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(partial.reject(ActionError::invalid(format!(
                "callback_subject header {h:?} disagrees with body {b:?}"
            ))));
        }
        (Some(cb), _) | (None, Some(cb)) => match CallbackSubject::parse(cb, &tenant) {
            Ok(cb) => Some(cb),
            Err(err) => return Err(partial.reject(err)),
        },
        (None, None) => None,
    };
    partial.callback = callback.clone();

    let type_header = header(headers, headers::ACTION_TYPE);
    let action_type = match (type_header, body.action_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(partial.reject(ActionError::invalid(format!(
                "action_type header {h:?} disagrees with body {b:?}"
            ))));
        }
        (Some(t), _) | (None, Some(t)) => match ActionType::new(t) {
            Ok(t) => t,
            Err(err) => return Err(partial.reject(ActionError::invalid(err.to_string()))),
        },
        (None, None) => {
            return Err(partial.reject(ActionError::invalid(
                "no action_type: set the action_type header or body field",
            )));
        }
    };
    partial.action_type = Some(action_type.clone());

    if let Some(body_tenant) = body.tenant_id.as_deref()
        && body_tenant != tenant.as_str()
    {
        return Err(partial.reject(ActionError::new(
            ErrorCode::TenantMismatch,
            format!("tenant_id {body_tenant:?} in the body is not the subject's tenant {tenant:?}"),
        )));
    }

    let action_id = match body.action_id.as_deref() {
        None => fallback_id,
        Some(id) => Uuid::parse_str(id).map_err(|err| {
            partial.reject(ActionError::invalid(format!("action_id {id:?} is not a UUID: {err}")))
        })?,
    };
    let created_at = match body.created_at.as_deref() {
        None => OffsetDateTime::now_utc(),
        Some(at) => OffsetDateTime::parse(at, &Rfc3339).map_err(|err| {
            partial.reject(ActionError::invalid(format!("created_at {at:?} is not RFC 3339: {err}")))
        })?,
    };
    let correlation_id = body
        .correlation_id
        .or_else(|| header(headers, headers::CORRELATION_ID).map(str::to_owned));
    let traceparent = header(headers, headers::TRACEPARENT).and_then(TraceParent::parse);
    let data = body.data.unwrap_or_else(null_data);

    Ok(Received {
        action: Action {
            action_id,
            action_type,
            tenant_id: tenant,
            session_id: body.session_id,
            task_id: body.task_id,
            correlation_id,
            callback_subject: callback.as_ref().map(|cb| cb.as_str().to_owned()),
            created_at,
            data,
            metadata: body.metadata.unwrap_or_default(),
            traceparent,
        },
        subject,
        callback,
    })
}

fn null_data() -> Box<RawValue> {
    serde_json::value::to_raw_value(&Value::Null).unwrap_or_else(|_| unreachable!())
}

/// What has been read so far of a message being decoded.
struct Partial {
    domain: Domain,
    tenant: TenantId,
    action_id: Uuid,
    action_type: Option<ActionType>,
    session_id: Option<String>,
    task_id: Option<String>,
    metadata: Map<String, Value>,
    callback: Option<CallbackSubject>,
    trace: Option<TraceParent>,
}

impl Partial {
    fn new(subject: &ActionSubject, fallback_id: Uuid) -> Self {
        Self {
            domain: subject.domain.clone(),
            tenant: subject.tenant.clone(),
            action_id: fallback_id,
            action_type: None,
            session_id: None,
            task_id: None,
            metadata: Map::new(),
            callback: None,
            trace: None,
        }
    }

    /// Headers are read before the body, so even an unparseable body has a callback.
    fn read_headers(&mut self, headers: Option<&HeaderMap>) {
        if let Some(t) = header(headers, headers::ACTION_TYPE).and_then(|t| ActionType::new(t).ok()) {
            self.action_type = Some(t);
        }
        if let Some(id) = header(headers, headers::MSG_ID).and_then(|id| Uuid::parse_str(id).ok()) {
            self.action_id = id;
        }
        self.trace = header(headers, headers::TRACEPARENT).and_then(TraceParent::parse);
        self.callback = header(headers, headers::CALLBACK_SUBJECT)
            .and_then(|cb| CallbackSubject::parse(cb, &self.tenant).ok());
    }

    fn reject(&self, error: ActionError) -> Rejection {
        Rejection {
            error,
            domain: Some(self.domain.clone()),
            tenant: Some(self.tenant.clone()),
            callback: self.callback.clone(),
            address: Some(ResultAddress {
                request_id: self.action_id,
                request_type: self.action_type.clone().unwrap_or_else(|| unreadable_type(&self.domain)),
                tenant_id: self.tenant.clone(),
                session_id: self.session_id.clone(),
                task_id: self.task_id.clone(),
                metadata: self.metadata.clone(),
                trace: self.trace,
            }),
        }
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

    fn code(subject: &str, h: &[(&str, &str)], body: &str) -> ErrorCode {
        decode(subject, Some(&hdrs(h)), body.as_bytes(), Uuid::nil()).unwrap_err().error.code
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
        assert_eq!(code("echo.acme.actions", &ping, "{not json"), ErrorCode::InvalidAction);
        assert_eq!(code("echo.acme.actions", &[], r#"{"data":1}"#), ErrorCode::InvalidAction);
        assert_eq!(code("echo.acme.actions", &[("action_type", "Echo")], "{}"), ErrorCode::InvalidAction);
        assert_eq!(code("echo.acme.actions", &ping, r#"{"action_type":"echo.fail"}"#), ErrorCode::InvalidAction);
        assert_eq!(code("echo.acme.actions", &ping, r#"{"tenant_id":"globex"}"#), ErrorCode::TenantMismatch);
        assert_eq!(code("echo.acme.actions", &ping, r#"{"callback_subject":"echo.globex.callbacks"}"#), ErrorCode::Forbidden);
        assert_eq!(code("echo.acme.actions", &ping, r#"{"action_id":"nope"}"#), ErrorCode::InvalidAction);
        assert_eq!(code("echo.acme.actions", &ping, r#"{"created_at":"yesterday"}"#), ErrorCode::InvalidAction);
        assert_eq!(code("echo.a!b.actions", &ping, "{}"), ErrorCode::InvalidAction);
        let not_utf8 = decode("echo.acme.actions", Some(&hdrs(&ping)), &[0xff, 0xfe], Uuid::nil());
        assert_eq!(not_utf8.unwrap_err().error.code, ErrorCode::InvalidAction);
    }

    #[test]
    fn rejection_keeps_the_callback_from_headers() {
        let h = hdrs(&[("action_type", "echo.ping"), ("callback_subject", "_INBOX.x")]);
        let r = decode("echo.acme.actions", Some(&h), b"garbage", Uuid::nil()).unwrap_err();
        assert_eq!(r.callback.unwrap().as_str(), "_INBOX.x");
        assert_eq!(r.address.unwrap().request_type.as_str(), "echo.ping");
    }

    #[test]
    fn rejection_of_unreadable_type_uses_the_invalid_result_type() {
        let r = decode("echo.acme.actions", None, b"[]", Uuid::nil()).unwrap_err();
        assert_eq!(r.address.unwrap().request_type.result_type().as_str(), "echo.invalid.result");
    }

    #[test]
    fn foreign_callback_never_gets_a_result() {
        let h = hdrs(&[("action_type", "echo.ping"), ("callback_subject", "orchestrator.globex.callbacks")]);
        let r = decode("echo.acme.actions", Some(&h), b"{}", Uuid::nil()).unwrap_err();
        assert_eq!(r.error.code, ErrorCode::Forbidden);
        assert!(r.callback.is_none());
    }
}
