//! The rpc path: `<domain>.*.rpc`, registered as a NATS micro service.
//!
//! Registering through the micro API makes every worker visible to `nats micro ls` and
//! answer `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`; requests are spread over instances by
//! the service's queue group. Each request goes through the same dispatcher as the durable
//! path and is answered with a result action on its reply subject. Nothing is stored, so
//! nothing is retried: a retryable error goes back to the caller with `retryable: true`.
//! Anything else that fails is dead-lettered like a durable action.

use std::sync::Arc;
use std::time::Instant;

use async_nats::HeaderMap;
use async_nats::service::{Request, Service, ServiceExt, endpoint::Endpoint};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::action::decode::{decode_or, unreadable_type};
use crate::action::{ActionError, ActionResult, ResultAddress};
use crate::context::Ctx;
use crate::metrics::Outcome;
use crate::publish;
use crate::subject::{self, ActionSubject, Channel};
use crate::telemetry;
use crate::worker::dead_letter::{DeadLetter, Origin};
use crate::worker::{InFlight, Shared};

/// A started micro service with its rpc endpoint.
pub(crate) struct RpcService {
    shared: Arc<Shared>,
    service: Service,
    endpoint: Endpoint,
}

impl RpcService {
    /// Registers the service `<domain>` with the endpoint `rpc` on `<domain>.*.rpc`.
    pub async fn start(shared: Arc<Shared>) -> Result<Self, async_nats::Error> {
        let domain = shared.dispatcher.domain().clone();
        let types: Vec<&str> = shared
            .dispatcher
            .action_types()
            .map(|t| t.as_str())
            .collect();
        let service = shared
            .publisher
            .client()
            .service_builder()
            .description(format!(
                "Domain Actions service {domain}: {}",
                types.join(", ")
            ))
            .start(domain.as_str(), shared.config.version.as_str())
            .await?;
        let endpoint = service
            .endpoint_builder()
            .name("rpc")
            .add(subject::any_tenant(&domain, Channel::Rpc))
            .await?;
        Ok(Self {
            shared,
            service,
            endpoint,
        })
    }

    /// Starts answering `request` in `inflight`.
    fn begin(&self, inflight: &mut InFlight, request: Request) {
        let shared = self.shared.clone();
        // Boxed where it is made: the handler future is moved only as a pointer.
        inflight.push(Box::pin(async move { answer(&shared, request).await }));
    }

    /// Answers requests until `shutdown`, then lets in-flight ones finish. At most
    /// `concurrency` run at once; they are driven by this task ([`InFlight`] says why).
    pub async fn serve(mut self, shutdown: CancellationToken) {
        let capacity = self.shared.config.concurrency.max(1);
        let mut inflight = InFlight::default();
        let stopped = shutdown.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                request = self.endpoint.next(), if inflight.len() < capacity => {
                    let Some(request) = request else { break };
                    self.begin(&mut inflight, request);
                    // Take the rest of a burst that has already arrived in the same turn,
                    // rather than one request per pass of this loop.
                    while inflight.len() < capacity {
                        match self.endpoint.next().now_or_never() {
                            Some(Some(request)) => self.begin(&mut inflight, request),
                            _ => break,
                        }
                    }
                }
                Some(()) = inflight.next(), if !inflight.is_empty() => {}
            }
        }
        let _ = self.endpoint.stop().await;
        inflight.finish().await;
        let _ = self.service.stop().await;
    }
}

