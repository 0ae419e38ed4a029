//! A three-node cluster (`nats/cluster/`, as `compose.yaml` runs it): streams applied at R3
//! lose no acknowledged action when the ECHO stream's leader is killed mid-run, and the
//! worker carries on against the new leader.
//!
//! What a kill -9 of the leader looks like from the clients, and what this test allows for:
//! - ECHO has no leader until the two others elect one (raft election timeout, 4–9 s).
//!   Only a leader listens on a stream's subjects, so meanwhile every publish gets "no
//!   responders" at once; publishes the dead leader had not answered time out (5 s).
//!   Neither counts as acknowledged: the publisher sends them again with the same id.
//! - The worker sends a result that could not be stored again across the election
//!   (`shared/src/worker/resend.rs`) rather than naking the action into its 1 s / 5 s / 30 s
//!   backoff. Before it did, results of actions caught in the election came ~30 s late and
//!   this test, reading for 30 s, missed them (not lost, late).
//! - Actions the old consumer leader had sent that never reached the worker, and acks it
//!   received but had not replicated, are delivered again one ack wait (30 s) after their
//!   first delivery; so results are awaited until the kill plus one ack wait and a margin.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use platform::http::ApiKeys;
use platform::kv::JsonBucket;
use shared::streams::Definitions;
use shared::{Domain, Settings, WorkerConfig};
use testkit::{self, Cluster};
use tokio::time::{Instant, timeout};

use crate::harness::{
    ACTIONS, CALLBACKS, ECHO, ECHO_ACTIONS, Env, action_body, action_headers, new_id,
    try_read_stored,
};

/// Actions published in the run; the leader is killed after half of them.
const TOTAL: usize = 3000;
/// Publishes awaiting their acknowledgement at once.
const IN_FLIGHT: usize = 128;
/// The whole test, cluster start included.
const OVERALL: Duration = Duration::from_secs(60);

/// After the kill, how long results may still take beyond one ack wait.
const RESULTS_MARGIN: Duration = Duration::from_secs(12);
/// The pause before publishes that were not acknowledged are sent again.
const RESEND_PAUSE: Duration = Duration::from_millis(250);
/// A durable callbacks subject of another domain, whose stream the echo worker does not make.
const QUERY_CALLBACKS: &str = "query.acme.callbacks";

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_stream_leader_loses_no_acknowledged_action() {
    timeout(OVERALL, leader_killed_mid_run())
        .await
        .unwrap_or_else(|_| panic!("the cluster run did not finish within {OVERALL:?}"));
}

