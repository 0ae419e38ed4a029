//! [`ApiError`] and [`ApiJson`]: every HTTP failure answers the same JSON shape.
//!
//! Clients (scripts, the browser UI, the gateway) parse one error body everywhere,
//! `{"error": {"code": "...", "message": "..."}}`, with the wire contract's codes where one
//! fits. Axum's own rejections answer plain text, so routes take JSON through [`ApiJson`],
//! whose rejection is an [`ApiError`] too.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use shared::action::{ActionError, ErrorCode};
use shared::publish::{self, PublishError};

/// An HTTP failure: a status for the transport and a code and message for the client.
///
/// Routes return `Result<_, ApiError>` so that no path can answer a body of another shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status: what proxies, retries and browsers act on.
    pub status: StatusCode,
    /// A stable, machine-readable code (a wire contract code when one fits), for clients
    /// to branch on without parsing the message.
    pub code: Cow<'static, str>,
    /// What went wrong, for a person.
    pub message: String,
    /// When set, the answer carries `Retry-After` (whole seconds, at least 1): the refusal
    /// is about a moment (a cap reached, a full store), so a client should come back later
    /// rather than give up or hammer.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with any status and code, for the cases the named constructors miss.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to retry after `delay` (`Retry-After`).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The request is malformed (400 `bad_request`); sending it again will not help.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// No or bad credentials (401 `unauthorized`); the client should get a valid API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The credentials are valid but do not allow this (403 `forbidden`).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Nothing here for this tenant (404 `not_found`). Also the answer for another
    /// tenant's resources, so that their existence does not leak.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The body is larger than the route accepts (413 `payload_too_large`).
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// The body's content type is not one the route reads (415 `unsupported_media_type`).
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// The request parses but cannot be processed, e.g. a document with no text (422
    /// `unprocessable`).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }

    /// The caller holds as much of something as it may at once (429 `too_many_requests`),
    /// e.g. uploads or event streams of its tenant; one of them ending frees a place, so
    /// it says when to retry.
    pub fn too_many_requests(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            .retry_after(retry_after)
    }

    /// Our storage is full (507 `insufficient_storage`): nothing is evicted to make room,
    /// so the request is refused until an operator or a deletion frees space.
    pub fn insufficient_storage(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            message,
        )
        .retry_after(retry_after)
    }

    /// A dependency (NATS, a model API) is down (503 `unavailable`); retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A bug or an unexpected state on our side (500 `internal`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The body of every error response.
#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = %self.code, "{}", self.message);
        }
        let body = Body {
            error: Inner {
                code: &self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        // RFC 9110 requires a 401 to name the scheme the client should use.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(delay) = self.retry_after {
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// An action's failure keeps its wire code; only the status is chosen here, so an HTTP
/// client sees the same code a NATS client would.
impl From<ActionError> for ApiError {
    fn from(err: ActionError) -> Self {
        let status = match err.code {
            ErrorCode::InvalidAction | ErrorCode::UnknownActionType => StatusCode::BAD_REQUEST,
            ErrorCode::TenantMismatch | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // A quota of a period (tokens of the day) says when it resets: 429, come back
            // then. One that waiting does not free (stored bytes) has no `retry_after_ms`:
            // 507, as WebDAV answers a quota (RFC 4331, section 6), until data is deleted.
            ErrorCode::QuotaExceeded if err.retry_after_ms.is_some() => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::QuotaExceeded | ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::HandlerError | ErrorCode::HandlerPanic | ErrorCode::MaxDeliveries => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let answer = Self::new(status, err.code.as_str(), err.message);
        match err.retry_after_ms {
            Some(ms) => answer.retry_after(Duration::from_millis(u64::from(ms.get()))),
            None => answer,
        }
    }
}

/// A refused publish keeps its reason: a tenant's full backlog is 429 `backlog_full`, a
/// full stream 507 `storage_full`, each with `Retry-After`; anything else as its
/// [`ActionError`].
impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::BacklogFull(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "backlog_full",
                err.to_string(),
            )
            .retry_after(publish::BACKLOG_RETRY),
            err => ActionError::from(err).into(),
        }
    }
}

/// A failed read or write of the services' state, as its [`ActionError`] would say.
impl From<crate::kv::StateError> for ApiError {
    fn from(err: crate::kv::StateError) -> Self {
        ActionError::from(err).into()
    }
}

