//! [`Authenticated`]: the tenant of a request, from its API key.
//!
//! A route that takes `Authenticated` cannot run for an anonymous caller, and it gets the
//! tenant from the key, never from a body or query field: a client cannot choose another
//! tenant by writing its name.
//!
//! The key is read from `Authorization: Bearer <key>`, or else from the `api_key` query
//! parameter, because a browser cannot set headers on a WebSocket (or `EventSource`)
//! connection. Query strings end up in access logs and browser history, so clients that
//! can send the header should.

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::action::TenantId;
use crate::http::api_keys::ApiKeys;
use crate::http::error::ApiError;

/// What a caller without a key is told.
pub const MISSING_KEY: &str = "missing API key: send Authorization: Bearer <key>";
/// What a caller with an unknown or revoked key is told.
pub const INVALID_KEY: &str = "invalid API key";

/// A request whose API key is valid; its tenant is the one every handler must act for.
///
/// Needs [`ApiKeys`] in the router's state (the state itself, or a field with a
/// [`FromRef`] impl). Rejects with 401 if the key is missing, unknown or revoked, and 503
/// if the key store cannot be reached.
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
        let key = presented_key(parts)?;
        let keys = ApiKeys::from_ref(state);
        match keys.verify(&key).await {
            Ok(Some(tenant)) => Ok(Self { tenant }),
            Ok(None) => Err(ApiError::unauthorized(INVALID_KEY)),
            // The store did not answer: 503, so the client retries rather than drops its key.
            Err(err) => Err(err.into()),
        }
    }
}

/// The `api_key` query parameter; other parameters are the route's business.
#[derive(Deserialize)]
struct KeyParam {
    api_key: Option<String>,
}

/// The key the request presents: the bearer token, else the `api_key` query parameter.
fn presented_key(parts: &Parts) -> Result<String, ApiError> {
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
    match Query::<KeyParam>::try_from_uri(&parts.uri) {
        Ok(Query(KeyParam { api_key: Some(key) })) if !key.is_empty() => Ok(key),
        _ => Err(ApiError::unauthorized(MISSING_KEY)),
    }
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
    fn key_comes_from_the_header_then_the_query() {
        let key = |uri, auth| presented_key(&parts(uri, auth)).map_err(|err| err.message);
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
}

#[cfg(all(test, feature = "testkit"))]
mod http_tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    use super::*;
    use crate::http::ApiJson;
    use crate::testkit::TestServer;

    /// A server with `GET /whoami` and `POST /echo`, and a key for tenant `acme`.
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
    async fn query_key_works() {
        let app = App::start().await;
        let url = app.url(&format!("/whoami?api_key={}", app.key));
        assert_eq!(
            app.call(app.http.get(url)).await,
            (200, json!({"tenant": "acme"}))
        );
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
