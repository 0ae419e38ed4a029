//! The gateway: health, actions over HTTP, request ids, the page, JSON errors everywhere,
//! the OpenAPI document and the Prometheus metrics.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::http::ApiKeys;
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
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut env = Env::start().await;
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), &[]);
        for service in services {
            env.add_service(service, &settings).await;
        }
        let key = ApiKeys::open(&env.js, 1)
            .await
            .expect("keys")
            .create(&shared::TenantId::new("acme").expect("tenant"), None)
            .await
            .expect("key");
        let app = gateway::router(
            env.client.clone(),
            &settings,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(gateway::serve::serve(
            listener,
            app,
            tokio_util::sync::CancellationToken::new(),
        ));
        Self {
            _env: env,
            base,
            key,
            http: reqwest::Client::new(),
            _data: data,
        }
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
    let missing = front
        .http
        .get(url("/v1/agents/helper"))
        .bearer_auth(&front.key)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
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

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_template() {
    let front = Front::start().await;
    let url = |path: &str| format!("{}{path}", front.base);
    for _ in 0..3 {
        let response = front.http.get(url("/healthz")).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let missing = front
        .http
        .get(url("/v1/agents/nobody-here"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let response = front.http.get(url("/metrics")).send().await.expect("get");
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
