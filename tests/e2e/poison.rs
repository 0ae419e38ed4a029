//! Messages a worker must refuse. Each one gets an error result where its callback can be
//! read, a dead letter with the reason and the original body, and the worker keeps serving.

use serde_json::json;

use crate::harness::*;

/// What a refused message must lead to besides its dead letter.
enum Answer<'a> {
    /// An error result of this action type on the inbox callback.
    ResultOfType(&'a str),
    /// Nothing: the callback cannot be read (or trusted).
    Nothing,
}

/// Publishes `body` to `subject` with `pairs` as headers plus an inbox `callback_subject` and
/// a `Nats-Msg-Id` of `id`; checks the dead letter in `dlq` (reason `code`, the original body,
/// where it came from), the answer on the inbox, and that an `echo.ping` still succeeds.
async fn refused(
    subject: &str,
    pairs: &[(&str, &str)],
    id: &str,
    body: &[u8],
    code: &str,
    dlq: &str,
    answer: Answer<'_>,
) {
    let env = Env::start().await;
    let (inbox, mut results) = env.inbox().await;
    let mut hdrs = headers(pairs);
    hdrs.insert("callback_subject", inbox.as_str());
    hdrs.insert("Nats-Msg-Id", id);
    let chain = Chain::new(&format!("chain-{id}"));
    chain.add_to(&mut hdrs);
    let ack = env.publish(subject, hdrs, body).await;

    let letter = env.dead_letter(dlq).await;
    assert_eq!(letter.body, body, "the dead letter keeps the original body");
    assert_stored_letter(&letter, code, ack.sequence, 1);
    assert_eq!(
        letter.header("callback_subject"),
        Some(inbox.as_str()),
        "and the original headers"
    );

    match answer {
        Answer::ResultOfType(result_type) => {
            let (message, result) = next_json(&mut results).await;
            assert_error(&result, code);
            assert_eq!(result["action_type"], result_type, "{result}");
            assert_eq!(
                header(message.headers.as_ref(), "action_type"),
                Some(result_type)
            );
            assert_eq!(result["tenant_id"], "acme", "{result}");
            assert_eq!(result["correlation_id"], id, "{result}");
            chain.assert_carried_by(&message);
        }
        // The error result would have been sent before the dead letter was stored.
        Answer::Nothing => {
            expect_nothing(&mut results, "a result for an unreadable callback").await
        }
    }
    env.assert_serving().await;
}

/// A refused action on `echo.acme.actions` (with `type_header` as its `action_type` header
/// and the body `body(id)`): an error result `code` of type `result_type` on the inbox.
async fn answered(
    type_header: Option<&str>,
    body: impl FnOnce(&str) -> Vec<u8>,
    code: &str,
    result_type: &str,
) {
    let id = new_id();
    let pairs: Vec<(&str, &str)> = type_header
        .map(|t| ("action_type", t))
        .into_iter()
        .collect();
    let answer = Answer::ResultOfType(result_type);
    refused(ACTIONS, &pairs, &id, &body(&id), code, DLQ_ACME, answer).await;
}

/// An `echo.ping` the worker cannot read: `invalid_action`, answered as `echo.ping.result`.
async fn unreadable_ping(body: impl FnOnce(&str) -> Vec<u8>) {
    answered(
        Some("echo.ping"),
        body,
        "invalid_action",
        "echo.ping.result",
    )
    .await;
}

/// A well-formed `action_type` action with `data` that its handling refuses with `code`.
async fn handled_and_refused(action_type: &str, data: serde_json::Value, code: &str) {
    let body = |id: &str| action_body(id, action_type, data);
    answered(
        Some(action_type),
        body,
        code,
        &format!("{action_type}.result"),
    )
    .await;
}

/// A body of tenant `tenant` with no `action_type`.
fn untyped_body(id: &str, tenant: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"action_id": id, "tenant_id": tenant, "data": {}})).expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json() {
    unreadable_ping(|_| b"{not json".to_vec()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_body() {
    unreadable_ping(|_| vec![0xff, 0xfe, b'{', 0x80, b'}']).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn action_type_header_disagrees_with_body() {
    unreadable_ping(|id| action_body(id, "echo.fail", json!({}))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_action_type() {
    let body = |id: &str| untyped_body(id, "acme");
    answered(None, body, "invalid_action", "echo.invalid.result").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_in_body_is_not_the_subjects() {
    let body = |id: &str| untyped_body(id, "globex");
    answered(
        Some("echo.ping"),
        body,
        "tenant_mismatch",
        "echo.ping.result",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_action_type() {
    handled_and_refused("echo.nope", json!({}), "unknown_action_type").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_panic() {
    handled_and_refused("echo.panic", json!({"message": "boom"}), "handler_panic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_retryable_failure() {
    let data = json!({"retryable": false, "message": "never"});
    handled_and_refused("echo.fail", data, "handler_error").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_tenant_token_in_the_subject() {
    let id = new_id();
    let body = action_body(&id, "echo.ping", json!({}));
    // No tenant to check the callback against, so no result; the letter goes to `_unknown`.
    let subject = "echo.bad!.actions";
    refused(
        subject,
        &[("action_type", "echo.ping")],
        &id,
        &body,
        "invalid_action",
        "dlq.echo._unknown",
        Answer::Nothing,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_aimed_at_another_tenant_is_forbidden() {
    let env = Env::start().await;
    let foreign = "orchestrator.globex.callbacks";
    let mut spied = env.subscribe(foreign).await;
    let id = new_id();
    let body = action_body(&id, "echo.ping", json!({"steal": true}));
    let ack = env
        .publish(ACTIONS, action_headers("echo.ping", &id, foreign), &body)
        .await;

    let letter = env.dead_letter(DLQ_ACME).await;
    assert_eq!(letter.body, body);
    assert_stored_letter(&letter, "forbidden", ack.sequence, 1);
    expect_nothing(&mut spied, "a result on another tenant's callbacks").await;
    env.assert_serving().await;
}
