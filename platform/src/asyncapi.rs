//! The AsyncAPI 3.0 document of the registered action types: what a client in any language
//! needs to generate code that speaks the wire contract (docs/wire.md) with our services.
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use shared::{Action, ActionError, ActionPayload, Ctx, Dispatcher};
//! # #[derive(Serialize, Deserialize, schemars::JsonSchema)] struct Ping { text: String }
//! # impl ActionPayload for Ping { const ACTION_TYPE: &'static str = "echo.ping"; type Output = Ping; }
//! # async fn ping(action: Action<Ping>, _ctx: Ctx) -> Result<Ping, ActionError> { Ok(action.data) }
//! let echo: Dispatcher = Dispatcher::new("echo").on::<Ping, _>(ping);
//! let document = platform::asyncapi::document("Domain Actions", "0.1.0", &[echo.catalog().clone()]);
//! assert_eq!(document["channels"]["echo.actions"]["address"], "echo.{tenant}.actions");
//! ```
//!
//! The document describes the contract, it does not define it: the subjects come from
//! [`shared::subject`], the header names from [`shared::headers`], the bodies from the Rust
//! types themselves ([`Action`], [`ActionResult`], each payload), so it cannot drift from
//! what the services accept. Operations are written from a client's side: it sends actions,
//! requests over rpc and receives results and dead letters.
//!
//! Schemas are generated with schemars rather than utoipa (which the HTTP services use for
//! their OpenAPI document): schemars derives plain JSON Schema from the serde attributes,
//! handles generic types such as `Action<T>` and `ActionResult<R>`, and writes draft-07,
//! the schema format every AsyncAPI 3 tool reads, with references pointing straight into
//! the document's `components/schemas`.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use shared::action::{ActionType, Domain, ErrorCode};
use shared::headers;
use shared::schema::{Catalog, SchemaFn};
use shared::subject::{self, Channel};

/// The AsyncAPI version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The subject parameter every channel address has: the tenant.
const TENANT: &str = "{tenant}";

/// The AsyncAPI 3.0 document of every action type the `catalogs` list: channels per
/// domain, one message per action type and per result, send / request / receive
/// operations, and the JSON Schemas of every body under `components/schemas`.
pub fn document(title: &str, version: &str, catalogs: &[Catalog]) -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings
        .with_transform(RecursiveTransform(no_timestamp_defaults))
        .into_generator();

    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = BTreeMap::new();
    for catalog in catalogs {
        describe_domain(
            catalog,
            &mut generator,
            &mut messages,
            &mut channels,
            &mut operations,
        );
    }
    messages.insert(
        "dead_letter".to_owned(),
        json!({
            "name": "dead_letter",
            "title": "A dead letter",
            "summary": "An action that could not be processed: the original body and headers, \
                        with why in the dlq_* headers.",
            "contentType": headers::JSON,
            "headers": dead_letter_headers(),
            "payload": {
                "description": "The original body as it was received; it may not be a valid action."
            },
        }),
    );

    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Domain actions over NATS: one JSON envelope for every action type, \
                            durable through JetStream (`<domain>.<tenant>.actions`) or \
                            request/reply (`<domain>.<tenant>.rpc`); results are actions of type \
                            `<action type>.result` sent to the action's `callback_subject` or reply \
                            inbox. Operations are written from a client's side.",
        },
        "defaultContentType": headers::JSON,
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": generator.take_definitions(true),
            "messages": messages,
            "parameters": {
                "tenant": {
                    "description": "The tenant: one NATS token of [A-Za-z0-9_-]{1,64}; the body's \
                                    tenant_id must be the same.",
                    "examples": ["acme"],
                },
            },
        },
    })
}

/// Drops the `default` of timestamps: a field defaulting to "now" would show the moment
/// the document was generated, which is no default a client can use (and would make every
/// generated document differ).
fn no_timestamp_defaults(schema: &mut Schema) {
    if schema.get("format").and_then(Value::as_str) == Some("date-time") {
        schema.remove("default");
    }
}

