//! Several `worker embedding` processes share one backlog. A local model runs one batch at a
//! time, so each worker takes at most two actions at once (`Dispatcher::with_capacity`):
//! the rest wait in the stream for whichever worker is free, instead of queueing inside the
//! first worker that asked while another sits idle.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::time::{Instant, sleep, timeout};

use crate::harness::*;

const ACTIONS: &str = "embedding.acme.actions";
const BATCHES: usize = 12;
const HANDLED: &str = r#"da_actions_handled_total{domain="embedding",tenant="acme",action_type="embedding.generate",outcome="success"}"#;

/// Texts of a few lengths, different in every batch.
fn batch_texts(batch: usize) -> Vec<String> {
    (0..32)
        .map(|i| {
            let words = 8 + (i % 4) * 12;
            (0..words)
                .map(|w| format!("word{}", (batch * 31 + i * 7 + w) % 97))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Waits until `count` distinct instances of the embedding service answer `$SRV.PING`.
async fn wait_for_instances(env: &Env, count: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let inbox = env.client.new_inbox();
        let mut replies = env
            .client
            .subscribe(inbox.clone())
            .await
            .expect("subscribe");
        env.client
            .publish_with_reply("$SRV.PING.embedding", inbox, Default::default())
            .await
            .expect("ping");
        let mut ids = HashSet::new();
        while let Ok(Some(reply)) = timeout(Duration::from_millis(300), replies.next()).await {
            // No worker yet: the server answers "no responders", with no body.
            let answer: serde_json::Value =
                serde_json::from_slice(&reply.payload).unwrap_or_default();
            if let Some(id) = answer["id"].as_str() {
                ids.insert(id.to_owned());
            }
        }
        if ids.len() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} embedding workers answered within {WAIT:?}",
            ids.len()
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_embedding_workers_both_take_batches() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::server_only().await;
    let addrs = [free_loopback_addr(), free_loopback_addr()];
    let workers: Vec<WorkerProcess> = addrs
        .iter()
        .map(|addr| {
            WorkerProcess::spawn_args(
                &["worker", "embedding", "--metrics-addr", addr],
                &env.url(),
                &[],
            )
        })
        .collect();
    wait_for_instances(&env, 2).await;

    let (inbox, mut results) = env.inbox().await;
    for batch in 0..BATCHES {
        let id = new_id();
        let body = action_body(
            &id,
            "embedding.generate",
            json!({ "texts": batch_texts(batch), "kind": "document" }),
        );
        env.publish(
            ACTIONS,
            action_headers("embedding.generate", &id, &inbox),
            &body,
        )
        .await;
    }
    for _ in 0..BATCHES {
        let (_, result) = next_json(&mut results).await;
        assert_eq!(result["data"]["status"], "success", "{result}");
        assert_eq!(
            result["data"]["result"]["vectors"].as_array().map(Vec::len),
            Some(32),
            "{result}"
        );
    }

    // Each worker counts what it handled; both must have taken some, together all.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    let handled = loop {
        let mut handled = Vec::new();
        for addr in &addrs {
            let text = scrape(&http, addr).await.unwrap_or_default();
            handled.push(metric_value(&text, HANDLED).unwrap_or(0.0) as usize);
        }
        if handled.iter().sum::<usize>() == BATCHES {
            break handled;
        }
        assert!(
            Instant::now() < deadline,
            "the workers counted {handled:?} of {BATCHES} batches within {WAIT:?}; logs:\n{}\n{}",
            workers[0].log(),
            workers[1].log()
        );
        sleep(Duration::from_millis(50)).await;
    };
    assert!(
        handled.iter().all(|&n| n > 0),
        "one worker took every batch: {handled:?}"
    );
}
