//! The admin SPA, embedded: `web/dist` is built and compiled into the binary by `build.rs`
//! (each file with precompressed gzip and brotli copies), served at `/` with the SPA
//! fallback, and the security headers every response carries.
//!
//! Written by hand rather than with rust-embed: the assets are precompressed at build time
//! (brotli 11, gzip 9: nothing is compressed per request) and hashed for ETags there, and
//! the generated table is a plain `static` — no proc macro, no file reads at run time.
//!
//! - `/assets/*` (content-hashed names): `Cache-Control: public, max-age=31536000, immutable`;
//!   a missing one is a 404, never `index.html` (a stale tab must not run HTML as a script).
//! - `index.html` and the other top-level files: `no-cache` with an ETag (304 on a match).
//! - Any other GET outside `/api` and `/ws` (`/flows/3`, `/login`…) answers `index.html`.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file.
pub(crate) struct Asset {
    /// URL path, `/index.html`, `/assets/index-abc123.js`.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    /// A strong ETag (quoted) over the raw bytes.
    pub(crate) etag: &'static str,
    pub(crate) raw: &'static [u8],
    pub(crate) gzip: Option<&'static [u8]>,
    pub(crate) brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/spa_assets.rs"));

/// The Content-Security-Policy of the SPA: only its own scripts, styles and connections
/// (`'self'` covers the same-origin WebSocket; `wss:` lets the browser phone reach the SIP
/// over secure WebSocket listener, another port of the same host), images from itself and
/// `data:` (the favicon), audio from itself and `blob:` (previews), never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; font-src 'self' data:; connect-src 'self' wss:; object-src 'none'; base-uri 'self'; \
form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The embedded file at `path`, if any.
pub(crate) fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Every embedded file's path (for tests and the start-up log).
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// Whether `path` belongs to the API or the WebSocket rather than the SPA.
fn is_server_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/ws" || path.starts_with("/ws/")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

/// The best encoding the client accepts among those available (brotli, then gzip); `q=0`
/// refuses one.
fn negotiate(headers: &HeaderMap, gzip: bool, brotli: bool) -> Encoding {
    let Some(accept) = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else { return Encoding::Identity };
    let mut br_ok = false;
    let mut gz_ok = false;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it.filter_map(|p| p.trim().strip_prefix("q=")).next().and_then(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        let ok = q > 0.0;
        match name.as_str() {
            "br" => br_ok = ok,
            "gzip" | "x-gzip" => gz_ok = ok,
            "*" => {
                br_ok |= ok;
                gz_ok |= ok;
            }
            _ => {}
        }
    }
    if brotli && br_ok {
        Encoding::Brotli
    } else if gzip && gz_ok {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

fn serve_asset(a: &'static Asset, headers: &HeaderMap, head: bool) -> Response {
    let cache = if a.path.starts_with("/assets/") { IMMUTABLE } else { "no-cache" };
    let enc = negotiate(headers, a.gzip.is_some(), a.brotli.is_some());
    let mut b = Response::builder().header(header::CONTENT_TYPE, a.content_type).header(header::CACHE_CONTROL, cache).header(header::ETAG, a.etag);
    if a.gzip.is_some() || a.brotli.is_some() {
        b = b.header(header::VARY, "accept-encoding");
    }
    if etag_matches(headers, a.etag) {
        return b.status(StatusCode::NOT_MODIFIED).body(axum::body::Body::empty()).unwrap_or_else(|_| StatusCode::NOT_MODIFIED.into_response());
    }
    let bytes: &'static [u8] = match enc {
        Encoding::Brotli => {
            b = b.header(header::CONTENT_ENCODING, "br");
            a.brotli.unwrap_or(a.raw)
        }
        Encoding::Gzip => {
            b = b.header(header::CONTENT_ENCODING, "gzip");
            a.gzip.unwrap_or(a.raw)
        }
        Encoding::Identity => a.raw,
    };
    b = b.header(header::CONTENT_LENGTH, bytes.len());
    let body = if head { axum::body::Body::empty() } else { axum::body::Body::from(bytes) };
    b.body(body).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The router's fallback: the SPA's files and its client-side routes; the JSON 404 for
/// anything under `/api` and `/ws`, for missing hashed assets and for other methods.
pub(crate) async fn fallback(method: Method, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if is_server_path(path) {
        return ApiError::NotFound.into_response();
    }
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return ApiError::NotFound.into_response();
    }
    let path = if path == "/" { "/index.html" } else { path };
    if let Some(a) = asset(path) {
        return serve_asset(a, &headers, head);
    }
    if path.starts_with("/assets/") {
        return ApiError::NotFound.into_response();
    }
    match asset("/index.html") {
        Some(index) => serve_asset(index, &headers, head),
        None => ApiError::NotFound.into_response(),
    }
}

/// Middleware: the headers every response carries (`nosniff`, no framing, no referrer
/// across origins) and the CSP on HTML.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    let csp = if html { CSP } else { "default-src 'none'; frame-ancestors 'none'" };
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    if html {
        h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn encoding_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new(), true, true), Encoding::Identity);
        assert_eq!(negotiate(&accept("gzip, deflate, br"), true, true), Encoding::Brotli);
        assert_eq!(negotiate(&accept("gzip, deflate, br"), true, false), Encoding::Gzip);
        assert_eq!(negotiate(&accept("br;q=0, gzip"), true, true), Encoding::Gzip);
        assert_eq!(negotiate(&accept("identity"), true, true), Encoding::Identity);
        assert_eq!(negotiate(&accept("*"), true, true), Encoding::Brotli);
        assert_eq!(negotiate(&accept("gzip;q=0"), true, false), Encoding::Identity);
    }

    #[test]
    fn etags() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(etag_matches(&h, "\"b\""));
        assert!(!etag_matches(&h, "\"c\""));
    }

    #[test]
    fn the_spa_is_embedded() {
        let index = asset("/index.html").expect("index.html is embedded");
        assert!(std::str::from_utf8(index.raw).unwrap().contains("<div id=\"root\">"));
        assert!(ASSETS.iter().any(|a| a.path.starts_with("/assets/") && a.path.ends_with(".js")), "the bundle is embedded");
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            assert!(a.gzip.is_some() && a.brotli.is_some(), "{} is precompressed", a.path);
        }
    }
}
