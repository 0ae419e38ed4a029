//! Fetching a document by URL for ingestion, bounded in size and time so one slow or huge
//! page cannot stall a worker or fill its memory, and kept to public addresses so a
//! document URL cannot read what only the ingestion host can reach (server-side request
//! forgery).
//!
//! The guard: http and https only; every address is checked after DNS resolution
//! ([`guard`]) by the client's own resolver, so the checked address is the one connected to
//! ([`resolve`]); redirects are followed by hand, at most [`MAX_REDIRECTS`], each hop checked
//! again; no proxy is used. A refused address and a failed connection give the same
//! [`FetchError::Unreachable`] text, so error messages cannot be used to map a network;
//! the details go to the log. `DA_INGEST_URL_ALLOW` ([`Allowlist`]) lists the non-public
//! hosts and ranges an operator wants reachable.

mod guard;
mod resolve;

use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

pub use guard::{Allowlist, AllowlistError, Refusal, refusal};

/// The one text of every refused or failed fetch (see [`FetchError::Unreachable`]).
pub const UNREACHABLE: &str =
    "the URL could not be fetched: it is not a public http(s) address, or it did not answer";

/// Redirects followed before giving up; each hop is checked like the first URL.
pub const MAX_REDIRECTS: usize = 5;

/// How much a fetch may read and for how long; set per service from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// The largest body accepted; the download stops as soon as it is exceeded.
    pub max_bytes: usize,
    /// The deadline for the whole exchange, connecting through the last body byte,
    /// redirects included.
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
/// from the remote side's (status) and from everything that must not be told apart
/// (refused address, no answer).
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
    /// A permitted server answered with a non-success status.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The body is larger than the limit; nothing past the limit was read.
    #[error("the document is larger than the {max_bytes}-byte limit")]
    TooLarge {
        /// The limit that was exceeded.
        max_bytes: usize,
    },
    /// Refused (not a public address, a redirect to one or to another scheme, too many
    /// redirects) or no complete response (DNS, connection, TLS, timeout). One text for
    /// all ([`UNREACHABLE`]): telling them apart would reveal which internal ports are
    /// open. The reason is logged.
    #[error("{}", UNREACHABLE)]
    Unreachable,
}

/// Downloads `url` (http or https only, public addresses or those `allow` lists) within
/// `limits`, following redirects by hand; the body is streamed and abandoned as soon as it
/// would exceed `max_bytes`, so an oversized document costs at most the limit in memory.
pub async fn fetch(
    url: &str,
    limits: FetchLimits,
    allow: &Arc<Allowlist>,
) -> Result<Fetched, FetchError> {
    let parsed = Url::parse(url).map_err(|err| FetchError::InvalidUrl {
        url: url.to_owned(),
        reason: err.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("scheme {:?} is not http or https", parsed.scheme()),
        });
    }
    let shown = redacted(&parsed);
    match tokio::time::timeout(limits.timeout, follow(parsed, limits, allow)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::info!(url = %shown, timeout = ?limits.timeout, "URL fetch: timed out");
            Err(FetchError::Unreachable)
        }
    }
}

/// Requests `url` and the redirects it leads to, checking each hop, and reads the final
/// answer.
async fn follow(
    mut url: Url,
    limits: FetchLimits,
    allow: &Arc<Allowlist>,
) -> Result<Fetched, FetchError> {
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(limits.timeout)
        .connect_timeout(limits.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect on our behalf to whatever it resolves.
        .no_proxy()
        .dns_resolver(Arc::new(resolve::VettingResolver::new(allow.clone())))
        .user_agent(concat!("ingestion-service/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| unreachable(&url, "cannot build the HTTP client", &err))?;

    for hop in 0..=MAX_REDIRECTS {
        check_target(&url, allow)?;
        let response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|err| unreachable(&url, "request failed", &err))?;
        let status = response.status();
        if is_redirect(status) {
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| url.join(location).ok());
            if let Some(next) = next {
                tracing::debug!(from = %redacted(&url), to = %redacted(&next), hop, "URL fetch: redirect");
                url = next;
                continue;
            }
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        return read_body(response, &url, limits).await;
    }
    tracing::warn!(url = %redacted(&url), max = MAX_REDIRECTS, "URL fetch: too many redirects");
    Err(FetchError::Unreachable)
}

/// The statuses whose `Location` is followed.
fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Checks what can be checked before connecting: the scheme (a redirect may name any) and
/// an address written in the URL, which the resolver never sees. Host names are checked by
/// the resolver when the client connects.
fn check_target(url: &Url, allow: &Allowlist) -> Result<(), FetchError> {
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::warn!(
            url = %redacted(url),
            %reason,
            "URL fetch: refused to connect (DA_INGEST_URL_ALLOW lists exceptions)"
        );
        FetchError::Unreachable
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused(&format_args!("scheme {:?}", url.scheme())));
    }
    let Some(host) = url.host_str() else {
        return Err(refused(&"no host"));
    };
    // The URL parser writes addresses canonically (`0x7f.1` is `127.0.0.1`), IPv6 in
    // brackets; anything else is a name.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(address) = literal.parse::<std::net::IpAddr>() else {
        return Ok(());
    };
    allow
        .permits(address, false)
        .map_err(|refusal| refused(&refusal))
}