/// The channels and operations of one catalog's domain; its messages go into `messages`
/// and the schemas of their bodies into `generator`.
fn describe_domain(
    catalog: &Catalog,
    generator: &mut SchemaGenerator,
    messages: &mut BTreeMap<String, Value>,
    channels: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
) {
    let domain = catalog.domain();
    let mut actions = Vec::new();
    let mut results = Vec::new();
    let mut handled_results = Vec::new();
    for (action_type, schemas) in catalog.messages() {
        if action_type.is_result() {
            add_message(messages, generator, action_type, schemas.action);
            handled_results.push(action_type.clone());
            continue;
        }
        add_message(messages, generator, action_type, schemas.action);
        actions.push(action_type.clone());
        if let Some(result) = schemas.result {
            let result_type = action_type.result_type();
            add_message(messages, generator, &result_type, result);
            results.push(result_type);
        }
    }

    let id = |suffix: &str| format!("{domain}.{suffix}");
    let tenant_parameter = json!({"tenant": {"$ref": "#/components/parameters/tenant"}});
    channels.insert(
        id("actions"),
        json!({
            "address": address(domain, Channel::Actions),
            "title": format!("{domain} actions"),
            "description": format!("Durable actions for the {domain} workers (JetStream stream \
                                    {}); each is answered with its result on its callback_subject.",
                                   domain.stream_name()),
            "parameters": tenant_parameter,
            "messages": message_refs(&actions),
        }),
    );
    channels.insert(
        id("rpc"),
        json!({
            "address": address(domain, Channel::Rpc),
            "title": format!("{domain} rpc"),
            "description": "The same actions as request/reply over core NATS: answered on the \
                            request's reply inbox, nothing stored. The reply subject must be the \
                            tenant's own `_INBOX_<tenant>.` inbox, a server-made cross-account \
                            reply (`_R_.`), or (DA_INBOXES=shared, no logins) an `_INBOX.` one; \
                            any other is refused (`forbidden`) and nothing is answered.",
            "parameters": tenant_parameter,
            "messages": message_refs(&actions),
        }),
    );
    channels.insert(
        id("results"),
        json!({
            "address": null,
            "title": format!("{domain} results"),
            "description": "Results of this domain's actions, sent to the action's \
                            callback_subject (a `<domain>.<tenant>.callbacks` subject of the \
                            sender's domain, or the tenant's `_INBOX_<tenant>.` inbox; `_INBOX.` \
                            too where tenants do not log in) or to the rpc reply inbox.",
            "messages": message_refs(&results),
        }),
    );
    if !handled_results.is_empty() {
        channels.insert(
            id("callbacks"),
            json!({
                "address": address(domain, Channel::Callbacks),
                "title": format!("{domain} callbacks"),
                "description": format!("Durable results addressed to {domain}: of the actions \
                                        it sent with this subject as their callback_subject."),
                "parameters": tenant_parameter,
                "messages": message_refs(&handled_results),
            }),
        );
    }
    channels.insert(
        format!("dlq.{domain}"),
        json!({
            // The subject `subject::dead_letters` builds, with the tenant as a parameter.
            "address": format!("dlq.{domain}.{TENANT}"),
            "title": format!("{domain} dead letters"),
            "description": "Actions the domain's workers could not process (JetStream stream DLQ).",
            "parameters": tenant_parameter,
            "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
        }),
    );

    let channel_ref = |channel: &str| json!({"$ref": format!("#/channels/{channel}")});
    let operation_refs = |channel: &str, types: &[ActionType]| -> Value {
        types
            .iter()
            .map(|t| json!({"$ref": format!("#/channels/{channel}/messages/{t}")}))
            .collect()
    };
    operations.insert(
        id("send"),
        json!({
            "action": "send",
            "channel": channel_ref(&id("actions")),
            "summary": format!("Enqueue a {domain} action durably."),
            "messages": operation_refs(&id("actions"), &actions),
        }),
    );
    operations.insert(
        id("request"),
        json!({
            "action": "send",
            "channel": channel_ref(&id("rpc")),
            "summary": format!("Send a {domain} action over rpc and wait for its result."),
            "messages": operation_refs(&id("rpc"), &actions),
            "reply": {
                "channel": channel_ref(&id("results")),
                "messages": operation_refs(&id("results"), &results),
            },
        }),
    );
    operations.insert(
        id("receive_results"),
        json!({
            "action": "receive",
            "channel": channel_ref(&id("results")),
            "summary": format!("Receive the results of {domain} actions on their callback subject."),
            "messages": operation_refs(&id("results"), &results),
        }),
    );
    if !handled_results.is_empty() {
        operations.insert(
            id("send_results"),
            json!({
                "action": "send",
                "channel": channel_ref(&id("callbacks")),
                "summary": format!("Deliver results to {domain}, as the services it calls do."),
                "messages": operation_refs(&id("callbacks"), &handled_results),
            }),
        );
    }
    operations.insert(
        format!("dlq.{domain}.receive"),
        json!({
            "action": "receive",
            "channel": channel_ref(&format!("dlq.{domain}")),
            "summary": format!("Read the dead letters of {domain}."),
            "messages": [{"$ref": format!("#/channels/dlq.{domain}/messages/dead_letter")}],
        }),
    );
}

