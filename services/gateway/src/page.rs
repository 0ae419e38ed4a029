//! The web page at `/`: static assets compiled into the binary (no CDN, works offline).

use axum::response::Html;

/// The page.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../web/index.html"))
}
