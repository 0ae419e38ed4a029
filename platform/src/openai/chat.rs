//! `POST {base}/chat/completions`: the message and tool types of the wire format, a whole
//! answer ([`OpenAiClient::chat`]) or one streamed as server-sent events
//! ([`OpenAiClient::chat_stream`]) so tokens can be shown while the model is still writing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{OpenAiClient, OpenAiError};

/// Who wrote a message; the model treats each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or service) asking.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call the model asked for.
    Tool,
}

/// One message of a conversation, as sent and as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// The text; `None` for an assistant message that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The tools the assistant wants called; to continue the conversation, send this message
    /// back as it came, followed by one [`ChatMessage::tool_result`] per call.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the [`ToolCall::id`] it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of `role` with text and nothing else, the common case.
    fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// Instructions for the model.
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content)
    }

    /// A question or turn from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content)
    }

    /// An earlier answer of the model, to replay a conversation.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(Role::Assistant, content)
    }

    /// The output of the tool call `tool_call_id`, sent after the assistant message that
    /// asked for it.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::text(Role::Tool, content)
        }
    }
}

/// A function call the model asks for (the wire's `{"type":"function", ...}`, the only
/// kind there is).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ToolCall {
    /// Ties the call to its [`ChatMessage::tool_result`]. Empty if the server sent none.
    #[serde(default)]
    pub id: String,
    /// What to call, with which arguments.
    pub function: FunctionCall,
}

/// Written by hand to add the constant `"type": "function"` the APIs require.
impl Serialize for ToolCall {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            function: &'a FunctionCall,
        }
        Wire {
            id: &self.id,
            kind: "function",
            function: &self.function,
        }
        .serialize(serializer)
    }
}

/// The function and arguments of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The [`ToolSpec::name`] of the tool.
    pub name: String,
    /// The arguments as a JSON text, exactly as the model wrote them: models can write
    /// invalid JSON, and the caller decides how to answer that. A server that sends an
    /// object instead of a string gets it re-encoded as text.
    #[serde(deserialize_with = "json_text")]
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The name the model will use in its [`FunctionCall`].
    pub name: String,
    /// When and why to use the tool; the model reads this.
    pub description: String,
    /// A JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

impl ToolSpec {
    /// A tool with an argument schema.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// Written by hand for the wire's `{"type":"function","function":{...}}` wrapping.
impl Serialize for ToolSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a serde_json::Value,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        Wire {
            kind: "function",
            function: Function {
                name: &self.name,
                description: &self.description,
                parameters: &self.parameters,
            },
        }
        .serialize(serializer)
    }
}

/// A chat completion request. Fields left `None` or empty are omitted, so each server
/// applies its own defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The model name as the API knows it.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature; lower is more deterministic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// A cap on the answer's length in tokens. Sent as `max_tokens`, which every
    /// compatible server reads (OpenAI's reasoning models want `max_completion_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Nucleus sampling: the probability mass the model picks its next token from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The tools the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

impl ChatRequest {
    /// A request with the server's defaults and no tools.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            temperature: None,
            max_tokens: None,
            top_p: None,
            tools: Vec::new(),
        }
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the answer length cap.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets `top_p`, if given (absent: the server's default).
    pub fn with_top_p(mut self, top_p: Option<f32>) -> Self {
        self.top_p = top_p;
        self
    }

    /// Offers tools to the model.
    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }
}

/// Token counts as the API reports them, for accounting and limits; zeros when it did not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the request's messages (and tools).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both together.
    #[serde(default)]
    pub total_tokens: u64,
}

/// The model's answer: a text, tool calls, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCompletion {
    /// The assistant message, ready to be appended to the conversation.
    pub message: ChatMessage,
    /// Why the model stopped: `stop`, `length` (cut by `max_tokens`), `tool_calls`, ...
    pub finish_reason: Option<String>,
    /// What the answer cost.
    pub usage: Usage,
}

impl ChatCompletion {
    /// The answer's text, empty when the model only called tools.
    pub fn text(&self) -> &str {
        self.message.content.as_deref().unwrap_or("")
    }
}

/// What a [`ChatStream`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer's text, as soon as it arrives.
    Token(String),
    /// The end: the whole answer, assembled from every piece. Always the last event.
    Done(ChatCompletion),
}

/// The streamed request: the caller's request plus the switches that make it a stream with
/// a final usage chunk.
#[derive(Serialize)]
struct StreamingRequest<'a> {
    #[serde(flatten)]
    request: &'a ChatRequest,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

