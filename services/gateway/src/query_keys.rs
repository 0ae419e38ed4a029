//! [`refuse`]: the middleware that refuses `?api_key=` on every route but the two a
//! browser opens without being able to set headers.
//!
//! Those two ([`QUERY_KEY_ROUTES`]: the chat WebSocket and task events over `EventSource`)
//! authenticate with `platform::http::QueryAuthenticated`; every other authenticated route
//! already refuses a query key through `platform::http::Authenticated`. This middleware makes
//! the rule hold for routes that authenticate nothing too (`/healthz`, the page, a 404),
//! so a client that puts its key in URLs learns at once, whatever it calls, instead of
//! spreading the key into proxy logs.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::http::ApiError;
use platform::http::query_key::{QUERY_KEY_REFUSED, query_key};

/// The route templates that accept `?api_key=`.
pub const QUERY_KEY_ROUTES: &[&str] = &["/v1/chat", "/v1/tasks/{task_id}/events"];

/// Answers 401 (JSON, [`QUERY_KEY_REFUSED`]) to a request with a non-empty `api_key` query
/// parameter unless its route is one of [`QUERY_KEY_ROUTES`]. Apply with
/// `Router::layer(axum::middleware::from_fn(refuse))`, which runs after routing, where the
/// matched route is known.
pub async fn refuse(request: Request, next: Next) -> Response {
    let allowed = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| QUERY_KEY_ROUTES.contains(&route.as_str()));
    if !allowed && query_key(request.uri()).is_some() {
        return ApiError::unauthorized(QUERY_KEY_REFUSED).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exceptions_are_routes_the_gateway_documents() {
        let document = serde_json::to_value(crate::openapi::spec()).expect("json");
        for route in QUERY_KEY_ROUTES {
            assert!(document["paths"][route].is_object(), "{route} is no route");
        }
    }
}
