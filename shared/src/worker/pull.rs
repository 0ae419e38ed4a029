//! Pulling no more messages than there are free handler slots.
//!
//! A worker holds a semaphore with one permit per handler slot. Before asking the server
//! for `n` messages it takes `n` permits; each message that arrives takes one of those into
//! its handler task, which frees it when done. When a pull request expires the server says
//! how many it did not fill (`Nats-Pending-Messages`), and those permits are returned. So a
//! message never waits in a local buffer for a slot (its ack deadline would tick away
//! there), and every instance sharing the durable consumer gets work only as fast as it can
//! start it.
//!
//! Pull requests go out on one long-lived inbox subscription, several at a time, and a new
//! one is only sent once a quarter of the slots are free again (or none are reserved), so
//! the request traffic stays a small fraction of the message traffic.
//!
//! The loop also drives the handlers it starts ([`InFlight`]): slots are freed only when
//! it polls them, so it never waits for a slot without polling them too.
//!
//! Several loops can share one semaphore: every tenant's loop does ([`super::tenants`]).
//! Tokio's semaphore serves waiters first come, first served, and a loop waits for at most
//! one batch of permits at a time, so a freed slot goes to the loop that has waited
//! longest: the loops take turns. A tenant's loop also ends once its tenant has been quiet
//! for a while (`idle`), after its last pull request has expired, so nothing is delivered
//! to it once it is gone.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::{self, Message};
use async_nats::{StatusCode, Subscriber};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pipeline::InFlight;

/// Header in which the server says how many messages of an ended pull request went unfilled.
const PENDING_MESSAGES: &str = "Nats-Pending-Messages";

/// What the pull loop needs.
pub(crate) struct PullLoop {
    pub consumer: PullConsumer,
    pub jetstream: jetstream::Context,
    pub slots: Arc<Semaphore>,
    pub capacity: usize,
    pub expires: Duration,
    /// Set for a tenant's loop, which shares `slots` with the other tenants' loops and
    /// ends when idle; `None`: the only loop on its slots, running until stopped.
    pub sharing: Option<Sharing>,
}

/// How a tenant's loop shares the worker's slots.
pub(crate) struct Sharing {
    /// End once nothing has arrived for this long, nothing is in flight and no pull
    /// request is open.
    pub idle: Duration,
    /// How many tenants' loops are running on the slots now, this one included. While it
    /// is alone a loop pulls as the only loop does; beside others it asks beyond its open
    /// requests only for messages its consumer still holds.
    pub lanes: Arc<AtomicUsize>,
}

impl Sharing {
    fn beside_others(&self) -> bool {
        self.lanes.load(Ordering::Relaxed) > 1
    }
}

/// How a pull loop ended.
pub(crate) struct Pulled {
    /// The inbox, so the caller can turn away what still arrives while it drains.
    pub subscription: Subscriber,
    /// How many messages it received in all.
    pub received: u64,
}

/// Permits held for requested-but-undelivered messages.
struct Reserved {
    permits: Option<OwnedSemaphorePermit>,
    count: usize,
}

impl Reserved {
    fn add(&mut self, permit: OwnedSemaphorePermit) {
        self.count += permit.num_permits();
        match &mut self.permits {
            Some(held) => held.merge(permit),
            None => self.permits = Some(permit),
        }
    }

    fn take_one(&mut self) -> Option<OwnedSemaphorePermit> {
        let held = self.permits.as_mut()?;
        let one = if held.num_permits() == 1 {
            self.permits.take()
        } else {
            held.split(1)
        };
        if one.is_some() {
            self.count -= 1;
        }
        one
    }

    fn release(&mut self, n: usize) {
        let n = n.min(self.count);
        if n == self.count {
            self.permits = None;
        } else if let Some(held) = self.permits.as_mut() {
            drop(held.split(n));
        }
        self.count -= n;
    }
}

