//! The pipeline: what happens to every action a worker receives, whichever way it came.
//!
//! A worker receives actions two ways, and both go through this one pipeline:
//!
//! - the durable path ([`crate::worker`]): a JetStream pull consumer; the message is
//!   acknowledged, retried or dead-lettered according to how its handler ended;
//! - the rpc path (`crate::service`): core request/reply; the caller gets the result as
//!   the reply, and nothing is retried.
//!
//! Everything the two have in common is written once, here:
//!
//! ```text
//!   message ─► admit ─► decode & check ─► layers ─► handler
//!                 │           │                │
//!              refused     rejected         handled
//!                 │           ▼                ▼
//!                 │     Path::answer     Path::settle ──► settled (ack, nak, reply)
//!                 ▼           ▼                ▼
//!                 └───► dead letter ◄──── give up
//!                             │
//!                             ▼
//!                   metrics: how it finished
//! ```
//!
//! 1. **Admit**: checks made before the message is read at all. Only the rpc path has one:
//!    its reply subject must be an inbox of the request's tenant, and a request that would
//!    be answered anywhere else is *refused*: dead-lettered and never answered.
//! 2. **Decode and check** ([`crate::action::decode`]): the subject, body, names, tenant,
//!    callback, ids, nesting; a message that fails is *rejected*: the path answers it with
//!    an error where it can, and it is dead-lettered.
//! 3. **Layers** ([`layers`]): the cross-cutting steps around the handler (tracing span,
//!    handler metrics, timeout, panic catch), each a small wrapper around the next, in the
//!    manner of tower's services or Watermill's middlewares.
//! 4. **Settle**: the path turns the handler's outcome into what its transport needs (an
//!    ack, a nak with backoff, a result publish, a reply) and says whether to give up.
//! 5. **Give up**: a dead letter in `dlq.<domain>.<tenant>`, the same for both paths but for
//!    what a stored letter means to the path (the durable path then terminates the message).
//!
//! **Refused for a tenant's limits**: an action that ends with `rate_limited` or
//! `quota_exceeded` (from the quota layer, or a handler's [`crate::Ctx::check_llm`]) is
//! answered with that error (the rpc reply; the durable path's callback, if it asked for
//! one) and ended without a dead letter: the durable path terminates it. Not nak'd for a
//! redelivery: the tenant is over its limit *now*, so redeliveries would be refused again,
//! count against the limit and hold the consumer, and on the last delivery fill the DLQ
//! with one tenant's overflow where operators look for real failures. The error carries
//! `retry_after_ms`: the sender decides whether to send again.
//!
//! What differs between the paths sits behind the [`Path`] trait, and nowhere else: the
//! durable path's acknowledgements, redelivery count, lease and callbacks live in
//! `worker/outcome.rs`; the rpc path's reply in `service/mod.rs`. Neither knows about the other.
//!
//! Every step is static dispatch: the pipeline is generic over the path, and the layers are
//! nested types ([`layers::Stack`]), so a message costs no virtual call or allocation for
//! being layered. The rare paths (rejections, dead letters) are boxed where they are
//! awaited, so they do not grow the future every message carries.

mod inflight;
pub(crate) mod layers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::action::decode::{Rejection, decode_or};
use crate::action::{ActionError, Domain, ErrorCode, ResultAddress};
use crate::dispatcher::Dispatcher;
use crate::metrics::{Outcome, WorkerMetrics};
use crate::publish::Publisher;
use crate::quota::Quotas;
use crate::settings::Settings;
use crate::subject::{CallbackSubject, Inboxes};
use crate::worker::dead_letter::{DeadLetter, Origin};
pub(crate) use inflight::InFlight;
use layers::{Call, Handled, Service};

/// One worker's pipeline: the dispatcher and everything around it that both paths share.
/// Built once when the worker starts; every message of every path goes through
/// [`Pipeline::run`].
pub(crate) struct Pipeline {
    /// Routes actions to their handlers; also names the worker's domain.
    pub dispatcher: Arc<Dispatcher>,
    /// Sends results and dead letters (and is what handlers' contexts publish with).
    pub publisher: Publisher,
    /// This worker's metric handles, its labels built once.
    pub metrics: Arc<WorkerMetrics>,
    /// Which reply inboxes results and replies may go to.
    pub inboxes: Inboxes,
    /// Cancelled only when draining takes longer than the drain timeout; every handler's
    /// context carries it ([`crate::Ctx::cancellation`]).
    pub handler_cancel: CancellationToken,
    /// Each tenant's limits, as the quota layer enforces them; the durable path also caps
    /// a tenant's actions in flight with them (`crate::worker::tenants`).
    pub quotas: Quotas,
    /// The layers around the handler.
    layers: layers::Stack,
}

