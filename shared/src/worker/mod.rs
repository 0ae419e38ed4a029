//! [`Worker`]: runs a [`Dispatcher`] against NATS: durable pull consumers, the rpc endpoint, dead letters and drain.
//!
//! A worker applies its domain's stream definitions, then serves three paths at once with
//! the same dispatcher, every message of each going through one [`crate::pipeline`]:
//! - the durable path: a pull consumer per tenant with work, `<domain>-actions-<tenant>`,
//!   shared by every instance, the tenants taking turns at the worker's handler slots
//!   ([`tenants`] says why and how; [`outcome`] says what is durable about each message's
//!   end: ack, nak, term, results to callbacks);
//! - `<domain>-callbacks`, when the dispatcher has result handlers;
//! - the rpc endpoint `<domain>.*.rpc`, a NATS micro service (`crate::service`).
//!
//! It also dead-letters messages the server gave up on ([`advisory`]).
//!
//! On shutdown (SIGTERM, Ctrl-C: see [`crate::shutdown`]) it stops pulling, turns away
//! anything that still arrives (nak: redelivered at once to another instance), lets every
//! in-flight handler finish and acknowledge, flushes, and returns. Nothing in flight is
//! lost, and nothing is processed twice because of the restart.

mod advisory;
pub mod dead_letter;
mod outcome;
mod pull;
mod resend;
pub mod tenants;

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::Dispatcher;
use crate::pipeline::{InFlight, Pipeline};
use crate::publish::Publisher;
use crate::settings::Settings;
use crate::streams::{Definitions, StreamsError};
use crate::subject::Inboxes;
use outcome::Lane;
use pull::{PullLoop, Sharing};

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The stream definitions could not be applied.
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// NATS refused something at start.
    #[error("{what}: {source}")]
    Nats {
        /// What the worker was doing.
        what: String,
        /// The client's error.
        source: async_nats::Error,
    },
}

fn nats_err<E: Into<async_nats::Error>>(what: impl Into<String>) -> impl FnOnce(E) -> WorkerError {
    let what = what.into();
    move |source| WorkerError::Nats {
        what,
        source: source.into(),
    }
}

/// How a worker runs. [`WorkerConfig::from_settings`] reads it from the environment.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Handler slots per path: at most this many actions run at once, and no more are pulled.
    pub concurrency: usize,
    /// Delays before the 1st, 2nd, … retry of a retryable error (the last repeats).
    pub retry_backoff: Vec<Duration>,
    /// Overrides the consumer's ack wait (the files say 30 s).
    pub ack_wait: Option<Duration>,
    /// Overrides the consumer's max deliveries (the files say 5).
    pub max_deliver: Option<i64>,
    /// Stream replicas: 1 on one server, 3 on a cluster.
    pub replicas: usize,
    /// How long to wait for in-flight handlers at shutdown before cancelling them.
    pub drain_timeout: Duration,
    /// Lifetime of each pull request.
    pub pull_expires: Duration,
    /// Whether to serve the rpc endpoint.
    pub rpc: bool,
    /// The longest a handler may run before it is dropped and fails with a retryable
    /// `timeout` error (docs/wire.md, "Error codes"); none: as long as it takes (the
    /// durable path keeps the message's lease meanwhile).
    pub handler_timeout: Option<Duration>,
    /// Version reported by `$SRV.INFO`.
    pub version: String,
    /// Which reply inboxes results and rpc replies may go to; anything else is refused
    /// (`forbidden`) and dead-lettered, nothing published.
    pub inboxes: Inboxes,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            retry_backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            ack_wait: None,
            max_deliver: None,
            replicas: 1,
            drain_timeout: Duration::from_secs(30),
            pull_expires: Duration::from_secs(30),
            rpc: true,
            handler_timeout: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            inboxes: Inboxes::default(),
        }
    }
}