impl PullLoop {
    /// Pulls until `stop` is cancelled (or it has been idle: [`PullLoop::idle`]), starting
    /// `handle(message)` in `inflight` for each message; its slot is freed when it
    /// finishes.
    pub async fn run<F>(
        self,
        stop: CancellationToken,
        inflight: &mut InFlight,
        handle: impl Fn(Message) -> F,
    ) -> Result<Pulled, async_nats::Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let client = self.jetstream.client();
        let inbox = client.new_inbox();
        let mut inbox_sub = client.subscribe(inbox.clone()).await?;
        let heartbeat = (self.expires / 6).max(Duration::from_millis(500));
        let threshold = (self.capacity / 4).max(1);
        let mut reserved = Reserved {
            permits: None,
            count: 0,
        };
        let mut last_heard = Instant::now();
        let mut last_message = Instant::now();
        let mut received = 0u64;
        // How many messages the consumer still held after the last one delivered (its
        // `pending`): a loop sharing its slots with other tenants' asks for no more than
        // that beyond its turn, so a quiet tenant never sits on slots it has no work for.
        let mut backlog = 0usize;
        // Fires no later than three heartbeats after `last_heard`; checked and moved on when
        // it fires, rather than re-armed on every message (a timer per message is not free).
        let quiet = heartbeat * 3;
        let stale = tokio::time::sleep(quiet);
        tokio::pin!(stale);
        // After a failed pull request: when to try again (handlers keep running meanwhile).
        let mut retry_at: Option<Instant> = None;
        let stopped = stop.cancelled();
        tokio::pin!(stopped);