/// Reads the body of a success, within `max_bytes`.
async fn read_body(
    mut response: reqwest::Response,
    url: &Url,
    limits: FetchLimits,
) -> Result<Fetched, FetchError> {
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
    let file_name = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned);

    let capacity = declared.map_or(0, |length| length as usize);
    let mut bytes = Vec::with_capacity(capacity.min(limits.max_bytes));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| unreachable(url, "reading the body failed", &err))?
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

/// Logs why `url` failed (the whole error chain) and returns the uniform error.
fn unreachable(url: &Url, what: &str, err: &reqwest::Error) -> FetchError {
    tracing::info!(
        url = %redacted(url),
        error = %platform::openai::error_chain(err),
        "URL fetch: {what}"
    );
    FetchError::Unreachable
}

/// `url` without user info or query, for log lines (either may hold a secret).
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::header;
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::get;

    use super::*;

    const LIMITS: FetchLimits = FetchLimits {
        max_bytes: 64 * 1024,
        timeout: Duration::from_secs(5),
    };

    /// A test server: where it listens, the bytes its streaming route handed to the
    /// connection, and how many requests it received.
    struct Server {
        address: SocketAddr,
        streamed: Arc<AtomicUsize>,
        hits: Arc<AtomicUsize>,
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.address)
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn allow(list: &str) -> Arc<Allowlist> {
        Arc::new(list.parse().expect("test allowlist"))
    }

    /// The allowlist that lets tests reach their server on 127.0.0.1.
    fn loopback() -> Arc<Allowlist> {
        allow("127.0.0.1")
    }

    /// Serves test routes on `ip` (a loopback address), port chosen by the system.
    /// `/to?url=U` redirects to `U`.
    async fn serve_on(ip: &str) -> Server {
        let streamed = Arc::new(AtomicUsize::new(0));
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = streamed.clone();
        let hit_counter = hits.clone();
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
            .route(
                "/to",
                get(|request: Request| async move {
                    let target = request
                        .uri()
                        .query()
                        .and_then(|q| q.strip_prefix("url="))
                        .unwrap_or("/")
                        .to_owned();
                    Redirect::temporary(&target)
                }),
            )
            .route("/loop", get(|| async { Redirect::to("/loop") }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "nope").into_response() })
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let hits = hit_counter.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            }));
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            address,
            streamed,
            hits,
        }
    }

    async fn serve() -> Server {
        serve_on("127.0.0.1").await
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

    /// Asserts `result` is the uniform refusal, with its exact text.
    fn assert_unreachable(result: &Result<Fetched, FetchError>, what: &str) {
        match result {
            Err(err @ FetchError::Unreachable) => assert_eq!(err.to_string(), UNREACHABLE),
            other => panic!("{what}: expected the uniform refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn fetches_a_document_with_its_labels() {
        let server = serve().await;
        let fetched = fetch(&server.url("/docs/guide.md"), LIMITS, &loopback())
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
        let server = serve().await;
        let result = fetch(&server.url("/big"), LIMITS, &loopback()).await;
        assert!(
            matches!(result, Err(FetchError::TooLarge { max_bytes }) if max_bytes == LIMITS.max_bytes),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        let server = serve().await;
        let result = fetch(&server.url("/endless"), LIMITS, &loopback()).await;
        assert!(
            matches!(result, Err(FetchError::TooLarge { .. })),
            "{result:?}"
        );
        // The client hung up: the server stops producing once socket buffers are full
        // (what it produced before that sat in kernel buffers, never in our memory).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled = server.streamed.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            server.streamed.load(Ordering::SeqCst),
            settled,
            "the server kept streaming"
        );
    }

    #[tokio::test]
    async fn a_missing_page_is_its_status() {
        let server = serve().await;
        let result = fetch(&server.url("/missing.pdf"), LIMITS, &loopback()).await;
        assert!(matches!(result, Err(FetchError::Status(404))), "{result:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // Bind then drop, so the port is (almost certainly) closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let result = fetch(&format!("http://{address}/"), LIMITS, &loopback()).await;
        assert_unreachable(&result, "closed port");
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let server = serve().await;
        let limits = FetchLimits {
            timeout: Duration::from_millis(300),
            ..LIMITS
        };
        let result = fetch(&server.url("/slow"), limits, &loopback()).await;
        assert_unreachable(&result, "slow server");
    }

    #[tokio::test]
    async fn only_http_and_https() {
        for url in ["file:///etc/passwd", "ftp://example.com/a.pdf", "not a url"] {
            let result = fetch(url, LIMITS, &loopback()).await;
            assert!(
                matches!(result, Err(FetchError::InvalidUrl { .. })),
                "{url}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_listed_and_never_contacted() {
        let server = serve().await;
        let port = server.address.port();
        let empty = Arc::new(Allowlist::default());
        for url in [
            server.url("/docs/guide.md"),
            format!("http://localhost:{port}/docs/guide.md"),
            format!("http://[::ffff:127.0.0.1]:{port}/docs/guide.md"),
            format!("http://0x7f000001:{port}/docs/guide.md"),
            format!("http://2130706433:{port}/docs/guide.md"),
            format!("http://127.1:{port}/docs/guide.md"),
            format!("http://0.0.0.0:{port}/docs/guide.md"),
            format!("http://[::]:{port}/docs/guide.md"),
        ] {
            let result = fetch(&url, LIMITS, &empty).await;
            assert_unreachable(&result, &url);
        }
        // Other loopback addresses are not what is listed either.
        let result = fetch(&server.url("/docs/guide.md"), LIMITS, &allow("127.0.0.2")).await;
        assert_unreachable(&result, "127.0.0.1 with 127.0.0.2 listed");
        assert_eq!(server.hits(), 0, "a refused address was contacted");
    }

    #[tokio::test]
    async fn listed_names_and_mapped_forms_reach_the_server() {
        let server = serve().await;
        let port = server.address.port();
        let by_name = format!("http://localhost:{port}/docs/guide.md");
        fetch(&by_name, LIMITS, &allow("localhost"))
            .await
            .expect("a listed name");
        let mapped = format!("http://[::ffff:127.0.0.1]:{port}/docs/guide.md");
        fetch(&mapped, LIMITS, &loopback())
            .await
            .expect("the mapped form of a listed address");
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn metadata_is_refused_even_when_listed() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://100.100.100.200/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
        ] {
            let listed = allow("169.254.0.0/16,100.64.0.0/10,fd00::/8,169.254.169.254");
            // Nothing listens there: a connection attempt would end only at the timeout,
            // so a generous one makes an attempt fail the test rather than pass it.
            let limits = FetchLimits {
                timeout: Duration::from_secs(600),
                ..LIMITS
            };
            let result = tokio::time::timeout(Duration::from_secs(20), fetch(url, limits, &listed))
                .await
                .expect("the refusal did not wait for a connection");
            assert_unreachable(&result, url);
        }
    }

    #[tokio::test]
    async fn redirects_are_followed_and_each_hop_checked() {
        let server = serve().await;
        let fetched = fetch(&server.url("/to?url=/docs/guide.md"), LIMITS, &loopback())
            .await
            .expect("a redirect on the same server");
        assert_eq!(fetched.file_name.as_deref(), Some("guide.md"));
        assert_eq!(server.hits(), 2);

        // A listed redirector pointing at an address that is not listed.
        let redirector = serve_on("127.0.0.2").await;
        let hits_before = server.hits();
        for target in [
            server.url("/docs/guide.md"),
            format!("http://localhost:{}/docs/guide.md", server.address.port()),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "file:///etc/passwd".to_owned(),
        ] {
            let result = fetch(
                &redirector.url(&format!("/to?url={target}")),
                LIMITS,
                &allow("127.0.0.2"),
            )
            .await;
            assert_unreachable(&result, &target);
        }
        assert_eq!(redirector.hits(), 4);
        assert_eq!(
            server.hits(),
            hits_before,
            "a redirect reached a refused address"
        );
    }

    #[tokio::test]
    async fn endless_redirects_stop() {
        let server = serve().await;
        let result = fetch(&server.url("/loop"), LIMITS, &loopback()).await;
        assert_unreachable(&result, "redirect loop");
        assert_eq!(server.hits(), MAX_REDIRECTS + 1);
    }
}
