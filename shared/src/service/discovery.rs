//! NATS micro service discovery, answered by the worker itself: `$SRV.PING`, `$SRV.INFO`
//! and `$SRV.STATS`, each for every service, for one service by name, and for one
//! instance by id (ADR-32, the protocol `nats micro ls` and every NATS client's service
//! API speak).
//!
//! async-nats' service API answers these, but it also wraps each request of its endpoints:
//! a clock read, a clone of the client and of the endpoint's name per request, a broadcast
//! receiver polled on every poll of the endpoint, a mutex and a hashed lookup by name at
//! every reply. On the rpc path that was about a tenth of the worker's time per request
//! (measured with `perf record --call-graph dwarf` under `domain-actions bench`). The
//! protocol itself is three small JSON documents, so the worker serves its endpoint as a
//! plain queue subscription (the same queue group, `q`, as the service API uses, so
//! workers of either kind share requests) and answers discovery here, counting requests
//! with three relaxed atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The queue group of the rpc endpoint: async-nats' (and every NATS client's) default.
pub(crate) const QUEUE_GROUP: &str = "q";

/// What `$SRV.STATS` reports of the endpoint.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    nanos: AtomicU64,
}

impl Counters {
    /// Counts one answered request: whether its answer was an error, and how long its
    /// handler took.
    pub fn answered(&self, failed: bool, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Who this instance is, as discovery describes it.
pub(crate) struct Identity {
    /// The service's name: the worker's domain.
    pub name: String,
    /// What it handles, for `$SRV.INFO`.
    pub description: String,
    /// Reported by every verb.
    pub version: String,
    /// The rpc endpoint's subject (`<domain>.*.rpc`).
    pub subject: String,
}

/// Answers discovery until dropped.
pub(crate) struct Discovery {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Ping,
    Info,
    Stats,
}

impl Discovery {
    /// Subscribes to the three verbs (all services, this name, this instance's id) and
    /// answers them on a task of their own.
    pub async fn start(
        client: &Client,
        who: Identity,
        counters: Arc<Counters>,
    ) -> Result<Self, async_nats::Error> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut subscriptions = Vec::new();
        for (verb, word) in [
            (Verb::Ping, "PING"),
            (Verb::Info, "INFO"),
            (Verb::Stats, "STATS"),
        ] {
            for subject in [
                format!("$SRV.{word}"),
                format!("$SRV.{word}.{}", who.name),
                format!("$SRV.{word}.{}.{id}", who.name),
            ] {
                let subscription = client.subscribe(subject).await?;
                subscriptions.push(subscription.map(move |message| (verb, message)).boxed());
            }
        }
        let mut asked = futures::stream::select_all(subscriptions);
        let started = OffsetDateTime::now_utc().format(&Rfc3339)?;
        let answers = Answers { who, id, started };
        let client = client.clone();
        let task = tokio::spawn(async move {
            while let Some((verb, message)) = asked.next().await {
                let Some(reply) = message.reply else { continue };
                let answer = answers.to(verb, &counters).to_string();
                if let Err(err) = client.publish(reply, answer.into()).await {
                    tracing::warn!(%err, "cannot answer service discovery");
                }
            }
        });
        Ok(Self { task })
    }
}

/// The three documents.
struct Answers {
    who: Identity,
    id: String,
    started: String,
}

impl Answers {
    fn to(&self, verb: Verb, counters: &Counters) -> Value {
        let who = &self.who;
        match verb {
            Verb::Ping => json!({
                "type": "io.nats.micro.v1.ping_response",
                "name": who.name,
                "id": self.id,
                "version": who.version,
                "metadata": {},
            }),
            Verb::Info => json!({
                "type": "io.nats.micro.v1.info_response",
                "name": who.name,
                "id": self.id,
                "description": who.description,
                "version": who.version,
                "metadata": {},
                "endpoints": [{
                    "name": "rpc",
                    "subject": who.subject,
                    "queue_group": QUEUE_GROUP,
                    "metadata": {},
                }],
            }),
            Verb::Stats => {
                let requests = counters.requests.load(Ordering::Relaxed);
                let nanos = counters.nanos.load(Ordering::Relaxed);
                json!({
                    "type": "io.nats.micro.v1.stats_response",
                    "name": who.name,
                    "id": self.id,
                    "version": who.version,
                    "started": self.started,
                    "endpoints": [{
                        "name": "rpc",
                        "subject": who.subject,
                        "queue_group": QUEUE_GROUP,
                        "num_requests": requests,
                        "num_errors": counters.errors.load(Ordering::Relaxed),
                        "processing_time": nanos,
                        "average_processing_time": nanos.checked_div(requests).unwrap_or(0),
                        "last_error": "",
                    }],
                })
            }
        }
    }
}
