//! [`ActionResult`]: the `data` of a result action, and how a result is derived from the
//! action it answers.
//!
//! A result is itself an action (`<type>.result`), so the service that receives it routes
//! it with the same dispatcher it uses for anything else.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::envelope::id_text;
use super::{Action, ActionError, ActionType, TenantId};
use crate::telemetry::TraceParent;

/// Whether the action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// `result` holds the handler's output.
    Success,
    /// `error` says why not.
    Error,
}

/// The `data` of a result action (docs/wire.md, "Results").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
#[schemars(rename = "ActionResult_for_{R}", transform = one_shape_per_status)]
pub struct ActionResult<R = Value> {
    /// Success or error.
    pub status: ResultStatus,
    /// The handler's output, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// Why it failed, on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// How long the handler ran.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Says in the schema which field goes with which status: `result` on success, `error`
/// on error (serde alone would make both optional).
fn one_shape_per_status(schema: &mut schemars::Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([
            {"properties": {"status": {"const": "success"}}, "required": ["status", "result"]},
            {"properties": {"status": {"const": "error"}}, "required": ["status", "error"]},
        ]),
    );
}

impl<R> ActionResult<R> {
    /// A success carrying `result`.
    pub fn success(result: R, duration_ms: u64) -> Self {
        Self {
            status: ResultStatus::Success,
            result: Some(result),
            error: None,
            duration_ms,
        }
    }

    /// A failure.
    pub fn failure(error: ActionError, duration_ms: u64) -> Self {
        Self {
            status: ResultStatus::Error,
            result: None,
            error: Some(error),
            duration_ms,
        }
    }

    /// The result as a `Result`, so callers can use `?`.
    pub fn into_result(self) -> Result<R, ActionError> {
        match (self.status, self.result, self.error) {
            (ResultStatus::Success, Some(result), _) => Ok(result),
            (_, _, Some(error)) => Err(error),
            (ResultStatus::Success, None, None) => Err(ActionError::invalid(
                "success result without a `result` field",
            )),
            (ResultStatus::Error, _, None) => Err(ActionError::invalid(
                "error result without an `error` field",
            )),
        }
    }
}

/// What a result needs to know about the action it answers. Built from a decoded action,
/// or from whatever could be read of one that did not decode.
#[derive(Debug, Clone)]
pub struct ResultAddress {
    /// The request's id; the result's id is derived from it.
    pub request_id: Uuid,
    /// The request's type; the result's type is `<it>.result`.
    pub request_type: ActionType,
    /// The tenant both belong to.
    pub tenant_id: TenantId,
    /// Copied from the request.
    pub session_id: Option<String>,
    /// Copied from the request.
    pub task_id: Option<String>,
    /// Copied from the request.
    pub metadata: Map<String, Value>,
    /// The request's trace context; the result carries a child of it.
    pub trace: Option<TraceParent>,
    /// The chain's correlation id (the request's own id when it started the chain); the
    /// result's `correlation_id` header, so the chain can be followed through its results.
    pub chain_correlation: String,
}

impl<T> From<&Action<T>> for ResultAddress {
    fn from(action: &Action<T>) -> Self {
        ResultAddress {
            request_id: action.action_id,
            request_type: action.action_type.clone(),
            tenant_id: action.tenant_id.clone(),
            session_id: action.session_id.clone(),
            task_id: action.task_id.clone(),
            metadata: action.metadata.clone(),
            trace: action.traceparent,
            chain_correlation: action.chain_correlation(),
        }
    }
}

/// Namespace of the v5 UUIDs derived from other ids (results, filled-in ids).
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d0e_8a4b_4e7f_9c3d_5b2a_1e0f_7d61);

/// A stable id derived from `parts`: the same inputs always give the same id, so a
/// redelivered action produces a result with the same `Nats-Msg-Id`, which JetStream drops.
pub fn derived_id(parts: &[&[u8]]) -> Uuid {
    let mut name = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        name.extend_from_slice(part);
        name.push(0);
    }
    Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name)
}

impl ResultAddress {
    /// The id of this request's result: the same every time the request is processed.
    pub fn result_id(&self) -> Uuid {
        derived_id(&[self.request_id.as_bytes(), b"result"])
    }

    /// The result action for this request.
    pub fn result<R>(&self, data: ActionResult<R>) -> Action<ActionResult<R>> {
        Action {
            action_id: self.result_id(),
            action_type: self.request_type.result_type(),
            tenant_id: self.tenant_id.clone(),
            session_id: self.session_id.clone(),
            task_id: self.task_id.clone(),
            correlation_id: Some(id_text(&self.request_id)),
            callback_subject: None,
            created_at: OffsetDateTime::now_utc(),
            data,
            metadata: self.metadata.clone(),
            traceparent: self.trace.as_ref().map(TraceParent::child),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> ResultAddress {
        ResultAddress {
            request_id: Uuid::now_v7(),
            request_type: ActionType::new("echo.ping").unwrap(),
            tenant_id: TenantId::new("acme").unwrap(),
            session_id: Some("s1".into()),
            task_id: None,
            metadata: Map::new(),
            trace: Some(TraceParent::new_root()),
            chain_correlation: "c1".into(),
        }
    }

    #[test]
    fn result_ids_are_deterministic_and_distinct() {
        let a = address();
        assert_eq!(a.result_id(), a.result_id());
        assert_ne!(a.result_id(), address().result_id());
    }

    #[test]
    fn result_copies_the_request() {
        let a = address();
        let r = a.result(ActionResult::success(Value::Null, 3));
        assert_eq!(r.action_type.as_str(), "echo.ping.result");
        assert_eq!(r.correlation_id, Some(a.request_id.to_string()));
        assert_eq!(r.session_id.as_deref(), Some("s1"));
        assert_eq!(r.traceparent.unwrap().trace_id, a.trace.unwrap().trace_id);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["data"]["status"], "success");
        assert!(json["data"].get("error").is_none());
    }

    #[test]
    fn into_result_reads_both_shapes() {
        assert_eq!(ActionResult::success(1, 0).into_result(), Ok(1));
        let err = ActionError::handler("no");
        assert_eq!(
            ActionResult::<i32>::failure(err.clone(), 0).into_result(),
            Err(err)
        );
    }
}
