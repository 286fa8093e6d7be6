//! Audio files under the data dir, served with `Range` support (an `<audio>` element seeks
//! with byte ranges): prompts and voicemail messages.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{ApiError, ApiResult};

/// A single byte range of a `Range: bytes=…` header against a file of `len` bytes:
/// `Ok(None)` when there is no (usable) header, `Err(())` when it cannot be satisfied.
/// Several ranges are answered with the whole file (allowed by RFC 9110 §14.2).
pub(crate) fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        // the last b bytes
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end = if b.is_empty() { len.saturating_sub(1) } else { b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1)) };
            if start >= len || end < start {
                return Err(());
            }
            (start, end)
        }
        (true, true) => return Ok(None),
    };
    Ok(Some(range))
}

/// Serves `path` as `content_type` (`attachment; filename=…` when `download_name` is given),
/// honouring a single byte range. A missing file is a 404.
pub(crate) async fn serve(path: &Path, content_type: &'static str, download_name: Option<&str>, headers: &HeaderMap) -> ApiResult<Response> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::NotFound),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let mut b = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Some(name) = download_name {
        let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
        b = b.header(header::CONTENT_DISPOSITION, format!("inline; filename=\"{safe}\""));
    }
    let (status, start, end) = match parse_range(headers, len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((s, e))) => {
            b = b.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (StatusCode::PARTIAL_CONTENT, s, e)
        }
        Err(()) => {
            let mut resp = ApiError::bad_request("the requested range is outside the file").into_response();
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = format!("bytes */{len}").parse() {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    let body = Body::from_stream(chunks(file.take(count)));
    b.status(status).header(header::CONTENT_LENGTH, count).body(body).map_err(ApiError::internal)
}

/// The bytes of `r` as a stream of chunks.
fn chunks<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn range(v: &'static str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static(v));
        parse_range(&h, len)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=9-3", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
        assert_eq!(range("bytes=x-1", 100), Err(()));
    }
}