/// Handles one request and answers it.
async fn answer(shared: &Shared, request: Request) {
    let _busy = shared.metrics.in_flight();
    let msg = &request.message;
    let domain = shared.dispatcher.domain();
    // Says how the request ended: given up on if the letter is stored, else just failed.
    let dead_letter = |error: ActionError, tenant| async move {
        let letter = DeadLetter {
            domain,
            tenant,
            subject: &msg.subject,
            headers: msg.headers.as_ref(),
            body: msg.payload.clone(),
            error: &error,
            origin: Origin::Rpc,
        };
        match letter.publish(&shared.publisher).await {
            Ok(()) => Outcome::DeadLettered,
            Err(err) => {
                tracing::error!(%err, "cannot store the dead letter of an rpc request");
                Outcome::Error
            }
        }
    };
    // Where the answer would go, checked before anything is answered: a reply subject is
    // the requester's word, and one outside its tenant (`$KV.…`, `$JS.API.…`, `dlq.…`,
    // another tenant's inbox or events) gets nothing published, only a dead letter.
    let tenant = ActionSubject::parse(&msg.subject).ok().map(|s| s.tenant);
    let refused = match (&msg.reply, &tenant) {
        (None, _) => Some(ActionError::invalid(
            "rpc request without a reply subject: use request/reply, or publish to .actions",
        )),
        (Some(reply), tenant) => shared
            .config
            .inboxes
            .check_reply(reply, tenant.as_ref())
            .err(),
    };
    if let Some(error) = refused {
        tracing::warn!(code = %error.code, error = %error.message, "rpc request refused; dead-lettering");
        let code = error.code;
        let outcome = Box::pin(dead_letter(error, tenant.as_ref())).await;
        let unknown = shared.metrics.unknown();
        return shared
            .metrics
            .finished(tenant.as_ref(), unknown, outcome, Some(code));
    }

    let received = match decode_or(
        &msg.subject,
        msg.headers.as_ref(),
        &msg.payload,
        shared.config.inboxes,
        Uuid::now_v7,
    ) {
        Ok(received) => received,
        Err(rejection) => {
            let failure = ActionResult::<()>::failure(rejection.error.clone(), 0);
            respond(
                &request,
                reply(shared, rejection.address.as_deref(), failure),
            )
            .await;
            let (tenant, code) = (rejection.tenant.as_ref(), rejection.error.code);
            let outcome = Box::pin(dead_letter(rejection.error, tenant)).await;
            let unknown = shared.metrics.unknown();
            return shared
                .metrics
                .finished(tenant, unknown, outcome, Some(code));
        }
    };
    let mut action = received.action;
    let address = ResultAddress::from(&action);
    let span = tracing::debug_span!("rpc", action_type = %action.action_type, tenant = %action.tenant_id, action_id = %action.action_id);
    action.traceparent = telemetry::adopt(&span, action.traceparent);
    let ctx = Ctx::for_action(
        &action,
        1,
        Some(shared.publisher.clone()),
        shared.dispatcher.state().clone(),
        shared.handler_cancel.clone(),
    );
    let kind = shared.metrics.kind(&action.action_type);
    let started = Instant::now();
    let outcome = shared
        .dispatcher
        .dispatch(action, ctx)
        .instrument(span)
        .await;
    let elapsed = started.elapsed();
    kind.handler_took(elapsed);
    let duration_ms = elapsed.as_millis() as u64;
    let (message, failed) = match outcome {
        Ok(output) => (
            reply(
                shared,
                Some(&address),
                ActionResult::success(output, duration_ms),
            ),
            None,
        ),
        Err(error) => (
            reply(
                shared,
                Some(&address),
                ActionResult::<()>::failure(error.clone(), duration_ms),
            ),
            Some(error),
        ),
    };
    respond(&request, message).await;
    let tenant = Some(&received.subject.tenant);
    let (outcome, code) = match failed {
        None => (Outcome::Success, None),
        Some(error) if error.retryable => (Outcome::Error, Some(error.code)),
        Some(error) => {
            tracing::warn!(code = %error.code, error = %error.message, "rpc request failed; dead-lettering");
            let code = error.code;
            (Box::pin(dead_letter(error, tenant)).await, Some(code))
        }
    };
    shared.metrics.finished(tenant, kind, outcome, code);
}

/// The reply to a request: a result action encoded like every other result
/// ([`publish::encode_result`]), or a bare result when not even the tenant could be read.
fn reply<R: serde::Serialize>(
    shared: &Shared,
    address: Option<&ResultAddress>,
    data: ActionResult<R>,
) -> (HeaderMap, Bytes) {
    let Some(address) = address else {
        return bare_result(shared, &data);
    };
    match publish::encode_result(&address.result(data), &address.chain_correlation) {
        Ok(message) => message,
        Err(err) => {
            let error = ActionError::handler(format!("cannot encode the result: {err}"));
            bare_result(shared, &ActionResult::<()>::failure(error, 0))
        }
    }
}

/// A result with no tenant or request to address it to.
fn bare_result<R: serde::Serialize>(shared: &Shared, data: &ActionResult<R>) -> (HeaderMap, Bytes) {
    let result = json!({
        "action_id": Uuid::now_v7(),
        "action_type": unreadable_type(shared.dispatcher.domain()).result_type(),
        "data": data,
    });
    (HeaderMap::new(), Bytes::from(result.to_string()))
}

async fn respond(request: &Request, (headers, body): (HeaderMap, Bytes)) {
    if let Err(err) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(%err, "cannot answer rpc request");
    }
}
