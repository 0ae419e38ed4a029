//! Security headers: `X-Content-Type-Options: nosniff` on every response ([`nosniff`]), and
//! on the web page and its assets a Content Security Policy, `X-Frame-Options: DENY` and
//! `Referrer-Policy: no-referrer` ([`page`]).
//!
//! The page holds an API key in its memory, so no other origin may frame it (clickjacking),
//! run script in it, or learn its URLs. Its script and style are served files
//! (`/assets/app.js`, `/assets/app.css`) and it has no inline script, style or event
//! handler, so the policy needs no `'unsafe-inline'`: injected markup cannot run.

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The policy's directives: everything from this origin only; `data:` images for the
/// page's empty favicon (`<link rel="icon" href="data:,">`); no plugins, no `<base>`, forms
/// posting only here, and no framing at all.
const DIRECTIVES: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The Content Security Policy of the page served as `host`. `connect-src` is `'self'`
/// (its fetches, task events) plus the WebSocket URLs of the same host (the chat), which
/// browsers that predate CSP 3 do not count as `'self'`. A `host` that is not plainly a
/// host and port is left out rather than echoed into the header.
pub fn content_security_policy(host: Option<&str>) -> String {
    let sockets = host
        .filter(|host| is_plain_host(host))
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    format!("{DIRECTIVES}; connect-src 'self'{sockets}")
}

/// Whether `host` is a name or address with an optional port, and nothing that could add
/// a source or a directive to the policy.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Middleware for the page and its assets: the policy, no framing, no referrer (on top of
/// [`nosniff`]). Headers a handler set itself are kept.
pub async fn page(request: Request, next: Next) -> Response {
    let policy = content_security_policy(
        request
            .headers()
            .get(HOST)
            .and_then(|value| value.to_str().ok()),
    );
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        set_default(headers, CONTENT_SECURITY_POLICY, policy);
    }
    set_default(headers, X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    set_default(
        headers,
        REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Response mapper for every route: browsers must not guess a type other than the one
/// sent (a JSON error rendered as HTML, an upload served back as script).
pub async fn nosniff(mut response: Response) -> Response {
    set_default(
        response.headers_mut(),
        X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn set_default(headers: &mut HeaderMap, name: axum::http::HeaderName, value: HeaderValue) {
    headers.entry(name).or_insert(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline_and_no_framing() {
        let policy = content_security_policy(Some("127.0.0.1:8080"));
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080",
        ] {
            assert!(policy.contains(directive), "{directive}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(HeaderValue::from_str(&policy).is_ok());
    }

    #[test]
    fn odd_hosts_are_not_echoed() {
        for host in ["evil.example; script-src *", "a b", "", "x'y", "h*"] {
            let policy = content_security_policy(Some(host));
            assert!(policy.ends_with("connect-src 'self'"), "{host}: {policy}");
        }
        assert!(content_security_policy(None).ends_with("connect-src 'self'"));
        assert!(is_plain_host("[::1]:8080"));
        assert!(is_plain_host("gateway.example.com"));
    }
}
