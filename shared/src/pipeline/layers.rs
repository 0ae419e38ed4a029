//! The layers around a handler: each cross-cutting step is a small [`Service`] that wraps
//! the next one, in the manner of tower's services or Watermill's middlewares.
//!
//! A layer receives the decoded action on its way in ([`Call`]) and the handler's outcome
//! on its way out ([`Handled`]). It can act before the handler (open a span), after it
//! (record how long it took), around it (a deadline, a panic catch), or instead of it
//! (answer at once with an error). The worker's stack, outermost first:
//!
//! | layer | why |
//! |---|---|
//! | [`Traced`] | a span per action, tagged with its ids, so everything the handler logs or sends can be followed; the trace context the action arrived with is adopted, so exported traces link sender and worker |
//! | [`Quota`] | per-tenant limits: past its requests per minute (or, on the rpc path, its concurrent actions) a tenant's action is answered `rate_limited` without running, and never dead-lettered ([`crate::quota`]) |
//! | [`Timed`] | the handler's time: the `da_handler_duration_seconds` histogram and the result's `duration_ms` |
//! | [`Deadline`] | a handler past `WorkerConfig::handler_timeout` is dropped and fails with `timeout` (retryable) |
//! | [`CatchPanic`] | a panicking handler fails with `handler_panic` instead of taking the worker down |
//! | [`Dispatch`] | the handler itself: builds the [`Ctx`] and routes by `action_type` |
//!
//! The stack is a nested type ([`Stack`]), built once per worker: every call is static
//! dispatch, and the futures nest into one allocation per message (the one the path makes
//! when it starts the message).
//!
//! ## Adding a layer
//!
//! Write it as a struct generic over its inner service, implement [`Service`] for it, and
//! add it to [`Stack`] and [`stack`]. A layer that refuses an action for its tenant's
//! limits answers with [`Handled::failed`] and a `rate_limited` or `quota_exceeded` error:
//! the pipeline answers those and ends the message without a dead letter (see
//! `Pipeline::run`). A fair-share layer that waits for the tenant's share sits next to
//! [`Quota`]: time waited there is not handler time, and the durable path keeps its lease
//! meanwhile, since `Path::hold` wraps the whole stack.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::action::{ActionError, ErrorCode, RawAction};
use crate::context::Ctx;
use crate::dispatcher::{Dispatcher, RawOutput, panic_error};
use crate::metrics::WorkerMetrics;
use crate::publish::Publisher;
use crate::quota::Quotas;
use crate::quota::quotas::over_rate;
use crate::telemetry;

/// A decoded, checked action on its way to its handler.
pub(crate) struct Call {
    /// The action; a layer may change it (the trace layer adopts the trace context).
    pub action: RawAction,
    /// 1 on the first delivery, more on a redelivery.
    pub delivery: u64,
    /// Which path it came by (`durable`, `rpc`), for spans.
    pub path: &'static str,
}

/// What came back from the handler.
pub(crate) struct Handled {
    /// The handler's output as JSON, or why it failed.
    pub output: Result<RawOutput, ActionError>,
    /// How long the handler ran, as [`Timed`] measured it (zero below that layer).
    pub elapsed: Duration,
}

impl Handled {
    /// An outcome made by a layer instead of the handler.
    pub fn failed(error: ActionError) -> Self {
        Self {
            output: Err(error),
            elapsed: Duration::ZERO,
        }
    }
}

/// One step of the stack: takes a call to its outcome. Layers are services wrapping a
/// service; the innermost is [`Dispatch`].
pub(crate) trait Service: Send + Sync + 'static {
    /// Handles `call`, usually by passing it on to the wrapped service.
    fn call(&self, call: Call) -> impl Future<Output = Handled> + Send;
}

/// The worker's stack, outermost first (the table above says why each is there).
pub(crate) type Stack = Traced<Quota<Timed<Deadline<CatchPanic<Dispatch>>>>>;

