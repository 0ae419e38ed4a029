//! The `api_key` query parameter: read it, and keep it out of logs.
//!
//! A browser cannot set headers on a WebSocket or an `EventSource`, so those two routes
//! take the key from the query string ([`crate::http::QueryAuthenticated`]). Everywhere
//! else a key in the URL is refused ([`QUERY_KEY_REFUSED`]): URLs end up in proxy and
//! access logs and in browser history, headers do not. Wherever a URL is logged, it goes
//! through [`redact`] first.

use std::borrow::Cow;

use axum::http::Uri;

/// The query parameter a key may travel in.
pub const PARAM: &str = "api_key";

/// What a request with a key in its query string is told, on every route that needs no
/// browser exception.
pub const QUERY_KEY_REFUSED: &str = "API keys are not accepted in the query string (URLs end up in logs): send Authorization: Bearer <key>";

/// What replaces the key's value in a logged URL.
pub const REDACTED: &str = "REDACTED";

/// The non-empty `api_key` value of `uri`'s query, decoded; `None` if there is none (an
/// empty `api_key=` carries no secret and counts as none).
pub fn query_key(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(name) == PARAM && !value.is_empty()).then(|| decode(value))
    })
}

/// `uri` as it may be logged: the path and query with every `api_key` value replaced by
/// [`REDACTED`]. Borrowed when there is nothing to redact.
pub fn redact(uri: &Uri) -> Cow<'_, str> {
    let Some(path_and_query) = uri.path_and_query() else {
        return Cow::Borrowed("/");
    };
    let Some(query) = path_and_query.query() else {
        return Cow::Borrowed(path_and_query.as_str());
    };
    let mut secret = false;
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            if decode(name) == PARAM {
                secret = true;
                Cow::Owned(format!("{name}={REDACTED}"))
            } else {
                Cow::Borrowed(pair)
            }
        })
        .collect();
    if !secret {
        return Cow::Borrowed(path_and_query.as_str());
    }
    Cow::Owned(format!("{}?{}", path_and_query.path(), pairs.join("&")))
}

/// A form-urlencoded component decoded (`+` is a space, `%XX` a byte); an invalid escape
/// is kept as it is, as browsers do. Enough to recognise `api%5Fkey` as `api_key`.
fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(decoded) = hex {
                    out.push(decoded);
                    i += 3;
                    continue;
                }
                out.push(byte);
            }
            _ => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().expect("uri")
    }

    #[test]
    fn the_key_is_found_decoded_among_other_parameters() {
        assert_eq!(query_key(&uri("/x?api_key=da_1")), Some("da_1".to_owned()));
        assert_eq!(
            query_key(&uri("/x?a=1&api%5Fkey=da%5F2&b")),
            Some("da_2".to_owned())
        );
        assert_eq!(query_key(&uri("/x?api_key=")), None);
        assert_eq!(query_key(&uri("/x?api_key")), None);
        assert_eq!(query_key(&uri("/x?xapi_key=da_1")), None);
        assert_eq!(query_key(&uri("/x")), None);
    }

    #[test]
    fn logged_uris_never_show_the_key() {
        assert_eq!(
            redact(&uri("/v1/x?api_key=da_secret")),
            "/v1/x?api_key=REDACTED"
        );
        assert_eq!(
            redact(&uri("/v1/x?wait=5s&api%5Fkey=da_secret&api_key=da_again&z")),
            "/v1/x?wait=5s&api%5Fkey=REDACTED&api_key=REDACTED&z"
        );
        assert_eq!(redact(&uri("/v1/x?wait=5s")), "/v1/x?wait=5s");
        assert_eq!(redact(&uri("/v1/x")), "/v1/x");
        assert_eq!(
            redact(&uri("http://host:1/v1/x?api_key=da_secret")),
            "/v1/x?api_key=REDACTED"
        );
        assert!(matches!(redact(&uri("/v1/x?a=1")), Cow::Borrowed(_)));
    }

    #[test]
    fn decoding_keeps_bad_escapes() {
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
