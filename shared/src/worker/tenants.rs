//! Fair share between tenants on the durable path: a consumer per tenant with work, all of
//! them drawing handler slots from one semaphore, in turn.
//!
//! Why not one consumer for the domain: a consumer delivers in stream order, so behind a
//! tenant that queued 20,000 actions every other tenant's next action waits for all of
//! them. JetStream has no per-subject `max_ack_pending`, and priority groups still deliver
//! in stream order. So each tenant that has work gets its own durable consumer,
//! `<domain>-actions-<tenant>` (filter `<domain>.<tenant>.actions`, shared by every
//! instance of the service, from `nats/template/actions.json`), and its own pull loop,
//! a *lane*. Every lane takes its slots from the worker's one semaphore, which serves
//! waiters first come, first served, one batch per lane at a time: when a slot frees up,
//! a quiet tenant that is waiting gets it before the busy tenant can ask again. That is a
//! round robin over the tenants with work, in turns of at most a quarter of the slots,
//! and a tenant alone still gets every slot. Beside other lanes, a lane asks for slots
//! beyond its open pull request only for messages its consumer still holds, so a tenant
//! that sends now and then holds one slot, not a turn's worth, while it waits.
//!
//! A tenant's concurrent-actions limit (`crate::quota`) is its consumer's
//! `max_ack_pending`: the server then delivers it no more actions at once than that, over
//! every instance together; it is set each time the tenant's lane starts.
//!
//! Finding tenants: every [`DISCOVER_EVERY`] the worker asks the stream which
//! `<domain>.*.actions` subjects hold messages (one `STREAM.INFO` with `subjects_filter`,
//! answered from the stream's subject index; the stream is a work queue, so only
//! unhandled work is listed) and starts a lane for each tenant that has none. A lane ends
//! once its tenant has sent nothing for [`LANE_IDLE`] (its last pull request has expired
//! by then, so nothing is delivered to a lane that is gone), and the server removes its
//! consumer after the consumer's `inactive_threshold`. Consumers therefore exist only for
//! tenants with recent work: each costs the server little on one node, and a Raft group
//! on a replicated stream.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outcome::Lane;
use super::pull::Sharing;
use super::{WorkerParts, serve_consumer};
use crate::action::{Domain, TenantId};
use crate::streams::Definitions;
use crate::subject::{self, Channel};

/// How often the worker looks for tenants with work and no lane: the longest a new
/// tenant's first action waits before its lane starts.
pub const DISCOVER_EVERY: Duration = Duration::from_millis(100);

/// How long a lane waits for its tenant's next action before it ends.
pub const LANE_IDLE: Duration = Duration::from_secs(5);

/// A lane that received nothing at all (its tenant's only messages are beyond their last
/// delivery, waiting for their dead letter) is not started again for this long.
const EMPTY_LANE_REST: Duration = Duration::from_secs(5);

/// Serves every tenant's actions of the worker's domain until `shutdown`, then lets each
/// lane drain.
pub(crate) async fn serve(
    shared: Arc<WorkerParts>,
    definitions: Definitions,
    domain: Domain,
    shutdown: CancellationToken,
) {
    let js = shared.pipeline.publisher.jetstream().clone();
    let stream_name = domain.stream_name();
    let capacity = shared.config.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    let filter = subject::any_tenant(&domain, Channel::Actions);
    // Tenants with a lane, and tenants whose lane found nothing, until when to leave them.
    let mut running: HashSet<String> = HashSet::new();
    // `running.len()`, for the lanes to read.
    let lane_count = Arc::new(AtomicUsize::new(0));
    let mut resting: HashMap<String, Instant> = HashMap::new();
    let mut lanes: JoinSet<(String, u64)> = JoinSet::new();
    let mut tick = tokio::time::interval(DISCOVER_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = lanes.join_next(), if !lanes.is_empty() => {
                if let Ok((tenant, received)) = ended {
                    running.remove(&tenant);
                    lane_count.store(running.len(), Ordering::Relaxed);
                    if received == 0 {
                        resting.insert(tenant, Instant::now() + EMPTY_LANE_REST);
                    }
                }
            }
            _ = tick.tick() => {
                let waiting = match tenants_with_work(&js, &stream_name, &filter).await {
                    Ok(waiting) => waiting,
                    Err(err) => {
                        tracing::warn!(%err, stream = %stream_name, "cannot list tenants with work; trying again");
                        continue;
                    }
                };
                let now = Instant::now();
                resting.retain(|_, until| *until > now);
                for tenant in waiting {
                    if running.contains(&tenant) || resting.contains_key(&tenant) {
                        continue;
                    }
                    let Some(mut config) = definitions.tenant_consumer(&domain, &tenant) else {
                        tracing::error!(%domain, "no per-tenant consumer in the definitions");
                        break;
                    };
                    if let Ok(id) = TenantId::new(&tenant) {
                        let concurrent = shared.pipeline.quotas.limits(&id).await.concurrent;
                        if concurrent > 0 {
                            config.max_ack_pending = i64::from(concurrent);
                        }
                    }
                    let consumer: PullConsumer = match js.create_consumer_on_stream(config, &stream_name).await {
                        Ok(consumer) => consumer,
                        Err(err) => {
                            tracing::warn!(%err, %tenant, "cannot make the tenant's consumer; trying again");
                            continue;
                        }
                    };
                    let info = &consumer.cached_info().config;
                    let lane = Arc::new(Lane {
                        consumer: info.durable_name.clone().unwrap_or_default(),
                        ack_wait: info.ack_wait,
                        max_deliver: info.max_deliver,
                    });
                    running.insert(tenant.clone());
                    lane_count.store(running.len(), Ordering::Relaxed);
                    let (shared, slots, stop) = (shared.clone(), slots.clone(), shutdown.clone());
                    let sharing = Sharing { idle: LANE_IDLE, lanes: lane_count.clone() };
                    lanes.spawn(async move {
                        let received = serve_consumer(shared, lane, consumer, slots, Some(sharing), stop).await;
                        (tenant, received)
                    });
                }
            }
        }
    }
    while lanes.join_next().await.is_some() {}
}

/// The subject tokens of the tenants that have unhandled actions stored.
async fn tenants_with_work(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<String>, async_nats::Error> {
    let stream = js.get_stream_no_info(stream).await?;
    let mut subjects = stream.info_with_subjects(filter).await?;
    let mut tenants = Vec::new();
    while let Some(entry) = subjects.next().await {
        let (subject, count) = entry?;
        if count == 0 {
            continue;
        }
        if let Some(tenant) = subject.split('.').nth(1) {
            tenants.push(tenant.to_owned());
        }
    }
    Ok(tenants)
}