/// `<domain>.{tenant}.<channel>`: the subject the builders in [`subject`] make, with the
/// tenant as the channel's parameter.
fn address(domain: &Domain, channel: Channel) -> String {
    subject::any_tenant(domain, channel).replacen('*', TENANT, 1)
}

/// A channel's message map: each message referenced from `components/messages`.
fn message_refs(types: &[ActionType]) -> Value {
    types
        .iter()
        .map(|t| {
            (
                t.to_string(),
                json!({"$ref": format!("#/components/messages/{t}")}),
            )
        })
        .collect::<Map<_, _>>()
        .into()
}

/// Adds the message of `action_type` (once, however many domains mention it): its headers
/// and its body, whose `action_type` is pinned to this type.
fn add_message(
    messages: &mut BTreeMap<String, Value>,
    generator: &mut SchemaGenerator,
    action_type: &ActionType,
    body: SchemaFn,
) {
    if messages.contains_key(action_type.as_str()) {
        return;
    }
    let mut payload = body(generator);
    // The generator applies its draft-07 transforms to the schemas it stores, not to the
    // inline body it returns.
    for transform in generator.transforms_mut() {
        transform.transform(&mut payload);
    }
    if let Some(Value::Object(properties)) = payload.get_mut("properties") {
        properties.insert(
            "action_type".into(),
            json!({"const": action_type.as_str(), "description": "The routing key."}),
        );
    }
    let summary = if action_type.is_result() {
        format!("The result of {}.", strip_result(action_type))
    } else {
        format!("A {action_type} action.")
    };
    payload.insert(
        "description".into(),
        "The action envelope (docs/wire.md, \"Action envelope\"); a hand-written publish may leave out \
         action_id and created_at (filled in on receipt) and carry action_type in its header."
            .into(),
    );
    messages.insert(
        action_type.to_string(),
        json!({
            "name": action_type.as_str(),
            "title": action_type.as_str(),
            "summary": summary,
            "contentType": headers::JSON,
            "headers": action_headers(action_type),
            "payload": payload,
        }),
    );
}

/// `x.y` for `x.y.result`.
fn strip_result(action_type: &ActionType) -> &str {
    let name = action_type.as_str();
    name.strip_suffix(".result").unwrap_or(name)
}

/// The headers of an action or result of `action_type` (docs/wire.md, "Headers").
fn action_headers(action_type: &ActionType) -> Value {
    let mut properties = Map::new();
    let mut add = |name: &str, schema: Value| {
        properties.insert(name.to_owned(), schema);
    };
    add(
        headers::ACTION_TYPE,
        json!({"const": action_type.as_str(),
               "description": "The routing key; must agree with the body's action_type when both are present."}),
    );
    add(
        headers::MSG_ID,
        json!({"type": "string",
               "description": "The action id: JetStream drops a duplicate publish inside the stream's window. Absent on rpc replies, which are never stored."}),
    );
    if !action_type.is_result() {
        add(
            headers::CALLBACK_SUBJECT,
            json!({"type": "string",
                   "description": "Where the result goes: `<domain>.<same tenant>.callbacks` or the tenant's `_INBOX_<tenant>.` inbox (`_INBOX.` too where tenants do not log in); anything else is refused as `forbidden`; must agree with the body's callback_subject."}),
        );
    }
    add(
        headers::CORRELATION_ID,
        json!({"type": "string",
               "description": "Id of the action that started the chain; copied onto everything it causes."}),
    );
    add(
        headers::TRACEPARENT,
        json!({"type": "string",
               "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
               "description": "W3C trace context, propagated to every action and result it causes."}),
    );
    add(headers::CONTENT_TYPE, json!({"const": headers::JSON}));
    json!({"type": "object", "properties": properties})
}

