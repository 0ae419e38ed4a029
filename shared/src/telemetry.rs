//! Tracing setup and trace context.
//!
//! Every action carries a W3C [`TraceParent`] (header `traceparent`). A worker opens a span
//! per action tagged with its trace id and correlation id, and every action or result the
//! handler causes carries a child of that context, so one request can be followed across
//! services in logs or any OpenTelemetry backend. With the `otel` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans are exported over OTLP (see `otel`); off by
//! default.

use std::fmt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[cfg(feature = "otel")]
mod otel;

/// What [`init`] set up that needs an end: the span export, when on. Keep it for the life
/// of the process; dropping it sends the spans still batched.
#[must_use = "dropping it stops exporting spans"]
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    exporter: Option<otel::Exporter>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(exporter) = self.exporter.take() {
            exporter.shutdown();
        }
    }
}

/// Installs the global tracing subscriber: human-readable lines on stderr, filtered by
/// `RUST_LOG` (else `default_filter`, e.g. `info,async_nats=warn`); JSON lines when
/// `LOG_FORMAT=json`; and, with the `otel` feature, spans exported over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Safe to call twice (the first one counts).
pub fn init(default_filter: &str) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        lines.json().boxed()
    } else {
        lines.compact().boxed()
    };
    let registry = tracing_subscriber::registry().with(lines.with_filter(filter));
    #[cfg(feature = "otel")]
    if otel::configured() {
        return match otel::layer() {
            Ok((spans, exporter)) => match registry.with(spans).try_init() {
                Ok(()) => {
                    otel::EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
                    Telemetry {
                        exporter: Some(exporter),
                    }
                }
                Err(_) => {
                    exporter.shutdown();
                    Telemetry::default()
                }
            },
            Err(err) => {
                let _ = registry.try_init();
                tracing::warn!(%err, "spans are not exported");
                Telemetry::default()
            }
        };
    }
    let _ = registry.try_init();
    Telemetry::default()
}

/// The trace context what `span`'s handler sends should carry. When spans are exported,
/// `span` is made a child of the sender's context (`parent`) and its own context is
/// returned, so the exported trace links sender, worker and whatever the worker sends;
/// otherwise `parent` is returned unchanged, at no cost.
pub fn adopt(span: &tracing::Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    if otel::EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return otel::adopt(span, parent);
    }
    let _ = span;
    parent
}

/// W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes naming the whole trace.
    pub trace_id: u128,
    /// 8 bytes naming the span that sent this.
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Starts a new trace (sampled).
    pub fn new_root() -> Self {
        Self {
            trace_id: rand::random::<u128>().max(1),
            span_id: rand::random::<u64>().max(1),
            flags: 1,
        }
    }

    /// A context for something this span causes: same trace, new span.
    pub fn child(&self) -> Self {
        Self {
            span_id: rand::random::<u64>().max(1),
            ..*self
        }
    }

    /// Parses a `traceparent` header; `None` for anything malformed (a bad header never
    /// fails an action: the worker starts a new trace instead).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id as 32 hex digits, as log lines and tracing backends show it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl TraceParent {
    /// The header value, written without the formatting machinery: it goes on every message.
    pub fn to_header(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        for i in 0..32 {
            out[3 + i] = HEX[((self.trace_id >> (124 - 4 * i)) & 0xf) as usize];
        }
        out[35] = b'-';
        for i in 0..16 {
            out[36 + i] = HEX[((self.span_id >> (60 - 4 * i)) & 0xf) as usize];
        }
        out[52] = b'-';
        out[53] = HEX[(self.flags >> 4) as usize];
        out[54] = HEX[(self.flags & 0xf) as usize];
        out.iter().map(|&b| b as char).collect()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_w3c_example() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(h).unwrap();
        assert_eq!(tp.to_string(), h);
        assert_eq!(
            tp.to_header(),
            format!(
                "00-{:032x}-{:016x}-{:02x}",
                tp.trace_id, tp.span_id, tp.flags
            )
        );
        let child = tp.child();
        assert_eq!(child.trace_id, tp.trace_id);
        assert_ne!(child.span_id, tp.span_id);
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
    }
}
