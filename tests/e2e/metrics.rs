//! `domain-actions worker echo --metrics-addr`: the real process serves its worker metrics in
//! the Prometheus text format, and they count what happened to the actions sent to it.

use std::time::Duration;

use serde_json::json;
use tokio::time::{Instant, sleep};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn worker_process_serves_handled_errors_and_dead_letters() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::server_only().await;
    let addr = free_loopback_addr();
    let mut command = domain_actions(&["worker", "echo", "--metrics-addr", &addr]);
    command
        .env("NATS_URL", env.url())
        .env("DA_RETRY_BACKOFF", "100ms")
        .env("DA_MAX_DELIVER", "2");
    let _worker = command.spawn().expect("start domain-actions worker");
    env.wait_service("echo").await;

    let (inbox, mut results) = env.inbox().await;
    for n in 0..3 {
        env.send_action("echo.ping", json!({ "n": n }), &inbox)
            .await;
    }
    env.send_action("echo.fail", json!({ "retryable": false }), &inbox)
        .await;
    // Retried once, then dead-lettered on its last (second) delivery.
    env.send_action("echo.fail", json!({ "retryable": true }), &inbox)
        .await;
    // Poison: not JSON, so neither its type nor a callback can be read.
    env.publish(ACTIONS, headers(&[("action_type", "echo.ping")]), b"{oops")
        .await;
    for _ in 0..5 {
        next_json(&mut results).await;
    }
    env.dead_letters(DLQ_ACME, 3).await;

    let http = reqwest::Client::new();
    let handled = |action_type: &str, outcome: &str| {
        format!(
            r#"da_actions_handled_total{{domain="echo",tenant="acme",action_type="{action_type}",outcome="{outcome}"}}"#
        )
    };
    let errors = |code: &str| {
        format!(r#"da_action_errors_total{{domain="echo",tenant="acme",code="{code}"}}"#)
    };
    let letters = |reason: &str| {
        format!(r#"da_dead_letters_total{{domain="echo",tenant="acme",reason="{reason}"}}"#)
    };
    let expected = [
        (handled("echo.ping", "success"), 3.0),
        (handled("echo.fail", "dead_lettered"), 2.0),
        (handled("echo.fail", "retried"), 1.0),
        (handled("_unknown", "dead_lettered"), 1.0),
        (errors("handler_error"), 1.0),
        (errors("unavailable"), 2.0),
        (errors("invalid_action"), 1.0),
        (letters("handler_error"), 1.0),
        (letters("unavailable"), 1.0),
        (letters("invalid_action"), 1.0),
        (
            r#"da_redeliveries_total{domain="echo",tenant="acme"}"#.to_owned(),
            1.0,
        ),
        (
            r#"da_handler_duration_seconds_count{domain="echo",action_type="echo.ping"}"#
                .to_owned(),
            3.0,
        ),
        (r#"da_actions_in_flight{domain="echo"}"#.to_owned(), 0.0),
    ];
    // The counters follow the acknowledgements, which follow the results: wait for them.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = scrape(&http, &addr).await.unwrap_or_default();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, n)| metric_value(&text, series) != Some(*n))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "not in /metrics within {WAIT:?}: {missing:?}\n{text}"
        );
        sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("# TYPE da_handler_duration_seconds histogram"),
        "{text}"
    );
}

/// The trace id of a `traceparent` header, as the 16 bytes OTLP carries.
fn trace_id_bytes(traceparent: &str) -> Vec<u8> {
    let hex = traceparent.split('-').nth(1).expect("trace id");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_process_exports_spans_over_otlp_when_an_endpoint_is_set() {
    // A collector: every OTLP/HTTP traces request, with its content type.
    let (requests, mut received) = tokio::sync::mpsc::unbounded_channel();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let content_type = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let _ = requests.send((content_type, body));
            async {}
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let env = Env::server_only().await;
    let mut command = domain_actions(&["worker", "echo"]);
    command
        .env("NATS_URL", env.url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let _worker = command.spawn().expect("start domain-actions worker");
    env.wait_service("echo").await;

    let chain = Chain::new("otlp");
    let (inbox, mut results) = env.inbox().await;
    let id = new_id();
    let mut headers = action_headers("echo.ping", &id, &inbox);
    chain.add_to(&mut headers);
    let body = action_body(&id, "echo.ping", json!({ "traced": true }));
    env.publish(ACTIONS, headers, &body).await;
    next_json(&mut results).await;

    // The worker's span for the action is a child of the caller's context: same trace id.
    let trace_id = trace_id_bytes(&chain.traceparent);
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((content_type, body))) = tokio::time::timeout(left, received.recv()).await
        else {
            panic!(
                "no span of trace {} exported within {WAIT:?}",
                chain.traceparent
            );
        };
        assert_eq!(content_type, "application/x-protobuf");
        if body
            .windows(trace_id.len())
            .any(|w| w == trace_id.as_slice())
        {
            break;
        }
    }
}
