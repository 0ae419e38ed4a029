//! The rpc path: `<domain>.*.rpc`, served as a NATS micro service.
//!
//! Every worker is visible to `nats micro ls` and answers `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS` ([`discovery`]); requests are spread over instances by the endpoint's queue
//! group, and within an instance over its [lanes](RpcService::serve), one per runtime
//! thread. Each request goes through the same [`crate::pipeline`] as a durable action; what
//! is rpc about it is only here: the reply subject is checked before anything else (a
//! request that could only be answered outside its tenant is refused: dead-lettered, never
//! answered), and the outcome is the reply. Nothing is stored, so nothing is retried: a
//! retryable error goes back to the caller with `retryable: true`. Anything else that
//! fails is answered, then dead-lettered like a durable action.

mod discovery;

use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::action::decode::{Rejection, unreadable_type};
use crate::action::{ActionError, ActionResult, ResultAddress};
use crate::metrics::Outcome;
use crate::pipeline::layers::Handled;
use crate::pipeline::{Addressed, InFlight, Path, Pipeline, Verdict};
use crate::publish;
use crate::subject::{self, ActionSubject, Channel, Inboxes};
use crate::worker::dead_letter::Origin;
use discovery::{Counters, Discovery, Identity};

/// A started rpc endpoint with its discovery.
pub(crate) struct RpcService {
    endpoint: Arc<Endpoint>,
    lanes: Vec<Lane>,
    _discovery: Discovery,
}

/// One subscription of the endpoint's queue group and the requests it may run at once.
struct Lane {
    requests: Subscriber,
    capacity: usize,
}

/// What every request of the endpoint shares.
struct Endpoint {
    pipeline: Arc<Pipeline>,
    /// What `$SRV.STATS` reports.
    counters: Arc<Counters>,
}

impl RpcService {
    /// Subscribes to `<domain>.*.rpc` in the endpoint's queue group, once per lane, and
    /// starts answering discovery as service `<domain>` (reporting `version`); at most
    /// `concurrency` requests are handled at once, over all lanes.
    pub async fn start(
        pipeline: Arc<Pipeline>,
        concurrency: usize,
        version: &str,
    ) -> Result<Self, async_nats::Error> {
        let domain = pipeline.domain().clone();
        let types: Vec<&str> = pipeline
            .dispatcher
            .action_types()
            .map(|t| t.as_str())
            .collect();
        let client = pipeline.publisher.client().clone();
        let subject = subject::any_tenant(&domain, Channel::Rpc);
        let mut lanes = Vec::new();
        for capacity in lane_capacities(concurrency.max(1), runtime_threads()) {
            let requests = client
                .queue_subscribe(subject.clone(), discovery::QUEUE_GROUP.into())
                .await?;
            lanes.push(Lane { requests, capacity });
        }
        let counters = Arc::new(Counters::default());
        let who = Identity {
            name: domain.as_str().to_owned(),
            description: format!("Domain Actions service {domain}: {}", types.join(", ")),
            version: version.to_owned(),
            subject,
        };
        let discovery = Discovery::start(&client, who, counters.clone()).await?;
        Ok(Self {
            endpoint: Arc::new(Endpoint { pipeline, counters }),
            lanes,
            _discovery: discovery,
        })
    }

    /// Answers requests until `shutdown`, then lets in-flight ones finish.
    ///
    /// Each lane is a task that drives its own requests ([`InFlight`] says why a task
    /// drives many rather than spawning one per request): one task alone would answer on
    /// one thread at a time, and with it the whole endpoint, while the server spreads the
    /// queue group's requests over every lane, so each runtime thread gets a share.
    pub async fn serve(self, shutdown: CancellationToken) {
        let mut lanes = tokio::task::JoinSet::new();
        for lane in self.lanes {
            lanes.spawn(lane.serve(self.endpoint.clone(), shutdown.clone()));
        }
        while lanes.join_next().await.is_some() {}
    }
}

impl Lane {
    /// Answers this lane's requests until `shutdown`, at most `capacity` at once, then
    /// lets in-flight ones finish.
    async fn serve(mut self, endpoint: Arc<Endpoint>, shutdown: CancellationToken) {
        let capacity = self.capacity;
        let mut inflight = InFlight::default();
        let stopped = shutdown.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                request = self.requests.next(), if inflight.len() < capacity => {
                    let Some(request) = request else { break };
                    begin(&endpoint, &mut inflight, request);
                    // Take the rest of a burst that has already arrived in the same turn,
                    // rather than one request per pass of this loop.
                    while inflight.len() < capacity {
                        match self.requests.next().now_or_never() {
                            Some(Some(request)) => begin(&endpoint, &mut inflight, request),
                            _ => break,
                        }
                    }
                }
                Some(()) = inflight.next(), if !inflight.is_empty() => {}
            }
        }
        let _ = self.requests.unsubscribe().await;
        inflight.finish().await;
    }
}

/// Starts answering `message` in `inflight`.
fn begin(endpoint: &Arc<Endpoint>, inflight: &mut InFlight, message: Message) {
    let endpoint = endpoint.clone();
    // Boxed where it is made: the handler future is moved only as a pointer.
    inflight.push(Box::pin(async move {
        let rpc = Rpc {
            message,
            counters: &endpoint.counters,
        };
        endpoint.pipeline.run(&rpc).await;
    }));
}

/// The threads of the runtime the service runs on (1 on a current-thread runtime).
fn runtime_threads() -> usize {
    tokio::runtime::Handle::try_current().map_or(1, |runtime| runtime.metrics().num_workers())
}

