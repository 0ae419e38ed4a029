//! [`Authenticated`] and [`QueryAuthenticated`]: the tenant of a request, from its API key.
//!
//! A route that takes one of them cannot run for an anonymous caller, and it gets the
//! tenant from the key, never from a body or query field: a client cannot choose another
//! tenant by writing its name.
//!
//! The key is read from `Authorization: Bearer <key>`. Only [`QueryAuthenticated`], for the
//! routes a browser opens without being able to set headers (a WebSocket, an
//! `EventSource`), also takes it from the `api_key` query parameter; [`Authenticated`]
//! refuses a request that puts its key there ([`QUERY_KEY_REFUSED`]), because query
//! strings end up in proxy and access logs and in browser history.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::http::api_keys::ApiKeys;
use crate::http::error::ApiError;
pub use crate::http::query_key::QUERY_KEY_REFUSED;
use crate::http::query_key::query_key;
use shared::action::TenantId;

/// What a caller without a key is told.
pub const MISSING_KEY: &str = "missing API key: send Authorization: Bearer <key>";
/// What a caller with an unknown or revoked key is told.
pub const INVALID_KEY: &str = "invalid API key";

/// A request whose API key, sent as `Authorization: Bearer`, is valid; its tenant is the
/// one every handler must act for.
///
/// Needs [`ApiKeys`] in the router's state (the state itself, or a field with a
/// [`FromRef`] impl). Rejects with 401 if the key is missing, unknown or revoked, or sent
/// in the query string, and 503 if the key store cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The key's tenant.
    pub tenant: TenantId,
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    ApiKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts, QueryKey::Refused)?;
        let tenant = verify(&ApiKeys::from_ref(state), &key).await?;
        Ok(Self { tenant })
    }
}

/// [`Authenticated`] for the routes a browser opens without headers (the chat WebSocket,
/// task events over `EventSource`): the key may also come as `?api_key=`. Use it nowhere
/// else; the gateway logs such URLs with the key redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAuthenticated {
    /// The key's tenant.
    pub tenant: TenantId,
}

impl<S> FromRequestParts<S> for QueryAuthenticated
where
    S: Send + Sync,
    ApiKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts, QueryKey::Accepted)?;
        let tenant = verify(&ApiKeys::from_ref(state), &key).await?;
        Ok(Self { tenant })
    }
}

impl From<QueryAuthenticated> for Authenticated {
    fn from(auth: QueryAuthenticated) -> Self {
        Self {
            tenant: auth.tenant,
        }
    }
}

/// The tenant of the valid key a request presents (as a bearer token, or as `?api_key=`),
/// if any: for middleware that must know the tenant before routing (the gateway's
/// per-tenant rate limit). It refuses nothing; the route's own extractor still does.
pub async fn presented_tenant(keys: &ApiKeys, parts: &Parts) -> Option<TenantId> {
    let key = presented_key(parts, QueryKey::Accepted).ok()?;
    keys.verify(&key).await.ok().flatten()
}

/// The tenant of `key`, or why the request is refused.
async fn verify(keys: &ApiKeys, key: &str) -> Result<TenantId, ApiError> {
    match keys.verify(key).await {
        Ok(Some(tenant)) => Ok(tenant),
        Ok(None) => Err(ApiError::unauthorized(INVALID_KEY)),
        // The store did not answer: 503, so the client retries rather than drops its key.
        Err(err) => Err(err.into()),
    }
}

/// Whether a route takes the key from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKey {
    /// Only where a browser cannot send headers.
    Accepted,
    /// Everywhere else: a key there is refused, even next to a header.
    Refused,
}

/// The key the request presents: the bearer token, else (where `query` allows it) the
/// `api_key` query parameter.
fn presented_key(parts: &Parts, query: QueryKey) -> Result<String, ApiError> {
    let in_query = query_key(&parts.uri);
    if query == QueryKey::Refused && in_query.is_some() {
        return Err(ApiError::unauthorized(QUERY_KEY_REFUSED));
    }
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        // A header that is there but unusable is refused rather than silently replaced by
        // the query parameter: the client meant to send it.
        let token = header
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| ApiError::unauthorized(MISSING_KEY))?;
        return Ok(token.to_owned());
    }
    in_query.ok_or_else(|| ApiError::unauthorized(MISSING_KEY))
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(uri: &str, authorization: Option<&str>) -> Parts {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token("Bearer da_x"), Some("da_x"));
        assert_eq!(bearer_token("bearer  da_x "), Some("da_x"));
        assert_eq!(bearer_token("Basic da_x"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("da_x"), None);
    }

    #[test]
    fn query_keys_are_taken_only_where_accepted() {
        let key = |uri, auth| {
            presented_key(&parts(uri, auth), QueryKey::Accepted).map_err(|err| err.message)
        };
        assert_eq!(key("/", Some("Bearer da_h")), Ok("da_h".to_owned()));
        assert_eq!(key("/?api_key=da_q", None), Ok("da_q".to_owned()));
        assert_eq!(
            key("/?x=1&api_key=da%5Fq", Some("Bearer da_h")),
            Ok("da_h".to_owned())
        );
        assert_eq!(key("/?x=1&api_key=da%5Fq", None), Ok("da_q".to_owned()));
        for (uri, auth) in [
            ("/", None),
            ("/?api_key=", None),
            ("/?api_key=da_q", Some("Basic abc")),
        ] {
            assert_eq!(
                key(uri, auth),
                Err(MISSING_KEY.to_owned()),
                "{uri} {auth:?}"
            );
        }
    }

    #[test]
    fn query_keys_are_refused_everywhere_else() {
        let key = |uri, auth| {
            presented_key(&parts(uri, auth), QueryKey::Refused).map_err(|err| err.message)
        };
        assert_eq!(key("/", Some("Bearer da_h")), Ok("da_h".to_owned()));
        assert_eq!(
            key("/?api_key=", Some("Bearer da_h")),
            Ok("da_h".to_owned())
        );
        for (uri, auth) in [
            ("/?api_key=da_q", None),
            ("/?x=1&api%5Fkey=da_q", None),
            ("/?api_key=da_q", Some("Bearer da_h")),
        ] {
            assert_eq!(
                key(uri, auth),
                Err(QUERY_KEY_REFUSED.to_owned()),
                "{uri} {auth:?}"
            );
        }
        assert_eq!(key("/", None), Err(MISSING_KEY.to_owned()));
    }
}

