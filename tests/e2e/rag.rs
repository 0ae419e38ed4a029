//! The embedding and query services together, offline: the real all-MiniLM-L6-v2 model,
//! Qdrant Edge on disk, the extractive answerer; and the same services against a local
//! server speaking the OpenAI wire format. Every call is a hand-written action sent with a
//! bare client, as a `nats` CLI user would.

use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::openai_stub::{OpenAiStub, StubReply};

use crate::harness::*;

/// A server with the embedding and query services, their data in a temp dir.
struct Rag {
    env: Env,
    _data: TempDir,
}

impl Rag {
    /// Both services with `vars` as their settings (plus a fresh data dir).
    async fn start(vars: &[(&str, &str)]) -> Self {
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), vars);
        let mut env = Env::server_only().await;
        env.add_service("embedding", &settings).await;
        env.add_service("query", &settings).await;
        Self { env, _data: data }
    }

    /// Sends `data` as an action of `action_type` over `<domain>.<tenant>.rpc`; the result.
    async fn call(&self, tenant: &str, action_type: &str, data: Value) -> Value {
        let domain = action_type.split('.').next().expect("domain");
        let body = tenant_action_body(tenant, &new_id(), action_type, data);
        let (_, result) = self
            .env
            .request(
                &format!("{domain}.{tenant}.rpc"),
                headers(&[("action_type", action_type)]),
                &body,
            )
            .await;
        result
    }

    /// As [`Rag::call`], asserting success; the handler's output.
    async fn ok(&self, tenant: &str, action_type: &str, data: Value) -> Value {
        let result = self.call(tenant, action_type, data).await;
        assert_eq!(result["data"]["status"], "success", "{result}");
        result["data"]["result"].clone()
    }

    async fn index(&self, tenant: &str, collection: &str, document: &str, texts: &[&str]) -> Value {
        let chunks: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| json!({"chunk_index": i, "text": text, "metadata": {"title": document}}))
            .collect();
        self.ok(
            tenant,
            "query.index",
            json!({"collection": collection, "document_id": document, "chunks": chunks}),
        )
        .await
    }

    async fn search(&self, tenant: &str, query: &str, top_k: usize) -> Vec<Value> {
        let out = self
            .ok(
                tenant,
                "query.search",
                json!({"query": query, "collections": ["handbook"], "top_k": top_k}),
            )
            .await;
        out["hits"].as_array().expect("hits").clone()
    }
}

const CATS: &[&str] = &[
    "Cats are carnivores: they eat meat, mostly fish and chicken.",
    "A cat sleeps between twelve and sixteen hours a day.",
];
const ROCKETS: &[&str] = &[
    "Rockets burn liquid hydrogen and oxygen to reach orbit.",
    "The first stage of a rocket falls back after two minutes.",
];

#[tokio::test(flavor = "multi_thread")]
async fn index_search_and_answer_offline() {
    let rag = Rag::start(&[]).await;
    let indexed = rag.index("acme", "handbook", "cats", CATS).await;
    assert_eq!(indexed["indexed"], 2, "{indexed}");
    assert_eq!(indexed["embedded"], 2, "{indexed}");
    rag.index("acme", "handbook", "rockets", ROCKETS).await;

    let hits = rag.search("acme", "What do cats eat?", 3).await;
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["document_id"], "cats", "{hits:?}");
    assert_eq!(hits[0]["chunk_index"], 0, "{hits:?}");
    assert_eq!(hits[0]["collection"], "handbook");
    assert_eq!(hits[0]["metadata"]["title"], "cats");
    assert!(hits[0]["score"].as_f64() > hits[2]["score"].as_f64());

    let answered = rag
        .ok(
            "acme",
            "query.answer",
            json!({"query": "What fuel do rockets burn?", "collections": ["handbook"], "top_k": 2}),
        )
        .await;
    assert_eq!(answered["model"], "extractive", "{answered}");
    assert!(
        answered["answer"]
            .as_str()
            .is_some_and(|a| a.contains("liquid hydrogen") && a.contains("[1]")),
        "{answered}"
    );
    assert_eq!(
        answered["citations"][0]["document_id"], "rockets",
        "{answered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_other() {
    let rag = Rag::start(&[]).await;
    // Same collection and document names, different contents.
    rag.index("acme", "handbook", "cats", CATS).await;
    rag.index("globex", "handbook", "cats", ROCKETS).await;

    for hit in rag.search("globex", "What do cats eat?", 10).await {
        assert!(
            ROCKETS.contains(&hit["text"].as_str().unwrap_or_default()),
            "globex saw {hit}"
        );
    }
    // A tenant named in the body that differs from the subject is refused, not obeyed.
    let body = tenant_action_body(
        "acme",
        &new_id(),
        "query.search",
        json!({"query": "cats", "top_k": 5}),
    );
    let (_, refused) = rag
        .env
        .request(
            "query.globex.rpc",
            headers(&[("action_type", "query.search")]),
            &body,
        )
        .await;
    assert_error(&refused, "tenant_mismatch");

    let deleted = rag
        .ok(
            "acme",
            "query.delete",
            json!({"collection": "handbook", "document_id": "cats"}),
        )
        .await;
    assert_eq!(deleted["deleted"], 2);
    assert!(rag.search("acme", "cats", 10).await.is_empty());
    assert_eq!(rag.search("globex", "cats", 10).await.len(), 2);
}

