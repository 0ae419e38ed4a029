//! A local server speaking the OpenAI wire format, the only
//! stand-in for paid model APIs in tests: deterministic embeddings, scripted chat answers
//! (whole or streamed), injected failures, and a record of every request.
//!
//! ```no_run
//! # async fn t() {
//! use platform::openai::{OpenAiClient, OpenAiConfig};
//! use testkit::openai_stub::{OpenAiStub, StubReply};
//!
//! let stub = OpenAiStub::start().await;
//! stub.push_reply(StubReply::Text("42".into()));
//! let client = OpenAiClient::new(OpenAiConfig::new(stub.url())).expect("client");
//! # }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Vector length unless [`OpenAiStub::with_dimensions`] says otherwise: small enough to
/// read in a failing assertion.
pub const DEFAULT_DIMENSIONS: usize = 8;

/// What the next `/v1/chat/completions` request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum StubReply {
    /// An assistant text (streamed word by word when the request streams).
    Text(String),
    /// One call of tool `name` with `arguments` (sent as JSON text, as the APIs do).
    ToolCall {
        /// The tool's name.
        name: String,
        /// The arguments object.
        arguments: Value,
    },
    /// An error status with an OpenAI-style error body.
    Status(u16),
}

/// One request the stub received, for assertions on what a client sent:
/// `(URL path, Authorization header, JSON body)`, e.g.
/// `("/v1/embeddings", Some("Bearer sk-test"), {...})`. The body is `Null` when it was not JSON.
pub type StubRequest = (String, Option<String>, Value);

/// The stub's state, shared by its handlers and its owner.
#[derive(Default)]
struct Shared {
    dimensions: AtomicUsize,
    replies: Mutex<VecDeque<StubReply>>,
    /// `(status, how many more requests get it)`.
    failures: Mutex<Option<(u16, usize)>>,
    requests: Mutex<Vec<StubRequest>>,
    counter: AtomicU64,
}

/// Locks a mutex, carrying on after a panicking test thread poisoned it: the data (a queue,
/// a log) stays meaningful.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stub on `127.0.0.1` and an OS-chosen port. Stops when dropped.
pub struct OpenAiStub {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl OpenAiStub {
    /// Starts a stub. Panics with the reason if it cannot (a test cannot go on without one).
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            dimensions: AtomicUsize::new(DEFAULT_DIMENSIONS),
            ..Shared::default()
        });
        let router = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/chat/completions", post(chat))
            .fallback(not_found)
            .with_state(Arc::clone(&shared));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("bind the OpenAI stub: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("the OpenAI stub's address: {err}"));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::warn!(%err, "the OpenAI stub stopped");
            }
        });
        Self {
            url: format!("http://{addr}/v1"),
            shared,
            task,
        }
    }

    /// Sets the length of the embedding vectors (at least 1), to match a collection's size.
    pub fn with_dimensions(self, dimensions: usize) -> Self {
        self.shared
            .dimensions
            .store(dimensions.max(1), Ordering::Relaxed);
        self
    }

    /// The base URL including `/v1`, as [`platform::openai::OpenAiConfig::base_url`] wants it.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Queues the answer to the next chat request that finds the queue non-empty.
    pub fn push_reply(&self, reply: StubReply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Makes the next `times` requests to any route answer `status` with an error body
    /// (before any scripted reply is used), to exercise retries.
    pub fn fail_next(&self, status: u16, times: usize) {
        *lock(&self.shared.failures) = (times > 0).then_some((status, times));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for OpenAiStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Logs the request and returns its body, or the status of the failure it must get instead.
fn receive(shared: &Shared, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Result<Value, u16> {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    lock(&shared.requests).push((uri.path().to_owned(), authorization, body.clone()));
    let mut failures = lock(&shared.failures);
    if let Some((status, remaining)) = *failures {
        *failures = (remaining > 1).then_some((status, remaining - 1));
        return Err(status);
    }
    if body.is_null() {
        return Err(400);
    }
    Ok(body)
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "code"}}`.
fn error_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": {
            "message": format!("stub: scripted failure with status {status}"),
            "type": "stub_error",
            "code": null,
        }
    });
    (code, axum::Json(body)).into_response()
}

/// Unknown routes answer 404 like the APIs do (after counting towards `fail_next`).
async fn not_found(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match receive(&shared, &uri, &headers, &body) {
        Err(status) => error_response(status),
        Ok(_) => error_response(404),
    }
}

/// `POST /v1/embeddings`: a vector per input, in reverse order (the API promises nothing
/// about order, so clients must sort by `index`).
async fn embeddings(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match receive(&shared, &uri, &headers, &body) {
        Ok(request) => request,
        Err(status) => return error_response(status),
    };
    let inputs: Vec<String> = match &request["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return error_response(400),
    };
    let dimensions = shared.dimensions.load(Ordering::Relaxed);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": embed(text, dimensions)})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|text| words(text).count()).sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

/// The words of a text, lowercased: what the stub counts as tokens and hashes into vectors.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// A bag-of-words vector: each word adds ±1 to a hashed bucket, then the vector is scaled
/// to length 1, so texts sharing words point the same way. A text without words gets the
/// first unit vector (a zero vector would break cosine similarity).
fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; dimensions];
    for word in words(text) {
        let hash = fnv1a(word.as_bytes());
        let bucket = (hash % dimensions as u64) as usize;
        vector[bucket] += if hash >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        vector[0] = 1.0;
    } else {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// FNV-1a: a hash that is the same in every build, unlike std's `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `POST /v1/chat/completions`: the next scripted reply, or an echo of the last user
/// message; whole, or as server-sent events when the request says `stream: true`.
async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match receive(&shared, &uri, &headers, &body) {
        Ok(request) => request,
        Err(status) => return error_response(status),
    };
    let reply = lock(&shared.replies).pop_front().unwrap_or_else(|| {
        StubReply::Text(format!("stub answer to: {}", last_user_message(&request)))
    });
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    let answer = match reply {
        StubReply::Status(status) => return error_response(status),
        StubReply::Text(text) => Answer::Text(text),
        StubReply::ToolCall { name, arguments } => Answer::ToolCall {
            id: format!("call_stub_{n}"),
            name,
            arguments: arguments.to_string(),
        },
    };
    let prompt_tokens: usize = request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| words(m["content"].as_str().unwrap_or_default()).count())
                .sum()
        })
        .unwrap_or(0);
    let completion_tokens = match &answer {
        Answer::Text(text) => words(text).count(),
        Answer::ToolCall { arguments, .. } => words(arguments).count(),
    };
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let head = Head {
        id: format!("chatcmpl-stub-{n}"),
        model: request["model"].clone(),
    };
    if request["stream"].as_bool() == Some(true) {
        let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
        stream_answer(&head, &answer, include_usage.then_some(usage))
    } else {
        whole_answer(&head, &answer, usage)
    }
}

