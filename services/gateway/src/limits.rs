//! [`enforce`]: each tenant's requests per minute under `/v1/`, with the rate-limit headers.
//!
//! Every request under `/v1/` presenting a valid API key counts against its tenant's
//! `requests_per_minute` ([`shared::quota`]; the record in the `tenants` bucket, else
//! `DA_TENANT_REQUESTS_PER_MINUTE`), per gateway instance. Past it the answer is
//! `429 Too Many Requests` with the JSON error body (code `rate_limited`) and
//! `Retry-After` (seconds). Every counted response carries the headers of
//! draft-ietf-httpapi-ratelimit-headers in their widely deployed form:
//!
//! | header | value |
//! |---|---|
//! | `RateLimit-Limit` | the tenant's requests per minute |
//! | `RateLimit-Remaining` | requests left in the current window |
//! | `RateLimit-Reset` | seconds until the window ends |
//! | `RateLimit-Policy` | `<limit>;w=60` |
//!
//! A tenant without a limit gets none of them. Requests without a valid key are not
//! counted (the route answers 401). A WebSocket or event stream counts once, when opened.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::http::{ApiError, ApiKeys, auth::presented_tenant};
use shared::quota::{Admission, Quotas, quotas::over_rate, window::WINDOW};

/// Where the gateway's counts are recorded (`at` in `/metrics`).
pub const AT: &str = "gateway";

/// What the rate limit needs: the keys (to know the tenant) and the tenants' limits.
#[derive(Clone)]
pub struct Limits {
    /// Verifies API keys (cached by the key store).
    pub keys: ApiKeys,
    /// The tenants' limits and counters.
    pub quotas: Quotas,
}

/// Counts the request against its tenant's minute and answers 429 past the limit; adds
/// the rate-limit headers either way.
pub async fn enforce(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let tenant = presented_tenant(&limits.keys, &parts).await;
    let request = Request::from_parts(parts, body);
    let Some(tenant) = tenant else {
        return next.run(request).await;
    };
    let Some(admission) = limits.quotas.admit(&tenant, AT).await else {
        return next.run(request).await;
    };
    let mut response = if admission.allowed {
        next.run(request).await
    } else {
        let mut response = ApiError::from(over_rate(&tenant, &admission)).into_response();
        insert(response.headers_mut(), "retry-after", seconds(&admission));
        response
    };
    add_headers(response.headers_mut(), &admission);
    response
}

/// The `RateLimit-*` headers of `admission`.
fn add_headers(headers: &mut HeaderMap, admission: &Admission) {
    insert(headers, "ratelimit-limit", admission.limit.to_string());
    insert(
        headers,
        "ratelimit-remaining",
        admission.remaining.to_string(),
    );
    insert(headers, "ratelimit-reset", seconds(admission));
    let policy = format!("{};w={}", admission.limit, WINDOW.as_secs());
    insert(headers, "ratelimit-policy", policy);
}

/// Whole seconds until the window ends, rounded up (at least 1: "now" would invite a
/// client to retry at once, into the same window).
fn seconds(admission: &Admission) -> String {
    let reset = admission.reset;
    let whole = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    whole.max(1).to_string()
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn headers_say_limit_remaining_and_reset_in_whole_seconds() {
        let admission = Admission {
            allowed: true,
            limit: 3,
            remaining: 2,
            reset: Duration::from_millis(59_001),
        };
        let mut headers = HeaderMap::new();
        add_headers(&mut headers, &admission);
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("RateLimit-Limit"), Some("3"));
        assert_eq!(get("RateLimit-Remaining"), Some("2"));
        assert_eq!(get("RateLimit-Reset"), Some("60"));
        assert_eq!(get("RateLimit-Policy"), Some("3;w=60"));
    }
}
