//! What every Google call shares: the pacer that keeps writes under the quota, the bounded
//! backoff on 429, 5xx and rate-limit 403s (honouring Retry-After), request counts, and one
//! typed reading of Google's error JSON. The hubs do not retry on their own: this delegate
//! answers their `http_failure` and the hub waits and sends again.

use google_drive3::common::{self, ContentRange, Delegate, Retry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A resumable upload's chunk: a multiple of 256 KiB, as Drive requires.
pub const CHUNK: u64 = 32 * 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    #[error(
        "Drive answered 403 storageQuotaExceeded: {message}. A service account has no Drive storage of its own; either \
         make folder_id a folder on a shared drive that the service account is a member of, or use OAuth user \
         credentials (an OAuth client file as `credentials`, then `daybook mirror login`)"
    )]
    StorageQuota { message: String },
    #[error("{what}: Google answered {code} {reason}: {message}")]
    Api { what: String, code: u16, reason: String, message: String },
    #[error("{what}: {detail}")]
    Other { what: String, detail: String },
}

impl GoogleError {
    pub fn code(&self) -> Option<u16> {
        match self {
            GoogleError::Api { code, .. } => Some(*code),
            GoogleError::StorageQuota { .. } => Some(403),
            GoogleError::Other { .. } => None,
        }
    }
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"reason"}], "status"}}`.
fn parts(v: &serde_json::Value) -> (u16, String, String) {
    let e = &v["error"];
    let code = e["code"].as_u64().unwrap_or(0) as u16;
    let reason = e["errors"][0]["reason"].as_str().or(e["status"].as_str()).unwrap_or("").to_string();
    let message = e["message"].as_str().unwrap_or("").chars().take(500).collect();
    (code, reason, message)
}

pub fn classify(what: &str, e: common::Error) -> GoogleError {
    match e {
        common::Error::BadRequest(v) => {
            let (code, reason, message) = parts(&v);
            if reason == "storageQuotaExceeded" {
                GoogleError::StorageQuota { message }
            } else {
                GoogleError::Api { what: what.into(), code, reason, message }
            }
        }
        common::Error::Failure(r) => GoogleError::Api {
            what: what.into(),
            code: r.status().as_u16(),
            reason: r.status().canonical_reason().unwrap_or("").into(),
            message: "no JSON error body".into(),
        },
        common::Error::MissingToken(t) => GoogleError::Other {
            what: what.into(),
            detail: format!("no access token from Google's token endpoint: {t}"),
        },
        other => GoogleError::Other { what: what.into(), detail: other.to_string() },
    }
}

/// Counters and bounds shared by every call of a target.
pub struct Shared {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub give_up: Duration,
    pub first_wait: Duration,
    /// The next instant a write may go.
    next_write: tokio::sync::Mutex<Instant>,
    write_every: Duration,
}

impl Shared {
    pub fn new(writes_per_minute: u32, give_up: Duration, first_wait: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            give_up,
            first_wait,
            next_write: tokio::sync::Mutex::new(Instant::now()),
            write_every: Duration::from_secs_f64(60.0 / writes_per_minute.max(1) as f64),
        })
    }

    /// Waits for the next write's turn: writes go at most `writes_per_minute`, evenly.
    pub async fn pace(&self) {
        let mut next = self.next_write.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep(*next - now).await;
        }
        *next = Instant::now().max(*next) + self.write_every;
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delegate(&self) -> Dlg<'_> {
        Dlg { shared: self, started: Instant::now(), attempt: 0, in_chunks: false }
    }
}

pub struct Dlg<'a> {
    shared: &'a Shared,
    started: Instant,
    attempt: u32,
    /// The crate's resumable helper moves past a chunk before it knows the chunk failed, so
    /// a failed chunk is not retried here: the whole upload is, by the caller.
    in_chunks: bool,
}

impl Dlg<'_> {
    fn backoff(&mut self, retry_after: Option<Duration>) -> Retry {
        let exp = self.shared.first_wait.saturating_mul(1 << self.attempt.min(6));
        let wait = retry_after.unwrap_or(exp).min(Duration::from_secs(64));
        if self.started.elapsed() + wait > self.shared.give_up {
            tracing::warn!("giving up after {} attempts over {:?}", self.attempt + 1, self.started.elapsed());
            return Retry::Abort;
        }
        self.attempt += 1;
        Retry::After(wait)
    }
}

/// Seconds of a Retry-After header (Google sends seconds).
fn retry_after(r: &common::Response) -> Option<Duration> {
    let v = r.headers().get("retry-after")?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(3600.0)))
}

impl Delegate for Dlg<'_> {
    fn pre_request(&mut self) {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn http_error(&mut self, _err: &hyper_util::client::legacy::Error) -> Retry {
        self.backoff(None)
    }

    fn http_failure(&mut self, r: &common::Response, err: Option<&serde_json::Value>) -> Retry {
        let status = r.status().as_u16();
        let reason = err.map(|v| parts(v).1).unwrap_or_default();
        let again = status == 429
            || (500..600).contains(&status)
            || (status == 403 && matches!(reason.as_str(), "rateLimitExceeded" | "userRateLimitExceeded"));
        if again && !self.in_chunks { self.backoff(retry_after(r)) } else { Retry::Abort }
    }

    fn chunk_size(&mut self) -> u64 {
        CHUNK
    }

    fn cancel_chunk_upload(&mut self, _chunk: &ContentRange) -> bool {
        // Each chunk is a request of its own.
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        self.in_chunks = true;
        false
    }
}
