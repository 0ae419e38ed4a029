//! [`layer`]: a tracing span per request, with the URL's `api_key` redacted.
//!
//! Every event logged while a request is handled (a 5xx's warning, a handler's error)
//! carries the span's method, path and request id, so it can be tied to the request; the
//! path comes through `platform::http::query_key::redact`, so a key sent as `?api_key=` (the
//! chat WebSocket, task events) never reaches a log.

use axum::http::Request;
use platform::http::query_key::redact;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnResponse, MakeSpan, TraceLayer,
};
use tracing::Span;

/// The request header holding the request id (set before this layer runs).
const REQUEST_ID: &str = "x-request-id";

/// Makes each request's span: `http_request{method, uri, request_id}`, the URI redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedSpan;

impl<B> MakeSpan<B> for RedactedSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "http_request",
            method = %request.method(),
            uri = %redact(request.uri()),
            request_id,
        )
    }
}

/// The layer: spans from [`RedactedSpan`]; tower-http's response events at DEBUG (none at
/// the start of a request); no failure event (an `ApiError` with a 5xx already warns with
/// its reason).
pub fn layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RedactedSpan,
    (),
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
> {
    TraceLayer::new_for_http()
        .make_span_with(RedactedSpan)
        .on_request(())
        .on_failure(())
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// A subscriber that keeps every span field as `name=value` text.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Vec<String>>>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("{}={value:?}", field.name()));
        }
    }

    impl Subscriber for Fields {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            span.record(&mut self.clone());
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, values: &Record<'_>) {
            values.record(&mut self.clone());
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn spans_show_the_path_but_never_the_key() {
        let fields = Fields::default();
        tracing::subscriber::with_default(fields.clone(), || {
            let request = Request::builder()
                .uri("/v1/chat?api_key=da_secret&x=1")
                .header(REQUEST_ID, "req-1")
                .body(())
                .expect("request");
            drop(RedactedSpan.make_span(&request));
        });
        let text = fields
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join(" ");
        assert!(text.contains("uri=/v1/chat?api_key=REDACTED&x=1"), "{text}");
        assert!(text.contains("request_id=\"req-1\""), "{text}");
        assert!(text.contains("method=GET"), "{text}");
        assert!(!text.contains("da_secret"), "{text}");
    }
}
