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

/// The context a new trace starts with, when this process records traces (its spans are
/// exported); `None` otherwise. A context that arrived is always carried on, but none is
/// invented that no one records, as OpenTelemetry's propagators do without an SDK: a
/// `traceparent` header costs every message about 70 bytes and its encoding.
pub fn new_trace() -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    if otel::EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return Some(TraceParent::new_root());
    }
    None
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
        // `vv-<32 hex>-<16 hex>-ff`, read by position (it arrives on every message); a
        // future version may add fields after another dash.
        let b = header.trim().as_bytes();
        let dashes =
            b.get(2) == Some(&b'-') && b.get(35) == Some(&b'-') && b.get(52) == Some(&b'-');
        if b.len() < 55 || !dashes || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let version = hex_value(&b[..2])?;
        let trace_id = hex_value(&b[3..35]).filter(|t| *t != 0)?;
        let span_id = hex_value(&b[36..52]).filter(|s| *s != 0)?;
        let flags = hex_value(&b[53..55])?;
        if version == 0xff {
            return None;
        }
        Some(Self {
            trace_id,
            span_id: span_id as u64,
            flags: flags as u8,
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
        std::str::from_utf8(&out)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}

/// The value of up to 32 hex digits; `None` if any is not one.
fn hex_value(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | u128::from(nibble))
    })
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
        // A later version may append fields; surrounding blanks are ignored.
        let later = format!(" 01-{}-{}-01-extra ", &h[3..35], &h[36..52]);
        assert_eq!(
            TraceParent::parse(&later).map(|t| t.trace_id),
            Some(tp.trace_id)
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
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
    }
}
