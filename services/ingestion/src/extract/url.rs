//! Fetching a document by URL for ingestion, bounded in size and time so one slow or huge
//! page cannot stall a worker or fill its memory.

use std::sync::Once;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

/// How much a fetch may read and for how long; set per service from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// The largest body accepted; the download stops as soon as it is exceeded.
    pub max_bytes: usize,
    /// The deadline for the whole exchange, connecting through the last body byte.
    pub timeout: Duration,
}

/// A fetched document, with the labels [`super::DocumentKind::detect`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The body, at most `max_bytes` long.
    pub bytes: Vec<u8>,
    /// The `Content-Type` header, verbatim.
    pub content_type: Option<String>,
    /// The last path segment of the final URL (after redirects), for extension-based
    /// detection and as a display name.
    pub file_name: Option<String>,
}

/// Why a URL could not be fetched, distinguishing the user's mistakes (bad URL, too large)
/// from the remote side's (status, unreachable).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The body is larger than the limit; nothing past the limit was read.
    #[error("the document is larger than the {max_bytes}-byte limit")]
    TooLarge {
        /// The limit that was exceeded.
        max_bytes: usize,
    },
    /// No complete response: DNS, connection, TLS or timeout failure.
    #[error("cannot fetch the URL: {0}")]
    Unreachable(String),
}

/// Downloads `url` (http or https only) within `limits`, following redirects; the body is
/// streamed and abandoned as soon as it would exceed `max_bytes`, so an oversized document
/// costs at most the limit in memory.
pub async fn fetch(url: &str, limits: FetchLimits) -> Result<Fetched, FetchError> {
    let parsed = reqwest::Url::parse(url).map_err(|err| FetchError::InvalidUrl {
        url: url.to_owned(),
        reason: err.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("scheme {:?} is not http or https", parsed.scheme()),
        });
    }

    install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(limits.timeout)
        .connect_timeout(limits.timeout)
        .user_agent(concat!("ingestion-service/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| FetchError::Unreachable(shared::openai::error_chain(&err)))?;

    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|err| FetchError::Unreachable(shared::openai::error_chain(&err)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }

    let too_large = FetchError::TooLarge {
        max_bytes: limits.max_bytes,
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(too_large);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let file_name = response
        .url()
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned);

    let capacity = declared.map_or(0, |length| length as usize);
    let mut bytes = Vec::with_capacity(capacity.min(limits.max_bytes));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| FetchError::Unreachable(shared::openai::error_chain(&err)))?
    {
        if bytes.len() + chunk.len() > limits.max_bytes {
            return Err(too_large);
        }
        bytes.extend_from_slice(&chunk);
    }

    Ok(Fetched {
        bytes,
        content_type,
        file_name,
    })
}

/// Installs ring as rustls' process-wide provider once (the workspace builds reqwest
/// without one); losing the race to another installer is fine.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;

    const LIMITS: FetchLimits = FetchLimits {
        max_bytes: 64 * 1024,
        timeout: Duration::from_secs(5),
    };

    /// Serves test routes on a loopback port; returns its address and a counter of the
    /// bytes the streaming route managed to hand to the connection.
    async fn serve() -> (SocketAddr, Arc<AtomicUsize>) {
        let streamed = Arc::new(AtomicUsize::new(0));
        let counter = streamed.clone();
        let app = Router::new()
            .route(
                "/docs/guide.md",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
                        "# Guide\n\nFetched over HTTP.\n",
                    )
                }),
            )
            .route("/big", get(|| async { "x".repeat(LIMITS.max_bytes + 1) }))
            .route(
                // Endless chunked body without Content-Length: only the running count can
                // stop it.
                "/endless",
                get(move || {
                    let counter = counter.clone();
                    async move { Body::from_stream(endless_chunks(counter)) }
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "nope").into_response() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (address, streamed)
    }

    /// 16 KiB chunks forever, produced only as the connection takes them, counting each.
    fn endless_chunks(
        counter: Arc<AtomicUsize>,
    ) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
        futures::stream::unfold(counter, |counter| async move {
            counter.fetch_add(16 * 1024, Ordering::SeqCst);
            Some((Ok(vec![b'y'; 16 * 1024]), counter))
        })
    }

    #[tokio::test]
    async fn fetches_a_document_with_its_labels() {
        let (address, _) = serve().await;
        let fetched = fetch(&format!("http://{address}/docs/guide.md"), LIMITS)
            .await
            .expect("fetch");
        assert_eq!(fetched.bytes, b"# Guide\n\nFetched over HTTP.\n");
        assert_eq!(
            fetched.content_type.as_deref(),
            Some("text/markdown; charset=utf-8")
        );
        assert_eq!(fetched.file_name.as_deref(), Some("guide.md"));
        let kind = crate::extract::DocumentKind::detect(
            fetched.file_name.as_deref(),
            fetched.content_type.as_deref(),
            &fetched.bytes,
        );
        assert_eq!(kind, Some(crate::extract::DocumentKind::Markdown));
    }

    #[tokio::test]
    async fn a_declared_oversize_body_is_refused() {
        let (address, _) = serve().await;
        let result = fetch(&format!("http://{address}/big"), LIMITS).await;
        assert!(
            matches!(result, Err(FetchError::TooLarge { max_bytes }) if max_bytes == LIMITS.max_bytes),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        let (address, streamed) = serve().await;
        let result = fetch(&format!("http://{address}/endless"), LIMITS).await;
        assert!(
            matches!(result, Err(FetchError::TooLarge { .. })),
            "{result:?}"
        );
        // The client hung up: the server stops producing once socket buffers are full
        // (what it produced before that sat in kernel buffers, never in our memory).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled = streamed.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            streamed.load(Ordering::SeqCst),
            settled,
            "the server kept streaming"
        );
    }

    #[tokio::test]
    async fn a_missing_page_is_its_status() {
        let (address, _) = serve().await;
        let result = fetch(&format!("http://{address}/missing.pdf"), LIMITS).await;
        assert!(matches!(result, Err(FetchError::Status(404))), "{result:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // Bind then drop, so the port is (almost certainly) closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let result = fetch(&format!("http://{address}/"), LIMITS).await;
        assert!(
            matches!(&result, Err(FetchError::Unreachable(reason)) if !reason.is_empty()),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let (address, _) = serve().await;
        let limits = FetchLimits {
            timeout: Duration::from_millis(300),
            ..LIMITS
        };
        let result = fetch(&format!("http://{address}/slow"), limits).await;
        assert!(
            matches!(&result, Err(FetchError::Unreachable(reason)) if reason.contains("timed out")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn only_http_and_https() {
        for url in ["file:///etc/passwd", "ftp://example.com/a.pdf", "not a url"] {
            let result = fetch(url, LIMITS).await;
            assert!(
                matches!(result, Err(FetchError::InvalidUrl { .. })),
                "{url}: {result:?}"
            );
        }
    }
}
