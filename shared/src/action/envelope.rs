//! [`Action`]: the one message shape every service speaks, and [`ActionPayload`], which ties
//! a payload type to its action type once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ActionError, ActionType, TenantId};
use crate::subject::CallbackSubject;
use crate::telemetry::TraceParent;

/// A payload type and the action type it travels as.
///
/// Implementing it is the only place an action type string is written, so handlers,
/// publishers and tests all name the action by its Rust type:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use shared::ActionPayload;
///
/// #[derive(Serialize, Deserialize)]
/// struct Ping { text: String }
///
/// impl ActionPayload for Ping {
///     const ACTION_TYPE: &'static str = "echo.ping";
///     type Output = Ping;
/// }
/// ```
pub trait ActionPayload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// `<domain>.<verb>`; checked when a handler is registered or an action is built.
    const ACTION_TYPE: &'static str;
    /// What a successful handler returns: the `result` of the success result.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The validated action type. Panics on a malformed constant: that is a bug in the
    /// payload's declaration, found the first time the type is used.
    fn action_type() -> ActionType {
        ActionType::new(Self::ACTION_TYPE)
            .unwrap_or_else(|err| panic!("{}: {err}", std::any::type_name::<Self>()))
    }
}

/// The action envelope (docs/wire.md, "Action envelope"), generic over its `data`.
///
/// `Action<T>` is what handlers receive; [`RawAction`] is the same envelope whose data has
/// not been decoded yet, as the dispatcher sees it before routing.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = filled_in_on_receipt)]
pub struct Action<T> {
    /// Unique id; the publisher's dedupe id (`Nats-Msg-Id`).
    pub action_id: Uuid,
    /// Routing key.
    pub action_type: ActionType,
    /// Always equal to the subject's tenant once received.
    pub tenant_id: TenantId,
    /// Conversation this action belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Groups the actions of one job, e.g. an ingestion task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Id of the action that started the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Where the result goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_subject: Option<String>,
    /// When the publisher made it (RFC 3339).
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
    /// The typed payload.
    pub data: T,
    /// Free-form; copied onto the result.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// W3C trace context; travels as the `traceparent` header, not in the body.
    #[serde(skip)]
    pub traceparent: Option<TraceParent>,
}

/// Takes `action_id` and `created_at` out of the schema's required fields: a hand-written
/// publish may leave them out and the receiver fills them in (docs/wire.md, "Action envelope"), so a
/// schema requiring them would refuse bodies the contract accepts.
fn filled_in_on_receipt(schema: &mut schemars::Schema) {
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|field| field != "action_id" && field != "created_at");
    }
}

/// An action whose `data` is still undecoded JSON.
pub type RawAction = Action<Box<RawValue>>;

impl<T: ActionPayload> Action<T> {
    /// A new action for `tenant` with a fresh time-ordered id.
    pub fn new(tenant: TenantId, data: T) -> Self {
        Action::of_type(T::action_type(), tenant, data)
    }
}

impl<T> Action<T> {
    /// A new action of a type known only at run time (the CLI, the HTTP gateway). Typed
    /// code should use [`Action::new`], which takes the type from the payload.
    pub fn of_type(action_type: ActionType, tenant: TenantId, data: T) -> Self {
        Action {
            action_id: Uuid::now_v7(),
            action_type,
            tenant_id: tenant,
            session_id: None,
            task_id: None,
            correlation_id: None,
            callback_subject: None,
            created_at: OffsetDateTime::now_utc(),
            data,
            metadata: Map::new(),
            traceparent: None,
        }
    }

    /// Sends the result to `subject` (a `<domain>.<tenant>.callbacks` subject or an inbox).
    pub fn with_callback(mut self, subject: &CallbackSubject) -> Self {
        self.callback_subject = Some(subject.as_str().to_owned());
        self
    }

