//! Crashes and faults under load: a worker process killed with SIGKILL, and nats-server
//! restarted (SIGTERM, and SIGKILL with the `always` sync profile) while actions flow.
//!
//! What is checked is what a user relies on: every action whose publish was acknowledged
//! gets exactly one result stored in the `echo.acme.callbacks` subject (read back from the
//! ECHO stream, by correlation id), and nothing lands in the DLQ. Results are deduplicated
//! by their derived `Nats-Msg-Id`, so an action handled twice across a crash still has one
//! stored result. Each test prints its figures (sent, acknowledged, results, lost,
//! duplicated).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use futures::TryStreamExt;
use serde_json::json;
use testkit::TestServer;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout};

use crate::harness::*;

/// How long a crash test waits for every result: redeliveries after a kill wait out the
/// ack wait, and a worker notices lost pull requests only after three heartbeats.
const SETTLE: Duration = Duration::from_secs(50);

/// Settings of the worker processes: a short ack wait, so what a killed worker held is
/// redelivered soon.
const WORKER_SETTINGS: [(&str, &str); 1] = [("DA_ACK_WAIT", "2s")];

#[tokio::test(flavor = "multi_thread")]
async fn killed_worker_process_loses_and_duplicates_nothing() {
    const ACTIONS_SENT: usize = 3000;
    let env = Env::server_only().await;
    let mut first = WorkerProcess::spawn(&env.url(), &WORKER_SETTINGS);
    env.wait_service("echo").await;

    // Pipelined: every publish goes out before the first acknowledgement is awaited, so
    // the worker is busy with thousands while the test decides when to kill it.
    let mut ids = Vec::with_capacity(ACTIONS_SENT);
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(ACTIONS_SENT);
    for _ in 0..ACTIONS_SENT {
        let id = new_id();
        let body = action_body(&id, "echo.sleep", json!({"ms": 20}));
        let headers = action_headers("echo.sleep", &id, CALLBACKS);
        let ack = env
            .js
            .publish_with_headers(ACTIONS, headers, body.into())
            .await
            .expect("publish");
        acks.push(ack);
        ids.push(id);
    }
    for ack in acks {
        timeout(WAIT, ack.into_future())
            .await
            .expect("publish acknowledged in time")
            .expect("publish acknowledged");
    }

    let at_kill = env
        .wait_consumer("part-way through, with actions in flight", |c| {
            c.ack_floor.stream_sequence >= (ACTIONS_SENT / 5) as u64 && c.num_ack_pending > 0
        })
        .await;
    first.kill().await;
    let second = WorkerProcess::spawn(&env.url(), &WORKER_SETTINGS);

    let sent: HashSet<String> = ids.into_iter().collect();
    let results = wait_for_results(&env, &sent).await;
    let figures = Figures::of(&sent, &sent, &results);
    eprintln!(
        "worker kill -9 with {} in flight (ack floor {}): {figures}",
        at_kill.num_ack_pending, at_kill.ack_floor.stream_sequence
    );
    figures.assert_exactly_once(&second.log());
    env.assert_stored(CALLBACKS, ACTIONS_SENT).await;
    assert_no_dead_letters(&env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_server_restart_under_load_loses_nothing() {
    server_restart_under_load(TestServer::start().await, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_server_with_always_sync_loses_nothing_acknowledged() {
    let config = platform::nats_server::repo_root().join("nats/server-always.conf");
    server_restart_under_load(TestServer::start_with_config(&config).await, true).await;
}

/// Publishes actions from several concurrent publishers while a worker process handles
/// them, restarts `server` (SIGKILL when `kill`, else SIGTERM) part-way, and checks that
/// every acknowledged action has exactly one result, with no reconnect done by hand.
async fn server_restart_under_load(server: TestServer, kill: bool) {
    const PUBLISHERS: usize = 8;
    const PER_PUBLISHER: usize = 150;
    let mut env = Env::on_server(server).await;
    let worker = WorkerProcess::spawn(&env.url(), &WORKER_SETTINGS);
    env.wait_service("echo").await;

    let mut publishers = JoinSet::new();
    for _ in 0..PUBLISHERS {
        let js = env.js.clone();
        publishers.spawn(async move {
            let mut sent = Vec::new();
            let mut acked = Vec::new();
            for _ in 0..PER_PUBLISHER {
                let id = new_id();
                if publish_with_retries(&js, &id).await {
                    acked.push(id.clone());
                }
                sent.push(id);
            }
            (sent, acked)
        });
    }

    env.wait_consumer("handling the load", |c| {
        c.ack_floor.stream_sequence >= (PUBLISHERS * PER_PUBLISHER / 5) as u64
    })
    .await;
    env.server.restart(kill).await;

    let mut sent = HashSet::new();
    let mut acked = HashSet::new();
    while let Some(joined) = publishers.join_next().await {
        let (s, a) = joined.expect("publisher task");
        sent.extend(s);
        acked.extend(a);
    }
    let results = wait_for_results(&env, &acked).await;
    let figures = Figures::of(&sent, &acked, &results);
    let how = if kill {
        "kill -9 (sync always)"
    } else {
        "SIGTERM"
    };
    eprintln!("nats-server {how} under load: {figures}");
    figures.assert_exactly_once(&worker.log());
    assert_no_dead_letters(&env).await;
}

/// Publishes one `echo.ping` action with id `id` to `echo.acme.actions` (results to
/// `echo.acme.callbacks`), retrying with the same `Nats-Msg-Id` while the server is away
/// (the stream's duplicate window makes a retry of a stored publish harmless). Whether
/// the stream acknowledged it in the end.
async fn publish_with_retries(js: &async_nats::jetstream::Context, id: &str) -> bool {
    let body = bytes::Bytes::from(action_body(id, "echo.ping", json!({"id": id})));
    for _ in 0..10 {
        let headers = action_headers("echo.ping", id, CALLBACKS);
        let attempt = async {
            js.publish_with_headers(ACTIONS, headers, body.clone())
                .await?
                .await
                .map_err(async_nats::Error::from)
        };
        match timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(_)) => return true,
            _ => sleep(Duration::from_millis(200)).await,
        }
    }
    false
}

/// Waits (bounded by [`SETTLE`]) until every action of `expected` has a result stored on
/// `echo.acme.callbacks`, then a little longer for results that must not come; returns
/// how many results each correlation id has.
async fn wait_for_results(env: &Env, expected: &HashSet<String>) -> HashMap<String, usize> {
    let deadline = Instant::now() + SETTLE;
    // After a server restart the test's own connection may still be reconnecting.
    let js = &env.js;
    eventually("the ECHO stream after the restart", || async move {
        js.get_stream(ECHO).await.ok()
    })
    .await;
    loop {
        let results = stored_results(env).await;
        if expected.iter().all(|id| results.contains_key(id)) {
            sleep(QUIET).await;
            return stored_results(env).await;
        }
        if Instant::now() > deadline {
            return results;
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// Every result stored on `echo.acme.callbacks`, counted by correlation id; read back by
/// sequence, as a user would read the work queue.
async fn stored_results(env: &Env) -> HashMap<String, usize> {
    let stream = env.js.get_stream(ECHO).await.expect("ECHO stream");
    let mut results = HashMap::new();
    for message in read_stored(&stream, CALLBACKS).await {
        let result: serde_json::Value =
            serde_json::from_slice(&message.payload).expect("a result is JSON");
        assert_eq!(result["data"]["status"], "success", "{result}");
        let id = result["correlation_id"]
            .as_str()
            .expect("correlation_id")
            .to_owned();
        *results.entry(id).or_default() += 1;
    }
    results
}

/// How many messages `stream` stores on subjects matching `filter`.
async fn stored_on(stream: &async_nats::jetstream::stream::Stream, filter: &str) -> usize {
    let mut subjects = stream
        .info_with_subjects(filter)
        .await
        .expect("stream info");
    let mut count = 0;
    while let Some((_, n)) = subjects.try_next().await.expect("stream subjects") {
        count += n;
    }
    count
}

/// Asserts the DLQ stream holds no dead letter at all (every action here succeeds).
async fn assert_no_dead_letters(env: &Env) {
    let Ok(stream) = env.js.get_stream(shared::streams::DLQ_STREAM).await else {
        return;
    };
    let letters = stored_on(&stream, shared::subject::ALL_DEAD_LETTERS).await;
    assert_eq!(letters, 0, "dead letters after the crash");
}

/// The figures of a crash test.
struct Figures {
    sent: usize,
    acknowledged: usize,
    results: usize,
    /// Acknowledged actions without a result.
    lost: Vec<String>,
    /// Actions with more than one result.
    duplicated: Vec<String>,
    /// Results of no action this test sent.
    strangers: Vec<String>,
}

impl Figures {
    fn of(
        sent: &HashSet<String>,
        acked: &HashSet<String>,
        results: &HashMap<String, usize>,
    ) -> Self {
        Self {
            sent: sent.len(),
            acknowledged: acked.len(),
            results: results.values().sum(),
            lost: acked
                .iter()
                .filter(|id| !results.contains_key(*id))
                .cloned()
                .collect(),
            duplicated: results
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, _)| id.clone())
                .collect(),
            strangers: results
                .keys()
                .filter(|id| !sent.contains(*id))
                .cloned()
                .collect(),
        }
    }

    fn assert_exactly_once(&self, log: &str) {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        assert!(
            self.lost.is_empty() && self.duplicated.is_empty() && self.strangers.is_empty(),
            "{self}: lost {:?}, duplicated {:?}, unknown {:?}; worker log tail:\n{}",
            self.lost.iter().take(10).collect::<Vec<_>>(),
            self.duplicated.iter().take(10).collect::<Vec<_>>(),
            self.strangers.iter().take(10).collect::<Vec<_>>(),
            tail.join("\n")
        );
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, acknowledged {}, results {}, lost {}, duplicated {}",
            self.sent,
            self.acknowledged,
            self.results,
            self.lost.len(),
            self.duplicated.len()
        )
    }
}
