//! The durable path's side of the pipeline: what a worker does with each delivered message
//! once its handler has run, the outcome table of docs/wire.md ("Durable path").
//!
//! | outcome | ack | result | dead letter |
//! |---|---|---|---|
//! | success | ack | success | no |
//! | retryable error, deliveries left | nak with backoff | none yet | no |
//! | retryable error, last delivery | term | error | yes |
//! | non-retryable, invalid, unknown type, tenant mismatch, panic | term | error (if a callback can be read) | yes |
//! | handler still running at half the ack wait | in-progress | — | — |
//!
//! Decoding, checking, the handler's layers and the dead letter itself are the
//! [`crate::pipeline`]'s, the same as for rpc; this module is only what is durable about
//! it: the acknowledgements, the redelivery count, the lease, and results published to
//! callbacks. A success result that cannot be stored is sent again for up to half the ack
//! wait ([`super::resend`]: a cluster's stream stores nothing while it elects a leader); a
//! failure after that counts as a retryable `unavailable` error. A failure to store a dead
//! letter naks the message instead of terminating it: nothing is acknowledged that is not
//! handled or recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use uuid::Uuid;

use super::WorkerParts;
use super::dead_letter::Origin;
use super::resend;
use crate::action::{ActionError, ActionResult, Rejection, ResultAddress, derived_id};
use crate::metrics::Outcome;
use crate::pipeline::layers::Handled;
use crate::pipeline::{Addressed, Path, Pipeline, Verdict};
use crate::publish::Publisher;
use crate::subject::CallbackSubject;

/// The consumer a message came from, and its delivery limits.
pub(crate) struct Lane {
    pub consumer: String,
    pub ack_wait: Duration,
    pub max_deliver: i64,
}

/// Handles one delivered message to the end: ack, nak or term, result and dead letter.
pub(crate) async fn handle(shared: Arc<WorkerParts>, lane: Arc<Lane>, msg: Message) {
    let (sequence, delivered) = match msg.info() {
        Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64),
        Err(err) => {
            tracing::error!(%err, subject = %msg.subject, "message without JetStream metadata; leaving it to redelivery");
            return;
        }
    };
    let stored = Stored {
        shared: &shared,
        lane: &lane,
        msg,
        sequence,
        delivered,
    };
    shared.pipeline.run(&stored).await;
}

/// A message delivered by a durable consumer.
struct Stored<'a> {
    shared: &'a WorkerParts,
    lane: &'a Lane,
    msg: Message,
    /// Its sequence in its stream.
    sequence: u64,
    /// How many times it has been delivered, this time included.
    delivered: u64,
}

impl Stored<'_> {
    /// The stream the message is stored in (read from its reply subject when needed).
    fn stream(&self) -> String {
        self.msg
            .info()
            .map(|info| info.stream.to_owned())
            .unwrap_or_default()
    }

    /// Sends the success result to `to`; sent again for up to half the ack wait (a cluster
    /// electing a stream leader stores nothing for a few seconds), keeping the lease
    /// meanwhile. A result too large comes straight back.
    async fn send_success(
        &self,
        publisher: &Publisher,
        to: &CallbackSubject,
        address: &ResultAddress,
        output: crate::dispatcher::RawOutput,
        duration_ms: u64,
    ) -> Result<(), ActionError> {
        let result = address.result(ActionResult::success(output, duration_ms));
        let chain = &address.chain_correlation;
        let sent = match publisher.send_result(to, &result, chain).await {
            Err(err) => {
                let within = self.lane.ack_wait / 2;
                let again = resend::send_result_again(publisher, to, &result, chain, err, within);
                // Rare: boxed, so it does not grow every message's future.
                Box::pin(self.hold(again)).await
            }
            sent => sent,
        };
        sent.map_err(|err| {
            ActionError::unavailable(format!("cannot deliver the result to {to}: {err}"))
        })
    }
}

