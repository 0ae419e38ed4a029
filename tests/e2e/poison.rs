//! Messages a worker must refuse, replayed from the poison corpus in `tests/poison/` (one
//! JSON file per message; see [`Case`]). Each one gets a dead letter with the expected
//! `dlq_reason`, the original body and headers, an error result where its callback can be
//! read (and nothing where it cannot), and the worker keeps serving: a good action after
//! each one still succeeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::harness::*;

/// Replaced by the action's fresh id in bodies and header values.
const ID: &str = "{{id}}";

/// One poison message, as a file of the corpus describes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What is wrong with it (for the reader of the corpus).
    #[allow(dead_code)]
    why: String,
    /// Where it is published; `echo.acme.actions` when absent.
    #[serde(default = "default_subject")]
    subject: String,
    /// Headers besides `callback_subject`, `Nats-Msg-Id`, `correlation_id`, `traceparent`
    /// (which every case gets).
    #[serde(default)]
    headers: BTreeMap<String, Text>,
    /// The `callback_subject` header; a fresh inbox when absent.
    callback: Option<String>,
    /// Send no `callback_subject` header (the body may name one).
    #[serde(default)]
    no_callback_header: bool,
    /// The body as text…
    body: Option<String>,
    /// …or as bytes (not UTF-8)…
    body_bytes: Option<Vec<u8>>,
    /// …or as JSON…
    body_json: Option<Value>,
    /// …or as parts, for large bodies.
    body_parts: Option<Vec<Part>>,
    /// The original is too large to keep beside the dead-letter headers: the letter has
    /// no body (the original stays in its stream, at `dlq_sequence`).
    #[serde(default)]
    letter_without_body: bool,
    /// The expected `dlq_reason` (an error code of docs/wire.md).
    dlq_reason: String,
    /// Where the dead letter goes; `dlq.echo.acme` when absent.
    #[serde(default = "default_dlq")]
    dlq_subject: String,
    /// The action type of the expected error result, or null when no result may be sent.
    result_type: Option<String>,
}

/// A header value: a string, or parts for large values.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Parts(Vec<Part>),
}

/// `text`, `repeat` times (once when absent).
#[derive(Deserialize)]
struct Part {
    text: String,
    repeat: Option<usize>,
}

fn default_subject() -> String {
    ACTIONS.to_owned()
}

fn default_dlq() -> String {
    DLQ_ACME.to_owned()
}

fn join(parts: &[Part], id: &str) -> String {
    parts
        .iter()
        .map(|p| p.text.replace(ID, id).repeat(p.repeat.unwrap_or(1)))
        .collect()
}

impl Case {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("poison case {}: {err}", path.display()))
    }

    /// The body with `id` filled in.
    fn body(&self, id: &str) -> Vec<u8> {
        match (
            &self.body,
            &self.body_bytes,
            &self.body_json,
            &self.body_parts,
        ) {
            (Some(text), None, None, None) => text.replace(ID, id).into_bytes(),
            (None, Some(bytes), None, None) => bytes.clone(),
            (None, None, Some(json), None) => serde_json::to_string(json)
                .expect("encode body")
                .replace(ID, id)
                .into_bytes(),
            (None, None, None, Some(parts)) => join(parts, id).into_bytes(),
            _ => panic!("a poison case has exactly one of body, body_bytes, body_json, body_parts"),
        }
    }

    /// The headers with `id` filled in, without the ones every case gets.
    fn header_pairs(&self, id: &str) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Text::Plain(text) => text.replace(ID, id),
                    Text::Parts(parts) => join(parts, id),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// The corpus files, in name order.
fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/poison");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Publishes `case` and checks its dead letter, its answer (or silence) and that the
/// worker still serves.
async fn replay(env: &Env, name: &str, case: &Case) {
    let id = new_id();
    let body = case.body(&id);
    let (callback, mut answers) = match &case.callback {
        Some(subject) => (subject.clone(), env.subscribe(subject).await),
        None => env.inbox().await,
    };
    let mut hdrs = async_nats::HeaderMap::new();
    for (header, value) in case.header_pairs(&id) {
        hdrs.insert(header.as_str(), value.as_str());
    }
    if !case.no_callback_header {
        hdrs.insert("callback_subject", callback.as_str());
    }
    hdrs.insert("Nats-Msg-Id", id.as_str());
    let chain = Chain::new(&format!("chain-{id}"));
    chain.add_to(&mut hdrs);
    let ack = env.publish(&case.subject, hdrs, &body).await;

    let letter = dead_letter_of(env, &case.dlq_subject, ack.sequence).await;
    let kept: &[u8] = if case.letter_without_body { &[] } else { &body };
    assert!(
        letter.body == kept,
        "{name}: the dead letter keeps the original body ({} bytes, got {})",
        body.len(),
        letter.body.len()
    );
    assert_stored_letter(&letter, &case.dlq_reason, ack.sequence, 1);
    let sent_callback = (!case.no_callback_header).then_some(callback.as_str());
    assert_eq!(
        letter.header("callback_subject"),
        sent_callback,
        "{name}: and the original headers"
    );

    match &case.result_type {
        Some(result_type) => {
            let (message, result) = next_json(&mut answers).await;
            assert_error(&result, &case.dlq_reason);
            assert_eq!(
                result["action_type"],
                result_type.as_str(),
                "{name}: {result}"
            );
            assert_eq!(
                header(message.headers.as_ref(), "action_type"),
                Some(result_type.as_str()),
                "{name}"
            );
            assert_eq!(result["tenant_id"], "acme", "{name}: {result}");
            assert_eq!(result["correlation_id"], id.as_str(), "{name}: {result}");
            chain.assert_carried_by(&message);
        }
        // The error result would have been sent before the dead letter was stored.
        None => expect_nothing(&mut answers, &format!("{name}: a result")).await,
    }
    env.assert_serving().await;
}

/// The dead letter on `subject` of the original stored at `sequence`, once it is stored.
/// Cases run one at a time, so it is the last letter on its subject.
async fn dead_letter_of(env: &Env, subject: &str, sequence: u64) -> Letter {
    let stream = env
        .js
        .get_stream(shared::streams::DLQ_STREAM)
        .await
        .expect("DLQ stream");
    let stream = &stream;
    let sequence = sequence.to_string();
    let sequence = &sequence;
    eventually(
        &format!("a dead letter of sequence {sequence} on {subject}"),
        || async move {
            let message = stream.get_last_raw_message_by_subject(subject).await.ok()?;
            let letter = Letter {
                headers: message.headers,
                body: message.payload,
            };
            (letter.header("dlq_sequence") == Some(sequence.as_str())).then_some(letter)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_poison_message_is_dead_lettered_with_its_reason() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus: {files:?}");
    let env = Env::start().await;
    for path in &files {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        eprintln!("poison case {name}");
        replay(&env, name, &Case::load(path)).await;
    }
}