async fn leader_killed_mid_run() {
    let mut cluster = Cluster::start().await;
    // The setting compose.yaml sets; the worker applies its streams with it.
    let settings = settings_at_r3();
    // The shipped retry backoff (1s, 5s, 30s), not the tests' quick one: a result that
    // cannot be stored while the stream elects a new leader is retried across the election
    // instead of using up its deliveries and being dead-lettered.
    let config = WorkerConfig {
        // Re-pull soon after the consumer's leader goes away (no timing is asserted).
        pull_expires: Duration::from_secs(3),
        drain_timeout: Duration::from_secs(10),
        ..WorkerConfig::from_settings(&settings)
    };
    assert_eq!(config.replicas, 3);
    let client = cluster.client().await;
    let js = jetstream::new(client.clone());
    apply_at_r3(&js, &settings).await;
    let worker =
        testkit::spawn_worker(cluster.client().await, echo::dispatcher(), config.clone()).await;

    let stream_info = js
        .get_stream(ECHO)
        .await
        .expect("ECHO stream")
        .info()
        .await
        .expect("ECHO info")
        .clone();
    assert_eq!(stream_info.config.num_replicas, 3);
    let leader = stream_info
        .cluster
        .and_then(|c| c.leader)
        .expect("ECHO has a leader");

    // acme's consumer is made once acme has work; its ack wait is the template's.
    let echo = Domain::new("echo").expect("domain");
    let ack_wait = Definitions::built_in()
        .and_then(|d| d.for_domain(&echo))
        .expect("echo definitions")
        .with_delivery(&echo, config.ack_wait, config.max_deliver)
        .tenant_consumer(&echo, "acme")
        .expect("acme's consumer")
        .ack_wait;

    let ids: Vec<String> = (0..TOTAL).map(|_| new_id()).collect();
    let mut acked: HashSet<String> = HashSet::new();
    let mut unacked: Vec<String> = Vec::new();
    let mut pending = FuturesUnordered::new();
    let mut killed_at = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        if i == TOTAL / 2 {
            cluster.kill(&leader).await;
            killed_at = Instant::now();
        }
        if pending.len() >= IN_FLIGHT
            && let Some((id, ok)) = pending.next().await
        {
            record(id, ok, &mut acked, &mut unacked);
        }
        pending.push(publish(&js, id.clone()));
    }
    while let Some((id, ok)) = pending.next().await {
        record(id, ok, &mut acked, &mut unacked);
    }
    // A client whose publish was not acknowledged (no responders while ECHO elects a
    // leader, or no answer from the killed one) sends it again with the same id, after a
    // pause; the stream's duplicate window keeps it to one stored action. Acknowledged
    // means the stream answered with a PubAck (`duplicate` or not).
    let deadline = Instant::now() + Duration::from_secs(15);
    let first_pass = acked.len();
    while !unacked.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(RESEND_PAUSE).await;
        let retry: FuturesUnordered<_> = unacked.drain(..).map(|id| publish(&js, id)).collect();
        for (id, ok) in retry.collect::<Vec<_>>().await {
            record(id, ok, &mut acked, &mut unacked);
        }
    }
    assert!(
        acked.len() > TOTAL / 2,
        "only {} of {TOTAL} publishes acknowledged",
        acked.len()
    );

    let results = results_covering(&js, &acked, killed_at + ack_wait + RESULTS_MARGIN).await;
    let results_at = Instant::now();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !results.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        // Whether they are late rather than lost: read once more a little later.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let late = read_results(&js).await.map(|again| {
            missing
                .iter()
                .filter(|id| again.contains_key(id.as_str()))
                .count()
        });
        let consumer = js
            .get_stream(ECHO)
            .await
            .expect("ECHO stream")
            .consumer_info(ECHO_ACTIONS)
            .await
            .map(|c| {
                format!(
                    "delivered {:?}, ack floor {:?}, pending {}, ack pending {}, redelivered {}, waiting {}, leader {:?}",
                    c.delivered,
                    c.ack_floor,
                    c.num_pending,
                    c.num_ack_pending,
                    c.num_redelivered,
                    c.num_waiting,
                    c.cluster.and_then(|c| c.leader)
                )
            });
        let actions_stored = stored_on(&js, ACTIONS).await;
        let dead_letters = js
            .get_stream(shared::streams::DLQ_STREAM)
            .await
            .expect("DLQ stream")
            .info()
            .await
            .map(|info| info.state.messages);
        panic!(
            "{} of {} acknowledged actions have no result ({} actions with results, {} results, \
             {} ids with several, e.g. {:?}; dead letters {dead_letters:?}; actions stored {actions_stored:?}), e.g. {:?}; \
             {late:?} of them stored 3 s later; echo-actions: {consumer:?}",
            missing.len(),
            acked.len(),
            results.len(),
            results.values().sum::<usize>(),
            results.values().filter(|n| **n > 1).count(),
            results.iter().find(|(_, n)| **n > 1),
            missing.first()
        );
    }
    let doubled: Vec<(&String, &usize)> = results.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "{} actions have more than one result, e.g. {:?}",
        doubled.len(),
        doubled.first()
    );

    let new_leader = js
        .get_stream(ECHO)
        .await
        .expect("ECHO stream")
        .info()
        .await
        .expect("ECHO info")
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .expect("ECHO has a new leader");
    assert_ne!(new_leader, leader, "the killed node still leads ECHO");
    eprintln!(
        "cluster: {first_pass} of {TOTAL} acknowledged at first, {} after resending; \
         {} results, all stored {:.1?} after the kill; ECHO leader {leader} killed, now {new_leader}",
        acked.len(),
        results.len(),
        results_at - killed_at
    );
    worker.stop().await;
}