impl Path for Stored<'_> {
    const NAME: &'static str = "durable";

    fn message(&self) -> &async_nats::Message {
        &self.msg
    }

    fn delivery(&self) -> u64 {
        self.delivered
    }

    /// An action published without an id gets one derived from where it is stored, so every
    /// redelivery (and its result's dedupe id) agrees.
    fn fallback_id(&self) -> Uuid {
        derived_id(&[self.stream().as_bytes(), &self.sequence.to_be_bytes()])
    }

    fn origin(&self) -> Origin {
        Origin::Stored {
            stream: self.stream(),
            sequence: self.sequence,
            deliveries: self.delivered,
            consumer: self.lane.consumer.clone(),
        }
    }

    /// Tells the server the message is still in progress every half ack wait while `work`
    /// runs, so a long handler keeps its lease instead of being redelivered elsewhere.
    fn hold<F>(&self, work: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future<Output: Send> + Send,
    {
        keep_lease(&self.msg, self.lane.ack_wait, work)
    }

    /// An error result where the message asked for one, if its callback could be read.
    async fn answer(&self, pipeline: &Pipeline, rejected: &Rejection) {
        if let (Some(to), Some(address)) = (&rejected.callback, &rejected.address) {
            send_error(&pipeline.publisher, to, address, &rejected.error, 0).await;
        }
    }

    async fn settle(&self, pipeline: &Pipeline, handled: Handled, to: Addressed<'_>) -> Verdict {
        let duration_ms = handled.elapsed.as_millis() as u64;
        let error = match handled.output {
            Ok(output) => {
                let sent = match to.callback {
                    None => Ok(()),
                    Some(callback) => {
                        let publisher = &pipeline.publisher;
                        self.send_success(publisher, callback, to.address, output, duration_ms)
                            .await
                    }
                };
                match sent {
                    Ok(()) => {
                        ack(&self.msg, AckKind::Ack).await;
                        return Verdict::Settled(Outcome::Success, None);
                    }
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        let max_deliver = self.lane.max_deliver;
        let last = max_deliver > 0 && self.delivered >= max_deliver as u64;
        if error.retryable && !last {
            let delay = self.shared.backoff(self.delivered);
            let address = to.address;
            tracing::info!(
                action_id = %address.request_id,
                action_type = %address.request_type,
                tenant = %address.tenant_id,
                delivery = self.delivered,
                code = %error.code,
                error = %error.message,
                ?delay,
                "retrying"
            );
            ack(&self.msg, AckKind::Nak(Some(delay))).await;
            return Verdict::Settled(Outcome::Retried, Some(error.code));
        }
        if let Some(callback) = to.callback {
            let publisher = &pipeline.publisher;
            send_error(publisher, callback, to.address, &error, duration_ms).await;
        }
        Verdict::GiveUp(error)
    }

    /// Terminates the message once its letter is stored; naks it if the letter could not
    /// be stored, so it is tried again rather than lost.
    async fn dead_lettered(&self, stored: bool) -> Outcome {
        if stored {
            ack(&self.msg, AckKind::Term).await;
            Outcome::DeadLettered
        } else {
            let delay = self.shared.backoff(1);
            ack(&self.msg, AckKind::Nak(Some(delay))).await;
            Outcome::Retried
        }
    }
}

/// Sends an error result; a failure is logged (the dead letter still records the message).
pub(crate) async fn send_error(
    publisher: &Publisher,
    to: &CallbackSubject,
    address: &ResultAddress,
    error: &ActionError,
    duration_ms: u64,
) {
    let result = address.result(ActionResult::<()>::failure(error.clone(), duration_ms));
    let chain = &address.chain_correlation;
    if let Err(err) = publisher.send_result(to, &result, chain).await {
        tracing::warn!(%err, %to, "cannot deliver the error result");
    }
}

/// Runs `work`, telling the server the message is still in progress every half ack wait so
/// a long handler keeps its lease instead of being redelivered to another instance.
async fn keep_lease<F: Future>(msg: &Message, ack_wait: Duration, work: F) -> F::Output {
    tokio::pin!(work);
    // Most handlers finish on their first poll: they need no timer at all.
    if let Some(output) = futures::FutureExt::now_or_never(&mut work) {
        return output;
    }
    let tick = (ack_wait / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = tokio::time::sleep(tick) => ack(msg, AckKind::Progress).await,
        }
    }
}

async fn ack(msg: &Message, kind: AckKind) {
    if let Err(err) = msg.ack_with(kind).await {
        tracing::warn!(%err, ?kind, "acknowledgement not sent; the server will redeliver");
    }
}