/// How `concurrency` slots are split over lanes: one lane per thread, but never a lane
/// without a slot; the first lanes take the remainder.
fn lane_capacities(concurrency: usize, threads: usize) -> Vec<usize> {
    let lanes = threads.clamp(1, concurrency.max(1));
    (0..lanes)
        .map(|lane| concurrency / lanes + usize::from(lane < concurrency % lanes))
        .collect()
}

/// One rpc request on its way through the pipeline.
struct Rpc<'a> {
    message: Message,
    counters: &'a Counters,
}

impl Rpc<'_> {
    /// Sends the reply (after `took` in the handler, `failed` if it is an error); a failure
    /// is logged (the requester times out). Only called once the reply subject was admitted.
    async fn respond(&self, pipeline: &Pipeline, reply: Reply, failed: bool, took: Duration) {
        let Some(to) = self.message.reply.clone() else {
            return;
        };
        let client = pipeline.publisher.client();
        let (headers, body) = reply;
        let sent = if headers.is_empty() {
            client.publish(to, body).await
        } else {
            client.publish_with_headers(to, headers, body).await
        };
        if let Err(err) = sent {
            tracing::warn!(%err, "cannot answer rpc request");
        }
        self.counters.answered(failed, took);
    }
}

/// A reply's headers and body.
type Reply = (HeaderMap, Bytes);

impl Path for Rpc<'_> {
    const NAME: &'static str = "rpc";

    fn message(&self) -> &Message {
        &self.message
    }

    /// Nothing is stored to derive an id from: a fresh one (docs/wire.md, "Ids").
    fn fallback_id(&self) -> Uuid {
        Uuid::now_v7()
    }

    fn origin(&self) -> Origin {
        Origin::Rpc
    }

    /// Where the answer would go, checked before anything is answered: a reply subject is
    /// the requester's word, and one outside its tenant (`$KV.…`, `$JS.API.…`, `dlq.…`,
    /// another tenant's inbox or events) gets nothing published, only a dead letter.
    fn admit(&self, inboxes: Inboxes) -> Result<(), Rejection> {
        let msg = &self.message;
        let tenant = ActionSubject::parse(&msg.subject).ok().map(|s| s.tenant);
        let checked = match &msg.reply {
            None => Err(ActionError::invalid(
                "rpc request without a reply subject: use request/reply, or publish to .actions",
            )),
            Some(reply) => inboxes.check_reply(reply, tenant.as_ref()),
        };
        checked.map_err(|error| Rejection {
            tenant,
            ..Rejection::from(error)
        })
    }

    /// An error result addressed to the request, or a bare one if not even its tenant
    /// could be read.
    async fn answer(&self, pipeline: &Pipeline, rejected: &Rejection) {
        let failure = ActionResult::<()>::failure(rejected.error.clone(), 0);
        let address = rejected.address.as_deref();
        let answer = reply(pipeline, address, failure);
        self.respond(pipeline, answer, true, Duration::ZERO).await;
    }

    async fn settle(&self, pipeline: &Pipeline, handled: Handled, to: Addressed<'_>) -> Verdict {
        let took = handled.elapsed;
        let duration_ms = took.as_millis() as u64;
        let address = Some(to.address);
        let error = match handled.output {
            Ok(output) => {
                let success = ActionResult::success(output, duration_ms);
                let answer = reply(pipeline, address, success);
                self.respond(pipeline, answer, false, took).await;
                return Verdict::Settled(Outcome::Success, None);
            }
            Err(error) => error,
        };
        let failure = ActionResult::<()>::failure(error.clone(), duration_ms);
        let answer = reply(pipeline, address, failure);
        self.respond(pipeline, answer, true, took).await;
        if error.retryable {
            Verdict::Settled(Outcome::Error, Some(error.code))
        } else {
            Verdict::GiveUp(error)
        }
    }

    /// Nothing to acknowledge: given up on if the letter is stored, else just failed.
    async fn dead_lettered(&self, stored: bool) -> Outcome {
        if stored {
            Outcome::DeadLettered
        } else {
            Outcome::Error
        }
    }
}

/// The reply to a request: a result action encoded like every other result
/// ([`publish::encode_answer`]), or a bare result when not even the tenant could be read.
fn reply<R: serde::Serialize>(
    pipeline: &Pipeline,
    address: Option<&ResultAddress>,
    data: ActionResult<R>,
) -> Reply {
    let Some(address) = address else {
        return bare_result(pipeline, &data);
    };
    match publish::encode_answer(address, &data) {
        Ok(message) => message,
        Err(err) => {
            let error = ActionError::handler(format!("cannot encode the result: {err}"));
            bare_result(pipeline, &ActionResult::<()>::failure(error, 0))
        }
    }
}

/// A result with no tenant or request to address it to.
fn bare_result<R: serde::Serialize>(pipeline: &Pipeline, data: &ActionResult<R>) -> Reply {
    let result = json!({
        "action_id": Uuid::now_v7(),
        "action_type": unreadable_type(pipeline.domain()).result_type(),
        "data": data,
    });
    (HeaderMap::new(), Bytes::from(result.to_string()))
}

#[cfg(test)]
mod tests {
    use super::lane_capacities;

    #[test]
    fn slots_are_split_over_lanes_without_exceeding_the_concurrency() {
        assert_eq!(lane_capacities(64, 2), vec![32, 32]);
        assert_eq!(lane_capacities(5, 2), vec![3, 2]);
        assert_eq!(lane_capacities(1, 8), vec![1]);
        assert_eq!(lane_capacities(3, 1), vec![3]);
        for (concurrency, threads) in [(64, 3), (7, 4), (2, 2), (100, 16)] {
            let lanes = lane_capacities(concurrency, threads);
            assert_eq!(lanes.iter().sum::<usize>(), concurrency);
            assert!(lanes.iter().all(|&slots| slots > 0), "{lanes:?}");
        }
    }
}