impl ChatResponse {
    /// The first choice (requests never ask for more than one).
    fn into_completion(self, endpoint: &str) -> Result<ChatCompletion, OpenAiError> {
        let choice = self.choices.into_iter().next().ok_or_else(|| {
            OpenAiError::Decode(format!("{endpoint}: the response has no choices"))
        })?;
        Ok(ChatCompletion {
            message: choice.message,
            finish_reason: choice.finish_reason,
            usage: self.usage.unwrap_or_default(),
        })
    }
}

impl OpenAiClient {
    /// Asks for a whole answer, within the configured timeout.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatCompletion, OpenAiError> {
        let response: ChatResponse = self.post_json("chat/completions", request).await?;
        response.into_completion(&self.endpoint_path("chat/completions"))
    }

    /// Asks for a streamed answer. Returns once the API accepted the request (an error
    /// status comes back here, not from the stream); the timeout then bounds each wait for
    /// the next piece rather than the whole answer. A server that ignores `stream` and
    /// answers in one JSON body still gives a [`ChatStream`] (one token, then done).
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, OpenAiError> {
        let endpoint = self.endpoint_path("chat/completions");
        let body = StreamingRequest {
            request,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        let response = self.post("chat/completions", &body, false).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if is_json {
            let bytes = response
                .bytes()
                .await
                .map_err(|err| super::transport(&endpoint, &err))?;
            let completion = serde_json::from_slice::<ChatResponse>(&bytes)
                .map_err(|err| {
                    OpenAiError::Decode(format!("{endpoint}: unexpected response body: {err}"))
                })?
                .into_completion(&endpoint)?;
            return Ok(ChatStream::finished(endpoint, completion));
        }
        Ok(ChatStream::new(endpoint, response.bytes_stream()))
    }
}

/// The longest SSE line accepted, so a server that never sends a newline cannot grow the
/// buffer without bound.
const MAX_SSE_LINE: usize = 16 * 1024 * 1024;

/// A streamed answer: a [`Stream`] of [`ChatEvent`]s, `Token`s then one `Done`. An error
/// (connection lost, unreadable chunk, an error event from the server) ends it. Dropping
/// it closes the connection, which stops generation on most servers.
pub struct ChatStream {
    body: Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>,
    endpoint: String,
    parser: sse::Parser,
    assembly: Assembly,
    pending: VecDeque<ChatEvent>,
    finished: bool,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("endpoint", &self.endpoint)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// A stream over a response body of server-sent events.
    fn new(
        endpoint: String,
        body: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    ) -> Self {
        Self {
            body: Box::pin(body),
            endpoint,
            parser: sse::Parser::default(),
            assembly: Assembly::default(),
            pending: VecDeque::new(),
            finished: false,
        }
    }

    /// A stream that replays an answer that came whole.
    fn finished(endpoint: String, completion: ChatCompletion) -> Self {
        let mut stream = Self::new(endpoint, futures::stream::empty());
        if !completion.text().is_empty() {
            stream
                .pending
                .push_back(ChatEvent::Token(completion.text().to_owned()));
        }
        stream.pending.push_back(ChatEvent::Done(completion));
        stream.finished = true;
        stream
    }

