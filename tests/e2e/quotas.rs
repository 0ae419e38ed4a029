//! Per-tenant limits, black box: a tenant over its requests per minute is refused (429 with
//! `Retry-After` at the gateway, `rate_limited` over NATS, never a dead letter) while
//! another tenant is unaffected; LLM tokens are counted from the API's own `usage` and a
//! tenant out of tokens for the day is refused before the API is called; a model the tenant
//! may not name is refused the same way. Limits are tiny (3 a minute), so nothing depends
//! on time.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::TenantId;
use shared::quota::{TenantLimits, TenantsBucket};
use tempfile::TempDir;
use testkit::openai_stub::{OpenAiStub, StubReply};

use crate::harness::*;
use crate::limits::{Limited, text};

/// Gives `tenant` the record `limits` in the `tenants` bucket of `env`'s server.
async fn set_limits(env: &Env, tenant: &str, limits: TenantLimits) -> TenantsBucket {
    let bucket = TenantsBucket::open(&env.js, 1)
        .await
        .expect("tenants bucket");
    let tenant = TenantId::new(tenant).expect("tenant");
    bucket
        .set_limits(&tenant, &limits)
        .await
        .expect("set limits");
    bucket
}

/// At most `n` requests a minute.
fn per_minute(n: u32) -> TenantLimits {
    TenantLimits {
        requests_per_minute: Some(n),
        ..TenantLimits::default()
    }
}

/// An `echo.ping` of `tenant` over rpc; the result.
async fn ping_rpc(env: &Env, tenant: &str) -> Value {
    let body = tenant_action_body(tenant, &new_id(), "echo.ping", json!({"n": 1}));
    let subject = format!("echo.{tenant}.rpc");
    env.request(&subject, headers(&[("action_type", "echo.ping")]), &body)
        .await
        .1
}