impl WorkerConfig {
    /// The configuration the settings describe.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            concurrency: settings.concurrency,
            retry_backoff: settings.retry_backoff.clone(),
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            replicas: settings.stream_replicas,
            drain_timeout: settings.drain_timeout,
            inboxes: settings.inboxes.unwrap_or_default(),
            ..Self::default()
        }
    }
}

/// What every durable handler task of a worker shares.
pub(crate) struct WorkerParts {
    /// Every message's way from decoding to its handler and back (the rpc path has it too).
    pub pipeline: Arc<Pipeline>,
    /// How the worker runs: backoff, drain timeout.
    pub config: WorkerConfig,
}

impl WorkerParts {
    /// The delay before retrying after the `delivered`-th delivery failed.
    pub fn backoff(&self, delivered: u64) -> Duration {
        let backoff = &self.config.retry_backoff;
        let index = (delivered.saturating_sub(1) as usize).min(backoff.len().saturating_sub(1));
        backoff
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// Runs one service's dispatcher against NATS.
pub struct Worker {
    client: Client,
    dispatcher: Dispatcher,
    config: WorkerConfig,
}

impl Worker {
    /// A worker with the default configuration.
    pub fn new(client: Client, dispatcher: Dispatcher) -> Self {
        Self {
            client,
            dispatcher,
            config: WorkerConfig::default(),
        }
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves until `shutdown` is cancelled, then drains. Returns once every in-flight
    /// action has been acknowledged (or the drain timeout passed).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        if let Some(capacity) = self.dispatcher.capacity() {
            self.config.concurrency = self.config.concurrency.min(capacity);
        }
        let domain = self.dispatcher.domain().clone();
        let publisher = Publisher::with_inboxes(self.client.clone(), self.config.inboxes);
        let js = publisher.jetstream().clone();
        let definitions = Definitions::built_in()?
            .for_domain(&domain)?
            .with_replicas(self.config.replicas)
            .with_delivery(&domain, self.config.ack_wait, self.config.max_deliver);
        definitions.apply(&js).await?;

        let pipeline = Pipeline::new(
            self.dispatcher,
            publisher,
            self.config.inboxes,
            self.config.handler_timeout,
        );
        let shared = Arc::new(WorkerParts {
            pipeline: Arc::new(pipeline),
            config: self.config,
        });
        let stream = domain.stream_name();
        let mut consumers = Vec::new();
        if shared.pipeline.dispatcher.handles_results() {
            consumers.push(format!("{domain}-callbacks"));
        }

        let mut paths = JoinSet::new();
        paths.spawn(tenants::serve(
            shared.clone(),
            definitions,
            domain.clone(),
            shutdown.clone(),
        ));
        for name in consumers {
            let consumer: PullConsumer = js
                .get_consumer_from_stream(&name, &stream)
                .await
                .map_err(nats_err(format!("consumer {stream}/{name}")))?;
            let config = &consumer.cached_info().config;
            let lane = Arc::new(Lane {
                consumer: name,
                ack_wait: config.ack_wait,
                max_deliver: config.max_deliver,
            });
            let slots = Arc::new(Semaphore::new(shared.config.concurrency.max(1)));
            let served = serve_consumer(
                shared.clone(),
                lane,
                consumer,
                slots,
                None,
                shutdown.clone(),
            );
            paths.spawn(async move {
                served.await;
            });
        }
        if shared.config.rpc {
            let pipeline = shared.pipeline.clone();
            let (concurrency, version) = (shared.config.concurrency, &shared.config.version);
            let service = crate::service::RpcService::start(pipeline, concurrency, version)
                .await
                .map_err(nats_err(format!("rpc service {domain}")))?;
            paths.spawn(service.serve(shutdown.clone()));
        }
        {
            let shared = shared.clone();
            let stop = shutdown.clone();
            paths.spawn(async move {
                if let Err(err) = advisory::watch(shared, stop).await {
                    tracing::error!(%err, "max-deliveries advisories are not being read");
                }
            });
        }
        tracing::info!(%domain, concurrency = shared.config.concurrency, "worker running");

        while paths.join_next().await.is_some() {}
        if let Err(err) = shared.pipeline.publisher.client().flush().await {
            tracing::warn!(%err, "flush at shutdown");
        }
        tracing::info!(%domain, "worker stopped");
        Ok(())
    }
}

/// Waits until a worker of `domain` serves: its micro service answers `$SRV.PING.<domain>`
/// (it registers after the streams are applied). False if none did `within`.
pub async fn wait_until_serving(client: &Client, domain: &crate::Domain, within: Duration) -> bool {
    let ping = format!("$SRV.PING.{domain}");
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if client.request(ping.clone(), "".into()).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Pulls from one durable consumer, its handlers taking `slots`, until shutdown (or until
/// a tenant's loop has been idle: [`Sharing`]), then drains it. Returns how many messages
/// it received.
async fn serve_consumer(
    shared: Arc<WorkerParts>,
    lane: Arc<Lane>,
    consumer: PullConsumer,
    slots: Arc<Semaphore>,
    sharing: Option<Sharing>,
    shutdown: CancellationToken,
) -> u64 {
    let expires = match &sharing {
        Some(sharing) => shared.config.pull_expires.min(sharing.idle),
        None => shared.config.pull_expires,
    };
    let pull = PullLoop {
        consumer,
        jetstream: shared.pipeline.publisher.jetstream().clone(),
        slots,
        capacity: shared.config.concurrency.max(1),
        expires,
        sharing,
    };
    let mut inflight = InFlight::default();
    let handle = |msg: Message| outcome::handle(shared.clone(), lane.clone(), msg);
    let (leftover, received) = match pull.run(shutdown, &mut inflight, handle).await {
        Ok(pulled) => (Some(pulled.subscription), pulled.received),
        Err(err) => {
            tracing::error!(%err, consumer = %lane.consumer, "pulling stopped");
            (None, 0)
        }
    };
    drain(&shared, &lane, inflight, leftover).await;
    received
}

/// Runs in-flight handlers to their end; naks whatever is still delivered meanwhile.
async fn drain(
    shared: &WorkerParts,
    lane: &Lane,
    mut inflight: InFlight,
    mut leftover: Option<async_nats::Subscriber>,
) {
    let deadline = tokio::time::sleep(shared.config.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = inflight.next() => if done.is_none() { break },
            _ = &mut deadline => {
                tracing::warn!(consumer = %lane.consumer, "drain timeout: cancelling in-flight handlers; their actions will be redelivered");
                shared.pipeline.handler_cancel.cancel();
                break;
            }
            Some(message) = async { match leftover.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => {
                nak_leftover(shared, message).await;
            }
        }
    }
    // Left only after a timeout: nobody waits for them any more, but one that stops at the
    // cancellation may still nak its message for a prompt redelivery.
    inflight.detach();
    // Unsubscribe and nak what was already on its way: a message dropped here would wait
    // out its whole ack deadline before anyone else got it. Once the server has our
    // unsubscribe, it delivers nothing more for our open pull requests (no one listens).
    if let Some(mut subscription) = leftover
        && subscription.drain().await.is_ok()
    {
        while let Ok(Some(message)) =
            tokio::time::timeout(DRAIN_INBOX_LIMIT, subscription.next()).await
        {
            nak_leftover(shared, message).await;
        }
    }
}

/// Hands a message that reached a stopping loop straight back for redelivery (status
/// messages of the pull requests are skipped).
async fn nak_leftover(shared: &WorkerParts, message: async_nats::Message) {
    if message.status.is_none() {
        let context = shared.pipeline.publisher.jetstream().clone();
        let msg = Message { message, context };
        let _ = msg.ack_with(AckKind::Nak(None)).await;
    }
}

/// The longest a stopping loop waits for the server to confirm its unsubscribe.
const DRAIN_INBOX_LIMIT: Duration = Duration::from_secs(2);
