//! The rpc path: `echo.<tenant>.rpc` request/reply, answered by the worker's micro service.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn request_is_answered_with_the_result() {
    let env = Env::start().await;
    let id = new_id();
    let data = json!({"rpc": [1, 2, 3]});
    let body = action_body(&id, "echo.ping", data.clone());
    let (reply, result) = env
        .request(RPC, headers(&[("action_type", "echo.ping")]), &body)
        .await;
    assert_eq!(
        header(reply.headers.as_ref(), "action_type"),
        Some("echo.ping.result")
    );
    assert_eq!(result["action_type"], "echo.ping.result", "{result}");
    assert_success(&result, &id, &data);
}

#[tokio::test(flavor = "multi_thread")]
async fn reply_carries_the_chain_correlation_and_trace() {
    let env = Env::start().await;
    let chain = Chain::new(&format!("chain-{}", new_id()));
    let mut hdrs = headers(&[("action_type", "echo.ping")]);
    chain.add_to(&mut hdrs);
    let id = new_id();
    let (reply, result) = env
        .request(RPC, hdrs, &action_body(&id, "echo.ping", json!(2)))
        .await;
    assert_success(&result, &id, &json!(2));
    chain.assert_carried_by(&reply);
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_is_answered_and_dead_lettered() {
    let env = Env::start().await;
    let message = format!("no, not {}", new_id());
    let body = action_body(
        &new_id(),
        "echo.fail",
        json!({"retryable": false, "message": message}),
    );
    let (_, result) = env
        .request(RPC, headers(&[("action_type", "echo.fail")]), &body)
        .await;
    assert_error(&result, "handler_error");
    assert_eq!(
        result["data"]["error"]["message"],
        message.as_str(),
        "{result}"
    );
    assert_eq!(result["data"]["error"]["retryable"], false, "{result}");

    let letter = env.dead_letter(DLQ_ACME).await;
    assert_eq!(letter.body, body);
    assert_eq!(letter.header("dlq_reason"), Some("handler_error"));
    assert_eq!(letter.header("dlq_stream"), Some("rpc"));
    assert!(
        letter
            .header("dlq_error")
            .is_some_and(|e| e.contains(&message))
    );
    assert_eq!(
        letter.header("action_type"),
        Some("echo.fail"),
        "the original headers are kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn micro_service_endpoints_answer() {
    let env = Env::start().await;
    let ping = env.wait_service("echo").await;
    assert_eq!(ping["name"], "echo", "{ping}");

    let (_, info) = env.request("$SRV.INFO.echo", headers(&[]), b"").await;
    assert_eq!(info["name"], "echo", "{info}");
    let endpoints = info["endpoints"].as_array().expect("endpoints");
    assert!(
        endpoints
            .iter()
            .any(|e| e["name"] == "rpc" && e["subject"] == "echo.*.rpc"),
        "no rpc endpoint on echo.*.rpc: {info}"
    );

    let requests = |stats: &Value| {
        stats["endpoints"]
            .as_array()
            .and_then(|endpoints| endpoints.iter().find(|e| e["name"] == "rpc"))
            .and_then(|e| e["num_requests"].as_u64())
            .unwrap_or_else(|| panic!("no rpc endpoint stats: {stats}"))
    };
    let (_, before) = env.request("$SRV.STATS.echo", headers(&[]), b"").await;
    let before = requests(&before);
    let body = action_body(&new_id(), "echo.ping", json!("count me"));
    env.request(RPC, headers(&[("action_type", "echo.ping")]), &body)
        .await;
    let env = &env;
    let after = eventually("a grown request count", || async move {
        let (_, stats) = env.request("$SRV.STATS.echo", headers(&[]), b"").await;
        Some(requests(&stats)).filter(|n| *n > before)
    })
    .await;
    assert!(after > before);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_action_type_is_named() {
    let env = Env::start().await;
    let id = new_id();
    let body = action_body(&id, "echo.nope", json!({}));
    let (_, result) = env
        .request(RPC, headers(&[("action_type", "echo.nope")]), &body)
        .await;
    assert_error(&result, "unknown_action_type");
    assert_eq!(result["action_type"], "echo.nope.result", "{result}");
    assert_eq!(result["correlation_id"], id.as_str(), "{result}");
}
