//! What a worker does with each message: the outcome table of docs/wire.md ("Durable path").
//!
//! | outcome | ack | result | dead letter |
//! |---|---|---|---|
//! | success | ack | success | no |
//! | retryable error, deliveries left | nak with backoff | none yet | no |
//! | retryable error, last delivery | term | error | yes |
//! | non-retryable, invalid, unknown type, tenant mismatch, panic | term | error (if a callback can be read) | yes |
//! | handler still running at half the ack wait | in-progress | — | — |
//!
//! A success result that cannot be stored is sent again for up to half the ack wait
//! ([`super::resend`]: a cluster's stream stores nothing while it elects a leader); a
//! failure after that counts as a retryable `unavailable` error. A failure to store a dead
//! letter naks the message instead of terminating it: nothing is acknowledged that is not
//! handled or recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use tracing::Instrument;

use super::Shared;
use super::dead_letter::{DeadLetter, Origin};
use super::resend;
use crate::action::decode::decode_or;
use crate::action::{ActionError, ActionResult, Rejection, ResultAddress, derived_id};
use crate::context::Ctx;
use crate::metrics::Outcome;
use crate::subject::CallbackSubject;
use crate::telemetry;

/// The consumer a message came from, and its delivery limits.
pub(crate) struct Lane {
    pub consumer: String,
    pub ack_wait: Duration,
    pub max_deliver: i64,
}

/// Handles one delivered message to the end: ack, nak or term, result and dead letter.
pub(crate) async fn handle(shared: Arc<Shared>, lane: Arc<Lane>, msg: Message) {
    let (stream, sequence, delivered) = match msg.info() {
        Ok(info) => (
            info.stream,
            info.stream_sequence,
            info.delivered.max(1) as u64,
        ),
        Err(err) => {
            tracing::error!(%err, subject = %msg.subject, "message without JetStream metadata; leaving it to redelivery");
            return;
        }
    };
    let _busy = shared.metrics.in_flight();
    // Only a dead letter needs it, so it is built only then.
    let origin = || Origin::Stored {
        stream: stream.to_owned(),
        sequence,
        deliveries: delivered,
        consumer: lane.consumer.clone(),
    };
    // An action published without an id gets one derived from where it is stored, so every
    // redelivery (and its result's dedupe id) agrees.
    let fallback_id = || derived_id(&[stream.as_bytes(), &sequence.to_be_bytes()]);
    let received = match decode_or(
        &msg.subject,
        msg.headers.as_ref(),
        &msg.payload,
        shared.config.inboxes,
        fallback_id,
    ) {
        Ok(received) => received,
        Err(rejection) => {
            shared
                .metrics
                .delivered(rejection.tenant.as_ref(), delivered);
            // Rare paths are boxed, so they do not grow every message's future.
            return Box::pin(reject(&shared, &msg, rejection, origin())).await;
        }
    };
    let tenant = Some(&received.subject.tenant);
    shared.metrics.delivered(tenant, delivered);

    let mut action = received.action;
    let address = ResultAddress::from(&action);

    let span = tracing::debug_span!(
        "action",
        action_type = %action.action_type,
        tenant = %action.tenant_id,
        action_id = %action.action_id,
        correlation_id = %address.chain_correlation,
        trace_id = action.traceparent.map(|t| t.trace_id_hex()).unwrap_or_default(),
        delivery = delivered,
    );
    action.traceparent = telemetry::adopt(&span, action.traceparent);
    let ctx = Ctx::for_action(
        &action,
        delivered,
        Some(shared.publisher.clone()),
        shared.dispatcher.state().clone(),
        shared.handler_cancel.clone(),
    );

    let kind = shared.metrics.kind(&action.action_type);
    let started = Instant::now();
    let work = shared
        .dispatcher
        .dispatch(action, ctx)
        .instrument(span.clone());
    let outcome = keep_lease(&msg, lane.ack_wait, work).await;
    let elapsed = started.elapsed();
    kind.handler_took(elapsed);
    let duration_ms = elapsed.as_millis() as u64;

    let outcome = match outcome {
        Ok(output) => match &received.callback {
            None => Ok(()),
            Some(to) => {
                let result = address.result(ActionResult::success(output, duration_ms));
                let chain = &address.chain_correlation;
                let sent = match shared.publisher.send_result(to, &result, chain).await {
                    // Sent again for up to half the ack wait (a cluster electing a stream
                    // leader stores nothing for a few seconds), keeping the lease meanwhile;
                    // a result too large comes straight back.
                    Err(err) => {
                        let publisher = &shared.publisher;
                        let within = lane.ack_wait / 2;
                        let again =
                            resend::send_result_again(publisher, to, &result, chain, err, within);
                        Box::pin(keep_lease(&msg, lane.ack_wait, again)).await
                    }
                    sent => sent,
                };
                sent.map_err(|err| {
                    ActionError::unavailable(format!("cannot deliver the result to {to}: {err}"))
                })
            }
        },
        Err(err) => Err(err),
    };

    let error = match outcome {
        Ok(()) => {
            ack(&msg, AckKind::Ack).await;
            shared
                .metrics
                .finished(tenant, kind, Outcome::Success, None);
            return;
        }
        Err(error) => error,
    };
    let last = lane.max_deliver > 0 && delivered >= lane.max_deliver as u64;
    if error.retryable && !last {
        let delay = shared.backoff(delivered);
        tracing::info!(parent: &span, code = %error.code, error = %error.message, ?delay, "retrying");
        ack(&msg, AckKind::Nak(Some(delay))).await;
        shared
            .metrics
            .finished(tenant, kind, Outcome::Retried, Some(error.code));
        return;
    }
    tracing::warn!(parent: &span, code = %error.code, error = %error.message, "dead-lettering");
    let give_up = async {
        if let Some(to) = &received.callback {
            send_error(&shared, to, &address, &error, duration_ms).await;
        }
        let letter = DeadLetter {
            domain: &received.subject.domain,
            tenant: Some(&received.subject.tenant),
            subject: &msg.subject,
            headers: msg.headers.as_ref(),
            body: msg.payload.clone(),
            error: &error,
            origin: origin(),
        };
        finish_dead(&shared, &msg, letter).await
    };
    let outcome = Box::pin(give_up).await;
    shared
        .metrics
        .finished(tenant, kind, outcome, Some(error.code));
}