/// How many dead letters the DLQ stream holds on `subject`.
async fn letters_on(env: &Env, subject: &str) -> u64 {
    let mut stream = env
        .js
        .get_stream(shared::streams::DLQ_STREAM)
        .await
        .expect("DLQ stream");
    let info = stream.info().await.expect("DLQ info");
    if info.state.messages == 0 {
        return 0;
    }
    let mut subjects = stream
        .info_with_subjects(subject)
        .await
        .expect("DLQ subjects");
    let mut count = 0;
    while let Some((name, n)) = futures::TryStreamExt::try_next(&mut subjects)
        .await
        .expect("DLQ subjects")
    {
        if name == subject {
            count += n as u64;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn over_nats_a_tenant_over_its_minute_gets_rate_limited_and_no_dead_letter() {
    let env = Env::start().await;
    set_limits(&env, "acme", per_minute(3)).await;

    for _ in 0..3 {
        let result = ping_rpc(&env, "acme").await;
        assert_eq!(result["data"]["status"], "success", "{result}");
    }
    let refused = ping_rpc(&env, "acme").await;
    assert_error(&refused, "rate_limited");
    let error = &refused["data"]["error"];
    assert_eq!(error["retryable"], true, "{refused}");
    assert!(error["retry_after_ms"].as_u64() > Some(0), "{refused}");

    // Another tenant is not touched by acme's count.
    for _ in 0..4 {
        let result = ping_rpc(&env, "globex").await;
        assert_eq!(result["data"]["status"], "success", "{result}");
    }

    // The durable path: the error result on the callback, the message ended (not left
    // for redelivery), and no dead letter.
    let (inbox, mut results) = env.inbox().await;
    let sent = env.send_action("echo.ping", json!({"n": 2}), &inbox).await;
    let (_, result) = next_json(&mut results).await;
    assert_error(&result, "rate_limited");
    assert_eq!(result["correlation_id"], sent.id.as_str(), "{result}");
    assert!(result["data"]["error"]["retry_after_ms"].as_u64() > Some(0));
    env.wait_idle(sent.ack.sequence).await;

    // A message that is dead-lettered (it does not decode) shows the DLQ works: it is
    // acme's only letter.
    let subject = "echo.acme.rpc";
    let (_, rejected) = env
        .request(
            subject,
            headers(&[("action_type", "echo.ping")]),
            b"{not json",
        )
        .await;
    assert_error(&rejected, "invalid_action");
    let letter = env.dead_letter(DLQ_ACME).await;
    assert_eq!(letter.header("dlq_reason"), Some("invalid_action"));
    assert_eq!(letters_on(&env, DLQ_ACME).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_gateway_a_tenant_over_its_minute_gets_429_with_retry_after() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::start().await;
    let data = TempDir::new().expect("temp dir");
    set_limits(&env, "acme", per_minute(3)).await;
    let (acme, globex) = (env.api_key("acme").await, env.api_key("globex").await);
    let base = env.serve_gateway(&settings_in(data.path(), &[])).await;
    let http = reqwest::Client::new();
    let post = |key: String| {
        http.post(format!("{base}/v1/actions"))
            .bearer_auth(key)
            .json(&json!({"action_type": "echo.ping", "data": {"n": 1}}))
            .send()
    };

    for remaining in ["2", "1", "0"] {
        let response = post(acme.clone()).await.expect("post");
        assert!(response.status().is_success(), "{}", response.status());
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(header("ratelimit-remaining").as_deref(), Some(remaining));
        assert!(header("ratelimit-reset").is_some());
    }
    let response = post(acme.clone()).await.expect("post");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(
        response
            .headers()
            .get("ratelimit-remaining")
            .map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // Another tenant goes on, without limit headers (it has no limit).
    let response = post(globex).await.expect("post");
    assert!(response.status().is_success(), "{}", response.status());
    assert!(response.headers().get("ratelimit-limit").is_none());
}

/// The embedding and query services on the OpenAI stand-in (chat and embeddings).
async fn rag_on(stub: &OpenAiStub, data: &TempDir) -> Env {
    let settings = stub_settings(stub, data);
    let mut env = Env::server_only().await;
    env.add_service("embedding", &settings).await;
    env.add_service("query", &settings).await;
    env
}

/// Settings in `data` for services on the OpenAI stand-in (chat and embeddings).
fn stub_settings(stub: &OpenAiStub, data: &TempDir) -> shared::Settings {
    let url = stub.url();
    settings_in(
        data.path(),
        &[
            ("DA_EMBEDDING_API_URL", &url),
            ("DA_EMBEDDING_MODEL", "text-embedding-3-small"),
            ("DA_VECTOR_DIMENSIONS", "8"),
            ("DA_CHAT_API_URL", &url),
            ("DA_CHAT_MODEL", "small-model"),
        ],
    )
}

/// `action_type` with `data` as `tenant` over rpc; the result.
async fn call(env: &Env, tenant: &str, action_type: &str, data: Value) -> Value {
    let domain = action_type.split('.').next().expect("domain");
    let body = tenant_action_body(tenant, &new_id(), action_type, data);
    let subject = format!("{domain}.{tenant}.rpc");
    env.request(&subject, headers(&[("action_type", action_type)]), &body)
        .await
        .1
}

/// Chat requests the stub has received.
fn chats(stub: &OpenAiStub) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.0.ends_with("/chat/completions"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_tokens_are_counted_from_the_api_and_a_tenant_out_of_them_is_refused() {
    let stub = OpenAiStub::start().await;
    let data = TempDir::new().expect("temp dir");
    let env = rag_on(&stub, &data).await;
    let limits = TenantLimits {
        tokens_per_day: Some(1),
        models: vec!["small-model".into()],
        ..TenantLimits::default()
    };
    let bucket = set_limits(&env, "acme", limits).await;
    let index = json!({"collection": "handbook", "document_id": "cats",
        "chunks": [{"chunk_index": 0, "text": "Cats eat meat.", "metadata": {}}]});
    let indexed = call(&env, "acme", "query.index", index).await;
    assert_eq!(indexed["data"]["status"], "success", "{indexed}");
    let ask = |model: Option<&str>| {
        let mut data = json!({"query": "What do cats eat?", "collections": ["handbook"]});
        if let Some(model) = model {
            data["model"] = json!(model);
        }
        data
    };

    // A model the tenant may not name: refused before the API is called.
    let refused = call(&env, "acme", "query.answer", ask(Some("big-model"))).await;
    assert_error(&refused, "forbidden");
    assert_eq!(chats(&stub), 0);

    stub.push_reply(StubReply::Text("Meat [1].".into()));
    let answered = call(&env, "acme", "query.answer", ask(None)).await;
    assert_eq!(answered["data"]["status"], "success", "{answered}");
    let used = answered["data"]["result"]["usage"]["total_tokens"]
        .as_u64()
        .expect("usage");
    assert!(used > 0, "{answered}");
    let acme = TenantId::new("acme").expect("tenant");
    assert_eq!(bucket.tokens_today(&acme).await.expect("tokens"), used);
    assert_eq!(chats(&stub), 1);

    // Out of tokens for the day: refused, the API not called, no dead letter.
    let refused = call(&env, "acme", "query.answer", ask(Some("small-model"))).await;
    assert_error(&refused, "quota_exceeded");
    assert!(refused["data"]["error"]["retry_after_ms"].as_u64() > Some(0));
    assert_eq!(chats(&stub), 1);

    // Another tenant still gets answers.
    let indexed = call(
        &env,
        "globex",
        "query.index",
        json!({"collection": "handbook", "document_id": "dogs",
            "chunks": [{"chunk_index": 0, "text": "Dogs eat too.", "metadata": {}}]}),
    )
    .await;
    assert_eq!(indexed["data"]["status"], "success", "{indexed}");
    stub.push_reply(StubReply::Text("Too [1].".into()));
    let answered = call(&env, "globex", "query.answer", ask(Some("big-model"))).await;
    assert_eq!(answered["data"]["status"], "success", "{answered}");
}

/// Ingestion behind the gateway ([`Limited`]), on the embedding stand-in and the query
/// service, with `acme` held to `stored_bytes`.
struct Stored {
    it: Limited,
    bucket: TenantsBucket,
    _stub: OpenAiStub,
}

impl std::ops::Deref for Stored {
    type Target = Limited;

    fn deref(&self) -> &Limited {
        &self.it
    }
}

impl Stored {
    async fn start(stored_bytes: u64) -> Self {
        let stub = OpenAiStub::start().await;
        let data = TempDir::new().expect("temp dir");
        let settings = stub_settings(&stub, &data);
        let services = ["embedding", "query", "ingestion"];
        let it = Limited::serving(data, &settings, &services).await;
        let limits = TenantLimits {
            stored_bytes: Some(stored_bytes),
            ..TenantLimits::default()
        };
        let bucket = set_limits(&it.env, "acme", limits).await;
        Self {
            it,
            bucket,
            _stub: stub,
        }
    }

    /// Uploads `bytes` bytes of text as a file, as `key`'s tenant.
    async fn upload_text(&self, key: &str, name: &str, bytes: usize) -> reqwest::Response {
        self.it.upload(key, name, text(name, bytes)).await
    }

    /// The tenant's stored bytes as counted.
    async fn stored(&self, tenant: &str) -> u64 {
        let tenant = TenantId::new(tenant).expect("tenant");
        self.bucket.stored_bytes(&tenant).await.expect("stored")
    }

    /// Messages in the documents object store's stream (chunks and their metadata).
    async fn objects(&self) -> u64 {
        self.it.stored().await.0
    }

    /// Waits until the accepted document's task has ended; its document id.
    async fn indexed(&self, key: &str, accepted: reqwest::Response) -> String {
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        let accepted: Value = accepted.json().await.expect("accepted");
        let task = accepted["task_id"].as_str().expect("task_id").to_owned();
        let url = format!("{}/v1/tasks/{task}", self.base);
        let status = eventually("the task to end", || async {
            let task: Value = self
                .http
                .get(&url)
                .bearer_auth(key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let status = task["status"].as_str()?.to_owned();
            matches!(status.as_str(), "completed" | "failed").then_some(status)
        })
        .await;
        assert_eq!(status, "completed");
        accepted["document_id"]
            .as_str()
            .expect("document_id")
            .to_owned()
    }
}

/// Asserts a 507 `quota_exceeded` without `Retry-After`; its message.
async fn over_quota(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_gateway_uploads_past_the_stored_bytes_are_507_until_a_deletion_frees_them() {
    let it = Stored::start(100_000).await;
    let first = it.upload_text(&it.acme, "first.txt", 60_000).await;
    let first = it.indexed(&it.acme, first).await;
    assert_eq!(it.stored("acme").await, 60_000);
    let objects = it.objects().await;

    // Larger than what is left: refused while it streams, nothing of it stored, nothing
    // counted.
    let message = over_quota(it.upload_text(&it.acme, "big.txt", 300_000).await).await;
    assert!(
        message.contains("60000") && message.contains("100000"),
        "{message}"
    );
    // Small enough to stream whole, too large to fit.
    over_quota(it.upload_text(&it.acme, "second.txt", 50_000).await).await;
    // Inline text over JSON the same.
    let json = serde_json::json!({"collection": "manual",
        "text": String::from_utf8(text("inline", 50_000)).expect("utf-8")});
    let response = it
        .http
        .post(format!("{}/v1/documents", it.base))
        .bearer_auth(&it.acme)
        .json(&json)
        .send()
        .await
        .expect("post");
    over_quota(response).await;
    assert_eq!(it.objects().await, objects, "nothing of the refusals stays");
    assert_eq!(it.stored("acme").await, 60_000);

    // Another tenant is not held to acme's limit.
    let other = it.upload_text(&it.globex, "other.txt", 150_000).await;
    it.indexed(&it.globex, other).await;
    assert_eq!(it.stored("globex").await, 150_000);

    // Deleting acme's document gives its bytes back: the upload now fits.
    let deleted = it
        .http
        .delete(format!("{}/v1/documents/{first}", it.base))
        .bearer_auth(&it.acme)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(it.stored("acme").await, 0);
    let second = it.upload_text(&it.acme, "second.txt", 50_000).await;
    it.indexed(&it.acme, second).await;
    assert_eq!(it.stored("acme").await, 50_000);

    // The same content again is a duplicate: not stored twice, not counted twice.
    let again = it.upload_text(&it.acme, "second.txt", 50_000).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(it.stored("acme").await, 50_000);

    let shown = cli(&it.env.url(), "tenants show acme").await;
    assert!(shown.status.success(), "{shown:?}");
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["usage"]["stored_bytes"], 50_000, "{shown}");
    assert_eq!(shown["limits"]["stored_bytes"], 100_000, "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_nats_an_ingest_past_the_stored_bytes_is_quota_exceeded_and_no_dead_letter() {
    let it = Stored::start(1_000).await;
    let ingest = |tenant: &str, bytes: usize| {
        let text = String::from_utf8(text(tenant, bytes)).expect("utf-8");
        let data = serde_json::json!({"collection": "notes", "text": text});
        let body = tenant_action_body(tenant, &new_id(), "ingestion.ingest_document", data);
        let subject = format!("ingestion.{tenant}.rpc");
        let env = &it.env;
        async move {
            env.request(
                &subject,
                headers(&[("action_type", "ingestion.ingest_document")]),
                &body,
            )
            .await
            .1
        }
    };

    let refused = ingest("acme", 2_000).await;
    assert_error(&refused, "quota_exceeded");
    let error = &refused["data"]["error"];
    assert_eq!(error["retryable"], false, "{refused}");
    assert!(error.get("retry_after_ms").is_none(), "{refused}");
    assert_eq!(it.stored("acme").await, 0);
    assert_eq!(it.objects().await, 0, "nothing stored");
    assert_eq!(letters_on(&it.env, "dlq.ingestion.acme").await, 0);

    // What fits is stored and counted; another tenant is not held to acme's limit.
    let fits = ingest("acme", 800).await;
    assert_eq!(fits["data"]["status"], "success", "{fits}");
    assert_eq!(it.stored("acme").await, 800);
    let refused = ingest("acme", 300).await;
    assert_error(&refused, "quota_exceeded");
    let other = ingest("globex", 2_000).await;
    assert_eq!(other["data"]["status"], "success", "{other}");
    assert_eq!(it.stored("globex").await, 2_000);
    assert_eq!(letters_on(&it.env, "dlq.ingestion.acme").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedding_model_the_tenant_may_not_name_is_forbidden_before_the_api_is_called() {
    let stub = OpenAiStub::start().await;
    let data = TempDir::new().expect("temp dir");
    let mut env = Env::server_only().await;
    env.add_service("embedding", &stub_settings(&stub, &data))
        .await;
    set_limits(
        &env,
        "acme",
        TenantLimits {
            models: vec!["small-model".into()],
            ..TenantLimits::default()
        },
    )
    .await;
    let embed = |model: Option<&str>| {
        let mut data = json!({"texts": ["Cats eat meat."]});
        if let Some(model) = model {
            data["model"] = json!(model);
        }
        data
    };
    let embeddings = |stub: &OpenAiStub| {
        stub.requests()
            .iter()
            .filter(|r| r.0.ends_with("/embeddings"))
            .count()
    };

    let refused = call(
        &env,
        "acme",
        "embedding.generate",
        embed(Some("big-embedder")),
    )
    .await;
    assert_error(&refused, "forbidden");
    assert_eq!(embeddings(&stub), 0, "the API was not called");

    // The configured model, named or not, is always allowed; another tenant names any.
    for model in [None, Some("text-embedding-3-small")] {
        let done = call(&env, "acme", "embedding.generate", embed(model)).await;
        assert_eq!(done["data"]["status"], "success", "{done}");
    }
    let done = call(
        &env,
        "globex",
        "embedding.generate",
        embed(Some("big-embedder")),
    )
    .await;
    assert_eq!(done["data"]["status"], "success", "{done}");
    assert_eq!(embeddings(&stub), 3);
}
