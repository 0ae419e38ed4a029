//! The Prometheus exporter: one recorder per process, rendered in the text exposition format.
//!
//! The recorder of the `metrics` facade is process-wide and only the first one installed
//! takes effect, so there is one way to install it ([`install`], idempotent) and everything
//! that shows metrics renders the same registry: `domain-actions worker --metrics-addr`
//! serves it alone ([`bind`], [`serve`]), the gateway on its own `/metrics` ([`render`]).
//! `domain-actions dev` installs it before starting its workers, so the gateway's page also
//! shows theirs.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Upper bounds of every duration histogram's buckets, in seconds: from a handler that
/// answers from memory to an HTTP request waiting a minute for a result.
pub const BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often samples are folded into the histograms when nobody scrapes, so memory stays
/// bounded between scrapes (rendering folds them too).
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's recorder, installed by the first [`install`].
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's recorder, once; later calls return the
/// same handle. Install it before starting workers: they bind their handles at start.
///
/// If another recorder was installed first (by something else in the process), the metrics
/// macros feed that one and this handle renders an empty registry; that is logged, not
/// fatal, because metrics are not worth refusing to serve over.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|err| {
                tracing::warn!("metrics: {err}; durations are summaries, not histograms");
                PrometheusBuilder::new()
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(err) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!("metrics: {err}; the Prometheus text will not show what is recorded");
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

/// Everything the process recorded, in the Prometheus text format ([`CONTENT_TYPE`]).
/// Installs the recorder if nothing did yet.
pub fn render() -> String {
    install().render()
}

/// Binds the address `domain-actions worker --metrics-addr` serves on, so a taken port
/// fails the command at start rather than later.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `GET /metrics` (the text format) on `listener` until `shutdown`. Installs the
/// recorder if nothing did yet.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    install();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "serving Prometheus metrics on /metrics");
    let app = Router::new().route(
        "/metrics",
        get(|| async { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()).into_response() }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_under_their_names() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            super::super::dead_lettered(
                &crate::Domain::new("echo").expect("domain"),
                None,
                crate::ErrorCode::InvalidAction,
            );
        });
        let text = handle.render();
        assert!(
            text.contains(
                r#"da_dead_letters_total{domain="echo",tenant="_unknown",reason="invalid_action"} 1"#
            ),
            "{text}"
        );
    }
}
