//! [`Ctx`]: what a handler gets besides its action.
//!
//! A handler sends further actions through its context, so the correlation id, trace
//! context, tenant, session and task of the action it is handling are carried over without
//! the handler having to remember them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::action::{Action, ActionError, ActionPayload, ErrorCode, RawAction, TenantId};
use crate::publish::{Enqueued, Publisher};
use crate::quota::Quotas;
use crate::telemetry::{self, TraceParent};

/// The context of one action being handled.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    tenant: TenantId,
    action_id: Uuid,
    correlation_id: String,
    session_id: Option<String>,
    task_id: Option<String>,
    trace: Option<TraceParent>,
    delivery: u64,
    publisher: Option<Publisher>,
    cancel: CancellationToken,
    /// The worker's tenant limits and where they are counted (its domain; none in unit
    /// tests: nothing is limited).
    quotas: Option<(Quotas, Arc<str>)>,
}

impl Ctx {
    /// The context for `action`, received for the `delivery`-th time.
    pub fn for_action(
        action: &RawAction,
        delivery: u64,
        publisher: Option<Publisher>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(CtxInner {
                tenant: action.tenant_id.clone(),
                action_id: action.action_id,
                correlation_id: action.chain_correlation(),
                session_id: action.session_id.clone(),
                task_id: action.task_id.clone(),
                trace: action.traceparent.or_else(telemetry::new_trace),
                delivery,
                publisher,
                cancel,
                quotas: None,
            }),
        }
    }

    /// This context with the worker's tenant limits, counted `at` its domain.
    pub(crate) fn with_quotas(mut self, quotas: Quotas, at: Arc<str>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.quotas = Some((quotas, at));
        }
        self
    }

    /// Call before a paid model API (a chat or embedding API) for this action: refuses a
    /// `model` the tenant may not name (`forbidden`) and a tenant with no LLM tokens left
    /// today (`quota_exceeded`), so neither costs an API call. `model` is the one the
    /// action names; none: the operator's configured model, always allowed.
    pub async fn check_llm(&self, model: Option<&str>) -> Result<(), ActionError> {
        match &self.inner.quotas {
            Some((quotas, at)) => quotas.check_llm(&self.inner.tenant, model, at).await,
            None => Ok(()),
        }
    }

    /// Call before a paid embedding API for this action: refuses a `model` the tenant may
    /// not name (`forbidden`). Unlike [`Ctx::check_llm`] it spends none of the tenant's
    /// LLM tokens of the day: an index is not held up by chat.
    pub async fn check_model(&self, model: Option<&str>) -> Result<(), ActionError> {
        match &self.inner.quotas {
            Some((quotas, at)) => quotas.check_model(&self.inner.tenant, model, at).await,
            None => Ok(()),
        }
    }

    /// Call after a paid model API answered: adds the `tokens` it reported (its `usage`)
    /// to the tenant's count of the day, which [`Ctx::check_llm`] holds against its limit.
    pub async fn record_llm_tokens(&self, tokens: u64) {
        if let Some((quotas, _)) = &self.inner.quotas {
            quotas.record_tokens(&self.inner.tenant, tokens).await;
        }
    }

    /// The tenant of the action, validated from its subject.
    pub fn tenant(&self) -> &TenantId {
        &self.inner.tenant
    }

    /// The id of the action being handled.
    pub fn action_id(&self) -> Uuid {
        self.inner.action_id
    }

    /// The chain's correlation id, carried onto every action this one causes.
    pub fn correlation_id(&self) -> &str {
        &self.inner.correlation_id
    }

    /// The trace context of this action: the one it arrived with, or a new one when this
    /// process exports traces ([`telemetry::new_trace`]).
    pub fn trace(&self) -> Option<TraceParent> {
        self.inner.trace
    }

    /// 1 on the first delivery, 2 on the first retry, and so on.
    pub fn delivery(&self) -> u64 {
        self.inner.delivery
    }

    /// Cancelled when the worker gives up waiting for in-flight work at shutdown; long
    /// handlers should stop at the next convenient point.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// An action caused by this one: same tenant, session and task, the chain's correlation
    /// id, and a child trace context.
    pub fn follow_up<T: ActionPayload>(&self, data: T) -> Action<T> {
        let mut action = Action::new(self.inner.tenant.clone(), data);
        action.correlation_id = Some(self.inner.correlation_id.clone());
        action.session_id = self.inner.session_id.clone();
        action.task_id = self.inner.task_id.clone();
        action.traceparent = self.inner.trace.as_ref().map(TraceParent::child);
        action
    }

    /// The publisher of the worker running this handler.
    pub fn publisher(&self) -> Result<&Publisher, ActionError> {
        self.inner.publisher.as_ref().ok_or_else(|| {
            ActionError::new(
                ErrorCode::Unavailable,
                "no NATS connection in this context (a unit test?)",
            )
            .retryable(false)
        })
    }

    /// Enqueues an action made with [`Ctx::follow_up`] on the durable path.
    pub async fn enqueue<T: ActionPayload>(
        &self,
        action: &Action<T>,
    ) -> Result<Enqueued, ActionError> {
        Ok(self.publisher()?.enqueue(action).await?)
    }

    /// Sends `data` over rpc as a follow-up of this action and waits for its result.
    pub async fn request<T: ActionPayload>(
        &self,
        data: T,
        timeout: Duration,
    ) -> Result<T::Output, ActionError> {
        let action = self.follow_up(data);
        self.publisher()?.request(&action, timeout).await
    }
}
