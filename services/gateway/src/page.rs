//! The web page at `/` and its assets: static files compiled into the binary (no CDN, no
//! build step, works offline). [`routes`] is what the gateway merges into its app.
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

/// The page and its assets.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
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
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head");
        let status = head.lines().next().unwrap_or_default().to_owned();
        let content_type = head
            .lines()
            .find_map(|line| line.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body.to_owned())
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