impl Pipeline {
    /// The pipeline of a worker running `dispatcher`, sending with `publisher`.
    /// `handler_timeout` bounds each handler call (none: as long as it takes).
    pub fn new(
        dispatcher: Dispatcher,
        publisher: Publisher,
        inboxes: Inboxes,
        handler_timeout: Option<Duration>,
    ) -> Self {
        let metrics = Arc::new(WorkerMetrics::new(
            dispatcher.domain(),
            dispatcher.action_types(),
        ));
        let dispatcher = Arc::new(dispatcher);
        let handler_cancel = CancellationToken::new();
        let quotas = worker_quotas(&publisher);
        let layers = layers::stack(layers::Parts {
            dispatcher: dispatcher.clone(),
            publisher: Some(publisher.clone()),
            cancel: handler_cancel.clone(),
            metrics: metrics.clone(),
            timeout: handler_timeout,
            quotas: Some(quotas.clone()),
        });
        Self {
            quotas,
            dispatcher,
            publisher,
            metrics,
            inboxes,
            handler_cancel,
            layers,
        }
    }

    /// The domain this worker serves.
    pub fn domain(&self) -> &Domain {
        self.dispatcher.domain()
    }

    /// Takes one message through every step to its end: handled and settled, or given up
    /// on and dead-lettered; then counts how it finished.
    pub async fn run<P: Path>(&self, path: &P) {
        let _busy = self.metrics.in_flight();
        let delivery = path.delivery();
        if let Err(refused) = path.admit(self.inboxes) {
            self.metrics.delivered(refused.tenant.as_ref(), delivery);
            let (tenant, code) = (refused.tenant.as_ref(), refused.error.code);
            let outcome = Box::pin(self.give_up(path, &refused)).await;
            let unknown = self.metrics.unknown();
            return self.metrics.finished(tenant, unknown, outcome, Some(code));
        }
        let msg = path.message();
        let received = decode_or(
            &msg.subject,
            msg.headers.as_ref(),
            &msg.payload,
            self.inboxes,
            || path.fallback_id(),
        );
        let received = match received {
            Ok(received) => received,
            Err(rejected) => {
                self.metrics.delivered(rejected.tenant.as_ref(), delivery);
                let outcome = Box::pin(self.reject(path, &rejected)).await;
                let (tenant, code) = (rejected.tenant.as_ref(), rejected.error.code);
                let unknown = self.metrics.unknown();
                return self.metrics.finished(tenant, unknown, outcome, Some(code));
            }
        };
        let tenant = &received.subject.tenant;
        self.metrics.delivered(Some(tenant), delivery);
        // Taken before the layers see the action: the result answers the request as it
        // arrived (its trace context included), whatever the layers make of it.
        let address = ResultAddress::from(&received.action);
        let call = Call {
            action: received.action,
            delivery,
            path: P::NAME,
        };
        let handled = path.hold(self.layers.call(call)).await;
        if let Err(error) = &handled.output
            && error.code.is_quota_refusal()
        {
            let refused = Rejection {
                error: error.clone(),
                domain: Some(received.subject.domain.clone()),
                tenant: Some(tenant.clone()),
                callback: received.callback.clone(),
                address: Some(Box::new(address.clone())),
            };
            Box::pin(self.refuse(path, &refused)).await;
            let kind = self.metrics.kind(&address.request_type);
            let code = Some(refused.error.code);
            return self
                .metrics
                .finished(Some(tenant), kind, Outcome::Refused, code);
        }
        let to = Addressed {
            address: &address,
            callback: received.callback.as_ref(),
        };
        let (outcome, code) = match path.settle(self, handled, to).await {
            Verdict::Settled(outcome, code) => (outcome, code),
            Verdict::GiveUp(error) => {
                let letter = Rejection {
                    domain: Some(received.subject.domain.clone()),
                    tenant: Some(tenant.clone()),
                    ..Rejection::from(error)
                };
                let outcome = Box::pin(self.give_up(path, &letter)).await;
                (outcome, Some(letter.error.code))
            }
        };
        let kind = self.metrics.kind(&address.request_type);
        self.metrics.finished(Some(tenant), kind, outcome, code);
    }

    /// A message that did not decode: answered where the path can, then given up on.
    async fn reject<P: Path>(&self, path: &P, rejected: &Rejection) -> Outcome {
        let subject = &path.message().subject;
        let error = &rejected.error;
        tracing::warn!(path = P::NAME, %subject, code = %error.code, error = %error.message, "rejecting");
        path.answer(self, rejected).await;
        self.give_up(path, rejected).await
    }

    /// An action refused for its tenant's limits: answered, then ended without a dead
    /// letter (the module's doc says why).
    async fn refuse<P: Path>(&self, path: &P, refused: &Rejection) {
        let error = &refused.error;
        tracing::info!(path = P::NAME, tenant = ?refused.tenant.as_ref().map(|t| t.as_str()), code = %error.code, error = %error.message, "refused for the tenant's limits");
        path.answer(self, refused).await;
        path.end_refused().await;
    }

