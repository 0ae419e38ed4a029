//! The ingestion service end to end: HTTP uploads of every format over real HTTP, the
//! errors users meet, live progress, deletion, tenants, the action path for NATS users,
//! and a crash of the ingestion worker mid-document. The embedding (real model), query
//! (Qdrant Edge) and ingestion services run against a real nats-server.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

use crate::harness::*;
use crate::limits::Limited;

/// Services, an HTTP server with the ingestion routes, and keys for two tenants: the
/// gateway fixture of `limits`, serving the ingestion routes alone.
struct Ingest(Limited);

impl std::ops::Deref for Ingest {
    type Target = Limited;

    fn deref(&self) -> &Limited {
        &self.0
    }
}

impl Ingest {
    async fn start(vars: &[(&str, &str)]) -> Self {
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), vars);
        let mut env = Env::server_only().await;
        for service in ["embedding", "query", "ingestion"] {
            env.add_service(service, &settings).await;
        }
        Self::serve(env, data, &settings).await
    }

    /// Serves the ingestion routes for `env` on a free loopback port.
    async fn serve(env: Env, data: TempDir, settings: &shared::Settings) -> Self {
        let (base, keys) = env.serve_ingestion(settings).await;
        let acme = keys.create(&tenant("acme"), None).await.expect("key");
        let globex = keys.create(&tenant("globex"), None).await.expect("key");
        Self(Limited::assemble(env, base, [acme, globex], data))
    }

    /// Uploads fixture files in one multipart request as `key`'s tenant.
    async fn upload(&self, key: &str, collection: &str, files: &[&str]) -> (StatusCode, Value) {
        let mut form = Form::new().text("collection", collection.to_owned());
        for name in files {
            let bytes = std::fs::read(fixture(name)).expect("fixture");
            form = form.part("file", Part::bytes(bytes).file_name(name.to_string()));
        }
        let response = self
            .http
            .post(self.url("/v1/documents"))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        json_response(response).await
    }

    async fn post_json(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/documents"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("post");
        json_response(response).await
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("get");
        json_response(response).await
    }

    /// Polls a task until it is completed or failed; its last state.
    async fn finished(&self, key: &str, task_id: &str) -> Value {
        eventually(&format!("task {task_id} to finish"), || async {
            let (status, task) = self.get(key, &format!("/v1/tasks/{task_id}")).await;
            assert_eq!(status, StatusCode::OK, "{task}");
            matches!(task["status"].as_str(), Some("completed" | "failed")).then_some(task)
        })
        .await
    }

    /// `query.search` over rpc as `tenant`: the hits.
    async fn search(&self, tenant: &str, query: &str, top_k: usize) -> Vec<Value> {
        self.env.search(tenant, "manual", query, top_k).await
    }
}

fn tenant(name: &str) -> shared::TenantId {
    shared::TenantId::new(name).expect("tenant")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("services/ingestion/tests/fixtures")
        .join(name)
}

async fn json_response(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    (status, value)
}