/// A chat answer before it is put on the wire.
enum Answer {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

/// The fields every chat response and chunk repeats.
struct Head {
    id: String,
    model: Value,
}

/// The content of the last user message, which the default answer quotes.
fn last_user_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn whole_answer(head: &Head, answer: &Answer, usage: Value) -> Response {
    let (message, finish_reason) = match answer {
        Answer::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::ToolCall {
            id,
            name,
            arguments,
        } => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": id, "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }],
            }),
            "tool_calls",
        ),
    };
    axum::Json(json!({
        "id": head.id,
        "object": "chat.completion",
        "created": 0,
        "model": head.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }))
    .into_response()
}

/// The answer as server-sent events: a role chunk, the text word by word (or the tool call
/// in pieces: id and name first, arguments in two halves), a finish chunk, the usage chunk
/// when asked for, and `[DONE]`. Each event goes out split in two body chunks, so clients
/// must reassemble events across chunk boundaries.
fn stream_answer(head: &Head, answer: &Answer, usage: Option<Value>) -> Response {
    let chunk = |delta: Value, finish_reason: Value| {
        json!({
            "id": head.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": head.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let finish_reason = match answer {
        Answer::Text(text) => {
            for word in text.split_inclusive(' ') {
                events.push(chunk(json!({"content": word}), Value::Null));
            }
            "stop"
        }
        Answer::ToolCall {
            id,
            name,
            arguments,
        } => {
            events.push(chunk(
                json!({"tool_calls": [{
                    "index": 0, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]}),
                Value::Null,
            ));
            let middle = arguments
                .char_indices()
                .map(|(at, _)| at)
                .nth(arguments.chars().count() / 2)
                .unwrap_or(arguments.len());
            for piece in [&arguments[..middle], &arguments[middle..]] {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), json!(finish_reason)));
    if let Some(usage) = usage {
        events.push(json!({
            "id": head.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": head.model,
            "choices": [],
            "usage": usage,
        }));
    }
    let mut texts: Vec<String> = vec![": stub stream\n\n".to_owned()];
    texts.extend(events.iter().map(|event| format!("data: {event}\n\n")));
    texts.push("data: [DONE]\n\n".to_owned());
    let pieces: Vec<Result<Bytes, Infallible>> = texts
        .into_iter()
        .flat_map(|text| {
            let bytes = Bytes::from(text);
            let half = bytes.len() / 2;
            [Ok(bytes.slice(..half)), Ok(bytes.slice(half..))]
        })
        .collect();
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .unwrap_or_else(|_| error_response(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_vectors_are_deterministic_unit_vectors() {
        let a = embed("Hello, world", 8);
        assert_eq!(a, embed("hello world", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        assert_eq!(embed("", 4), vec![1.0, 0.0, 0.0, 0.0]);
    }
}
