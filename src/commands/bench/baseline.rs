//! The baseline: the same steps written by hand against async-nats, with no framework.
//!
//! Same stream settings as ECHO (copied from its definition, renamed BENCH), same consumer
//! settings as `echo-actions`, the same ~400-byte action, and a worker that parses the
//! action, builds a result action with a derived id, sends it (JetStream with the ack
//! awaited for a callbacks subject, a plain publish for an inbox or rpc reply) and acks,
//! 64 messages at a time with `for_each_concurrent`.

use async_nats::jetstream::{self, consumer::PullConsumer};
use async_nats::{Client, HeaderMap};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::harness::{Measured, Router, closed_loop, payload};
use super::{Path, Timing};

const CONCURRENCY: usize = 64;

#[derive(Serialize)]
struct OutAction<'a, D: Serialize> {
    action_id: &'a str,
    action_type: &'a str,
    tenant_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_subject: Option<&'a str>,
    created_at: String,
    data: D,
}

#[derive(Deserialize)]
struct InAction<'a> {
    action_id: &'a str,
    action_type: &'a str,
    tenant_id: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Serialize)]
struct ResultData<'a> {
    status: &'a str,
    result: &'a RawValue,
    duration_ms: u64,
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Runs one scenario by hand.
pub async fn run(
    caller: &Client,
    worker_client: &Client,
    path: Path,
    in_flight: usize,
    timing: &Timing,
) -> Result<Measured, String> {
    let js = jetstream::new(worker_client.clone());
    let worker = match path {
        Path::RpcLimit => {
            let requests = worker_client
                .queue_subscribe("bench.*.rpc", "bench".into())
                .await
                .map_err(|e| e.to_string())?;
            let client = worker_client.clone();
            let reply_body = bytes::Bytes::from_static(b"{\"data\":{\"status\":\"success\"}}");
            tokio::spawn(async move {
                requests
                    .for_each_concurrent(CONCURRENCY, |msg| {
                        let (client, body) = (client.clone(), reply_body.clone());
                        async move {
                            if let Some(reply) = msg.reply {
                                let _ = client.publish(reply, body).await;
                            }
                        }
                    })
                    .await
            })
        }
        Path::Rpc => {
            let requests = worker_client
                .queue_subscribe("bench.*.rpc", "bench".into())
                .await
                .map_err(|e| e.to_string())?;
            let client = worker_client.clone();
            tokio::spawn(async move {
                requests
                    .for_each_concurrent(CONCURRENCY, |msg| {
                        let client = client.clone();
                        async move {
                            if let (Some(reply), Some((headers, body))) =
                                (msg.reply.clone(), answer(&msg.payload, false))
                            {
                                let _ = client
                                    .publish_with_headers(reply, headers, body.into())
                                    .await;
                            }
                        }
                    })
                    .await
            })
        }
        Path::DurableInbox | Path::DurableCallbacks => {
            let consumer = bench_consumer(&js).await?;
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            let client = worker_client.clone();
            tokio::spawn(async move {
                messages
                    .for_each_concurrent(CONCURRENCY, |msg| {
                        let (client, js) = (client.clone(), js.clone());
                        async move {
                            let Ok(msg) = msg else { return };
                            let callback = msg
                                .headers
                                .as_ref()
                                .and_then(|h| h.get("callback_subject"))
                                .map(|v| v.as_str().to_owned());
                            if let (Some(callback), Some((headers, body))) =
                                (callback, answer(&msg.payload, true))
                            {
                                if callback.starts_with("_INBOX.") {
                                    let _ = client
                                        .publish_with_headers(callback, headers, body.into())
                                        .await;
                                } else if let Ok(ack) = js
                                    .publish_with_headers(callback, headers, body.into())
                                    .await
                                {
                                    let _ = ack.await;
                                }
                            }
                            let _ = msg.ack().await;
                        }
                    })
                    .await
            })
        }
    };

    let caller_js = jetstream::new(caller.clone());
    let measured = match path {
        Path::Rpc | Path::RpcLimit => {
            let parse = matches!(path, Path::Rpc);
            // The server must have the responder's subscription before measuring starts.
            let mut ready = false;
            for _ in 0..500 {
                let (headers, body) = action(&Uuid::now_v7().to_string(), None, 0)?;
                if caller
                    .request_with_headers("bench.bench.rpc", headers, body.into())
                    .await
                    .is_ok()
                {
                    ready = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            if !ready {
                return Err("the baseline responder did not answer within 5s".into());
            }
            let caller = caller.clone();
            closed_loop(in_flight, timing, move |seq| {
                let caller = caller.clone();
                async move {
                    let id = Uuid::now_v7().to_string();
                    let (headers, body) = action(&id, None, seq)?;
                    let reply = caller
                        .request_with_headers("bench.bench.rpc", headers, body.into())
                        .await
                        .map_err(|e| e.to_string())?;
                    if parse {
                        serde_json::from_slice::<InAction>(&reply.payload)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            })
            .await
        }
        Path::DurableInbox | Path::DurableCallbacks => {
            let callback = match path {
                Path::DurableInbox => caller.new_inbox(),
                _ => "bench.bench.callbacks".to_owned(),
            };
            let router = Router::start(
                caller
                    .subscribe(callback.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            );
            closed_loop(in_flight, timing, move |seq| {
                let (js, router, callback) = (caller_js.clone(), router.clone(), callback.clone());
                async move {
                    let id = Uuid::now_v7().to_string();
                    let (headers, body) = action(&id, Some(&callback), seq)?;
                    let result = router.expect(id);
                    let ack = js
                        .publish_with_headers("bench.bench.actions", headers, body.into())
                        .await
                        .map_err(|e| e.to_string())?;
                    ack.await.map_err(|e| e.to_string())?;
                    result.await.map_err(|e| e.to_string())
                }
            })
            .await
        }
    };
    worker.abort();
    measured
}

/// The action as a hand-written client would send it.
fn action(id: &str, callback: Option<&str>, seq: u64) -> Result<(HeaderMap, Vec<u8>), String> {
    let body = serde_json::to_vec(&OutAction {
        action_id: id,
        action_type: "echo.ping",
        tenant_id: super::TENANT,
        correlation_id: None,
        callback_subject: callback,
        created_at: now(),
        data: payload(seq),
    })
    .map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert("action_type", "echo.ping");
    headers.insert("Nats-Msg-Id", id);
    headers.insert("content-type", "application/json");
    if let Some(callback) = callback {
        headers.insert("callback_subject", callback);
    }
    Ok((headers, body))
}

/// Parses an action and builds its result, as the framework's worker does: with a
/// `Nats-Msg-Id` only if the result may be `stored` (an rpc reply never is).
fn answer(payload: &[u8], stored: bool) -> Option<(HeaderMap, Vec<u8>)> {
    let request: InAction = serde_json::from_slice(payload).ok()?;
    let result_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, request.action_id.as_bytes()).to_string();
    let result_type = format!("{}.result", request.action_type);
    let body = serde_json::to_vec(&OutAction {
        action_id: &result_id,
        action_type: &result_type,
        tenant_id: request.tenant_id,
        correlation_id: Some(request.action_id),
        callback_subject: None,
        created_at: now(),
        data: ResultData {
            status: "success",
            result: request.data,
            duration_ms: 0,
        },
    })
    .ok()?;
    let mut headers = HeaderMap::new();
    headers.insert("action_type", result_type.as_str());
    if stored {
        headers.insert("Nats-Msg-Id", result_id.as_str());
    }
    headers.insert("correlation_id", request.action_id);
    Some((headers, body))
}

/// The BENCH stream, its history and its consumer: ECHO's, ECHO_HISTORY's and the
/// per-tenant echo consumer's definitions, renamed, so the server does the same work for
/// both sides (a work queue that republishes every action into a history stream).
async fn bench_consumer(js: &jetstream::Context) -> Result<PullConsumer, String> {
    let echo_domain = shared::Domain::new("echo").map_err(|e| e.to_string())?;
    let definitions = shared::streams::Definitions::built_in()
        .and_then(|d| d.for_domain(&echo_domain))
        .map_err(|e| e.to_string())?;
    let stream_named = |name: &str| {
        definitions
            .streams
            .iter()
            .find(|d| d.stream.name == name)
            .map(|d| d.stream.clone())
            .ok_or(format!("no {name} definition"))
    };
    let mut history = stream_named("ECHO_HISTORY")?;
    history.name = "BENCH_HISTORY".into();
    history.subjects = vec!["history.bench.*.actions".into()];
    let mut stream = stream_named("ECHO")?;
    stream.name = "BENCH".into();
    stream.subjects = vec!["bench.*.actions".into(), "bench.*.callbacks".into()];
    if let Some(republish) = stream.republish.as_mut() {
        republish.source = "bench.*.actions".into();
        republish.destination = "history.bench.{{wildcard(1)}}.actions".into();
    }
    for stream in [history, stream] {
        js.create_or_update_stream(stream)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut consumer = definitions
        .tenant_consumer(&echo_domain, super::TENANT)
        .ok_or("no per-tenant echo consumer definition")?;
    consumer.durable_name = Some("bench-actions".into());
    consumer.filter_subject = format!("bench.{}.actions", super::TENANT);
    js.create_consumer_on_stream(consumer, "BENCH")
        .await
        .map_err(|e| e.to_string())
}