fn text_of(hit: &Value) -> &str {
    hit["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_is_uploaded_indexed_and_found() {
    let it = Ingest::start(&[]).await;
    let files = [
        "sample.pdf",
        "sample.docx",
        "sample.html",
        "sample.md",
        "sample.txt",
    ];
    let (status, body) = it.upload(&it.acme, "manual", &files).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let documents = body["documents"].as_array().expect("documents").clone();
    assert_eq!(documents.len(), files.len());
    let mut ids = std::collections::HashMap::new();
    for document in &documents {
        let task = it
            .finished(&it.acme, document["task_id"].as_str().expect("task_id"))
            .await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(task["percentage"], 100);
        assert!(task["chunks_done"].as_u64() > Some(0), "{task}");
        ids.insert(
            document["file_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            document["document_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }

    // The PDF's second page is found, with its page number.
    let hits = it
        .search("acme", "a second page of searchable text", 3)
        .await;
    assert_eq!(
        hits[0]["document_id"],
        ids["sample.pdf"].as_str(),
        "{hits:?}"
    );
    assert!(text_of(&hits[0]).contains("second page"), "{hits:?}");
    assert_eq!(hits[0]["metadata"]["page"], 2, "{hits:?}");
    // The DOCX under its heading.
    let hits = it.search("acme", "Where do settings live?", 1).await;
    assert_eq!(
        hits[0]["document_id"],
        ids["sample.docx"].as_str(),
        "{hits:?}"
    );
    // HTML without its scripts; markdown without its markup.
    for hit in it.search("acme", "alert raw html script", 20).await {
        assert!(!text_of(&hit).contains("alert("), "{hit}");
        assert!(!text_of(&hit).contains("**"), "{hit}");
    }

    let (status, listed) = it.get(&it.acme, "/v1/documents?collection=manual").await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed["documents"].as_array().expect("documents").clone();
    assert_eq!(listed.len(), files.len());
    assert!(
        listed
            .iter()
            .all(|d| d["status"] == "completed" && d["chunks"].as_u64() > Some(0))
    );
    let pdf = listed.iter().find(|d| d["kind"] == "pdf").expect("the pdf");
    assert_eq!(
        pdf["size_bytes"].as_u64(),
        Some(
            std::fs::metadata(fixture("sample.pdf"))
                .expect("size")
                .len()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_get_clear_json_errors() {
    let it = Ingest::start(&[("DA_INGEST_MAX_BYTES", "10000")]).await;
    let (status, body) = it.upload(&it.acme, "manual", &["corrupt.pdf"]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unprocessable", "{body}");
    let (status, body) = it.upload(&it.acme, "manual", &["not-a-docx.docx"]).await;
    assert!(
        [
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        ]
        .contains(&status),
        "{status} {body}"
    );
    let (status, body) = it.upload(&it.acme, "manual", &["sample.pdf"]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // An image is not a document.
    let png = Part::bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()).file_name("pixel.png");
    let response = it
        .http
        .post(it.url("/v1/documents"))
        .bearer_auth(&it.acme)
        .multipart(Form::new().text("collection", "manual").part("file", png))
        .send()
        .await
        .expect("upload");
    let (status, body) = json_response(response).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");

    let (status, body) = it
        .post_json(&it.acme, json!({"text": "no collection"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = it
        .post_json(
            &it.acme,
            json!({"collection": "manual", "text": "a", "url": "http://x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = it
        .post_json("da_wrong", json!({"collection": "manual", "text": "a"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = it.get(&it.acme, "/v1/tasks/no-such-task").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = it.get(&it.acme, "/v1/documents/bad.id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Nothing was stored by any of these.
    let (_, listed) = it.get(&it.acme, "/v1/documents").await;
    assert_eq!(listed["documents"], json!([]), "{listed}");
    // And the service still takes good documents.
    let (status, body) = it
        .post_json(&it.acme, json!({"collection": "manual", "text": "fine"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_live_and_duplicates_are_not_indexed_twice() {
    let it = Ingest::start(&[
        ("DA_INGEST_BATCH", "2"),
        ("DA_CHUNK_TOKENS", "32"),
        ("DA_CHUNK_OVERLAP", "4"),
    ])
    .await;
    let text = "Cats sleep most of the day and hunt at night. ".repeat(30);
    let (status, accepted) = it
        .post_json(
            &it.acme,
            json!({"collection": "manual", "text": text, "title": "Cats"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let task_id = accepted["task_id"].as_str().expect("task_id").to_owned();

    let response = it
        .http
        .get(it.url(&format!("/v1/tasks/{task_id}/events")))
        .bearer_auth(&it.acme)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), StatusCode::OK);
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let deadline = Instant::now() + WAIT;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        for line in buffer.split('\n').filter_map(|l| l.strip_prefix("data: ")) {
            let task: Value = serde_json::from_str(line).expect("task json");
            let entry = (
                task["status"].as_str().unwrap_or_default().to_owned(),
                task["percentage"].as_u64().unwrap_or_default(),
            );
            if seen.last() != Some(&entry) {
                seen.push(entry);
            }
        }
        buffer = buffer
            .rsplit_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default();
    }
    assert_eq!(
        seen.last().map(|s| s.0.as_str()),
        Some("completed"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s.0 == "embedding"), "{seen:?}");
    let percentages: Vec<u64> = seen.iter().map(|s| s.1).collect();
    assert!(percentages.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    let task = it.finished(&it.acme, &task_id).await;
    let chunks = task["chunks_done"].as_u64().expect("chunks");
    assert!(chunks > 2, "{task}");
    assert!(task["timings"]["embed_ms"].as_u64().is_some(), "{task}");

    // The same content again: answered with the first document, nothing new indexed.
    let (status, again) = it
        .post_json(&it.acme, json!({"collection": "manual", "text": text}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let second = it
        .finished(&it.acme, again["task_id"].as_str().expect("task"))
        .await;
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["duplicate_of"], accepted["document_id"], "{second}");
    let hits = it.search("acme", "cats", 100).await;
    assert_eq!(hits.len() as u64, chunks, "{hits:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_removes_everything_and_tenants_stay_apart() {
    let it = Ingest::start(&[]).await;
    let (_, accepted) = it.upload(&it.acme, "manual", &["sample.md"]).await;
    let document_id = accepted["document_id"].as_str().expect("id").to_owned();
    it.finished(&it.acme, accepted["task_id"].as_str().expect("task"))
        .await;
    assert!(!it.search("acme", "installer", 5).await.is_empty());

    // Globex sees none of it, by any route.
    assert!(it.search("globex", "installer", 5).await.is_empty());
    let path = format!("/v1/documents/{document_id}");
    let (status, _) = it.get(&it.globex, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = it
        .get(
            &it.globex,
            &format!(
                "/v1/tasks/{}",
                accepted["task_id"].as_str().unwrap_or_default()
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = it
        .http
        .delete(it.url(&path))
        .bearer_auth(&it.globex)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (_, listed) = it.get(&it.globex, "/v1/documents").await;
    assert_eq!(listed["documents"], json!([]));

    let response = it
        .http
        .delete(it.url(&path))
        .bearer_auth(&it.acme)
        .send()
        .await
        .expect("delete");
    let (status, deleted) = json_response(response).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(deleted["chunks_deleted"].as_u64() > Some(0), "{deleted}");
    assert!(it.search("acme", "installer", 5).await.is_empty());
    let (status, _) = it.get(&it.acme, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its content may come back afterwards: the content claim went with it.
    let (status, again) = it.upload(&it.acme, "manual", &["sample.md"]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert!(again.get("duplicate_of").is_none(), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_users_ingest_with_actions() {
    let it = Ingest::start(&[]).await;
    let id = new_id();
    let (inbox, mut results) = it.env.inbox().await;
    let body = action_body(
        &id,
        "ingestion.ingest_document",
        json!({"collection": "manual", "text": "Penguins cannot fly but swim very well.", "file_name": "penguins.txt"}),
    );
    it.env
        .publish(
            "ingestion.acme.actions",
            action_headers("ingestion.ingest_document", &id, &inbox),
            &body,
        )
        .await;
    let reply = tokio::time::timeout(WAIT, results.next())
        .await
        .expect("a result")
        .expect("subscription");
    let result: Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(result["data"]["status"], "success", "{result}");
    let task_id = result["data"]["result"]["task_id"]
        .as_str()
        .expect("task")
        .to_owned();
    assert_eq!(task_id, id);

    let status = eventually("the task to complete", || async {
        let body = action_body(
            &new_id(),
            "ingestion.get_status",
            json!({"task_id": task_id}),
        );
        let (_, result) = it
            .env
            .request(
                "ingestion.acme.rpc",
                headers(&[("action_type", "ingestion.get_status")]),
                &body,
            )
            .await;
        (result["data"]["result"]["status"] == "completed").then_some(result)
    })
    .await;
    assert_eq!(status["data"]["result"]["document_id"], id.as_str());
    assert_eq!(it.search("acme", "Which bird swims?", 1).await.len(), 1);

    // A bad request is refused and dead-lettered with its reason.
    let body = action_body(
        &new_id(),
        "ingestion.ingest_document",
        json!({"collection": "manual"}),
    );
    let (_, refused) = it
        .env
        .request(
            "ingestion.acme.rpc",
            headers(&[("action_type", "ingestion.ingest_document")]),
            &body,
        )
        .await;
    assert_error(&refused, "invalid_action");
    let letter = it.env.dead_letter("dlq.ingestion.acme").await;
    assert_eq!(letter.header("dlq_reason"), Some("invalid_action"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_ingestion_worker_resumes_without_duplicates() {
    let data = TempDir::new().expect("temp dir");
    let vars = [
        ("DA_INGEST_BATCH", "1"),
        ("DA_CHUNK_TOKENS", "24"),
        ("DA_CHUNK_OVERLAP", "0"),
        ("DA_ACK_WAIT", "2s"),
        ("DA_RETRY_BACKOFF", "100ms"),
    ];
    let settings = settings_in(data.path(), &vars);
    let mut env = Env::server_only().await;
    env.add_service("embedding", &settings).await;
    env.add_service("query", &settings).await;
    let url = env.url();
    let data_dir = data.path().to_path_buf();
    let start_worker = || {
        let mut command = domain_actions(&["worker", "ingestion"]);
        command.env("NATS_URL", &url).env("DA_DATA_DIR", &data_dir);
        for (key, value) in vars {
            command.env(key, value);
        }
        command.spawn().expect("ingestion worker")
    };
    let mut worker = start_worker();
    env.wait_service("ingestion").await;
    let it = Ingest::serve(env, data, &settings).await;

    let text = (0..60)
        .map(|i| format!("Paragraph {i} tells of lighthouse number {i} on the rocky coast."))
        .collect::<Vec<_>>()
        .join("\n\n");
    let (status, accepted) = it
        .post_json(&it.acme, json!({"collection": "manual", "text": text}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let task_id = accepted["task_id"].as_str().expect("task").to_owned();

    // Kill it mid-document: some batches indexed, not all.
    let midway = eventually("some batches to be done", || async {
        let (_, task) = it.get(&it.acme, &format!("/v1/tasks/{task_id}")).await;
        let (done, total) = (
            task["chunks_done"].as_u64()?,
            task["chunks_total"].as_u64()?,
        );
        (done > 0 && done < total).then_some(task)
    })
    .await;
    worker.start_kill().expect("kill -9");
    worker.wait().await.expect("reaped");
    sleep(Duration::from_millis(500)).await;
    let mut worker = start_worker();

    let task = it.finished(&it.acme, &task_id).await;
    worker.start_kill().expect("kill");
    assert_eq!(task["status"], "completed", "{task}");
    let total = task["chunks_total"].as_u64().expect("total");
    assert!(total > midway["chunks_done"].as_u64().unwrap_or_default());
    assert_eq!(task["chunks_done"].as_u64(), Some(total), "{task}");
    let hits = it.search("acme", "lighthouse on the coast", 100).await;
    let mut indices: Vec<u64> = hits
        .iter()
        .filter_map(|h| h["chunk_index"].as_u64())
        .collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(hits.len() as u64, total, "every chunk once: {indices:?}");
    assert_eq!(indices.len() as u64, total);
}

impl Ingest {
    /// `PUT path` with a JSON body as `key`'s tenant.
    async fn put_json(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("put");
        json_response(response).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_choose_their_own_chunking() {
    let it = Ingest::start(&[]).await;
    // A free-text name: spaces and a dot, percent-encoded in the path.
    let (status, stored) = it
        .put_json(
            &it.acme,
            "/v1/collections/tiny%20chunks.v1",
            json!({"chunk_tokens": 16, "chunk_overlap": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored,
        json!({"collection": "tiny chunks.v1", "chunk_tokens": 16, "chunk_overlap": 0})
    );

    // The same ~200 words in the tiny collection and in one with the defaults (256/32).
    let text = "The lighthouse keeper counts the ships passing the northern cape each evening. "
        .repeat(17);
    let mut chunks = Vec::new();
    for collection in ["tiny chunks.v1", "manual"] {
        let (status, accepted) = it
            .post_json(
                &it.acme,
                json!({"collection": collection, "text": text, "title": "Lighthouse"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let task = it
            .finished(&it.acme, accepted["task_id"].as_str().expect("task"))
            .await;
        assert_eq!(task["status"], "completed", "{task}");
        chunks.push(task["chunks_done"].as_u64().expect("chunks_done"));
    }
    let (tiny, default) = (chunks[0], chunks[1]);
    assert!(default >= 1, "{chunks:?}");
    assert!(tiny >= 4 * default && tiny >= 10, "{chunks:?}");

    let (status, listed) = it.get(&it.acme, "/v1/collections").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed,
        json!({"collections": [
            {"collection": "manual", "chunk_tokens": 256, "chunk_overlap": 32, "documents": 1},
            {"collection": "tiny chunks.v1", "chunk_tokens": 16, "chunk_overlap": 0, "documents": 1},
        ]})
    );

    // Invalid settings are refused and change nothing.
    for bad in [
        json!({"chunk_tokens": 8, "chunk_overlap": 0}),
        json!({"chunk_tokens": 9000, "chunk_overlap": 0}),
        json!({"chunk_tokens": 64, "chunk_overlap": 64}),
        json!({"chunk_tokens": 64}),
    ] {
        let (status, error) = it
            .put_json(&it.acme, "/v1/collections/tiny%20chunks.v1", bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let (_, unchanged) = it.get(&it.acme, "/v1/collections").await;
    assert_eq!(unchanged, listed);

    // NATS users set the same settings with an action.
    let body = action_body(
        &new_id(),
        "ingestion.collection_put",
        json!({"collection": "manual", "chunk_tokens": 128, "chunk_overlap": 16}),
    );
    let (_, result) = it
        .env
        .request(
            "ingestion.acme.rpc",
            headers(&[("action_type", "ingestion.collection_put")]),
            &body,
        )
        .await;
    assert_eq!(result["data"]["status"], "success", "{result}");
    assert_eq!(
        result["data"]["result"],
        json!({"collection": "manual", "chunk_tokens": 128, "chunk_overlap": 16})
    );
    let (_, listed) = it.get(&it.acme, "/v1/collections").await;
    assert_eq!(listed["collections"][0]["chunk_tokens"], 128, "{listed}");
    let body = action_body(
        &new_id(),
        "ingestion.collection_put",
        json!({"collection": "manual", "chunk_tokens": 16, "chunk_overlap": 20}),
    );
    let (_, refused) = it
        .env
        .request(
            "ingestion.acme.rpc",
            headers(&[("action_type", "ingestion.collection_put")]),
            &body,
        )
        .await;
    assert_error(&refused, "invalid_action");

    // Another tenant sees none of it.
    let (status, theirs) = it.get(&it.globex, "/v1/collections").await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs, json!({"collections": []}));
}
