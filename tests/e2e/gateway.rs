//! The gateway: health, actions over HTTP, request ids, the page, JSON errors everywhere,
//! the OpenAPI document and the Prometheus metrics; and what a multi-tenant front door
//! must not leak: metrics only with their token, API keys only in headers (except where
//! browsers cannot send them), security headers on the page, one tenant's bad record not
//! breaking another's listing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::*;

/// An echo worker, the gateway on a free loopback port, and a key of tenant `acme`.
struct Front {
    _env: Env,
    base: String,
    key: String,
    http: reqwest::Client,
    _data: TempDir,
}

impl Front {
    async fn start() -> Self {
        Self::with_services(&[]).await
    }

    /// The echo worker plus `services`.
    async fn with_services(services: &[&str]) -> Self {
        Self::configured(services, &[]).await
    }

    /// The echo worker plus `services`, with the settings `vars`.
    async fn configured(services: &[&str], vars: &[(&str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut env = Env::start().await;
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), vars);
        for service in services {
            env.add_service(service, &settings).await;
        }
        let key = env.api_key("acme").await;
        let base = env.serve_gateway(&settings).await;
        Self {
            _env: env,
            base,
            key,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    /// The status of `GET url`, with `bearer` as its bearer token if given.
    async fn status(&self, url: impl reqwest::IntoUrl, bearer: Option<&str>) -> StatusCode {
        let mut request = self.http.get(url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send().await.expect("get").status()
    }

    /// A key of another tenant.
    async fn key_of(&self, tenant: &str) -> String {
        self._env.api_key(tenant).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("post");
        let status = response.status();
        (status, response.json().await.expect("json body"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let front = Front::start().await;
    for path in ["/healthz", "/readyz"] {
        let response = front
            .http
            .get(format!("{}{path}", front.base))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let page = front
        .http
        .get(format!("{}/", front.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("Domain Actions"));
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_over_http_are_durable_and_can_be_waited_for() {
    let front = Front::start().await;
    let (status, accepted) = front
        .post(
            "/v1/actions",
            Some(&front.key),
            json!({"action_type": "echo.ping", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert!(accepted["action_id"].as_str().is_some());

    let (status, done) = front
        .post(
            "/v1/actions?wait=10s",
            Some(&front.key),
            json!({"action_type": "echo.ping", "data": {"n": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["result"], json!({"n": 2}), "{done}");

    let (status, failed) = front
        .post(
            "/v1/actions?wait=10s",
            Some(&front.key),
            json!({"action_type": "echo.fail", "data": {"message": "no"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["error"]["code"], "handler_error", "{failed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_json_errors_and_a_request_id() {
    let front = Front::start().await;
    let (status, body) = front
        .post("/v1/actions", None, json!({"action_type": "echo.ping"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    for bad in [
        json!({"action_type": "Not A Type"}),
        json!({"action_type": "echo.ping.result"}),
        json!({"data": {}}),
    ] {
        let (status, body) = front
            .post("/v1/actions", Some(&front.key), bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    let response = front
        .http
        .get(format!("{}/healthz", front.base))
        .header("x-request-id", "req-42")
        .send()
        .await
        .expect("get");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-42")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_are_managed_over_http() {
    let front = Front::with_services(&["execution"]).await;
    let url = |path: &str| format!("{}{path}", front.base);
    let response = front
        .http
        .put(url("/v1/agents/helper"))
        .bearer_auth(&front.key)
        .json(&json!({"name": "Helper", "system_prompt": "Be brief.", "top_k": 3}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::OK);
    let agent: Value = response.json().await.expect("agent");
    assert_eq!(agent["agent_id"], "helper");
    assert_eq!(agent["top_k"], 3);

    let listed: Value = front
        .http
        .get(url("/v1/agents"))
        .bearer_auth(&front.key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("agents");
    assert_eq!(listed["agents"][0]["name"], "Helper", "{listed}");

    let bad = front
        .http
        .put(url("/v1/agents/helper"))
        .bearer_auth(&front.key)
        .json(&json!({"top_k": "many"}))
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    for _ in 0..2 {
        let deleted = front
            .http
            .delete(url("/v1/agents/helper"))
            .bearer_auth(&front.key)
            .send()
            .await
            .expect("delete");
        let status = deleted.status();
        let body: Value = deleted.json().await.expect("json");
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND].contains(&status),
            "{status} {body}"
        );
    }
    assert_eq!(
        front
            .status(url("/v1/agents/helper"), Some(&front.key))
            .await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_route() {
    let front = Front::start().await;
    let response = front
        .http
        .get(format!("{}/openapi.json", front.base))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("json document");
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    for path in [
        "/v1/documents",
        "/v1/tasks/{task_id}",
        "/v1/actions",
        "/v1/agents/{agent_id}",
        "/v1/chat",
    ] {
        assert!(document["paths"][path].is_object(), "no {path}");
    }
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );

    // The same document from the code, without a server.
    let spec = gateway::openapi::spec();
    let schemas = &spec.components.expect("components").schemas;
    for schema in ["Agent", "TaskState"] {
        assert!(schemas.contains_key(schema), "no {schema} schema");
    }
}

/// The metrics token of the tests that scrape the gateway.
const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_not_served_without_a_token_setting() {
    let front = Front::start().await;
    for auth in [None, Some(METRICS_TOKEN), Some(front.key.as_str())] {
        let mut request = front.http.get(format!("{}/metrics", front.base));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        let response = request.send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{auth:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_their_token() {
    let front = Front::configured(&[], &[("DA_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let url = format!("{}/metrics", front.base);
    // An API key is not the metrics token, and the token is not taken from the query.
    for request in [
        front.http.get(&url),
        front.http.get(&url).bearer_auth(&front.key),
        front.http.get(&url).bearer_auth("wrong"),
        front.http.get(format!("{url}?token={METRICS_TOKEN}")),
    ] {
        let response = request.send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    assert_eq!(
        front.status(&url, Some(METRICS_TOKEN)).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_template() {
    let front = Front::configured(&[], &[("DA_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let url = |path: &str| format!("{}{path}", front.base);
    for _ in 0..3 {
        let response = front.http.get(url("/healthz")).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        front.status(url("/v1/agents/nobody-here"), None).await,
        StatusCode::UNAUTHORIZED
    );
    let response = front
        .http
        .get(url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.expect("text");
    let requests: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|line| line.contains(r#"route="/healthz""#) && line.contains(r#"status="200""#)),
        "{text}"
    );
    // The template, not the raw URL: ids do not become label values.
    assert!(
        requests
            .iter()
            .any(|line| line.contains(r#"route="/v1/agents/{agent_id}""#)),
        "{text}"
    );
    assert!(!text.contains("nobody-here"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_in_the_query_string_are_refused_except_where_browsers_need_them() {
    let front = Front::start().await;
    let url = |path: &str| format!("{}{path}", front.base);
    let key = &front.key;
    for path in [
        format!("/v1/agents?api_key={key}"),
        format!("/v1/documents?api_key={key}"),
        format!("/v1/tasks/t1?api_key={key}"),
        format!("/healthz?api_key={key}"),
        format!("/?api_key={key}"),
        format!("/nowhere?api_key={key}"),
    ] {
        let response = front.http.get(url(&path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Authorization: Bearer"),
            "{path}: {message}"
        );
    }
    // Even next to a valid header: the key has been put in a URL.
    let response = front
        .http
        .post(url(&format!("/v1/actions?api_key={key}")))
        .bearer_auth(key)
        .json(&json!({"action_type": "echo.ping", "data": {}}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Task events (EventSource cannot send headers): the query key authenticates, so an
    // unknown task is a 404, not a 401; a bad key there is still a 401.
    assert_eq!(
        front
            .status(url(&format!("/v1/tasks/t1/events?api_key={key}")), None)
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        front
            .status(url("/v1/tasks/t1/events?api_key=da_nope"), None)
            .await,
        StatusCode::UNAUTHORIZED
    );
    // The header still works everywhere.
    assert_eq!(
        front.status(url("/v1/tasks/t1"), Some(key)).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_sends_a_content_security_policy_and_every_response_nosniff() {
    let front = Front::start().await;
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let response = front
            .http
            .get(format!("{}{path}", front.base))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let policy = header(&response, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "connect-src 'self'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(&response, "referrer-policy"),
            "no-referrer",
            "{path}"
        );
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
    for path in ["/healthz", "/v1/agents", "/nowhere"] {
        let response = front
            .http
            .get(format!("{}{path}", front.base))
            .send()
            .await
            .expect("get");
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_agent_record_does_not_break_listings() {
    let front = Front::with_services(&["execution"]).await;
    let globex = front.key_of("globex").await;
    let url = |path: &str| format!("{}{path}", front.base);
    for (key, agent) in [(&front.key, "acme-helper"), (&globex, "globex-helper")] {
        let response = front
            .http
            .put(url(&format!("/v1/agents/{agent}")))
            .bearer_auth(key)
            .json(&json!({"system_prompt": "Be brief."}))
            .send()
            .await
            .expect("put");
        assert_eq!(response.status(), StatusCode::OK, "{agent}");
    }
    // A value no version of execution wrote, under globex's keys.
    let agents = front
        ._env
        .js
        .get_key_value(execution::agent::BUCKET)
        .await
        .expect("agents bucket");
    agents
        .put("globex.broken", bytes::Bytes::from_static(b"{not an agent"))
        .await
        .expect("put garbage");

    let list = |key: String| {
        let request = front.http.get(url("/v1/agents")).bearer_auth(key);
        async move {
            let response = request.send().await.expect("list");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (status, body)
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["agents"]
            .as_array()
            .map(|agents| {
                agents
                    .iter()
                    .filter_map(|agent| agent["agent_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, body) = list(globex.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["globex-helper"], "{body}");
    let (status, body) = list(front.key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["acme-helper"], "{body}");
}
