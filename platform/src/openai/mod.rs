//! A client for OpenAI-compatible HTTP APIs (feature `openai`): OpenAI, Groq, Ollama, vLLM,
//! TEI and anything else that speaks `/v1/embeddings` and `/v1/chat/completions`.
//!
//! One client serves every service that calls a model, so they agree on how a failure is
//! named: HTTP 408, 429, 5xx and transport failures become retryable `unavailable`
//! [`ActionError`]s (the worker backs off and tries again), any other 4xx or an unreadable
//! answer becomes a `handler_error` that is not retried.
//!
//! - [`embeddings`]: vectors for texts ([`OpenAiClient::embeddings`]).
//! - [`chat`]: answers ([`OpenAiClient::chat`]), also streamed ([`OpenAiClient::chat_stream`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), platform::openai::OpenAiError> {
//! use platform::openai::{ChatMessage, ChatRequest, OpenAiClient, OpenAiConfig};
//!
//! let config = OpenAiConfig::new("http://127.0.0.1:11434/v1");
//! let client = OpenAiClient::new(config)?;
//! let request = ChatRequest::new("llama3.2", vec![ChatMessage::user("Hello?")]);
//! let answer = client.chat(&request).await?;
//! println!("{}", answer.text());
//! # Ok(()) }
//! ```

pub mod chat;
pub mod embeddings;

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use shared::ActionError;

pub use chat::{
    ChatCompletion, ChatEvent, ChatMessage, ChatRequest, ChatStream, FunctionCall, Role, ToolCall,
    ToolSpec, Usage,
};
pub use embeddings::Embeddings;

/// How long a request may take unless configured otherwise: long enough for a slow chat
/// answer from a loaded local model, short enough that a hung API frees the worker.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest error message kept from an API's answer, so a proxy's HTML error page does
/// not end up whole in an action result.
const MAX_ERROR_MESSAGE: usize = 500;

/// Where the API is and how to authenticate.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root **including** its version prefix, as the official SDKs' `OPENAI_BASE_URL`:
    /// `https://api.openai.com/v1`, `https://api.groq.com/openai/v1`,
    /// `http://127.0.0.1:11434/v1` (Ollama). A trailing `/` is ignored. Endpoint names are
    /// appended to it (`{base_url}/embeddings`), so the same value works for every vendor.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set; local servers usually need none.
    pub api_key: Option<String>,
    /// Bounds connecting, a whole non-streamed request, and for a stream the wait for each
    /// next piece (a long answer may stream for longer, as long as it keeps coming).
    pub timeout: Duration,
}