    /// Marks the action as part of a conversation.
    pub fn with_session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Marks the action as part of a job.
    pub fn with_task(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// Sets the chain's correlation id.
    pub fn with_correlation(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Adds a metadata entry (copied onto the result).
    pub fn with_metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// The correlation id the chain carries: the given one, or this action's own id when it
    /// starts a chain.
    pub fn chain_correlation(&self) -> String {
        self.correlation_id
            .clone()
            .unwrap_or_else(|| id_text(&self.action_id))
    }

    /// The same envelope with other data.
    pub fn map_data<U>(self, data: U) -> Action<U> {
        Action {
            action_id: self.action_id,
            action_type: self.action_type,
            tenant_id: self.tenant_id,
            session_id: self.session_id,
            task_id: self.task_id,
            correlation_id: self.correlation_id,
            callback_subject: self.callback_subject,
            created_at: self.created_at,
            data,
            metadata: self.metadata,
            traceparent: self.traceparent,
        }
    }
}

impl<T: Serialize> Action<T> {
    /// The JSON body as it goes on the wire.
    pub fn to_json(&self) -> Result<Vec<u8>, ActionError> {
        serde_json::to_vec(self)
            .map_err(|err| ActionError::invalid(format!("cannot encode action: {err}")))
    }
}

impl RawAction {
    /// Decodes `data` as `T`; a payload that does not fit is an `invalid_action`.
    pub fn decode_data<T: DeserializeOwned>(self) -> Result<Action<T>, ActionError> {
        let data = serde_json::from_str::<T>(self.data.get()).map_err(|err| {
            ActionError::invalid(format!("data does not fit {}: {err}", self.action_type))
        })?;
        Ok(self.map_data(data))
    }
}

impl<T: Serialize> Action<T> {
    /// The same action with its data as undecoded JSON, as a worker would receive it.
    pub fn into_raw(self) -> Result<RawAction, ActionError> {
        let data = serde_json::value::to_raw_value(&self.data)
            .map_err(|err| ActionError::invalid(format!("cannot encode data: {err}")))?;
        Ok(self.map_data(data))
    }
}

/// `created_at` as RFC 3339, written into a buffer on the stack: `time`'s own serde module
/// formats into a new `String` first, and every action and result carries a timestamp.
/// Read back with `time`'s.
pub(crate) mod rfc3339 {
    use serde::{Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    /// Room for the longest RFC 3339 time `time` writes: `9999-12-31T23:59:59.999999999+23:59`.
    const LONGEST: usize = 35;

    /// Writes `at` as `time::serde::rfc3339` would.
    pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; LONGEST];
        let mut rest = &mut buffer[..];
        match at.format_into(&mut rest, &Rfc3339) {
            Ok(_) => {
                // What is left of the buffer says how much was written (the count `time`
                // returns leaves out the fraction of a second).
                let written = LONGEST - rest.len();
                let text =
                    std::str::from_utf8(&buffer[..written]).map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(text)
            }
            // A year outside 0..=9999 and the like: `time` says why.
            Err(_) => time::serde::rfc3339::serialize(at, serializer),
        }
    }

    /// Reads an RFC 3339 time, as `time::serde::rfc3339` does.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        time::serde::rfc3339::deserialize(deserializer)
    }
}

/// `id` as hyphenated lower-case text, written without the formatting machinery: every
/// result and chain carries one.
pub(crate) fn id_text(id: &Uuid) -> String {
    let mut buffer = Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut buffer).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping {
        text: String,
        n: i64,
    }
    impl ActionPayload for Ping {
        const ACTION_TYPE: &'static str = "echo.ping";
        type Output = Ping;
    }

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    #[test]
    fn new_action_takes_its_type_from_the_payload() {
        let action = Action::new(
            tenant(),
            Ping {
                text: "hi".into(),
                n: 1,
            },
        );
        assert_eq!(action.action_type.as_str(), "echo.ping");
        assert_eq!(action.action_id.get_version_num(), 7);
        assert_eq!(action.chain_correlation(), action.action_id.to_string());
    }

    #[test]
    fn body_has_the_wire_field_names() {
        let action = Action::new(
            tenant(),
            Ping {
                text: "hi".into(),
                n: 1,
            },
        )
        .with_session("s1");
        let json: Value = serde_json::from_slice(&action.to_json().unwrap()).unwrap();
        for field in [
            "action_id",
            "action_type",
            "tenant_id",
            "session_id",
            "created_at",
            "data",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert!(
            json.get("traceparent").is_none(),
            "trace context travels in headers"
        );
    }

    proptest! {
        #[test]
        fn timestamps_are_written_as_time_writes_them(seconds in -62_000_000_000i64..253_402_300_799, nanos in 0u32..1_000_000_000, offset_minutes in -1439i32..1439, zero_nanos in any::<bool>()) {
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                .replace_nanosecond(if zero_nanos { 0 } else { nanos }).unwrap()
                .to_offset(offset);
            #[derive(Serialize)]
            struct Ours(#[serde(with = "rfc3339")] OffsetDateTime);
            #[derive(Serialize)]
            struct Theirs(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
            let ours = serde_json::to_string(&Ours(at));
            let theirs = serde_json::to_string(&Theirs(at));
            prop_assert_eq!(ours.ok(), theirs.ok());
            let utc = at.to_offset(time::UtcOffset::UTC);
            prop_assert_eq!(serde_json::to_string(&Ours(utc)).ok(), serde_json::to_string(&Theirs(utc)).ok());
        }

        #[test]
        fn envelope_round_trips(text in "\\PC*", n in any::<i64>(), session in proptest::option::of("[a-z0-9]{1,10}"),
                                meta in proptest::collection::btree_map("[a-z]{1,5}", any::<i64>(), 0..4)) {
            let mut action = Action::new(tenant(), Ping { text, n });
            action.session_id = session;
            for (k, v) in meta { action = action.with_metadata(k, v.into()); }
            let bytes = action.to_json().unwrap();
            let back: Action<Ping> = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back.action_id, action.action_id);
            prop_assert_eq!(&back.data, &action.data);
            prop_assert_eq!(&back.session_id, &action.session_id);
            prop_assert_eq!(&back.metadata, &action.metadata);
            prop_assert_eq!(back.created_at.unix_timestamp(), action.created_at.unix_timestamp());
            let raw: RawAction = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(raw.decode_data::<Ping>().unwrap().data, action.data);
        }
    }
}
