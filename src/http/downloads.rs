//! `GET`/`HEAD /downloads/<token>`: an archive part, resumable. Answers Range (one range:
//! `206` with Content-Range; unsatisfiable: `416`), If-Range, Content-Length, an ETag and a
//! Content-Disposition file name. Bad links get `403` or `404` with a plain message that says
//! nothing about other archives. The body is decrypted chunk by chunk as it is sent; if the
//! archive goes mid-way (deleted), the connection is cut before Content-Length is reached, so
//! the client sees an error, not a short file that looks whole.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use super::HttpState;
use crate::archive::{Download, DownloadError, LinkError};

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/downloads/{token}", get(download).head(download))
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{msg}\n")).into_response()
}

/// One `bytes=` range against a length: Ok(None) when the header is absent or not one we
/// serve (several ranges: the whole part instead), Err when it cannot be satisfied.
fn range(h: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.and_then(|v| v.to_str().ok()).and_then(|s| s.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (false, _) => {
            let s: u64 = a.parse().map_err(|_| ())?;
            let e = if b.is_empty() { size } else { b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(size) };
            (s, e)
        }
        (true, true) => return Err(()),
    };
    if start >= size || end <= start {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(st): State<Arc<HttpState>>,
    method: Method,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let d = match Download::for_token(&st.vault, &st.config, &token).await {
        Ok(d) => d,
        Err(DownloadError::Link(e @ LinkError::Gone)) => return plain(StatusCode::NOT_FOUND, &e.to_string()),
        Err(DownloadError::Link(e)) => return plain(StatusCode::FORBIDDEN, &e.to_string()),
        Err(DownloadError::Other(e)) => {
            tracing::error!("download: {e:#}");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "the download is unavailable right now; try again later");
        }
    };
    let size = d.size();
    // If-Range with another validator: the part changed (it cannot, but a client may send
    // a stale one); the whole part is sent.
    let if_range_ok = headers.get(header::IF_RANGE).is_none_or(|v| v.as_bytes() == d.etag.as_bytes());
    let wanted = if if_range_ok { range(headers.get(header::RANGE), size) } else { Ok(None) };
    let mut resp = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &d.etag)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", d.file_name))
        .header(header::CACHE_CONTROL, "private, no-store");
    let (start, end) = match wanted {
        Err(()) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("the range asked for is not in this file\n"))
                .expect("a valid response");
        }
        Ok(Some((s, e))) => {
            resp = resp
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {s}-{}/{size}", e - 1));
            (s, e)
        }
        Ok(None) => (0, size),
    };
    resp = resp.header(header::CONTENT_LENGTH, end - start);
    if method == Method::HEAD {
        return resp.body(Body::empty()).expect("a valid response");
    }
    let id = d.archive_id;
    // A fetch from the first byte is a download begun (its resumptions are not counted
    // again): the org's audit log says when, and which archive and part.
    if start == 0 {
        let detail = format!("archive {id}, part {} ({})", d.part.part, d.file_name);
        crate::http::web::audit(&st, Some(d.org_sid()), "a signed link", "archive-link-used", &detail).await;
    }
    let body = d.range(start, end).map(move |r| {
        r.map_err(|e| {
            tracing::warn!("download of archive {id} broke off: {e:#}");
            std::io::Error::other("the archive is no longer available")
        })
    });
    resp.body(Body::from_stream(body)).expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::range;
    use axum::http::HeaderValue;

    fn r(s: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        range(Some(&HeaderValue::from_str(s).unwrap()), size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), Ok(None));
        assert_eq!(r("bytes=0-4", 10), Ok(Some((0, 5))));
        assert_eq!(r("bytes=5-", 10), Ok(Some((5, 10))));
        assert_eq!(r("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(r("bytes=-30", 10), Ok(Some((0, 10))));
        assert_eq!(r("bytes=8-100", 10), Ok(Some((8, 10))));
        assert_eq!(r("bytes=10-", 10), Err(()));
        assert_eq!(r("bytes=5-2", 10), Err(()));
        assert_eq!(r("bytes=-0", 10), Err(()));
        assert_eq!(r("bytes=x-1", 10), Err(()));
        assert_eq!(r("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(r("items=0-1", 10), Ok(None));
    }
}
