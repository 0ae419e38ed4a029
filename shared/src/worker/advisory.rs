//! Dead letters for messages the server gave up on.
//!
//! When a message reaches its consumer's max deliveries with no verdict (the worker
//! crashed or hung on every try), the server stops delivering it and publishes a
//! max-deliveries advisory. The `ADVISORIES` stream keeps those advisories, so even if no
//! worker was running at that moment, the next one to start reads the advisory through its
//! `<domain>-max-deliveries` consumer, looks the original up by stream sequence, sends an
//! error result where it asked, and dead-letters it with reason `max_deliveries`.

use std::sync::Arc;

use async_nats::jetstream::AckKind;
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::WorkerParts;
use super::dead_letter::{DeadLetter, Origin};
use super::outcome::send_error;
use crate::action::decode::decode_or;
use crate::action::{ActionError, ErrorCode, derived_id};
use crate::streams::ADVISORIES_STREAM;

/// The part of `io.nats.jetstream.advisory.v1.max_deliver` we need.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// Reads this domain's max-deliveries advisories until `stop` is cancelled.
pub(crate) async fn watch(
    shared: Arc<WorkerParts>,
    stop: CancellationToken,
) -> Result<(), async_nats::Error> {
    let name = format!("{}-max-deliveries", shared.pipeline.domain());
    let consumer: async_nats::jetstream::consumer::PullConsumer = shared
        .pipeline
        .publisher
        .jetstream()
        .get_consumer_from_stream(&name, ADVISORIES_STREAM)
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            msg = messages.next() => match msg {
                Some(Ok(msg)) => msg,
                Some(Err(err)) => {
                    tracing::warn!(%err, "advisory consumer");
                    continue;
                }
                None => return Ok(()),
            },
        };
        let verdict = match serde_json::from_slice::<MaxDeliveries>(&msg.payload) {
            Ok(advisory) => dead_letter(&shared, advisory).await,
            Err(err) => {
                tracing::warn!(%err, "unreadable max-deliveries advisory; dropping it");
                Ok(())
            }
        };
        let kind = match verdict {
            Ok(()) => AckKind::Ack,
            Err(err) => {
                tracing::error!(%err, "cannot dead-letter after max deliveries; will try again");
                AckKind::Nak(Some(shared.backoff(1)))
            }
        };
        if let Err(err) = msg.ack_with(kind).await {
            tracing::warn!(%err, "advisory acknowledgement not sent");
        }
    }
}

async fn dead_letter(
    shared: &WorkerParts,
    advisory: MaxDeliveries,
) -> Result<(), async_nats::Error> {
    let publisher = &shared.pipeline.publisher;
    let stream = publisher.jetstream().get_stream(&advisory.stream).await?;
    let original = match stream.get_raw_message(advisory.stream_seq).await {
        Ok(original) => original,
        Err(err) => {
            // Removed by the stream's limits before we got to it: nothing left to keep.
            tracing::warn!(%err, stream = %advisory.stream, seq = advisory.stream_seq, "original gone; nothing to dead-letter");
            return Ok(());
        }
    };
    let error = ActionError::new(
        ErrorCode::MaxDeliveries,
        format!(
            "delivered {} times to {} without a verdict (the worker crashed or hung each time)",
            advisory.deliveries, advisory.consumer
        ),
    );
    let fallback_id = derived_id(&[
        advisory.stream.as_bytes(),
        &advisory.stream_seq.to_be_bytes(),
    ]);
    let headers = Some(&original.headers).filter(|h| !h.is_empty());
    let (domain, tenant) = match decode_or(
        &original.subject,
        headers,
        &original.payload,
        shared.config.inboxes,
        || fallback_id,
    ) {
        Ok(received) => {
            if let Some(to) = &received.callback {
                let address = (&received.action).into();
                send_error(publisher, to, &address, &error, 0).await;
            }
            (received.subject.domain, Some(received.subject.tenant))
        }
        Err(rejection) => (
            rejection
                .domain
                .unwrap_or_else(|| shared.pipeline.domain().clone()),
            rejection.tenant,
        ),
    };
    DeadLetter {
        domain: &domain,
        tenant: tenant.as_ref(),
        subject: &original.subject,
        headers,
        body: original.payload.clone(),
        error: &error,
        origin: Origin::Stored {
            stream: advisory.stream.clone(),
            sequence: advisory.stream_seq,
            deliveries: advisory.deliveries,
            consumer: advisory.consumer,
        },
    }
    .publish(publisher)
    .await?;
    // Kept, so removed from the work queue: its consumer will not deliver it again, and
    // left there it would count against its tenant's backlog for good.
    if let Err(err) = stream.delete_message(advisory.stream_seq).await {
        tracing::warn!(%err, stream = %advisory.stream, seq = advisory.stream_seq, "dead-lettered, but not removed from its stream");
    }
    Ok(())
}