/// The headers of a dead letter: the original's, plus why and where it came from.
fn dead_letter_headers() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "properties": {
            (headers::dlq::REASON): {"enum": codes, "description": "Why: an error code."},
            (headers::dlq::ERROR): text("The error message."),
            (headers::dlq::STREAM): text("The stream the original was stored in (`rpc` for a request that was never stored)."),
            (headers::dlq::SEQUENCE): text("The original's stream sequence."),
            (headers::dlq::DELIVERIES): text("How many times it was delivered."),
            (headers::dlq::CONSUMER): text("The consumer that gave up on it."),
            (headers::dlq::SUBJECT): text("The subject it was published to."),
            (headers::ACTION_TYPE): text("The original's action type, if it had one."),
        },
        "required": [headers::dlq::REASON, headers::dlq::ERROR],
    })
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;
    use schemars::JsonSchema;
    use shared::{Action, ActionError, ActionPayload, ActionResult, Ctx, Dispatcher, TenantId};

    /// `echo.ping` as the echo service declares it: any JSON.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(transparent)]
    struct Ping(Value);
    impl ActionPayload for Ping {
        const ACTION_TYPE: &'static str = "echo.ping";
        type Output = Value;
    }

    /// `echo.sleep`.
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Sleep {
        ms: u64,
        #[serde(default)]
        note: Option<String>,
    }
    /// What `echo.sleep` returns.
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Slept {
        slept_ms: u64,
    }
    impl ActionPayload for Sleep {
        const ACTION_TYPE: &'static str = "echo.sleep";
        type Output = Slept;
    }

    fn echo() -> Catalog {
        let echo: Dispatcher = Dispatcher::new("echo")
            .on::<Ping, _>(|a: Action<Ping>, _: Ctx| async move { Ok(a.data.0) })
            .on::<Sleep, _>(|a: Action<Sleep>, _: Ctx| async move {
                Ok(Slept {
                    slept_ms: a.data.ms,
                })
            });
        echo.catalog().clone()
    }

    /// A domain that handles the results of the actions it sends to echo.
    fn caller() -> Catalog {
        let caller: Dispatcher = Dispatcher::new("caller").on_result::<Sleep, _>(
            |_: Action<ActionResult<Slept>>, _: Ctx| async { Ok::<(), ActionError>(()) },
        );
        caller.catalog().clone()
    }

    /// Follows a local `#/…` reference, also when draft-07 wraps it as `allOf: [{$ref}]`
    /// to keep its description.
    fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
        if let Some([only]) = schema["allOf"].as_array().map(Vec::as_slice) {
            return resolve(document, only);
        }
        match schema["$ref"].as_str() {
            Some(pointer) => document
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling reference {pointer}")),
            None => schema,
        }
    }

    fn required(schema: &Value) -> Vec<&str> {
        let mut fields: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        fields.sort_unstable();
        fields
    }

    #[test]
    fn echo_has_its_channels_operations_and_messages() {
        let doc = document("Domain Actions", "1.2.3", &[echo()]);
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc["info"]["version"], "1.2.3");
        let channels = &doc["channels"];
        assert_eq!(channels["echo.actions"]["address"], "echo.{tenant}.actions");
        assert_eq!(channels["echo.rpc"]["address"], "echo.{tenant}.rpc");
        assert_eq!(channels["dlq.echo"]["address"], "dlq.echo.{tenant}");
        assert!(channels["echo.results"]["address"].is_null());
        assert!(
            channels.get("echo.callbacks").is_none(),
            "echo handles no results"
        );
        for channel in ["echo.actions", "echo.rpc"] {
            let names: Vec<&String> = channels[channel]["messages"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            assert_eq!(names, ["echo.ping", "echo.sleep"], "{channel}");
            assert!(channels[channel]["parameters"]["tenant"].is_object());
        }
        let ops = &doc["operations"];
        assert_eq!(ops["echo.send"]["action"], "send");
        assert_eq!(
            ops["echo.request"]["reply"]["channel"]["$ref"],
            "#/channels/echo.results"
        );
        assert_eq!(ops["echo.receive_results"]["action"], "receive");
        for name in [
            "echo.ping",
            "echo.sleep",
            "echo.ping.result",
            "echo.sleep.result",
        ] {
            let message = &doc["components"]["messages"][name];
            assert_eq!(message["name"], name);
            assert_eq!(
                message["headers"]["properties"]["action_type"]["const"],
                name
            );
            assert_eq!(
                message["payload"]["properties"]["action_type"]["const"],
                name
            );
        }
        assert!(doc["components"]["messages"]["dead_letter"].is_object());
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(document: &Value, value: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(pointer)) = map.get("$ref") {
                        let target = pointer.trim_start_matches('#');
                        assert!(document.pointer(target).is_some(), "dangling {pointer}");
                    }
                    map.values().for_each(|v| walk(document, v));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(document, v)),
                _ => {}
            }
        }
        let doc = document("Domain Actions", "0", &[echo(), caller()]);
        walk(&doc, &doc);
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{name} is not a valid AsyncAPI component key"
            );
        }
    }

    #[test]
    fn payloads_are_the_envelope_around_the_data() {
        let doc = document("Domain Actions", "0", &[echo()]);
        let payload = &doc["components"]["messages"]["echo.sleep"]["payload"];
        assert_eq!(required(payload), ["action_type", "data", "tenant_id"]);
        for field in ["action_id", "created_at", "callback_subject", "metadata"] {
            assert!(payload["properties"][field].is_object(), "{field}");
        }
        let data = resolve(&doc, &payload["properties"]["data"]);
        assert_eq!(required(data), ["ms"]);
        assert_eq!(data["properties"]["ms"]["type"], "integer");
        let tenant = resolve(&doc, &payload["properties"]["tenant_id"]);
        assert_eq!(tenant["pattern"], "^[A-Za-z0-9_-]{1,64}$");

        let result = &doc["components"]["messages"]["echo.sleep.result"]["payload"];
        let data = resolve(&doc, &result["properties"]["data"]);
        assert_eq!(required(data), ["status"]);
        assert_eq!(data["oneOf"][0]["required"], json!(["status", "result"]));
        assert_eq!(data["oneOf"][1]["required"], json!(["status", "error"]));
        let output = resolve(&doc, &data["properties"]["result"]);
        let output = match output.get("anyOf") {
            // An `Option<Slept>`: the output or null.
            Some(any) => resolve(&doc, &any[0]),
            None => output,
        };
        assert_eq!(required(output), ["slept_ms"]);
        let error = resolve(&doc, &data["properties"]["error"]);
        let error = match error.get("anyOf") {
            Some(any) => resolve(&doc, &any[0]),
            None => error,
        };
        let code = resolve(&doc, &error["properties"]["code"]);
        let text = code.to_string();
        for code in ErrorCode::ALL {
            assert!(
                text.contains(&format!("\"{code}\"")),
                "{code} missing in {text}"
            );
        }
    }

    #[test]
    fn handled_results_get_a_callbacks_channel() {
        let doc = document("Domain Actions", "0", &[echo(), caller()]);
        let callbacks = &doc["channels"]["caller.callbacks"];
        assert_eq!(callbacks["address"], "caller.{tenant}.callbacks");
        assert!(callbacks["messages"]["echo.sleep.result"].is_object());
        assert_eq!(doc["operations"]["caller.send_results"]["action"], "send");
        // Described once, by whichever dispatcher mentions it first.
        assert!(doc["components"]["messages"]["echo.sleep.result"].is_object());
    }

    #[test]
    fn a_real_body_has_what_the_schema_requires() {
        let doc = document("Domain Actions", "0", &[echo()]);
        let action = Action::new(TenantId::new("acme").unwrap(), Sleep { ms: 5, note: None });
        let body: Value = serde_json::from_slice(&action.to_json().unwrap()).unwrap();
        let payload = &doc["components"]["messages"]["echo.sleep"]["payload"];
        for field in required(payload) {
            assert!(body.get(field).is_some(), "{field} missing in {body}");
        }
        for field in body.as_object().unwrap().keys() {
            assert!(
                payload["properties"].get(field).is_some(),
                "{field} not in the schema"
            );
        }
    }
}
