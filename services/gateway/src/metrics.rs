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
//! The recorder is the `metrics` crate's, and it is process-wide: it is installed once per
//! process (the first time a gateway is built) and every gateway built afterwards in the
//! same process (tests build several) records into it and renders it. Anything else in
//! the process, such as the workers `domain-actions dev` runs next to the gateway, can
//! record its own metrics with the `metrics` macros (`metrics::counter!(…)`), and they
//! appear here too; nothing else should install a recorder, since only the first one
//! installed in a process takes effect.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests handled, by method, route template and status.
pub const REQUESTS: &str = "http_requests_total";
/// Time to the response's head, in seconds, by method, route template and status.
pub const DURATION: &str = "http_request_duration_seconds";

/// Upper bounds of the duration histogram's buckets, in seconds: from a cached health
/// check to a `?wait=` of a minute (`MAX_WAIT`).
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often samples are folded into the histograms when nobody scrapes, so memory stays
/// bounded between scrapes (rendering folds them too).
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's recorder, installed by the first [`handle`].
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder's handle, installing the recorder on first use.
///
/// If another recorder was installed first (by something else in the process), the metrics
/// macros feed that one and this handle renders an empty registry; that is logged, not
/// fatal, because metrics are not worth refusing to serve over.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), BUCKETS)
            .unwrap_or_else(|err| {
                tracing::warn!("metrics: {err}; durations are summaries, not histograms");
                PrometheusBuilder::new()
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(err) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!("metrics: {err}; /metrics will not show what is recorded");
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!("metrics: no upkeep thread ({err}); scrapes still fold samples");
        }
        handle
    })
}

/// The middleware that records [`REQUESTS`] and [`DURATION`] for one request. Apply it to
/// the whole router with `Router::layer(axum::middleware::from_fn(track))`, which runs it
/// after routing, where the matched path is known.
pub async fn track(request: Request, next: Next) -> Response {
    // Installs the recorder before the first request is recorded, not at the first scrape.
    handle();
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
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle().render(),
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
