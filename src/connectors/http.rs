//! What every app connector needs from HTTP, written once: a pacer that keeps under the
//! app's rate limit before being told; retries of 429 (waiting as Retry-After or the
//! X-RateLimit-Reset header says), of 5xx, timeouts and cut-off bodies (exponential backoff
//! with jitter), all within a bound after which the data type gives up; and errors that
//! name the request and the fix. Credentials travel in headers and appear in no message.

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// An app's limits, as its documentation gives them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// At most `requests` requests per `per`.
    pub requests: u32,
    pub per: Duration,
    /// Give up on a request that still fails after this long (retries included).
    pub give_up_after: Duration,
    /// One attempt's timeout.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{what}: the app refused the credentials (HTTP {status}); check {hint}")]
    Refused { what: String, status: u16, hint: String },
    #[error("{what}: not found (HTTP 404)")]
    NotFound { what: String },
    #[error("{what}: HTTP {status}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("{what}: gave up after {tries} tries in {secs} s; last: {last}")]
    GaveUp { what: String, tries: u32, secs: u64, last: String },
    #[error("{what}: the response is not the JSON expected: {why}")]
    Decode { what: String, why: String },
    #[error("{0}")]
    Setup(String),
}

/// Spaces requests evenly: at most `requests` per `per`, from the first one on.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// The app said to wait: no request leaves before `until`.
    async fn hold_until(&self, until: Instant) {
        let mut next = self.next.lock().await;
        *next = (*next).max(until);
    }
}

pub struct Http {
    client: reqwest::Client,
    base: reqwest::Url,
    headers: HeaderMap,
    /// Where the credentials come from, for the message when they are refused.
    auth_hint: String,
    pacer: Pacer,
    limits: Limits,
    requests: AtomicU64,
    /// The app's clock (its Date header, Unix seconds) at its last answer; 0 before any.
    server_time: std::sync::atomic::AtomicI64,
}

