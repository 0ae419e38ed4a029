//! `GET /metrics`: Prometheus text exposition of the process's metrics, and [`track`], the
//! middleware that records the gateway's HTTP metrics:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//!
//! `route` is the matched path template (`/v1/agents/{agent_id}`), never the raw URL, so
//! ids do not become label values (one series per agent would grow without bound);
//! requests no route matched are `route="unmatched"`. The duration is until the response's
//! head: for the chat WebSocket that is the upgrade, for task events the start of the stream.
//!
//! The recorder is the framework's ([`shared::metrics::install`]), and it is process-wide:
//! installed once per process, and every gateway built in the same process (tests build
//! several) records into it and renders it. Anything else in the process, such as the
//! workers `domain-actions dev` runs next to the gateway, records its metrics there too
//! (`da_actions_handled_total`, …: see [`shared::metrics`]), and they appear here.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Requests handled, by method, route template and status.
pub const REQUESTS: &str = "http_requests_total";
/// Time to the response's head, in seconds, by method, route template and status.
pub const DURATION: &str = "http_request_duration_seconds";

/// The middleware that records [`REQUESTS`] and [`DURATION`] for one request. Apply it to
/// the whole router with `Router::layer(axum::middleware::from_fn(track))`, which runs it
/// after routing, where the matched path is known.
pub async fn track(request: Request, next: Next) -> Response {
    // Installs the recorder before the first request is recorded, not at the first scrape.
    shared::metrics::install();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_str().to_owned()),
    ];
    ::metrics::counter!(REQUESTS, &labels).increment(1);
    ::metrics::histogram!(DURATION, &labels).record(start.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard ones by name, anything else as `other`, so a
/// client inventing methods cannot add series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Serves the metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "`http_requests_total`, \
        `http_request_duration_seconds` and whatever else the process records",
        content_type = "text/plain", body = String)),
    security(()),
)]
pub async fn render() -> Response {
    (
        [(CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let invented = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&invented), "other");
    }
}