/// What the stack is built from.
pub(crate) struct Parts {
    /// Routes actions to their handlers.
    pub dispatcher: Arc<Dispatcher>,
    /// Given to every handler's context (none: handlers cannot publish, as in unit tests).
    pub publisher: Option<Publisher>,
    /// Given to every handler's context: cancelled at a drain timeout.
    pub cancel: CancellationToken,
    /// Where handler times are recorded.
    pub metrics: Arc<WorkerMetrics>,
    /// The longest a handler may run; none: no limit.
    pub timeout: Option<Duration>,
    /// Tenants' limits (none: nothing is limited, as in unit tests).
    pub quotas: Option<Quotas>,
}

/// Builds the worker's [`Stack`].
pub(crate) fn stack(parts: Parts) -> Stack {
    // Where limits are counted (`at` in /metrics): the worker's domain, one copy for both layers.
    let at: Arc<str> = Arc::from(parts.dispatcher.domain().as_str());
    let dispatch = Dispatch {
        at: at.clone(),
        dispatcher: parts.dispatcher,
        publisher: parts.publisher,
        cancel: parts.cancel,
        quotas: parts.quotas.clone(),
    };
    Traced(Quota {
        quotas: parts.quotas,
        at,
        inner: Timed {
            metrics: parts.metrics,
            inner: Deadline {
                limit: parts.timeout,
                inner: CatchPanic(dispatch),
            },
        },
    })
}

/// Runs the handler in a span naming the action; adopts the trace context it arrived with.
pub(crate) struct Traced<S>(pub S);

impl<S: Service> Service for Traced<S> {
    async fn call(&self, mut call: Call) -> Handled {
        use tracing::Instrument;
        let action = &call.action;
        // A debug span: without a subscriber that wants it, it is never built (its fields
        // are not even evaluated), so the hot path pays one level check.
        let span = tracing::debug_span!(
            "action",
            path = call.path,
            action_type = %action.action_type,
            tenant = %action.tenant_id,
            action_id = %action.action_id,
            correlation_id = %action.chain_correlation(),
            trace_id = action.traceparent.map(|t| t.trace_id_hex()).unwrap_or_default(),
            delivery = call.delivery,
        );
        call.action.traceparent = telemetry::adopt(&span, call.action.traceparent);
        self.0.call(call).instrument(span).await
    }
}

/// Holds each tenant to its limits before its action runs: its requests per minute (on
/// either path), and on the rpc path its concurrent actions. Counted per worker instance
/// ([`crate::quota::window`] says why that is enough). A redelivered durable action was
/// admitted on its first delivery and is not counted again.
pub(crate) struct Quota<S> {
    quotas: Option<Quotas>,
    /// Where the counts are from, in `/metrics` (`at`): the worker's domain.
    at: Arc<str>,
    inner: S,
}

impl<S: Service> Service for Quota<S> {
    async fn call(&self, call: Call) -> Handled {
        let Some(quotas) = &self.quotas else {
            return self.inner.call(call).await;
        };
        let counts_request = call.delivery <= 1;
        let takes_slot = call.path == "rpc";
        if !counts_request && !takes_slot {
            return self.inner.call(call).await;
        }
        let tenant = &call.action.tenant_id;
        let at = &*self.at;
        let limits = quotas.limits(tenant).await;
        if counts_request
            && let Some(admission) = quotas.admit_within(&limits, tenant, at)
            && !admission.allowed
        {
            return Handled::failed(over_rate(tenant, &admission));
        }
        let _slot = if takes_slot {
            match quotas.enter(&limits, tenant, at) {
                Ok(slot) => slot,
                Err(error) => return Handled::failed(error),
            }
        } else {
            None
        };
        self.inner.call(call).await
    }
}

/// Measures the handler's time and records it in its action type's histogram.
pub(crate) struct Timed<S> {
    metrics: Arc<WorkerMetrics>,
    inner: S,
}

impl<S: Service> Service for Timed<S> {
    async fn call(&self, call: Call) -> Handled {
        let kind = self.metrics.kind(&call.action.action_type);
        let started = Instant::now();
        let mut handled = self.inner.call(call).await;
        handled.elapsed = started.elapsed();
        kind.handler_took(handled.elapsed);
        handled
    }
}

