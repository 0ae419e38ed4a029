//! OpenTelemetry export of the tracing spans (feature `otel`), over OTLP HTTP/protobuf.
//!
//! On only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set; the exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables itself (the traces
//! go to `<endpoint>/v1/traces`), and `OTEL_SERVICE_NAME` names the process (default
//! `domain-actions`). Spans are batched on a background thread with a blocking HTTP client,
//! so exporting never runs on the async runtime. Which spans: the filter [`FILTER`], apart
//! from `RUST_LOG` (which keeps governing the log lines), because the per-action spans are
//! at debug level and would otherwise only be exported when debug logging is on.

use std::sync::atomic::AtomicBool;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use super::TraceParent;

/// The spans exported: the framework's per-action and per-request spans (debug level),
/// and whatever the services open at info level or above.
pub const FILTER: &str = "info,shared=debug,async_nats=warn";

/// Whether spans are being exported (set once the layer is installed).
pub static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The variables that turn export on.
const ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// Why spans cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry export: {0}")]
pub struct OtelError(String);

/// The tracer provider, kept so spans still batched are sent at exit.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Sends the spans still batched and stops the export thread.
    pub fn shutdown(self) {
        if let Err(err) = self.0.shutdown() {
            eprintln!("OpenTelemetry export: spans at exit not sent: {err}");
        }
    }
}

/// Whether an endpoint is configured.
pub fn configured() -> bool {
    ENDPOINTS
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// The layer exporting spans, and the provider to shut down at exit.
pub fn layer<S>() -> Result<(impl Layer<S>, Exporter), OtelError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    // reqwest is built without a default crypto provider (ring is the one in the tree);
    // an https endpoint needs one installed, and losing the race to another caller is fine.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|err| OtelError(err.to_string()))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "domain-actions".into());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("domain-actions");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(EnvFilter::new(FILTER));
    Ok((layer, Exporter(provider)))
}

/// Parents `span` on the sender's context and returns the span's own context, or
/// `parent` if the span is not exported.
pub fn adopt(span: &tracing::Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.span_id.to_be_bytes()),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Fails only for a span that is not exported or already started: nothing to link.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if !own.is_valid() {
        return parent;
    }
    Some(TraceParent {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}