/// A search is hybrid unless it says `"retrieval": "dense"`: the words of the query find
/// the chunk that names them, scored by fused rank (at most 2 / 60), where a dense search
/// scores by cosine; a retrieval that does not exist is refused.
#[tokio::test(flavor = "multi_thread")]
async fn searches_are_hybrid_unless_they_ask_for_dense() {
    let rag = Rag::start(&[]).await;
    rag.index("acme", "handbook", "cats", CATS).await;
    rag.index("acme", "handbook", "rockets", ROCKETS).await;
    let search = |retrieval: Value| json!({"query": "liquid hydrogen", "collections": ["handbook"], "top_k": 4, "retrieval": retrieval});
    let fused_at_most = 2.0 / 60.0 + 1e-6;

    for retrieval in [Value::Null, json!("hybrid")] {
        let hybrid = rag.ok("acme", "query.search", search(retrieval)).await;
        let hits = hybrid["hits"].as_array().expect("hits");
        assert_eq!(hits.len(), 4, "{hybrid}");
        assert_eq!(hits[0]["text"], ROCKETS[0], "{hybrid}");
        assert!(
            hits.iter()
                .all(|h| h["score"].as_f64().is_some_and(|s| s <= fused_at_most)),
            "{hybrid}"
        );
    }
    let dense = rag.ok("acme", "query.search", search(json!("dense"))).await;
    assert_eq!(dense["hits"][0]["text"], ROCKETS[0], "{dense}");
    assert!(
        dense["hits"][0]["score"]
            .as_f64()
            .is_some_and(|s| s > fused_at_most),
        "a cosine: {dense}"
    );

    let refused = rag
        .call("acme", "query.search", search(json!("sparse")))
        .await;
    assert_error(&refused, "invalid_action");
}