    /// Stores the dead letter of the message as it arrived, saying why (`given.error`); the
    /// path says what that means for its transport.
    async fn give_up<P: Path>(&self, path: &P, given: &Rejection) -> Outcome {
        let msg = path.message();
        let error = &given.error;
        tracing::warn!(path = P::NAME, subject = %msg.subject, code = %error.code, error = %error.message, "dead-lettering");
        let letter = DeadLetter {
            domain: given.domain.as_ref().unwrap_or_else(|| self.domain()),
            tenant: given.tenant.as_ref(),
            subject: &msg.subject,
            headers: msg.headers.as_ref(),
            body: msg.payload.clone(),
            error,
            origin: path.origin(),
        };
        let stored = letter.publish(&self.publisher).await;
        if let Err(err) = &stored {
            tracing::error!(path = P::NAME, %err, "cannot store the dead letter");
        }
        path.dead_lettered(stored.is_ok()).await
    }
}

/// Where the result of a handled action goes: what a path needs to answer it.
pub(crate) struct Addressed<'a> {
    /// The request the result answers (ids, tenant, session, trace).
    pub address: &'a ResultAddress,
    /// The action's checked callback subject, if it asked for a result.
    pub callback: Option<&'a CallbackSubject>,
}

/// What a path made of a handled action.
pub(crate) enum Verdict {
    /// Finished on the path: how, and the error code if it failed.
    Settled(Outcome, Option<ErrorCode>),
    /// Nothing more the path can do: dead-letter the message with this error.
    GiveUp(ActionError),
}

impl From<ActionError> for Rejection {
    /// A rejection that knows nothing but why.
    fn from(error: ActionError) -> Self {
        Rejection {
            error,
            domain: None,
            tenant: None,
            callback: None,
            address: None,
        }
    }
}

/// How a message arrived and how its outcome goes back: what the durable path and the rpc
/// path do differently. Everything else is the [`Pipeline`]'s.
pub(crate) trait Path: Send + Sync {
    /// Names the path in spans and logs (`durable`, `rpc`).
    const NAME: &'static str;

    /// The message as it arrived: subject, headers, body, reply subject.
    fn message(&self) -> &Message;

    /// 1 on the first delivery, more when the server delivers it again.
    fn delivery(&self) -> u64 {
        1
    }

    /// The id of an action that came without one (made only then).
    fn fallback_id(&self) -> Uuid;

    /// Where a dead letter of this message says it came from.
    fn origin(&self) -> Origin;

    /// Checks made before the message is read; a refused message is dead-lettered and
    /// never answered.
    fn admit(&self, inboxes: Inboxes) -> Result<(), Rejection> {
        let _ = inboxes;
        Ok(())
    }

    /// Runs `work` (the layers and the handler) while the path waits for it: the durable
    /// path keeps its lease on the message meanwhile.
    fn hold<F>(&self, work: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future<Output: Send> + Send,
    {
        work
    }

    /// Answers a rejected message where it can, before it is dead-lettered.
    fn answer(&self, pipeline: &Pipeline, rejected: &Rejection) -> impl Future<Output = ()> + Send;

    /// Turns the handler's outcome into the path's: a result, an ack or a nak, a reply.
    fn settle(
        &self,
        pipeline: &Pipeline,
        handled: Handled,
        to: Addressed<'_>,
    ) -> impl Future<Output = Verdict> + Send;

    /// Finishes a message given up on, once its dead letter was stored (or could not be).
    fn dead_lettered(&self, stored: bool) -> impl Future<Output = Outcome> + Send;

    /// Ends a message refused for its tenant's limits, once it was answered: as a message
    /// whose letter was stored (the durable path terminates it so it is not redelivered,
    /// the rpc path has nothing left to do), though no letter is stored.
    fn end_refused(&self) -> impl Future<Output = ()> + Send {
        async {
            let _ = self.dead_lettered(true).await;
        }
    }
}

/// The worker's tenant limits: the `tenants` bucket of the worker's account, the
/// `DA_TENANT_*` defaults read from the environment like every setting (unreadable
/// settings leave tenants unlimited, with a warning: the worker's own settings were
/// already checked when it was configured).
fn worker_quotas(publisher: &Publisher) -> Quotas {
    let settings = Settings::from_env();
    let (defaults, replicas) = match &settings {
        Ok(settings) => (settings.quota.clone(), settings.stream_replicas),
        Err(err) => {
            tracing::warn!(%err, "tenant limit defaults unreadable; tenants without a record are unlimited");
            (Default::default(), 1)
        }
    };
    Quotas::new(publisher.client().clone(), defaults, replicas)
}