impl Http {
    /// `secret_headers` carry the credentials: they are marked sensitive so that no debug
    /// output shows them.
    pub fn new(
        base: &str,
        secret_headers: &[(&str, &str)],
        auth_hint: &str,
        limits: Limits,
    ) -> Result<Http, HttpError> {
        let base = reqwest::Url::parse(base).map_err(|e| HttpError::Setup(format!("base URL {base:?}: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in secret_headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| HttpError::Setup(format!("header {k}: {e}")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                HttpError::Setup(format!("the credential for header {k} has characters a header cannot carry"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        // Redirects are followed by hand: reqwest keeps custom credential headers (xc-token)
        // on a redirect to another host.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout)
            .user_agent(concat!("daybook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Setup(e.to_string()))?;
        let interval = limits.per / limits.requests.max(1);
        Ok(Http {
            client,
            base,
            headers,
            auth_hint: auth_hint.to_string(),
            pacer: Pacer { interval, next: Mutex::new(Instant::now()) },
            limits,
            requests: AtomicU64::new(0),
            server_time: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Requests sent so far (every attempt counts), for benchmarks and the cycle's log.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The app's own clock at its last answer, from the Date header. "Changed since" cursors
    /// taken from it do not depend on this machine's clock.
    pub fn server_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(self.server_time.load(Ordering::Relaxed), 0).filter(|t| t.timestamp() > 0)
    }

    pub fn url(&self, path: &str) -> Result<reqwest::Url, HttpError> {
        self.base.join(path.trim_start_matches('/')).map_err(|e| HttpError::Setup(format!("path {path:?}: {e}")))
    }

    /// GET a JSON document.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, HttpError> {
        let bytes = self.send(Method::GET, path, query, None).await?;
        self.decode(path, &bytes)
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T, HttpError> {
        serde_json::from_slice(bytes).map_err(|e| HttpError::Decode { what: format!("GET {path}"), why: e.to_string() })
    }

    /// One request with an optional JSON body; see `send_with`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, HttpError> {
        self.send_with(method, path, query, |req| match body {
            Some(b) => req.json(b),
            None => req,
        })
        .await
    }

    /// POST one file as `multipart/form-data` (field `field`), retried like any request.
    pub async fn upload(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, HttpError> {
        self.send_with(Method::POST, path, query, |req| {
            let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_string());
            req.multipart(reqwest::multipart::Form::new().part(field.to_string(), part))
        })
        .await
    }

    /// One request, paced and retried until it succeeds, fails for good, or the bound passes.
    /// `path` may also be an absolute URL; credentials go only to the base URL's host, never
    /// to another one the app links or redirects to.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, HttpError> {
        self.send_inner(method, path, None, query, build).await
    }

    /// A file's bytes from its download link, which messages call `label` (the link itself
    /// is often a credential).
    pub async fn download(&self, link: &str, label: &str) -> Result<Vec<u8>, HttpError> {
        self.send_inner(Method::GET, link, Some(label), &[], |r| r).await
    }

    async fn send_inner(
        &self,
        method: Method,
        path: &str,
        label: Option<&str>,
        query: &[(&str, String)],
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, HttpError> {
        let mut url = self.url(path)?;
        // Never the query: a signed link's query is a credential.
        let what = match label {
            Some(l) => format!("{method} {l}"),
            None if url.origin() == self.base.origin() => format!("{method} {}", url.path()),
            None => format!("{method} {}{}", url.host_str().unwrap_or_default(), url.path()),
        };
        // A POST that may have reached the app is not sent again: it could act twice (two
        // copies of a restored record).
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        let started = Instant::now();
        let (mut tries, mut redirects) = (0u32, 0u32);
        loop {
            tries += 1;
            self.pacer.wait().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let headers = if url.origin() == self.base.origin() { self.headers.clone() } else { HeaderMap::new() };
            let req = build(self.client.request(method.clone(), url.clone()).headers(headers).query(query));
            // What to do after a failed attempt: wait this long and retry (if the request
            // surely did nothing, or may be repeated), or stop.
            let (wait, last, unsent) = match req.send().await {
                Err(e) => {
                    let unsent = e.is_connect();
                    (None, describe(e), unsent)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match status {
                        s if s.is_success() => match resp.bytes().await {
                            Ok(b) => {
                                let date = headers.get(reqwest::header::DATE).and_then(|d| d.to_str().ok());
                                if let Some(t) = date.and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()) {
                                    self.server_time.store(t.timestamp(), Ordering::Relaxed);
                                }
                                return Ok(b.to_vec());
                            }
                            Err(e) => (None, describe(e), false),
                        },
                        s if s.is_redirection() && method == Method::GET && redirects < 10 => {
                            let next = headers
                                .get(reqwest::header::LOCATION)
                                .and_then(|l| l.to_str().ok())
                                .and_then(|l| url.join(l).ok())
                                .ok_or_else(|| HttpError::Status {
                                    what: what.clone(),
                                    status: s.as_u16(),
                                    body: "a redirect without a usable Location".into(),
                                })?;
                            url = next;
                            redirects += 1;
                            tries -= 1;
                            continue;
                        }
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            return Err(HttpError::Refused {
                                what,
                                status: status.as_u16(),
                                hint: self.auth_hint.clone(),
                            });
                        }
                        StatusCode::NOT_FOUND => return Err(HttpError::NotFound { what }),
                        StatusCode::TOO_MANY_REQUESTS => {
                            let wait = retry_after(&headers).unwrap_or(Duration::from_secs(1));
                            self.pacer.hold_until(Instant::now() + wait).await;
                            (Some(Duration::ZERO), format!("HTTP 429, told to wait {} s", wait.as_secs_f32()), true)
                        }
                        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                            (None, format!("HTTP {}", s.as_u16()), false)
                        }
                        s => {
                            let body = resp.text().await.unwrap_or_default();
                            return Err(HttpError::Status {
                                what,
                                status: s.as_u16(),
                                body: body.chars().take(300).collect(),
                            });
                        }
                    }
                }
            };
            if !idempotent && !unsent {
                let last = format!("{last}; not sent again, as the app may have acted on it: check before retrying");
                return Err(HttpError::GaveUp { what, tries, secs: started.elapsed().as_secs(), last });
            }
            let wait = wait.unwrap_or_else(|| backoff(tries));
            if started.elapsed() + wait > self.limits.give_up_after {
                return Err(HttpError::GaveUp { what, tries, secs: started.elapsed().as_secs(), last });
            }
            tracing::debug!("{what}: {last}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }
}

/// 0.5 s, 1 s, 2 s, ... up to 30 s, each with up to half again of random jitter.
fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.pow(tries.saturating_sub(1).min(6));
    let base = base.min(Duration::from_secs(30));
    base + base.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

/// How long a 429 says to wait: Retry-After (seconds or an HTTP date), or the
/// X-RateLimit-Reset time (Unix seconds) that some apps send instead.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    if let Some(v) = h.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        if let Ok(secs) = v.trim().parse::<f64>() {
            return Some(Duration::from_secs_f64(secs.max(0.0)));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc2822(v) {
            return Some((t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default());
        }
    }
    let reset = h.get("x-ratelimit-reset").and_then(|v| v.to_str().ok())?.trim().parse::<i64>().ok()?;
    // Some apps give milliseconds.
    let reset_ms = if reset > 100_000_000_000 { reset } else { reset * 1000 };
    let now_ms = chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis((reset_ms - now_ms).max(0) as u64))
}

/// A transport error in words, without the URL's query (which may carry a key).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut off"
    } else {
        "request failed"
    };
    format!("{kind} ({})", e.without_url())
}