/// What a worker does while a result's stream has no leader, on one node: a publish to a
/// subject no stream answers for gets "no responders", as on a cluster electing a stream
/// leader. The worker sends the result again until the stream answers, within the action's
/// first delivery: the handler does not run again and no delivery is used up (it used to
/// nak at once, so an election ate the 1 s and 5 s backoffs and the result came 30 s late).
#[tokio::test]
async fn a_result_its_stream_cannot_store_yet_is_sent_again_in_the_same_delivery() {
    // The shipped backoff and ack wait: half of it (15 s) is how long a result is resent.
    let env = Env::with_config(WorkerConfig {
        drain_timeout: Duration::from_secs(10),
        ..WorkerConfig::default()
    })
    .await;
    // The QUERY stream stores query.acme.callbacks; the echo worker does not create it.
    let sent = env
        .send_action("echo.ping", serde_json::json!({"n": 1}), QUERY_CALLBACKS)
        .await;
    // Time for the worker's first send to fail (the check holds either way).
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.js
        .create_stream(jetstream::stream::Config {
            name: "QUERY_RESULTS".to_owned(),
            subjects: vec![QUERY_CALLBACKS.to_owned()],
            ..Default::default()
        })
        .await
        .expect("a stream for the callbacks");
    let result = env.stored_last("QUERY_RESULTS", QUERY_CALLBACKS).await;
    let body: serde_json::Value = serde_json::from_slice(&result.payload).expect("a result");
    assert_eq!(body["correlation_id"], sent.id.as_str(), "{body}");
    let consumer = env.wait_idle(sent.ack.sequence).await;
    assert_eq!(
        (
            consumer.delivered.consumer_sequence,
            consumer.num_redelivered
        ),
        (1, 0),
        "the action was delivered again instead of its result being sent again"
    );
}

/// Buckets and the object store are created at `DA_STREAM_REPLICAS` like the streams, so
/// on a cluster losing a node loses no API keys, task state, agents, histories or document
/// originals (they used to be created with one replica whatever the setting).
#[tokio::test(flavor = "multi_thread")]
async fn buckets_and_the_object_store_are_created_at_the_configured_replicas() {
    timeout(OVERALL, buckets_at_r3())
        .await
        .unwrap_or_else(|_| panic!("the bucket run did not finish within {OVERALL:?}"));
}

async fn buckets_at_r3() {
    let cluster = Cluster::start().await;
    let settings = settings_at_r3();
    let replicas = settings.stream_replicas;
    let js = jetstream::new(cluster.client().await);
    // Each is retried while the cluster still gathers its peers (an R3 bucket needs all three).
    until_created("a JSON bucket", || async {
        JsonBucket::<String>::open(&js, "replicated", "replicas test", Duration::ZERO, replicas)
            .await
            .map(drop)
            .map_err(|err| err.to_string())
    })
    .await;
    until_created("the api_keys bucket", || async {
        ApiKeys::open(&js, replicas)
            .await
            .map(drop)
            .map_err(|err| err.to_string())
    })
    .await;
    until_created("the documents stores", || async {
        ingestion::documents::Documents::open(
            &js,
            replicas,
            ingestion::service::Limits::default().store_max_bytes,
        )
        .await
        .map(drop)
        .map_err(|err| err.to_string())
    })
    .await;
    for stream in [
        "KV_replicated",
        "KV_api_keys",
        "KV_documents",
        "KV_document_hashes",
        "OBJ_documents",
    ] {
        let info = js
            .get_stream(stream)
            .await
            .unwrap_or_else(|err| panic!("{stream}: {err}"))
            .info()
            .await
            .unwrap_or_else(|err| panic!("{stream} info: {err}"))
            .clone();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
    }
}