    /// Applies one event's data: `[DONE]` ends the stream, anything else is a chunk.
    fn handle(&mut self, data: &str) -> Result<(), OpenAiError> {
        if self.finished {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.finish();
            return Ok(());
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|err| {
            OpenAiError::Decode(format!("{}: unreadable stream chunk: {err}", self.endpoint))
        })?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&self.endpoint, &error));
        }
        if let Some(usage) = chunk.usage {
            self.assembly.usage = Some(usage);
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                self.assembly.content.push_str(&text);
                self.pending.push_back(ChatEvent::Token(text));
            }
            for delta in choice.delta.tool_calls {
                self.assembly.tool_call(delta);
            }
            if choice.finish_reason.is_some() {
                self.assembly.finish_reason = choice.finish_reason;
            }
        }
        Ok(())
    }

    /// Queues the assembled answer and stops reading.
    fn finish(&mut self) {
        let assembly = std::mem::take(&mut self.assembly);
        self.pending
            .push_back(ChatEvent::Done(assembly.completion()));
        self.finished = true;
    }

    /// Feeds every complete event in `data` to [`ChatStream::handle`].
    fn feed(&mut self, events: Vec<String>) -> Result<(), OpenAiError> {
        events.iter().try_for_each(|data| self.handle(data))
    }

    /// Ends the stream with `err`.
    fn fail(&mut self, err: OpenAiError) -> Poll<Option<Result<ChatEvent, OpenAiError>>> {
        self.finished = true;
        self.pending.clear();
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatEvent, OpenAiError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    let fed = this
                        .parser
                        .push(&bytes)
                        .map_err(|why| OpenAiError::Decode(format!("{}: {why}", this.endpoint)))
                        .and_then(|events| this.feed(events));
                    if let Err(err) = fed {
                        return this.fail(err);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let err = super::transport(&this.endpoint, &err);
                    return this.fail(err);
                }
                Poll::Ready(None) => {
                    let events = this.parser.finish();
                    if let Err(err) = this.feed(events) {
                        return this.fail(err);
                    }
                    if !this.finished {
                        // Without `[DONE]`, only a finish reason shows the answer is whole.
                        if this.assembly.finish_reason.is_some() {
                            this.finish();
                        } else {
                            let err = OpenAiError::Transport(format!(
                                "{}: the stream ended before the answer was complete",
                                this.endpoint
                            ));
                            return this.fail(err);
                        }
                    }
                }
            }
        }
    }
}

/// An error event inside a stream (`data: {"error": {...}}`), which arrives after a 200
/// status: its `code` is taken as the status when it is one, else 500 (retryable).
fn stream_error(endpoint: &str, error: &serde_json::Value) -> OpenAiError {
    let status = error
        .get("code")
        .and_then(serde_json::Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code))
        .unwrap_or(500);
    let body = serde_json::json!({ "error": error }).to_string();
    OpenAiError::Status {
        endpoint: endpoint.to_owned(),
        status,
        message: super::error_message(&body, None),
    }
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default, deserialize_with = "null_as_default")]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    index: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "optional_json_text")]
    arguments: Option<String>,
}

/// The answer so far.
#[derive(Default)]
struct Assembly {
    content: String,
    tool_calls: BTreeMap<usize, ToolCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Assembly {
    /// Adds a tool call delta: the id and name come with the first delta of a call, the
    /// arguments arrive in pieces under the same `index`.
    fn tool_call(&mut self, delta: ToolCallDelta) {
        let id = delta.id.filter(|id| !id.is_empty());
        // Servers that leave out `index` send each call whole or repeat its id.
        let index = delta.index.unwrap_or_else(|| {
            let same_id = id.as_ref().and_then(|id| {
                self.tool_calls
                    .iter()
                    .find(|(_, call)| &call.id == id)
                    .map(|(index, _)| *index)
            });
            let last = self.tool_calls.keys().next_back().copied();
            match (same_id, &id, last) {
                (Some(index), _, _) => index,
                (None, Some(_), Some(last)) => last + 1,
                (None, None, Some(last)) => last,
                (None, _, None) => 0,
            }
        });
        let call = self.tool_calls.entry(index).or_insert_with(|| ToolCall {
            id: String::new(),
            function: FunctionCall {
                name: String::new(),
                arguments: String::new(),
            },
        });
        if let Some(id) = id.filter(|_| call.id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = delta.function {
            if let Some(name) = function.name.filter(|_| call.function.name.is_empty()) {
                call.function.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.function.arguments.push_str(&arguments);
            }
        }
    }

    /// The whole answer.
    fn completion(self) -> ChatCompletion {
        let tool_calls: Vec<ToolCall> = self.tool_calls.into_values().collect();
        let content = if self.content.is_empty() && !tool_calls.is_empty() {
            None
        } else {
            Some(self.content)
        };
        ChatCompletion {
            message: ChatMessage {
                role: Role::Assistant,
                content,
                tool_calls,
                tool_call_id: None,
            },
            finish_reason: self.finish_reason,
            usage: self.usage.unwrap_or_default(),
        }
    }
}

/// Reads `null` as the type's default: servers write `null` where others omit a field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a JSON text field that some servers send as the JSON value itself.
fn json_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(optional_json_text(deserializer)?.unwrap_or_default())
}

/// [`json_text`] for a field that may be absent or `null`.
fn optional_json_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

/// Server-sent events, as much of the format as chat streams use: `data:` lines joined
/// into one event's data, a blank line ending the event, comments and other fields ignored.
mod sse {
    use super::MAX_SSE_LINE;