#[cfg(test)]
mod http_tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    use super::*;
    use crate::http::ApiJson;
    use testkit::TestServer;

    /// A server with `GET /whoami`, `POST /echo` and `GET /stream` (query keys allowed), and a key for tenant `acme`.
    struct App {
        /// NATS, until a test stops it.
        nats: Option<TestServer>,
        addr: SocketAddr,
        key: String,
        http: reqwest::Client,
    }

    async fn whoami(auth: Authenticated) -> ApiJson<Value> {
        ApiJson(json!({"tenant": auth.tenant}))
    }

    async fn stream(auth: QueryAuthenticated) -> ApiJson<Value> {
        ApiJson(json!({"tenant": auth.tenant}))
    }

    async fn echo(auth: Authenticated, ApiJson(body): ApiJson<Value>) -> ApiJson<Value> {
        ApiJson(json!({"tenant": auth.tenant, "body": body}))
    }

    /// A plain-HTTP client. reqwest is built without a TLS crypto provider, and builds its
    /// TLS setup even for `http://`, so one is installed first (losing the race is fine).
    fn client() -> reqwest::Client {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    impl App {
        async fn start() -> Self {
            let nats = TestServer::start().await;
            let js = async_nats::jetstream::new(nats.client().await);
            let keys = ApiKeys::open(&js, 1).await.expect("open api_keys");
            let key = keys
                .create(&TenantId::new("acme").expect("tenant"), None)
                .await
                .expect("create");
            let router = Router::new()
                .route("/whoami", get(whoami))
                .route("/echo", post(echo))
                .route("/stream", get(stream))
                .with_state(keys);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            Self {
                nats: Some(nats),
                addr,
                key,
                http: client(),
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// Status and JSON body of `request`.
        async fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let body = response.json().await.expect("JSON body");
            (status, body)
        }
    }

    #[tokio::test]
    async fn no_key_is_401_json() {
        let app = App::start().await;
        let (status, body) = app.call(app.http.get(app.url("/whoami"))).await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({"error": {"code": "unauthorized", "message": MISSING_KEY}})
        );
    }

    #[tokio::test]
    async fn bad_key_is_401() {
        let app = App::start().await;
        // The real key with its last digit changed: well formed, never issued.
        let mut forged = app.key.clone();
        let last = if forged.pop() == Some('0') { '1' } else { '0' };
        forged.push(last);
        for bad in ["nonsense", "da_0000", &forged] {
            let request = app.http.get(app.url("/whoami")).bearer_auth(bad);
            let (status, body) = app.call(request).await;
            assert_eq!(status, 401, "{bad}");
            assert_eq!(
                body,
                json!({"error": {"code": "unauthorized", "message": INVALID_KEY}})
            );
        }
    }

    #[tokio::test]
    async fn bearer_key_gives_its_tenant() {
        let app = App::start().await;
        let request = app.http.get(app.url("/whoami")).bearer_auth(&app.key);
        assert_eq!(app.call(request).await, (200, json!({"tenant": "acme"})));
    }

    #[tokio::test]
    async fn query_key_is_refused_where_headers_can_be_sent() {
        let app = App::start().await;
        let url = app.url(&format!("/whoami?api_key={}", app.key));
        assert_eq!(
            app.call(app.http.get(url)).await,
            (
                401,
                json!({"error": {"code": "unauthorized", "message": QUERY_KEY_REFUSED}})
            )
        );
    }

    #[tokio::test]
    async fn query_key_works_where_browsers_need_it() {
        let app = App::start().await;
        let url = app.url(&format!("/stream?api_key={}", app.key));
        assert_eq!(
            app.call(app.http.get(url)).await,
            (200, json!({"tenant": "acme"}))
        );
        let url = app.url("/stream?api_key=da_nope");
        let (status, body) = app.call(app.http.get(url)).await;
        assert_eq!(status, 401, "{body}");
    }

    #[tokio::test]
    async fn tenant_in_the_body_is_ignored() {
        let app = App::start().await;
        let request = app
            .http
            .post(app.url("/echo"))
            .bearer_auth(&app.key)
            .json(&json!({"tenant": "globex"}));
        let (status, body) = app.call(request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["tenant"], "acme");
    }

    #[tokio::test]
    async fn bad_json_body_is_400_json() {
        let app = App::start().await;
        let request = app
            .http
            .post(app.url("/echo"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body("{not json");
        let (status, body) = app.call(request).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn unreachable_store_is_503() {
        let mut app = App::start().await;
        // The key is not cached yet (only created), so it must be looked up.
        drop(app.nats.take());
        let request = app.http.get(app.url("/whoami")).bearer_auth(&app.key);
        let (status, body) = app.call(request).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
    }
}
