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
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::action::{ActionError, ActionResult, ResultAddress, decode, decode::unreadable_type};
use crate::context::Ctx;
use crate::headers;
use crate::subject::{self, Channel};
use crate::worker::Shared;
use crate::worker::dead_letter::{DeadLetter, Origin};

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

    /// Answers requests until `shutdown`, then lets in-flight ones finish.
    pub async fn serve(mut self, shutdown: CancellationToken) {
        let capacity = self.shared.config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(capacity));
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let request = tokio::select! {
                _ = shutdown.cancelled() => break,
                request = self.endpoint.next() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            let shared = self.shared.clone();
            tokio::spawn(async move {
                answer(&shared, request).await;
                drop(permit);
            });
        }
        let _ = self.endpoint.stop().await;
        let _ = slots.acquire_many(capacity as u32).await;
        let _ = self.service.stop().await;
    }
}

/// Handles one request and answers it.
async fn answer(shared: &Shared, request: Request) {
    let msg = &request.message;
    let domain = shared.dispatcher.domain();
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
        if let Err(err) = letter.publish(&shared.publisher).await {
            tracing::error!(%err, "cannot store the dead letter of an rpc request");
        }
    };
    if msg.reply.is_none() {
        let error = ActionError::invalid(
            "rpc request without a reply subject: use request/reply, or publish to .actions",
        );
        return dead_letter(error, None).await;
    }

    let received = match decode(
        &msg.subject,
        msg.headers.as_ref(),
        &msg.payload,
        Uuid::now_v7(),
    ) {
        Ok(received) => received,
        Err(rejection) => {
            let body = match &rejection.address {
                Some(address) => encode_result(
                    address,
                    ActionResult::<()>::failure(rejection.error.clone(), 0),
                ),
                None => unaddressed_error(shared, &rejection.error),
            };
            respond(
                &request,
                body,
                address_headers(rejection.address.as_deref()),
            )
            .await;
            return dead_letter(rejection.error, rejection.tenant.as_ref()).await;
        }
    };
    let action = received.action;
    let address = ResultAddress::from(&action);
    let span = tracing::debug_span!("rpc", action_type = %action.action_type, tenant = %action.tenant_id, action_id = %action.action_id);
    let ctx = Ctx::for_action(
        &action,
        1,
        Some(shared.publisher.clone()),
        shared.dispatcher.state().clone(),
        shared.handler_cancel.clone(),
    );
    let started = Instant::now();
    let outcome = shared
        .dispatcher
        .dispatch(action, ctx)
        .instrument(span)
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (body, failed) = match outcome {
        Ok(output) => (
            encode_result(&address, ActionResult::success(output, duration_ms)),
            None,
        ),
        Err(error) => (
            encode_result(
                &address,
                ActionResult::<()>::failure(error.clone(), duration_ms),
            ),
            Some(error),
        ),
    };
    respond(&request, body, address_headers(Some(&address))).await;
    if let Some(error) = failed.filter(|e| !e.retryable) {
        tracing::warn!(code = %error.code, error = %error.message, "rpc request failed; dead-lettering");
        dead_letter(error, Some(&received.subject.tenant)).await;
    }
}

fn encode_result<R: serde::Serialize>(address: &ResultAddress, data: ActionResult<R>) -> Bytes {
    serde_json::to_vec(&address.result(data)).map(Bytes::from).unwrap_or_else(|err| {
        Bytes::from(json!({"data": {"status": "error", "error": {"code": "handler_error", "message": format!("cannot encode result: {err}"), "retryable": false}}}).to_string())
    })
}

/// An error result for a request whose tenant could not be read.
fn unaddressed_error(shared: &Shared, error: &ActionError) -> Bytes {
    let result = json!({
        "action_id": Uuid::now_v7(),
        "action_type": unreadable_type(shared.dispatcher.domain()).result_type(),
        "data": ActionResult::<()>::failure(error.clone(), 0),
    });
    Bytes::from(result.to_string())
}

/// The headers of a reply, like those of any result: its type, the chain's correlation id
/// (the request's own id when it starts the chain) and a child of the request's trace.
fn address_headers(address: Option<&ResultAddress>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(address) = address {
        h.insert(
            headers::ACTION_TYPE,
            address.request_type.result_type().as_str(),
        );
        h.insert(headers::CORRELATION_ID, address.chain_correlation.as_str());
        if let Some(trace) = &address.trace {
            h.insert(headers::TRACEPARENT, trace.child().to_header());
        }
    }
    h
}

async fn respond(request: &Request, body: Bytes, headers: HeaderMap) {
    if let Err(err) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(%err, "cannot answer rpc request");
    }
}
