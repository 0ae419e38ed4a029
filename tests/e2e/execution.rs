//! The execution service with the real embedding and query services: agents stored and
//! run over rpc, answers quoting and citing indexed documents, conversation history,
//! tokens streamed to the session's event subject, the ReAct loop against the local
//! OpenAI-compatible stub, and tenants kept apart. Every call is a hand-written action.

use async_nats::Subscriber;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::openai_stub::{OpenAiStub, StubReply};

use crate::harness::*;

const CATS: &[&str] = &[
    "Cats are carnivores: they eat meat, mostly fish and chicken.",
    "A cat sleeps between twelve and sixteen hours a day.",
];

/// A server with the services `names`, their settings `vars` (plus a fresh data dir).
struct Exec {
    env: Env,
    _data: TempDir,
}

impl Exec {
    async fn start(names: &[&str], vars: &[(&str, &str)]) -> Self {
        let data = TempDir::new().expect("temp dir");
        let settings = settings_in(data.path(), vars);
        let mut env = Env::server_only().await;
        for name in names {
            env.add_service(name, &settings).await;
        }
        Self { env, _data: data }
    }

    /// Embedding, query and execution, offline (the local model, the extractive answerer).
    async fn offline() -> Self {
        Self::start(&["embedding", "query", "execution"], &[]).await
    }

    /// The three services with embeddings and chat from `stub`.
    async fn with_stub(stub: &OpenAiStub) -> Self {
        let url = stub.url();
        Self::start(
            &["embedding", "query", "execution"],
            &[
                ("DA_EMBEDDING_API_URL", &url),
                ("DA_VECTOR_DIMENSIONS", "8"),
                ("DA_CHAT_API_URL", &url),
                ("DA_CHAT_MODEL", "stub-model"),
            ],
        )
        .await
    }

    /// Sends `body` (a complete action of `tenant`) over `<domain>.<tenant>.rpc`; the result.
    async fn send(&self, tenant: &str, action_type: &str, body: Value) -> Value {
        let domain = action_type.split('.').next().expect("domain");
        let (_, result) = self
            .env
            .request(
                &format!("{domain}.{tenant}.rpc"),
                headers(&[("action_type", action_type)]),
                &serde_json::to_vec(&body).expect("body"),
            )
            .await;
        result
    }

    /// An action of `action_type` with `data` over rpc; the result.
    async fn call(&self, tenant: &str, action_type: &str, data: Value) -> Value {
        let body = tenant_action_body(tenant, &new_id(), action_type, data);
        self.send(
            tenant,
            action_type,
            serde_json::from_slice(&body).expect("json"),
        )
        .await
    }

    /// As [`Exec::call`], asserting success; the handler's output.
    async fn ok(&self, tenant: &str, action_type: &str, data: Value) -> Value {
        let result = self.call(tenant, action_type, data).await;
        assert_eq!(result["data"]["status"], "success", "{result}");
        result["data"]["result"].clone()
    }

    async fn index_cats(&self, tenant: &str) {
        let chunks: Vec<Value> = CATS
            .iter()
            .enumerate()
            .map(|(i, text)| json!({"chunk_index": i, "text": text}))
            .collect();
        self.ok(
            tenant,
            "query.index",
            json!({"collection": "handbook", "document_id": "cats", "chunks": chunks}),
        )
        .await;
    }

    async fn put_agent(&self, tenant: &str, agent: Value) -> Value {
        self.ok(tenant, "execution.agent_put", json!({"agent": agent}))
            .await
    }

    async fn run(&self, tenant: &str, session: &str, message: &str, stream: bool) -> Value {
        self.ok(
            tenant,
            "execution.agent_run",
            json!({"agent_id": "helper", "session_id": session, "message": message, "stream": stream}),
        )
        .await
    }

    async fn messages(&self, tenant: &str, session: &str) -> Vec<Value> {
        let session = self
            .ok(
                tenant,
                "execution.session_get",
                json!({"session_id": session}),
            )
            .await;
        session["messages"].as_array().cloned().unwrap_or_default()
    }
}