    /// Turns body chunks into event data. Chunks may split lines, events and UTF-8
    /// characters anywhere; bytes are kept until their line is complete.
    #[derive(Default)]
    pub(super) struct Parser {
        buffer: Vec<u8>,
        data: Option<String>,
    }

    impl Parser {
        /// Adds a chunk and returns the data of every event it completed.
        pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, String> {
            self.buffer.extend_from_slice(chunk);
            let buffer = std::mem::take(&mut self.buffer);
            let mut events = Vec::new();
            let mut start = 0;
            while let Some(newline) = buffer[start..].iter().position(|&b| b == b'\n') {
                self.line(&buffer[start..start + newline], &mut events);
                start += newline + 1;
            }
            self.buffer = buffer[start..].to_vec();
            if self.buffer.len() > MAX_SSE_LINE {
                return Err(format!("a stream line is longer than {MAX_SSE_LINE} bytes"));
            }
            Ok(events)
        }

        /// Ends the input: a last line or event without its terminating newline counts.
        pub(super) fn finish(&mut self) -> Vec<String> {
            let mut events = Vec::new();
            let rest = std::mem::take(&mut self.buffer);
            if !rest.is_empty() {
                self.line(&rest, &mut events);
            }
            self.line(b"", &mut events);
            events
        }

        fn line(&mut self, line: &[u8], events: &mut Vec<String>) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                events.extend(self.data.take());
                return;
            }
            let line = String::from_utf8_lossy(line);
            if line.starts_with(':') {
                return;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            if field != "data" {
                return;
            }
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const STREAM: &str = ": comment\n\ndata: {\"a\":\"é\"}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";

        #[test]
        fn events_survive_any_split() {
            let bytes = STREAM.as_bytes();
            let expected = vec!["{\"a\":\"é\"}", "one\ntwo", "[DONE]"];
            for at in 0..=bytes.len() {
                let mut parser = Parser::default();
                let mut events = parser.push(&bytes[..at]).expect("ok");
                events.extend(parser.push(&bytes[at..]).expect("ok"));
                events.extend(parser.finish());
                assert_eq!(events, expected, "split at {at}");
            }
            let mut parser = Parser::default();
            let mut events = Vec::new();
            for byte in bytes {
                events.extend(parser.push(std::slice::from_ref(byte)).expect("ok"));
            }
            assert_eq!(events, expected);
        }

        #[test]
        fn an_unterminated_last_event_is_kept() {
            let mut parser = Parser::default();
            assert!(parser.push(b"data: last").expect("ok").is_empty());
            assert_eq!(parser.finish(), vec!["last"]);
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use futures::StreamExt;
    use serde_json::json;

    use super::*;

    fn stream_of(chunks: &[&str]) -> ChatStream {
        let owned: Vec<Result<Bytes, reqwest::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::from(chunk.to_string())))
            .collect();
        ChatStream::new("/v1/chat/completions".into(), futures::stream::iter(owned))
    }

    async fn collect(stream: ChatStream) -> Vec<Result<ChatEvent, OpenAiError>> {
        stream.collect().await
    }