/// A message that did not decode: error result where it asked (if readable), dead letter, term.
async fn reject(shared: &Shared, msg: &Message, rejection: Rejection, origin: Origin) {
    tracing::warn!(subject = %msg.subject, code = %rejection.error.code, error = %rejection.error.message, "rejecting");
    if let (Some(to), Some(address)) = (&rejection.callback, &rejection.address) {
        send_error(shared, to, address, &rejection.error, 0).await;
    }
    let domain = rejection
        .domain
        .clone()
        .unwrap_or_else(|| shared.dispatcher.domain().clone());
    let letter = DeadLetter {
        domain: &domain,
        tenant: rejection.tenant.as_ref(),
        subject: &msg.subject,
        headers: msg.headers.as_ref(),
        body: msg.payload.clone(),
        error: &rejection.error,
        origin,
    };
    let outcome = finish_dead(shared, msg, letter).await;
    let (tenant, code) = (rejection.tenant.as_ref(), rejection.error.code);
    shared
        .metrics
        .finished(tenant, shared.metrics.unknown(), outcome, Some(code));
}

/// Stores the dead letter, then terminates the message; naks it if the letter could not be
/// stored. Says which of the two it did.
async fn finish_dead(shared: &Shared, msg: &Message, letter: DeadLetter<'_>) -> Outcome {
    match letter.publish(&shared.publisher).await {
        Ok(()) => {
            ack(msg, AckKind::Term).await;
            Outcome::DeadLettered
        }
        Err(err) => {
            tracing::error!(%err, "cannot store the dead letter; will try again");
            ack(msg, AckKind::Nak(Some(shared.backoff(1)))).await;
            Outcome::Retried
        }
    }
}

/// Sends an error result; a failure is logged (the dead letter still records the message).
pub(crate) async fn send_error(
    shared: &Shared,
    to: &CallbackSubject,
    address: &ResultAddress,
    error: &ActionError,
    duration_ms: u64,
) {
    let result = address.result(ActionResult::<()>::failure(error.clone(), duration_ms));
    if let Err(err) = shared
        .publisher
        .send_result(to, &result, &address.chain_correlation)
        .await
    {
        tracing::warn!(%err, %to, "cannot deliver the error result");
    }
}

/// Runs `work`, telling the server the message is still in progress every half ack wait so
/// a long handler keeps its lease instead of being redelivered to another instance.
async fn keep_lease<F: std::future::Future>(
    msg: &Message,
    ack_wait: Duration,
    work: F,
) -> F::Output {
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