#[tokio::test(flavor = "multi_thread")]
async fn reindexing_replaces_a_document() {
    let rag = Rag::start(&[]).await;
    rag.index("acme", "handbook", "cats", &[CATS[0], CATS[1], ROCKETS[0]])
        .await;
    let again = rag.index("acme", "handbook", "cats", CATS).await;
    assert_eq!(again["removed"], 1, "{again}");
    let hits = rag.search("acme", "cats", 10).await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    // Deleting the whole collection leaves nothing.
    rag.ok("acme", "query.delete", json!({"collection": "handbook"}))
        .await;
    assert!(rag.search("acme", "cats", 10).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_and_dead_lettered() {
    let rag = Rag::start(&[]).await;
    let result = rag
        .call("acme", "query.search", json!({"query": "x", "top_k": 0}))
        .await;
    assert_error(&result, "invalid_action");
    let letter = rag.env.dead_letter("dlq.query.acme").await;
    assert_eq!(letter.header("dlq_reason"), Some("invalid_action"));

    let result = rag
        .call(
            "acme",
            "query.index",
            json!({"collection": "c", "document_id": "d", "chunks": [{"chunk_index": 0, "text": "x", "vector": [1.0, 2.0]}]}),
        )
        .await;
    assert_error(&result, "invalid_action");
    assert!(
        result["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("384")),
        "{result}"
    );

    // One empty text fails its own index, not the batch.
    let generated = rag
        .ok(
            "acme",
            "embedding.generate",
            json!({"texts": ["hello", "", "world"], "kind": "document"}),
        )
        .await;
    assert_eq!(generated["failed_indices"], json!([1]), "{generated}");
    assert_eq!(generated["dimensions"], 384);
    assert!(generated["vectors"][1].is_null());
    assert_eq!(generated["vectors"][2].as_array().map(Vec::len), Some(384));
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_embedding_results_are_indexed_from_the_callbacks_subject() {
    let rag = Rag::start(&[]).await;
    let id = new_id();
    let body = json!({
        "action_id": id,
        "action_type": "embedding.generate",
        "tenant_id": "acme",
        "callback_subject": "query.acme.callbacks",
        "metadata": {"index": {
            "collection": "handbook",
            "document_id": "cats",
            "chunks": [{"chunk_index": 0, "text": CATS[0]}, {"chunk_index": 1, "text": CATS[1]}],
        }},
        "data": {"texts": CATS, "kind": "document"},
    });
    rag.env
        .publish(
            "embedding.acme.actions",
            action_headers("embedding.generate", &id, "query.acme.callbacks"),
            &serde_json::to_vec(&body).expect("body"),
        )
        .await;
    let hits = eventually("the callback's chunks to be searchable", || async {
        let hits = rag.search("acme", "What do cats eat?", 5).await;
        (hits.len() == 2).then_some(hits)
    })
    .await;
    assert_eq!(hits[0]["document_id"], "cats");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_apis_by_settings_only() {
    let stub = OpenAiStub::start().await;
    let url = stub.url();
    let rag = Rag::start(&[
        ("DA_EMBEDDING_API_URL", &url),
        ("DA_EMBEDDING_API_KEY", "sk-embed"),
        ("DA_EMBEDDING_MODEL", "text-embedding-3-small"),
        ("DA_VECTOR_DIMENSIONS", "8"),
        ("DA_CHAT_API_URL", &url),
        ("DA_CHAT_API_KEY", "sk-chat"),
        ("DA_CHAT_MODEL", "llama-3.3-70b-versatile"),
    ])
    .await;
    rag.index("acme", "handbook", "cats", CATS).await;
    stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));
    let answered = rag
        .ok(
            "acme",
            "query.answer",
            json!({"query": "What do cats eat?", "collections": ["handbook"], "top_k": 2}),
        )
        .await;
    assert_eq!(answered["answer"], "Cats eat meat [1].", "{answered}");
    assert_eq!(answered["citations"].as_array().map(Vec::len), Some(1));
    assert_eq!(answered["model"], "llama-3.3-70b-versatile");
    assert!(
        answered["usage"]["total_tokens"].as_u64() > Some(0),
        "{answered}"
    );

    let requests = stub.requests();
    let chat = requests
        .iter()
        .find(|r| r.0.ends_with("/chat/completions"))
        .expect("a chat request");
    assert_eq!(chat.1.as_deref(), Some("Bearer sk-chat"));
    assert_eq!(chat.2["model"], "llama-3.3-70b-versatile");
    let prompt = chat.2["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(prompt.contains("[1]") && prompt.contains("Question: What do cats eat?"));
    let embed = requests
        .iter()
        .find(|r| r.0.ends_with("/embeddings"))
        .expect("an embeddings request");
    assert_eq!(embed.1.as_deref(), Some("Bearer sk-embed"));

    // A rate limit is retryable: over rpc the caller hears `unavailable`, retryable.
    stub.fail_next(429, 1);
    let result = rag
        .call("acme", "embedding.generate", json!({"texts": ["x"]}))
        .await;
    assert_error(&result, "unavailable");
    assert_eq!(result["data"]["error"]["retryable"], true, "{result}");
}
