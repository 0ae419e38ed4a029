//! `domain-actions schema`: the AsyncAPI document names every action type of every service,
//! and what really travels (hand-written actions, the echo worker's results) fits it.

use std::process::Output;

use async_nats::HeaderMap;
use serde_json::{Map, Value, json};
use shared::Catalog;

use crate::harness::*;

/// `schema` never connects; the URL is only there because every command accepts one.
const UNUSED_URL: &str = "nats://127.0.0.1:1";

/// Runs `domain-actions ARGS` and parses the document it printed.
async fn schema(args: &str) -> Value {
    let output = cli(UNUSED_URL, args).await;
    document_of(&output)
}

fn document_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the document is JSON")
}

/// A draft-07 validator of the schema at `pointer` in `document`, its references resolved
/// against the document's components.
fn validator(document: &Value, pointer: &str) -> jsonschema::Validator {
    let schema = json!({
        "allOf": [{"$ref": format!("#{pointer}")}],
        "components": document["components"],
    });
    jsonschema::draft7::new(&schema).unwrap_or_else(|err| panic!("{pointer}: {err}"))
}

/// Asserts `instance` fits the payload (or headers) schema of `message`.
fn assert_fits(document: &Value, message: &str, part: &str, instance: &Value) {
    let pointer = format!("/components/messages/{message}/{part}");
    let errors: Vec<String> = validator(document, &pointer)
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{instance} does not fit {pointer}: {errors:#?}"
    );
}

/// NATS headers as the JSON object the message's header schema describes.
fn headers_json(headers: Option<&HeaderMap>) -> Value {
    let mut object = Map::new();
    for (name, values) in headers.into_iter().flat_map(HeaderMap::iter) {
        let name: &str = name.as_ref();
        if let Some(value) = values.first() {
            object.insert(name.to_owned(), Value::from(value.as_str()));
        }
    }
    Value::Object(object)
}

/// Every service's handlers, as the binary registers them.
fn every_service() -> Vec<Catalog> {
    vec![
        echo::dispatcher().catalog().clone(),
        embedding::routes().catalog().clone(),
        query::routes().catalog().clone(),
        ingestion::routes().catalog().clone(),
        execution::routes().catalog().clone(),
        orchestrator::routes().catalog().clone(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_type_of_every_service_is_described() {
    let document = schema("schema").await;
    assert_eq!(document["asyncapi"], "3.0.0");
    let messages = &document["components"]["messages"];
    for catalog in every_service() {
        let domain = catalog.domain().as_str();
        for action_type in catalog.action_types() {
            let name = action_type.as_str();
            assert_eq!(messages[name]["name"], name, "{name} is not described");
            if action_type.is_result() {
                let channel = &document["channels"][format!("{domain}.callbacks")];
                assert!(channel["messages"][name].is_object(), "{name} on callbacks");
                continue;
            }
            let result = action_type.result_type();
            assert!(messages[result.as_str()].is_object(), "{result} missing");
            for channel in ["actions", "rpc"] {
                let channel = &document["channels"][format!("{domain}.{channel}")];
                assert!(channel["messages"][name].is_object(), "{name} on {channel}");
            }
            let data = &messages[name]["payload"]["properties"]["data"];
            assert!(data.is_object(), "{name} has no data schema");
        }
        let dlq = &document["channels"][format!("dlq.{domain}")];
        assert_eq!(dlq["address"], format!("dlq.{domain}.{{tenant}}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn service_filter_and_out_file() {
    let echo_only = schema("schema --service echo").await;
    let channels: Vec<&String> = echo_only["channels"].as_object().unwrap().keys().collect();
    assert!(
        channels
            .iter()
            .all(|c| c.starts_with("echo.") || *c == "dlq.echo"),
        "{channels:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asyncapi.json");
    let output = cli(
        UNUSED_URL,
        &format!(
            "schema --service echo --service query --out {}",
            path.display()
        ),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "the document went to the file");
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(written["channels"]["query.callbacks"].is_object());
    assert!(written["channels"]["ingestion.actions"].is_null());

    let output = cli(UNUSED_URL, "schema --service nope").await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn real_actions_and_results_fit_the_schema() {
    let document = schema("schema --service echo").await;
    let env = Env::start().await;

    // What a client sends, and what the worker answers, over rpc.
    let id = new_id();
    let body = action_body(&id, "echo.sleep", json!({"ms": 1}));
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_fits(&document, "echo.sleep", "payload", &sent);
    let chain = Chain::new(&format!("chain-{}", new_id()));
    let mut hdrs = action_headers("echo.sleep", &id, "_INBOX.x");
    chain.add_to(&mut hdrs);
    assert_fits(
        &document,
        "echo.sleep",
        "headers",
        &headers_json(Some(&hdrs)),
    );
    let (reply, result) = env
        .request(RPC, headers(&[("action_type", "echo.sleep")]), &body)
        .await;
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_fits(&document, "echo.sleep.result", "payload", &result);
    assert_fits(
        &document,
        "echo.sleep.result",
        "headers",
        &headers_json(reply.headers.as_ref()),
    );

    // The least a hand-written publish needs, and an error result.
    let minimal =
        json!({"action_type": "echo.fail", "tenant_id": "acme", "data": {"message": "no"}});
    assert_fits(&document, "echo.fail", "payload", &minimal);
    let (_, failed) = env
        .request(RPC, HeaderMap::new(), minimal.to_string().as_bytes())
        .await;
    assert_eq!(failed["data"]["error"]["code"], "handler_error", "{failed}");
    assert_fits(&document, "echo.fail.result", "payload", &failed);
    // It was dead-lettered with the headers the dead-letter message describes.
    let letter = env.dead_letter(DLQ_ACME).await;
    assert_fits(
        &document,
        "dead_letter",
        "headers",
        &headers_json(Some(&letter.headers)),
    );

    // Data the schema refuses is data the worker refuses.
    let wrong = json!({"action_type": "echo.sleep", "tenant_id": "acme", "data": {"ms": "soon"}});
    let pointer = "/components/messages/echo.sleep/payload";
    assert!(!validator(&document, pointer).is_valid(&wrong));
    let (_, refused) = env
        .request(RPC, HeaderMap::new(), wrong.to_string().as_bytes())
        .await;
    assert_eq!(
        refused["data"]["error"]["code"], "invalid_action",
        "{refused}"
    );
    assert_fits(&document, "echo.sleep.result", "payload", &refused);
}