/// Runs `create` until it succeeds, for up to 20 s; panics with the last error after that.
async fn until_created<F, Fut>(what: &str, create: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match create().await {
            Ok(()) => return,
            Err(err) if Instant::now() > deadline => panic!("{what} at R3: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The settings compose.yaml gives the services: streams and buckets at three replicas.
fn settings_at_r3() -> Settings {
    Settings::from_vars(&HashMap::from([(
        "DA_STREAM_REPLICAS".to_owned(),
        "3".to_owned(),
    )]))
    .expect("settings")
}

/// Applies the echo domain's streams at the configured replicas, retrying while the
/// cluster still gathers its peers (an R3 stream needs all three).
async fn apply_at_r3(js: &jetstream::Context, settings: &Settings) {
    let definitions = Definitions::built_in()
        .expect("definitions")
        .for_domain(&Domain::new("echo").expect("domain"))
        .expect("echo definitions")
        .with_replicas(settings.stream_replicas);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match definitions.apply(js).await {
            Ok(()) => return,
            Err(err) if Instant::now() > deadline => panic!("streams at R3: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Publishes action `id` with its result to the durable callbacks subject; whether the
/// stream acknowledged it.
async fn publish(js: &jetstream::Context, id: String) -> (String, bool) {
    let body = Bytes::from(action_body(&id, "echo.ping", serde_json::json!({"n": id})));
    let headers = action_headers("echo.ping", &id, CALLBACKS);
    let acked = match js
        .publish_with_headers(ACTIONS.to_owned(), headers, body)
        .await
    {
        Ok(ack) => matches!(timeout(Duration::from_secs(5), ack).await, Ok(Ok(_))),
        Err(_) => false,
    };
    (id, acked)
}

fn record(id: String, ok: bool, acked: &mut HashSet<String>, unacked: &mut Vec<String>) {
    if ok {
        acked.insert(id);
    } else {
        unacked.push(id);
    }
}

/// How many results the ECHO stream holds per action id on the callbacks subject, read
/// once it holds one for every id in `expected` (or at `deadline`), and then to its end. A
/// read the cluster cannot serve yet (a consumer created during an election) is tried again.
async fn results_covering(
    js: &jetstream::Context,
    expected: &HashSet<String>,
    deadline: Instant,
) -> HashMap<String, usize> {
    loop {
        let last = read_results(js).await;
        let covered = last
            .as_ref()
            .is_ok_and(|results| expected.iter().all(|id| results.contains_key(id)));
        if covered || Instant::now() >= deadline {
            return last.unwrap_or_else(|err| panic!("reading the results: {err}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many messages the ECHO stream stores on `subject`.
async fn stored_on(js: &jetstream::Context, subject: &str) -> Result<usize, String> {
    let stream = js.get_stream(ECHO).await.map_err(|e| e.to_string())?;
    let mut subjects = stream
        .info_with_subjects(subject)
        .await
        .map_err(|e| e.to_string())?;
    let mut stored = 0;
    while let Some((name, n)) = subjects.try_next().await.map_err(|e| e.to_string())? {
        if name == subject {
            stored += n;
        }
    }
    Ok(stored)
}

/// Every result stored on the callbacks subject, counted by the action it answers.
async fn read_results(js: &jetstream::Context) -> Result<HashMap<String, usize>, String> {
    let stream = js.get_stream(ECHO).await.map_err(|e| e.to_string())?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for message in try_read_stored(&stream, CALLBACKS).await? {
        let body: serde_json::Value =
            serde_json::from_slice(&message.payload).map_err(|e| format!("a result: {e}"))?;
        let id = body["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *counts.entry(id).or_default() += 1;
    }
    Ok(counts)
}