/// Reads `stream_chunk` events from `events` until their contents add up to `answer`
/// (whitespace aside); the events.
async fn chunks_of(events: &mut Subscriber, answer: &str) -> Vec<Value> {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    let want = squeeze(answer);
    let mut chunks: Vec<Value> = Vec::new();
    loop {
        let text: String = chunks
            .iter()
            .filter_map(|c| c["content"].as_str())
            .collect();
        if squeeze(&text) == want {
            return chunks;
        }
        // Bounded by WAIT per event: a stream that never adds up ends in a panic here.
        let (_, chunk) = next_json(events).await;
        chunks.push(chunk);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_answer_from_documents_and_remember_the_conversation() {
    let exec = Exec::offline().await;
    exec.index_cats("acme").await;
    let agent = exec
        .put_agent(
            "acme",
            json!({"agent_id": "helper", "name": "Helper", "system_prompt": "Be brief.",
                   "collections": ["handbook"], "top_k": 2}),
        )
        .await;
    assert_eq!(agent["agent_id"], "helper");
    assert_eq!(agent["retrieval"], true);
    assert_eq!(agent["max_iterations"], 10);
    let created = agent["created_at"].clone();
    assert!(created.is_string(), "{agent}");

    let reply = exec.run("acme", "s1", "What do cats eat?", false).await;
    assert_eq!(reply["model"], "extractive", "{reply}");
    assert_eq!(reply["iterations"], 1, "{reply}");
    let answer = reply["answer"].as_str().unwrap_or_default();
    assert!(
        answer.contains("they eat meat") && answer.contains("[1]"),
        "{reply}"
    );
    assert_eq!(reply["citations"][0]["document_id"], "cats", "{reply}");
    assert_eq!(reply["citations"][0]["collection"], "handbook", "{reply}");
    assert_eq!(reply["usage"]["total_tokens"], 0, "{reply}");

    let messages = exec.messages("acme", "s1").await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "What do cats eat?");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], reply["answer"]);
    assert_eq!(messages[1]["citations"], reply["citations"]);
    assert!(messages[1]["at"].is_string());

    let again = exec
        .run("acme", "s1", "How long does a cat sleep?", false)
        .await;
    assert!(
        again["answer"]
            .as_str()
            .is_some_and(|a| a.contains("sixteen hours")),
        "{again}"
    );
    let messages = exec.messages("acme", "s1").await;
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[2]["content"], "How long does a cat sleep?");

    // Replacing keeps created_at; listing and deleting.
    let replaced = exec
        .put_agent("acme", json!({"agent_id": "helper", "top_k": 3}))
        .await;
    assert_eq!(replaced["created_at"], created, "{replaced}");
    assert_eq!(replaced["name"], "helper", "{replaced}");
    let listed = exec.ok("acme", "execution.agent_list", json!({})).await;
    assert_eq!(
        listed["agents"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let deleted = exec
        .ok(
            "acme",
            "execution.agent_delete",
            json!({"agent_id": "helper"}),
        )
        .await;
    assert_eq!(deleted["deleted"], true);
    let result = exec
        .call(
            "acme",
            "execution.agent_run",
            json!({"agent_id": "helper", "session_id": "s1", "message": "Hi"}),
        )
        .await;
    assert_error(&result, "invalid_action");
    // An invalid agent is refused when stored, naming the field.
    let result = exec
        .call(
            "acme",
            "execution.agent_put",
            json!({"agent": {"agent_id": "bad", "top_k": 0}}),
        )
        .await;
    assert_error(&result, "invalid_action");
    assert!(
        result["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("top_k")),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_answers_stream_to_the_session_subject() {
    let exec = Exec::offline().await;
    exec.index_cats("acme").await;
    exec.put_agent("acme", json!({"agent_id": "helper"})).await;
    let mut events = exec
        .env
        .subscribe("orchestrator.acme.events.session.s1")
        .await;

    // A run of task t1, as the orchestrator would send it.
    let body = json!({
        "action_id": new_id(),
        "action_type": "execution.agent_run",
        "tenant_id": "acme",
        "task_id": "t1",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"agent_id": "helper", "session_id": "s1", "message": "What do cats eat?", "stream": true},
    });
    let result = exec.send("acme", "execution.agent_run", body).await;
    assert_eq!(result["data"]["status"], "success", "{result}");
    let answer = result["data"]["result"]["answer"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let chunks = chunks_of(&mut events, &answer).await;
    assert!(chunks.len() >= 2, "{chunks:?}");
    for chunk in &chunks {
        assert_eq!(chunk["type"], "stream_chunk", "{chunk}");
        assert_eq!(chunk["session_id"], "s1", "{chunk}");
        assert_eq!(chunk["task_id"], "t1", "{chunk}");
    }
    // Without `stream`, nothing is published.
    exec.run("acme", "s1", "What do cats eat?", false).await;
    expect_nothing(&mut events, "a run without stream").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_agents_search_through_the_knowledge_tool() {
    let stub = OpenAiStub::start().await;
    let exec = Exec::with_stub(&stub).await;
    exec.index_cats("acme").await;
    exec.put_agent(
        "acme",
        json!({"agent_id": "helper", "system_prompt": "You are the cat expert."}),
    )
    .await;
    stub.push_reply(StubReply::ToolCall {
        name: "knowledge".into(),
        arguments: json!({"query": "cat food"}),
    });
    stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));

    let reply = exec.run("acme", "s1", "What do cats eat?", false).await;
    assert_eq!(reply["answer"], "Cats eat meat [1].", "{reply}");
    assert_eq!(reply["iterations"], 2, "{reply}");
    assert_eq!(reply["model"], "stub-model", "{reply}");
    assert_eq!(
        reply["citations"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    assert_eq!(reply["citations"][0]["number"], 1, "{reply}");
    assert_eq!(reply["citations"][0]["document_id"], "cats", "{reply}");
    // The stub counts words: 3 in the tool call's arguments, 4 in the answer.
    let usage = &reply["usage"];
    assert_eq!(usage["completion_tokens"], 7, "{reply}");
    assert!(usage["prompt_tokens"].as_u64() > Some(0), "{reply}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap_or_default()
                + usage["completion_tokens"].as_u64().unwrap_or_default()
        ),
        "{reply}"
    );

    let chats: Vec<Value> = stub
        .requests()
        .into_iter()
        .filter(|r| r.0.ends_with("/chat/completions"))
        .map(|r| r.2)
        .collect();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0]["tools"][0]["function"]["name"], "knowledge");
    assert_eq!(chats[0]["messages"][0]["role"], "system");
    assert!(
        chats[0]["messages"][0]["content"]
            .as_str()
            .is_some_and(|s| s.starts_with("You are the cat expert.")),
        "{}",
        chats[0]
    );
    let sent = chats[1]["messages"].as_array().cloned().unwrap_or_default();
    let tool = sent.last().cloned().unwrap_or_default();
    assert_eq!(tool["role"], "tool", "{sent:?}");
    let passages = tool["content"].as_str().unwrap_or_default();
    assert!(passages.starts_with("[1] (cats, part "), "{passages}");
    assert!(passages.contains(CATS[0]), "{passages}");

    // Streamed: the tokens of the answer arrive on the session's subject.
    let mut events = exec
        .env
        .subscribe("orchestrator.acme.events.session.s2")
        .await;
    stub.push_reply(StubReply::ToolCall {
        name: "knowledge".into(),
        arguments: json!({"query": "cat food"}),
    });
    stub.push_reply(StubReply::Text(
        "Cats eat meat, fish and chicken [1].".into(),
    ));
    let reply = exec.run("acme", "s2", "What do cats eat?", true).await;
    assert_eq!(reply["answer"], "Cats eat meat, fish and chicken [1].");
    let events = chunks_of(&mut events, "Cats eat meat, fish and chicken [1].").await;
    // While it searches, the session hears the call and what it found, then the tokens.
    let (call, result) = (&events[0], &events[1]);
    assert_eq!(call["type"], "tool_call", "{events:?}");
    assert_eq!(call["session_id"], "s2", "{call}");
    assert_eq!(call["name"], "knowledge", "{call}");
    let arguments: Value =
        serde_json::from_str(call["arguments"].as_str().unwrap_or_default()).expect("arguments");
    assert_eq!(arguments["query"], "cat food", "{call}");
    assert_eq!(result["type"], "tool_result", "{events:?}");
    assert_eq!(result["call_id"], call["call_id"], "{result}");
    assert_eq!(result["passages"][0]["number"], 1, "{result}");
    assert_eq!(result["passages"][0]["document_id"], "cats", "{result}");
    assert!(result.get("error").is_none(), "{result}");
    assert_eq!(call["task_id"], result["task_id"]);
    let chunks: Vec<&Value> = events[2..].iter().collect();
    assert!(chunks.len() >= 2, "{chunks:?}");
    assert!(
        chunks.iter().all(|c| c["type"] == "stream_chunk"),
        "{chunks:?}"
    );
    assert_eq!(exec.messages("acme", "s2").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn temperature_max_tokens_and_top_p_come_from_the_agent_and_the_request() {
    let stub = OpenAiStub::start().await;
    let exec = Exec::with_stub(&stub).await;
    exec.index_cats("acme").await;
    let agent = exec
        .put_agent(
            "acme",
            json!({"agent_id": "helper", "tools": false, "temperature": 0.7, "max_tokens": 300}),
        )
        .await;
    assert_eq!(agent["temperature"], 0.7, "{agent}");
    assert_eq!(agent["max_tokens"], 300, "{agent}");
    assert!(agent.get("top_p").is_none(), "{agent}");

    stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));
    exec.run("acme", "s1", "What do cats eat?", false).await;
    stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));
    exec.ok(
        "acme",
        "execution.agent_run",
        json!({"agent_id": "helper", "session_id": "s1", "message": "And dogs?",
               "temperature": 0.0, "top_p": 0.5}),
    )
    .await;
    let sent: Vec<(Value, Value, Value)> = stub
        .requests()
        .into_iter()
        .filter(|r| r.0.ends_with("/chat/completions"))
        .map(|r| {
            let body = r.2;
            (
                body["temperature"].clone(),
                body["max_tokens"].clone(),
                body["top_p"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (json!(0.7), json!(300), Value::Null),
            (json!(0.0), json!(300), json!(0.5)),
        ],
        "the agent's settings, then the request's over them"
    );

    // Out of range: refused by name, no model call.
    let bad = exec
        .call(
            "acme",
            "execution.agent_run",
            json!({"agent_id": "helper", "session_id": "s1", "message": "Hm?", "top_p": 2}),
        )
        .await;
    assert_eq!(bad["data"]["error"]["code"], "invalid_action", "{bad}");
    assert!(
        bad["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("top_p")),
        "{bad}"
    );
    let refused = exec
        .call(
            "acme",
            "execution.agent_put",
            json!({"agent": {"agent_id": "hot", "temperature": 9}}),
        )
        .await;
    assert_eq!(
        refused["data"]["error"]["code"], "invalid_action",
        "{refused}"
    );
    assert_eq!(
        stub.requests()
            .iter()
            .filter(|r| r.0.ends_with("/chat/completions"))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_never_answers_stops_at_max_iterations() {
    let stub = OpenAiStub::start().await;
    let exec = Exec::with_stub(&stub).await;
    exec.put_agent("acme", json!({"agent_id": "helper", "max_iterations": 2}))
        .await;
    for _ in 0..4 {
        stub.push_reply(StubReply::ToolCall {
            name: "knowledge".into(),
            arguments: json!({"query": "more"}),
        });
    }
    let result = exec
        .call(
            "acme",
            "execution.agent_run",
            json!({"agent_id": "helper", "session_id": "s1", "message": "Anything?"}),
        )
        .await;
    assert_error(&result, "handler_error");
    assert!(
        result["data"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no answer after 2 iterations")),
        "{result}"
    );
    let chats = stub
        .requests()
        .iter()
        .filter(|r| r.0.ends_with("/chat/completions"))
        .count();
    assert_eq!(chats, 2);
    let letter = exec.env.dead_letter("dlq.execution.acme").await;
    assert_eq!(letter.header("dlq_reason"), Some("handler_error"));
    // A failed run saves nothing.
    assert!(exec.messages("acme", "s1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_cannot_see_each_others_agents_or_sessions() {
    // Agents without retrieval need neither the embedding nor the query service.
    let exec = Exec::start(&["execution"], &[]).await;
    exec.put_agent("acme", json!({"agent_id": "helper", "retrieval": false}))
        .await;
    exec.run("acme", "s1", "Hello?", false).await;
    assert_eq!(exec.messages("acme", "s1").await.len(), 2);

    for (action_type, data) in [
        ("execution.agent_get", json!({"agent_id": "helper"})),
        (
            "execution.agent_run",
            json!({"agent_id": "helper", "session_id": "s1", "message": "Hello?"}),
        ),
    ] {
        let result = exec.call("globex", action_type, data).await;
        assert_error(&result, "invalid_action");
        assert!(
            result["data"]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no agent helper")),
            "{result}"
        );
    }
    let session = exec
        .ok(
            "globex",
            "execution.session_get",
            json!({"session_id": "s1"}),
        )
        .await;
    assert_eq!(session["session_id"], "s1");
    assert_eq!(session["messages"], json!([]), "{session}");
    let listed = exec.ok("globex", "execution.agent_list", json!({})).await;
    assert_eq!(listed["agents"], json!([]), "{listed}");
    let deleted = exec
        .ok(
            "globex",
            "execution.agent_delete",
            json!({"agent_id": "helper"}),
        )
        .await;
    assert_eq!(deleted["deleted"], false);
    // acme's agent and session are untouched.
    exec.ok("acme", "execution.agent_get", json!({"agent_id": "helper"}))
        .await;
    assert_eq!(exec.messages("acme", "s1").await.len(), 2);
}
