//! The web page at `/` and its assets: static files compiled into the binary (no CDN, no
//! build step, works offline). [`routes`] is what the gateway merges into its app. The page
//! has no inline script or style (its Content Security Policy allows none).
//!
//! | route | serves |
//! |---|---|
//! | `GET /` | `web/index.html`: API key, document uploads with live progress, chat |
//! | `GET /assets/app.js` | `web/app.js` (an ES module) |
//! | `GET /assets/app.css` | `web/app.css` |

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// The page.
const INDEX: &str = include_str!("../web/index.html");
/// Its script.
const APP_JS: &str = include_str!("../web/app.js");
/// Its style.
const APP_CSS: &str = include_str!("../web/app.css");

/// Assets change with the binary, and a page and its assets must come from the same one:
/// browsers check again on every load (cheap on loopback, and never a stale script).
const NO_CACHE: &str = "no-cache";

/// The page and its assets, with their security headers ([`crate::headers::page`]: CSP,
/// no framing, no referrer; `nosniff` comes from the whole app's layer).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .layer(axum::middleware::from_fn(crate::headers::page))
}

/// The page.
pub async fn index() -> impl IntoResponse {
    ([(CACHE_CONTROL, NO_CACHE)], Html(INDEX))
}

/// The page's script.
async fn app_js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        APP_JS,
    )
}

/// The page's style.
async fn app_css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        APP_CSS,
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// `GET path` over a real connection: (status line, content type, body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
        let (status, head, body) = get_with_head(addr, path).await;
        let content_type = header(&head, "content-type");
        (status, content_type, body)
    }

    /// The value of header `name` in a response head ("" if absent).
    fn header(head: &str, name: &str) -> String {
        head.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(": ")?;
                key.eq_ignore_ascii_case(name).then(|| value.to_owned())
            })
            .unwrap_or_default()
    }

    /// `GET path` over a real connection: (status line, head, body).
    async fn get_with_head(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, head.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_carry_security_headers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, super::routes()).await });
        for path in ["/", "/assets/app.js", "/assets/app.css"] {
            let (status, head, _) = get_with_head(addr, path).await;
            assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
            let policy = header(&head, "content-security-policy");
            assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
            assert!(
                policy.contains("frame-ancestors 'none'"),
                "{path}: {policy}"
            );
            assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
            assert_eq!(header(&head, "x-frame-options"), "DENY", "{path}");
            assert_eq!(header(&head, "referrer-policy"), "no-referrer", "{path}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = super::INDEX.to_ascii_lowercase();
        for tag in page.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(open.contains("src="), "an inline <script{open}>");
        }
        assert!(!page.contains("<style"), "an inline <style>");
        assert!(!page.contains(" style="), "an inline style attribute");
        assert!(
            !page.contains(" onclick=") && !page.contains(" onload="),
            "an inline handler"
        );
    }

    #[tokio::test]
    async fn serves_the_page_and_its_assets_with_their_types() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, super::routes()).await });

        let (status, kind, body) = get(addr, "/").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(body.contains(r#"src="/assets/app.js""#));
        assert!(body.contains(r#"href="/assets/app.css""#));

        let (status, kind, body) = get(addr, "/assets/app.js").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(kind, "text/javascript; charset=utf-8");
        assert!(body.contains("new EventSource"));

        let (status, kind, _) = get(addr, "/assets/app.css").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(kind, "text/css; charset=utf-8");

        let (status, _, _) = get(addr, "/assets/nope.js").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
    }
}