    #[test]
    fn requests_serialize_to_the_wire_format() {
        let tool = ToolSpec::new("search", "Searches.", json!({"type": "object"}));
        let request = ChatRequest::new(
            "m",
            vec![
                ChatMessage::system("be brief"),
                ChatMessage {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        function: FunctionCall {
                            name: "search".into(),
                            arguments: "{}".into(),
                        },
                    }],
                    tool_call_id: None,
                },
                ChatMessage::tool_result("call_1", "found"),
            ],
        )
        .with_tools(vec![tool]);
        let value = serde_json::to_value(&request).expect("serializes");
        assert_eq!(
            value,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "assistant", "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "search", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "content": "found", "tool_call_id": "call_1"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "search", "description": "Searches.", "parameters": {"type": "object"}
                }}]
            })
        );
        let plain = serde_json::to_value(ChatRequest::new("m", vec![]).with_max_tokens(5))
            .expect("serializes");
        assert_eq!(
            plain,
            json!({"model": "m", "messages": [], "max_tokens": 5})
        );
    }

    #[test]
    fn answers_with_nulls_and_object_arguments_decode() {
        let message: ChatMessage = serde_json::from_value(json!({
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "c", "type": "function",
                            "function": {"name": "f", "arguments": {"q": 1}}}]
        }))
        .expect("decodes");
        assert_eq!(message.content, None);
        assert_eq!(message.tool_calls[0].function.arguments, r#"{"q":1}"#);
        let message: ChatMessage = serde_json::from_value(
            json!({"role": "assistant", "content": "hi", "tool_calls": null}),
        )
        .expect("decodes");
        assert!(message.tool_calls.is_empty());
    }

    #[tokio::test]
    async fn a_stream_without_usage_or_done_ends_at_its_finish_reason() {
        let events = collect(stream_of(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        ]))
        .await;
        let events: Vec<ChatEvent> = events.into_iter().map(|e| e.expect("ok")).collect();
        assert_eq!(events[0], ChatEvent::Token("Hi".into()));
        let ChatEvent::Done(done) = &events[1] else {
            panic!("expected done, got {events:?}");
        };
        assert_eq!(done.text(), "Hi");
        assert_eq!(done.usage, Usage::default());
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn a_cut_stream_is_a_retryable_transport_error() {
        let events = collect(stream_of(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        ]))
        .await;
        assert_eq!(events.len(), 2);
        let err = events[1].clone().expect_err("cut");
        assert!(matches!(err, OpenAiError::Transport(_)), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream_with_its_status() {
        let events = collect(stream_of(&[
            "data: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n",
            "data: [DONE]\n\n",
        ]))
        .await;
        assert_eq!(events.len(), 1);
        let err = events[0].clone().expect_err("error event");
        assert!(
            matches!(&err, OpenAiError::Status { status: 503, message, .. } if message == "overloaded"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn tool_calls_without_index_are_told_apart_by_id() {
        let events = collect(stream_of(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: [DONE]\n\n",
        ]))
        .await;
        let Some(Ok(ChatEvent::Done(done))) = events.last() else {
            panic!("expected done, got {events:?}");
        };
        let calls: Vec<(&str, &str, &str)> = done
            .message
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.function.name.as_str(),
                    c.function.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(calls, vec![("a", "f", "{}"), ("b", "g", "{\"x\":1}")]);
        assert_eq!(done.message.content, None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::openai::OpenAiConfig;
    use shared::{ActionError, ErrorCode};
    use testkit::openai_stub::{OpenAiStub, StubReply};

    fn client(stub: &OpenAiStub) -> OpenAiClient {
        let config = OpenAiConfig::new(stub.url()).with_timeout(Duration::from_secs(5));
        OpenAiClient::new(config).expect("valid config")
    }

    fn question(text: &str) -> ChatRequest {
        ChatRequest::new(
            "stub-model",
            vec![ChatMessage::system("be helpful"), ChatMessage::user(text)],
        )
    }

    fn search_tool() -> ToolSpec {
        ToolSpec::new(
            "search",
            "Searches the documents.",
            json!({"type": "object", "properties": {"query": {"type": "string"}}}),
        )
    }

    /// Collects a stream: the tokens, then the final completion.
    async fn drain(mut stream: ChatStream) -> (Vec<String>, ChatCompletion) {
        let mut tokens = Vec::new();
        while let Some(event) = stream.next().await {
            match event.expect("stream event") {
                ChatEvent::Token(token) => tokens.push(token),
                ChatEvent::Done(done) => {
                    assert!(stream.next().await.is_none(), "Done is the last event");
                    return (tokens, done);
                }
            }
        }
        panic!("the stream ended without Done");
    }

    #[tokio::test]
    async fn chat_answers_with_text_and_usage() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::Text("Paris is the capital.".into()));
        let client = client(&stub);
        let answer = client
            .chat(&question("Capital of France?"))
            .await
            .expect("chat");
        assert_eq!(answer.text(), "Paris is the capital.");
        assert_eq!(answer.message.role, Role::Assistant);
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(answer.usage.completion_tokens, 4);
        assert!(answer.usage.prompt_tokens > 0);

        // With the script used up, the stub echoes the question.
        let answer = client.chat(&question("And Spain?")).await.expect("chat");
        assert_eq!(answer.text(), "stub answer to: And Spain?");

        let requests = stub.requests();
        assert_eq!(requests[0].0, "/v1/chat/completions");
        assert_eq!(
            requests[0].2["messages"][1]["content"],
            "Capital of France?"
        );
        assert!(requests[0].2.get("stream").is_none());
        assert!(requests[0].2.get("tools").is_none());
    }

    #[tokio::test]
    async fn chat_returns_tool_calls_and_takes_their_results() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::ToolCall {
            name: "search".into(),
            arguments: json!({"query": "rust"}),
        });
        stub.push_reply(StubReply::Text("Rust is a language.".into()));
        let client = client(&stub);
        let mut request = question("What is Rust?").with_tools(vec![search_tool()]);
        let answer = client.chat(&request).await.expect("chat");
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(answer.message.content, None);
        let call = answer.message.tool_calls[0].clone();
        assert_eq!(call.function.name, "search");
        let arguments: serde_json::Value =
            serde_json::from_str(&call.function.arguments).expect("json arguments");
        assert_eq!(arguments, json!({"query": "rust"}));
        assert!(!call.id.is_empty());

        request.messages.push(answer.message);
        request.messages.push(ChatMessage::tool_result(
            &call.id,
            "Rust: a systems language",
        ));
        let answer = client.chat(&request).await.expect("chat");
        assert_eq!(answer.text(), "Rust is a language.");

        let requests = stub.requests();
        assert_eq!(requests[0].2["tools"][0]["type"], "function");
        assert_eq!(requests[0].2["tools"][0]["function"]["name"], "search");
        let sent = &requests[1].2["messages"];
        assert_eq!(sent[2]["tool_calls"][0]["id"], call.id.as_str());
        assert_eq!(sent[3]["role"], "tool");
        assert_eq!(sent[3]["tool_call_id"], call.id.as_str());
    }

    #[tokio::test]
    async fn scripted_statuses_map_to_action_errors() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::Status(500));
        stub.push_reply(StubReply::Status(422));
        let client = client(&stub);
        let err = ActionError::from(client.chat(&question("q")).await.expect_err("500"));
        assert_eq!((err.code, err.retryable), (ErrorCode::Unavailable, true));
        assert!(
            err.message.contains("/v1/chat/completions"),
            "{}",
            err.message
        );
        let err = ActionError::from(client.chat(&question("q")).await.expect_err("422"));
        assert_eq!((err.code, err.retryable), (ErrorCode::HandlerError, false));
    }

    #[tokio::test]
    async fn chat_stream_yields_tokens_then_the_whole_answer() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::Text("one two three four".into()));
        let stream = client(&stub)
            .chat_stream(&question("count"))
            .await
            .expect("stream");
        let (tokens, done) = drain(stream).await;
        assert!(tokens.len() >= 4, "{tokens:?}");
        assert_eq!(tokens.concat(), "one two three four");
        assert_eq!(done.text(), "one two three four");
        assert_eq!(done.finish_reason.as_deref(), Some("stop"));
        assert_eq!(done.usage.completion_tokens, 4);
        assert_eq!(
            done.usage.total_tokens,
            done.usage.prompt_tokens + done.usage.completion_tokens
        );
        assert!(done.usage.prompt_tokens > 0);

        let requests = stub.requests();
        assert_eq!(requests[0].2["stream"], true);
        assert_eq!(requests[0].2["stream_options"]["include_usage"], true);
        assert_eq!(requests[0].2["model"], "stub-model");
    }

    #[tokio::test]
    async fn chat_stream_assembles_a_tool_call() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::ToolCall {
            name: "search".into(),
            arguments: json!({"query": "streams", "limit": 3}),
        });
        let request = question("find").with_tools(vec![search_tool()]);
        let stream = client(&stub).chat_stream(&request).await.expect("stream");
        let (tokens, done) = drain(stream).await;
        assert!(tokens.is_empty(), "{tokens:?}");
        assert_eq!(done.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(done.message.tool_calls.len(), 1);
        let call = &done.message.tool_calls[0];
        assert_eq!(call.function.name, "search");
        assert!(call.id.starts_with("call_"), "{}", call.id);
        let arguments: serde_json::Value =
            serde_json::from_str(&call.function.arguments).expect("json arguments");
        assert_eq!(arguments, json!({"query": "streams", "limit": 3}));
    }

    #[tokio::test]
    async fn chat_stream_reports_an_error_status_before_streaming() {
        let stub = OpenAiStub::start().await;
        stub.fail_next(429, 1);
        let err = client(&stub)
            .chat_stream(&question("q"))
            .await
            .expect_err("429");
        assert!(
            matches!(err, OpenAiError::Status { status: 429, .. }),
            "{err:?}"
        );
        assert!(ActionError::from(err).retryable);
    }
}
