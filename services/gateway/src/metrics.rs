//! `GET /metrics`: Prometheus text exposition of the process's metrics, and [`track`], the
//! middleware that records the gateway's HTTP metrics.
//!
//! The metrics are labelled with every tenant's name, so they are not public: `/metrics` is
//! served only when [`TOKEN_VAR`] (`DA_METRICS_TOKEN`) is set, and only to requests with
//! `Authorization: Bearer <that token>` (Prometheus: `authorization: {credentials: …}`).
//! Without the setting the gateway has no `/metrics` at all (404); `domain-actions worker
//! --metrics-addr` serves the same registry on a listener of its own.
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

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform::http::ApiError;
use shared::Settings;

/// The setting holding the bearer token `/metrics` requires; unset, `/metrics` is not served.
pub const TOKEN_VAR: &str = "DA_METRICS_TOKEN";

/// What a scrape without the right token is told (never whether a token was close).
pub const BAD_TOKEN: &str = "metrics need Authorization: Bearer <DA_METRICS_TOKEN>";

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

/// The secret a scraper must present; compared in constant time.
#[derive(Clone)]
pub struct MetricsToken(Arc<str>);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

impl MetricsToken {
    /// A token from its text (trimmed; blank is none).
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(Arc::from(token)))
    }

    /// The token of [`TOKEN_VAR`], if set.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        settings.var(TOKEN_VAR).and_then(Self::new)
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        presented.is_some_and(|token| constant_time_eq(token.as_bytes(), self.0.as_bytes()))
    }
}

/// Byte equality whose time does not depend on where the first difference is, so the
/// token cannot be guessed byte by byte from response times (its length may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `GET /metrics` behind `token`, or no route at all without one (the tenant-labelled
/// metrics are never public).
pub fn routes(token: Option<MetricsToken>) -> Router {
    match token {
        Some(token) => Router::new()
            .route("/metrics", get(render))
            .with_state(token),
        None => Router::new(),
    }
}

/// Serves the metrics in the Prometheus text format, to a scraper with the token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    description = "Served only when the gateway has `DA_METRICS_TOKEN` set, and only with \
        `Authorization: Bearer <DA_METRICS_TOKEN>` (not an API key): the metrics name every tenant.",
    responses(
        (status = 200, description = "`http_requests_total`, \
            `http_request_duration_seconds` and whatever else the process records",
            content_type = "text/plain", body = String),
        (status = 401, description = "No or wrong metrics token"),
        (status = 404, description = "`DA_METRICS_TOKEN` is not set: no metrics here"),
    ),
    security(("metrics_token" = [])),
)]
pub async fn render(State(token): State<MetricsToken>, headers: HeaderMap) -> Response {
    if !token.admits(&headers) {
        return ApiError::unauthorized(BAD_TOKEN).into_response();
    }
    (
        [(CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().expect("header"));
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = MetricsToken::new(" s3cret ").expect("token");
        assert!(token.admits(&bearer("Bearer s3cret")));
        assert!(token.admits(&bearer("bearer  s3cret ")));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!token.admits(&bearer(wrong)), "{wrong}");
        }
        assert!(!token.admits(&HeaderMap::new()));
        assert!(MetricsToken::new("  ").is_none());
        assert_eq!(format!("{token:?}"), "MetricsToken(..)", "never printed");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    /// The status of `GET /metrics` with `auth` from `router`, over a real connection.
    async fn status(router: Router, auth: Option<&str>) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let auth = auth.map_or(String::new(), |auth| format!("Authorization: {auth}\r\n"));
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn metrics_need_the_token_and_are_absent_without_one() {
        let guarded = || routes(MetricsToken::new("s3cret"));
        assert_eq!(status(guarded(), Some("Bearer s3cret")).await, 200);
        assert_eq!(status(guarded(), Some("Bearer nope")).await, 401);
        assert_eq!(status(guarded(), None).await, 401);
        assert_eq!(status(routes(None), Some("Bearer s3cret")).await, 404);
    }

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let invented = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&invented), "other");
    }
}