/// Fails a handler that runs longer than `limit` with a retryable `timeout`, dropping it.
pub(crate) struct Deadline<S> {
    limit: Option<Duration>,
    inner: S,
}

impl<S: Service> Service for Deadline<S> {
    async fn call(&self, call: Call) -> Handled {
        let Some(limit) = self.limit else {
            return self.inner.call(call).await;
        };
        tokio::time::timeout(limit, self.inner.call(call))
            .await
            .unwrap_or_else(|_| {
                Handled::failed(ActionError::new(
                    ErrorCode::Timeout,
                    format!("the handler did not finish within {limit:?}"),
                ))
            })
    }
}

/// Turns a panic in the handler into a `handler_panic` error.
pub(crate) struct CatchPanic<S>(pub S);

impl<S: Service> Service for CatchPanic<S> {
    async fn call(&self, call: Call) -> Handled {
        AssertUnwindSafe(self.0.call(call))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Handled::failed(panic_error(&*panic)))
    }
}

/// The handler: the action's context, then its type's handler.
pub(crate) struct Dispatch {
    /// The worker's domain, where handlers' limits are counted (shared by every context).
    at: Arc<str>,
    dispatcher: Arc<Dispatcher>,
    publisher: Option<Publisher>,
    cancel: CancellationToken,
    quotas: Option<Quotas>,
}

impl Service for Dispatch {
    async fn call(&self, call: Call) -> Handled {
        let mut ctx = Ctx::for_action(
            &call.action,
            call.delivery,
            self.publisher.clone(),
            self.cancel.clone(),
        );
        if let Some(quotas) = &self.quotas {
            ctx = ctx.with_quotas(quotas.clone(), self.at.clone());
        }
        let output = match self.dispatcher.route(call.action, ctx) {
            Ok(handler) => handler.await,
            Err(error) => Err(error),
        };
        Handled {
            output,
            elapsed: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ActionPayload, TenantId};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// Sleeps this many milliseconds, then panics if asked to.
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Nap(u64, bool);
    impl ActionPayload for Nap {
        const ACTION_TYPE: &'static str = "calc.nap";
        type Output = u64;
    }

    async fn nap(action: Action<Nap>, _: Ctx) -> Result<u64, ActionError> {
        let Nap(ms, panic) = action.data;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        assert!(!panic, "asked to panic");
        Ok(ms)
    }

    /// A stack without NATS: its handlers' contexts have no publisher.
    async fn with_stack(timeout: Option<Duration>, test: impl AsyncFnOnce(Stack)) {
        let dispatcher = Dispatcher::new("calc").on::<Nap, _>(nap);
        let metrics = Arc::new(WorkerMetrics::new(
            dispatcher.domain(),
            dispatcher.action_types(),
        ));
        test(stack(Parts {
            dispatcher: Arc::new(dispatcher),
            publisher: None,
            cancel: CancellationToken::new(),
            metrics,
            timeout,
            quotas: None,
        }))
        .await;
    }

    fn call(ms: u64, panic: bool) -> Call {
        let tenant = TenantId::new("acme").expect("tenant");
        Call {
            action: Action::new(tenant, Nap(ms, panic)).into_raw().expect("raw"),
            delivery: 1,
            path: "test",
        }
    }

    #[tokio::test]
    async fn layers_time_bound_and_catch_the_handler() {
        with_stack(Some(Duration::from_millis(200)), async |stack| {
            let handled = stack.call(call(20, false)).await;
            assert_eq!(handled.output.expect("output").get(), "20");
            assert!(handled.elapsed >= Duration::from_millis(20));

            let handled = stack.call(call(5_000, false)).await;
            let error = handled.output.expect_err("timed out");
            assert_eq!(error.code, ErrorCode::Timeout);
            assert!(error.retryable);
            assert!(handled.elapsed < Duration::from_secs(1));

            let error = stack.call(call(0, true)).await.output.expect_err("panic");
            assert_eq!(error.code, ErrorCode::HandlerPanic);
            assert!(error.message.contains("asked to panic"), "{error}");
        })
        .await;
    }
}