        loop {
            let beside_others = self.sharing.as_ref().is_some_and(Sharing::beside_others);
            let want = next_ask(reserved.count, backlog, beside_others, threshold);
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                message = inbox_sub.next() => {
                    let Some(message) = message else { break };
                    last_heard = Instant::now();
                    match message.status {
                        None | Some(StatusCode::OK) => {
                            last_message = last_heard;
                            received += 1;
                            let permit = match reserved.take_one() {
                                Some(permit) => permit,
                                // A request we had given up on was filled after all: wait
                                // for a slot, which only a finishing handler can free.
                                None => loop {
                                    tokio::select! {
                                        permit = self.slots.clone().acquire_owned() => break permit?,
                                        Some(()) = inflight.next(), if !inflight.is_empty() => {}
                                    }
                                },
                            };
                            // Boxed where it is made: the handler future is moved only as a pointer.
                            let message = Message { message, context: self.jetstream.clone() };
                            // Only a loop that shares its slots reads it (the reply subject is
                            // parsed again when the message is handled).
                            if self.sharing.is_some()
                                && let Ok(info) = message.info()
                            {
                                backlog = usize::try_from(info.pending).unwrap_or(usize::MAX);
                            }
                            let work = Box::pin(handle(message));
                            inflight.push(async move {
                                work.await;
                                drop(permit);
                            });
                        }
                        Some(StatusCode::IDLE_HEARTBEAT) => {}
                        Some(status) => {
                            let pending = message
                                .headers
                                .as_ref()
                                .and_then(|h| h.get(PENDING_MESSAGES))
                                .and_then(|v| v.as_str().parse::<usize>().ok());
                            match pending {
                                Some(n) => reserved.release(n),
                                None if matches!(status, StatusCode::NOT_FOUND | StatusCode::NO_RESPONDERS)
                                    && self.sharing.is_some() =>
                                {
                                    // The tenant's consumer was removed: the worker makes it
                                    // again if the tenant still has work.
                                    break;
                                }
                                None if status != StatusCode::TIMEOUT => {
                                    tracing::warn!(%status, description = ?message.description, "pull request ended");
                                    reserved.release(reserved.count);
                                }
                                None => {}
                            }
                            let rested = self
                                .sharing
                                .as_ref()
                                .is_some_and(|sharing| last_message.elapsed() >= sharing.idle);
                            if rested && reserved.count == 0 && inflight.is_empty() {
                                break;
                            }
                        }
                    }
                }
                Some(()) = inflight.next(), if !inflight.is_empty() => {}
                permit = self.slots.clone().acquire_many_owned(want.unwrap_or(1) as u32), if retry_at.is_none() && want.is_some() => {
                    let mut permit = permit?;
                    let mut free = self.slots.available_permits();
                    if beside_others {
                        free = free.min(backlog.saturating_sub(reserved.count + permit.num_permits()));
                    }
                    if free > 0 && let Ok(more) = self.slots.clone().try_acquire_many_owned(free as u32) {
                        permit.merge(more);
                    }
                    let batch = BatchConfig {
                        batch: permit.num_permits(),
                        expires: Some(self.expires),
                        idle_heartbeat: heartbeat,
                        ..Default::default()
                    };
                    match self.consumer.request_batch(batch, inbox.clone().into()).await {
                        Ok(()) => {
                            if reserved.count == 0 {
                                last_heard = Instant::now();
                            }
                            reserved.add(permit);
                        }
                        Err(err) => {
                            tracing::warn!(%err, "pull request failed; retrying in 1s");
                            drop(permit);
                            retry_at = Some(Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or(last_heard)), if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = &mut stale, if reserved.count > 0 => {
                    if Instant::now() >= last_heard + quiet {
                        // No message, heartbeat or timeout for three heartbeats: the server
                        // lost our requests (restart, leader change). Forget them, ask again.
                        tracing::warn!(reserved = reserved.count, "pull requests went quiet; asking again");
                        reserved.release(reserved.count);
                        last_heard = Instant::now();
                    }
                    stale.as_mut().reset(last_heard + quiet);
                }
            }
        }
        Ok(Pulled {
            subscription: inbox_sub,
            received,
        })
    }
}

/// How many slots a loop asks for next, given how many it holds for open pull requests
/// (`reserved`) and how many messages its consumer still held at the last delivery
/// (`backlog`); `None`: nothing for now.
///
/// A loop with no open request always asks for one slot, so it hears of new work. Beside
/// other tenants' loops, it asks beyond its open requests only for messages its consumer
/// still holds: otherwise a tenant with one action a second would sit on a quarter of the
/// slots at a time, turn after turn, in requests that can only expire, and starve the
/// busy tenant.
fn next_ask(
    reserved: usize,
    backlog: usize,
    beside_others: bool,
    threshold: usize,
) -> Option<usize> {
    if reserved == 0 {
        Some(1)
    } else if !beside_others {
        Some(threshold)
    } else if backlog > reserved {
        Some(threshold.min(backlog - reserved))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_permits_are_counted_and_returned() {
        let slots = Arc::new(Semaphore::new(8));
        let mut reserved = Reserved {
            permits: None,
            count: 0,
        };
        reserved.add(slots.clone().try_acquire_many_owned(5).unwrap());
        reserved.add(slots.clone().try_acquire_many_owned(2).unwrap());
        assert_eq!((reserved.count, slots.available_permits()), (7, 1));
        let one = reserved.take_one().unwrap();
        assert_eq!(reserved.count, 6);
        reserved.release(4);
        assert_eq!((reserved.count, slots.available_permits()), (2, 5));
        reserved.release(10);
        assert_eq!((reserved.count, slots.available_permits()), (0, 7));
        drop(one);
        assert_eq!(slots.available_permits(), 8);
        assert!(reserved.take_one().is_none());
    }

    #[test]
    fn beside_others_a_loop_asks_only_for_work_its_consumer_holds() {
        // A quiet tenant with its one open request and nothing waiting holds no more.
        assert_eq!(next_ask(1, 0, true, 16), None);
        // Alone, the same loop keeps a turn's worth of requests open.
        assert_eq!(next_ask(1, 0, false, 16), Some(16));
        // A busy tenant asks for a turn at most, and no more than it has waiting.
        assert_eq!(next_ask(4, 100, true, 16), Some(16));
        assert_eq!(next_ask(4, 7, true, 16), Some(3));
        // Any loop without an open request asks for one, to hear of new work.
        assert_eq!(next_ask(0, 0, true, 16), Some(1));
    }
}