/// `axum::Json` whose rejection is an [`ApiError`], so a bad body gets the JSON error shape
/// instead of axum's plain text.
///
/// Unreadable or mistyped JSON is 400 `bad_request` with serde's message (which names the
/// field and position); a missing `Content-Type: application/json` is 415 and a body over
/// the route's limit 413, as their statuses say more than a 400 would. As a response it
/// serialises like `axum::Json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Turns axum's JSON rejection into our error shape, keeping its explanation.
fn json_rejection(rejection: JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(message),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large(message)
        }
        _ => ApiError::bad_request(message),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body as HttpBody;
    use axum::http::header::CONTENT_TYPE;
    use serde_json::{Value, json};

    use super::*;

    /// The status, headers and JSON body of a response.
    async fn parts(response: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let json = serde_json::from_slice(&bytes).expect("JSON body");
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn error_body_has_the_shared_shape() {
        let (status, headers, body) =
            parts(ApiError::not_found("no such job").into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        assert_eq!(
            body,
            json!({"error": {"code": "not_found", "message": "no such job"}})
        );
    }

    #[tokio::test]
    async fn unauthorized_names_the_bearer_scheme() {
        let (status, headers, body) = parts(ApiError::unauthorized("no").into_response()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    #[tokio::test]
    async fn refusals_for_a_moment_say_when_to_retry() {
        let (status, headers, body) =
            parts(ApiError::too_many_requests("busy", Duration::from_millis(1500)).into_response())
                .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
            Some("2")
        );
        assert_eq!(body["error"]["code"], "too_many_requests");
        let (_, headers, _) = parts(ApiError::not_found("no").into_response()).await;
        assert!(headers.get(RETRY_AFTER).is_none());
    }

    #[test]
    fn constructors_pair_status_and_code() {
        let cases = [
            (ApiError::bad_request("m"), 400, "bad_request"),
            (ApiError::unauthorized("m"), 401, "unauthorized"),
            (ApiError::forbidden("m"), 403, "forbidden"),
            (ApiError::not_found("m"), 404, "not_found"),
            (ApiError::payload_too_large("m"), 413, "payload_too_large"),
            (
                ApiError::unsupported_media_type("m"),
                415,
                "unsupported_media_type",
            ),
            (ApiError::unprocessable("m"), 422, "unprocessable"),
            (ApiError::unavailable("m"), 503, "unavailable"),
            (ApiError::internal("m"), 500, "internal"),
            (
                ApiError::too_many_requests("m", Duration::from_secs(1)),
                429,
                "too_many_requests",
            ),
            (
                ApiError::insufficient_storage("m", Duration::from_secs(1)),
                507,
                "insufficient_storage",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status.as_u16(), status, "{code}");
            assert_eq!(err.code, code);
            assert_eq!(err.message, "m");
        }
    }

    #[test]
    fn action_errors_keep_their_code_and_message() {
        let expected = |code: ErrorCode| match code {
            ErrorCode::InvalidAction | ErrorCode::UnknownActionType => 400,
            ErrorCode::TenantMismatch | ErrorCode::Forbidden => 403,
            ErrorCode::Unauthorized => 401,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Timeout => 504,
            ErrorCode::Unavailable => 503,
            ErrorCode::RateLimited => 429,
            ErrorCode::QuotaExceeded | ErrorCode::StorageFull => 507,
            ErrorCode::HandlerError | ErrorCode::HandlerPanic | ErrorCode::MaxDeliveries => 500,
        };
        for code in ErrorCode::ALL {
            let err = ApiError::from(ActionError::new(code, "why"));
            assert_eq!(err.status.as_u16(), expected(code), "{code}");
            assert_eq!(err.code, code.as_str());
            assert_eq!(err.message, "why");
        }
        // A quota of the day says when it resets: 429 with Retry-After, not 507.
        let day = ActionError::quota_exceeded("tokens", Duration::from_secs(90));
        let err = ApiError::from(day);
        assert_eq!(err.status.as_u16(), 429);
        assert_eq!(err.retry_after, Some(Duration::from_secs(90)));
    }

    /// Runs `ApiJson<Value>` on a request with `content_type` and `body`.
    async fn extract(content_type: Option<&str>, body: &str) -> Result<Value, ApiError> {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request
            .body(HttpBody::from(body.to_owned()))
            .expect("request");
        ApiJson::<Value>::from_request(request, &())
            .await
            .map(|ApiJson(value)| value)
    }

    #[tokio::test]
    async fn api_json_accepts_json() {
        let value = extract(Some("application/json"), r#"{"a":1}"#).await;
        assert_eq!(value, Ok(json!({"a": 1})));
    }

    #[tokio::test]
    async fn api_json_rejects_bad_json_with_a_400() {
        let err = extract(Some("application/json"), "{not json")
            .await
            .expect_err("bad JSON");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "bad_request");
        assert!(err.message.contains("JSON"), "{}", err.message);
    }

    #[tokio::test]
    async fn api_json_rejects_mistyped_json_with_a_400_naming_the_field() {
        #[derive(Debug, serde::Deserialize)]
        struct Named {
            #[allow(dead_code)]
            name: String,
        }
        let request = Request::builder()
            .method("POST")
            .uri("/")
            .header(CONTENT_TYPE, "application/json")
            .body(HttpBody::from(r#"{"name": 3}"#))
            .expect("request");
        let err = ApiJson::<Named>::from_request(request, &())
            .await
            .expect_err("mistyped JSON");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("name"), "{}", err.message);
    }

    #[tokio::test]
    async fn api_json_without_content_type_is_415() {
        let err = extract(None, "{}").await.expect_err("no content type");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(err.code, "unsupported_media_type");
    }
}