impl OpenAiConfig {
    /// A configuration without a key and with [`DEFAULT_TIMEOUT`], the usual local setup.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the API key, for hosted APIs.
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Sets the timeout (see [`OpenAiConfig::timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Hand-written so the API key never reaches a log line.
impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a call to the API failed. Messages start with the endpoint path (`/v1/embeddings`)
/// so an operator can tell which call and which vendor route broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiError {
    /// The API answered with a non-success status.
    #[error("{endpoint} answered HTTP {status}: {message}")]
    Status {
        /// The URL path that was called, e.g. `/v1/chat/completions`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The API's `error.message` when its body has one, else the body text (truncated).
        message: String,
    },
    /// The API could not be reached or stopped answering (refused, reset, timed out).
    #[error("{0}")]
    Transport(String),
    /// The API answered successfully but with something this client cannot read.
    #[error("{0}")]
    Decode(String),
    /// The configuration cannot work (e.g. a base URL that does not parse).
    #[error("invalid OpenAI client configuration: {0}")]
    Config(String),
}

impl OpenAiError {
    /// Whether trying the same request again later may succeed: rate limits, overloaded or
    /// restarting servers and network trouble pass; a bad request or key does not.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenAiError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            OpenAiError::Transport(_) => true,
            OpenAiError::Decode(_) | OpenAiError::Config(_) => false,
        }
    }
}

/// Handlers can `?` a client call: the worker's retry decision follows
/// [`OpenAiError::is_retryable`].
impl From<OpenAiError> for ActionError {
    fn from(err: OpenAiError) -> Self {
        if err.is_retryable() {
            ActionError::unavailable(err.to_string()).retryable(true)
        } else {
            ActionError::handler(err.to_string()).retryable(false)
        }
    }
}

/// A handle on one OpenAI-compatible API. Cheap to clone (the connection pool is shared),
/// so build one per process and hand out clones.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiClient {
    /// Builds the client. Installs rustls' ring crypto provider as the process default
    /// (reqwest is built without one, to avoid a second crypto library) unless some
    /// provider is already installed.
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiError> {
        install_crypto_provider();
        let trimmed = config.base_url.trim().trim_end_matches('/');
        let base = Url::parse(trimmed)
            .map_err(|err| OpenAiError::Config(format!("base URL {trimmed:?}: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(OpenAiError::Config(format!(
                "base URL {trimmed:?}: scheme must be http or https"
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(OpenAiError::Config(format!(
                "base URL {trimmed:?}: must not have a query or fragment"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|err| OpenAiError::Config(error_chain(&err)))?;
        Ok(Self {
            http,
            base,
            api_key: config.api_key.filter(|key| !key.is_empty()),
            timeout: config.timeout,
        })
    }

    /// The base URL as configured (without a trailing `/`), for logs and health output.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// POSTs `body` as JSON to `{base}/{name}` and decodes a JSON answer, within the timeout.
    async fn post_json<B, R>(&self, name: &str, body: &B) -> Result<R, OpenAiError>
    where
        B: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let endpoint = self.endpoint_path(name);
        let response = self.post(name, body, true).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| transport(&endpoint, &err))?;
        serde_json::from_slice(&bytes).map_err(|err| {
            OpenAiError::Decode(format!("{endpoint}: unexpected response body: {err}"))
        })
    }

    /// POSTs `body` as JSON and returns the response once its status is a success. A
    /// streamed answer must not be bounded as a whole (`whole_timeout` false): only the
    /// client's per-read timeout applies then.
    async fn post<B>(
        &self,
        name: &str,
        body: &B,
        whole_timeout: bool,
    ) -> Result<Response, OpenAiError>
    where
        B: Serialize + ?Sized,
    {
        let endpoint = self.endpoint_path(name);
        let json = serde_json::to_vec(body).map_err(|err| {
            OpenAiError::Decode(format!("{endpoint}: cannot encode the request: {err}"))
        })?;
        let mut request = self
            .http
            .post(format!("{}/{name}", self.base_url()))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(json);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if whole_timeout {
            request = request.timeout(self.timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport(&endpoint, &err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The body only feeds the message; a failure to read it must not hide the status.
        let body = response.text().await.unwrap_or_default();
        Err(OpenAiError::Status {
            endpoint,
            status: status.as_u16(),
            message: error_message(&body, status.canonical_reason()),
        })
    }

    /// The URL path of an endpoint, e.g. `/v1/embeddings`, for error messages.
    fn endpoint_path(&self, name: &str) -> String {
        format!("{}/{name}", self.base.path().trim_end_matches('/'))
    }
}

/// Installs ring as rustls' process-wide provider once; losing the race to another
/// installer is fine, reqwest then uses whichever provider won.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A transport error naming the endpoint and the underlying cause ("connection refused"),
/// which reqwest keeps in the error's source chain rather than its own message.
fn transport(endpoint: &str, err: &reqwest::Error) -> OpenAiError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    OpenAiError::Transport(format!("{endpoint}: {what}: {}", error_chain(err)))
}

/// An error and its sources joined by `: ` ("error sending request: tcp connect error:
/// connection refused"), which reqwest keeps in the source chain rather than its own
/// message; without the URL (callers name what they called, and a host is noise in an
/// action result). Used by every HTTP client of the services.
pub fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The human part of an error body: `{"error":{"message":..}}` (OpenAI, Groq, Ollama),
/// `{"error":".."}` (TEI) or `{"message":..}` (older vLLM); else the body text; else the
/// status' reason phrase. Truncated to [`MAX_ERROR_MESSAGE`] characters.
fn error_message(body: &str, reason: Option<&str>) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let from_json = parsed.as_ref().and_then(|value| {
        value
            .pointer("/error/message")
            .or_else(|| value.get("error"))
            .or_else(|| value.get("message"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    let message = from_json.unwrap_or_else(|| body.trim().to_owned());
    let message = if message.is_empty() {
        reason.unwrap_or("no error message").to_owned()
    } else {
        message
    };
    truncate(message, MAX_ERROR_MESSAGE)
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn truncate(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use shared::ErrorCode;

    fn status(code: u16) -> OpenAiError {
        OpenAiError::Status {
            endpoint: "/v1/embeddings".into(),
            status: code,
            message: "nope".into(),
        }
    }

    #[test]
    fn statuses_map_to_retryable_or_handler_errors() {
        for code in [408, 429, 500, 502, 503, 504] {
            let err = ActionError::from(status(code));
            assert_eq!(err.code, ErrorCode::Unavailable, "{code}");
            assert!(err.retryable, "{code}");
            assert!(err.message.contains("/v1/embeddings"), "{}", err.message);
            assert!(err.message.contains(&code.to_string()), "{}", err.message);
        }
        for code in [400, 401, 403, 404, 422] {
            let err = ActionError::from(status(code));
            assert_eq!(err.code, ErrorCode::HandlerError, "{code}");
            assert!(!err.retryable, "{code}");
        }
        let decode = ActionError::from(OpenAiError::Decode("x".into()));
        assert_eq!(decode.code, ErrorCode::HandlerError);
        assert!(!decode.retryable);
    }

    #[test]
    fn error_messages_come_from_known_body_shapes() {
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#;
        assert_eq!(error_message(openai, None), "Rate limit reached");
        assert_eq!(
            error_message(r#"{"error":"model not loaded"}"#, None),
            "model not loaded"
        );
        assert_eq!(error_message(r#"{"message":"bad"}"#, None), "bad");
        assert_eq!(error_message("  upstream down \n", None), "upstream down");
        assert_eq!(error_message("", Some("Bad Gateway")), "Bad Gateway");
        let long = "x".repeat(MAX_ERROR_MESSAGE + 10);
        assert_eq!(
            error_message(&long, None).chars().count(),
            MAX_ERROR_MESSAGE + 1
        );
    }

    #[test]
    fn base_url_keeps_its_prefix_and_drops_a_trailing_slash() {
        let client = OpenAiClient::new(OpenAiConfig::new("https://api.groq.com/openai/v1/"))
            .expect("valid config");
        assert_eq!(client.base_url(), "https://api.groq.com/openai/v1");
        assert_eq!(client.endpoint_path("embeddings"), "/openai/v1/embeddings");
        assert!(matches!(
            OpenAiClient::new(OpenAiConfig::new("not a url")),
            Err(OpenAiError::Config(_))
        ));
        assert!(matches!(
            OpenAiClient::new(OpenAiConfig::new("ftp://example.com/v1")),
            Err(OpenAiError::Config(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = OpenAiConfig::new("http://127.0.0.1:1/v1").with_api_key("sk-secret");
        assert!(!format!("{config:?}").contains("sk-secret"));
        let client = OpenAiClient::new(config).expect("valid config");
        assert!(!format!("{client:?}").contains("sk-secret"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ErrorCode;
    use testkit::openai_stub::OpenAiStub;

    fn client(stub: &OpenAiStub) -> OpenAiClient {
        let config = OpenAiConfig::new(stub.url())
            .with_api_key("sk-test")
            .with_timeout(Duration::from_secs(5));
        OpenAiClient::new(config).expect("valid config")
    }

    fn texts() -> Vec<String> {
        vec!["hello world".to_owned()]
    }

    #[tokio::test]
    async fn rate_limit_and_overload_are_retryable_unavailable() {
        let stub = OpenAiStub::start().await;
        let client = client(&stub);
        for status in [429, 503] {
            stub.fail_next(status, 1);
            let err = client.embeddings("m", &texts()).await.expect_err("fails");
            assert!(matches!(err, OpenAiError::Status { status: s, .. } if s == status));
            let action = ActionError::from(err);
            assert_eq!(action.code, ErrorCode::Unavailable);
            assert!(action.retryable);
            assert!(
                action.message.contains("/v1/embeddings"),
                "{}",
                action.message
            );
            assert!(
                action.message.contains(&status.to_string()),
                "{}",
                action.message
            );
        }
        // The failures are used up: the next call succeeds.
        client.embeddings("m", &texts()).await.expect("recovered");
    }

    #[tokio::test]
    async fn bad_request_is_a_handler_error_with_the_api_message() {
        let stub = OpenAiStub::start().await;
        stub.fail_next(400, 1);
        let err = client(&stub)
            .embeddings("m", &texts())
            .await
            .expect_err("fails");
        let OpenAiError::Status {
            status, message, ..
        } = &err
        else {
            panic!("expected a status error, got {err:?}");
        };
        assert_eq!(*status, 400);
        assert!(message.contains("stub"), "{message}");
        let action = ActionError::from(err);
        assert_eq!(action.code, ErrorCode::HandlerError);
        assert!(!action.retryable);
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let config = OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"))
            .with_timeout(Duration::from_secs(5));
        let client = OpenAiClient::new(config).expect("valid config");
        let err = client.embeddings("m", &texts()).await.expect_err("refused");
        assert!(matches!(err, OpenAiError::Transport(_)), "{err:?}");
        assert!(err.to_string().contains("/v1/embeddings"), "{err}");
        let action = ActionError::from(err);
        assert_eq!(action.code, ErrorCode::Unavailable);
        assert!(action.retryable);
    }

    #[tokio::test]
    async fn bearer_key_is_sent_only_when_configured() {
        let stub = OpenAiStub::start().await;
        client(&stub).embeddings("m", &texts()).await.expect("ok");
        let anonymous = OpenAiClient::new(OpenAiConfig::new(stub.url())).expect("valid config");
        anonymous.embeddings("m", &texts()).await.expect("ok");
        let requests = stub.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].1.as_deref(), Some("Bearer sk-test"));
        assert_eq!(requests[1].1, None);
    }
}
