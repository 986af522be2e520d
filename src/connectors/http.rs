//! What every app connector needs from HTTP, written once: the config keys every app source
//! shares (parsed once, one meaning each); a client made at first use (only then are the
//! credentials read); a pacer that keeps under the app's rate limit before being told;
//! retries of 429 (waiting as Retry-After or X-RateLimit-Reset says, measured against the
//! answer's own Date), of 5xx, timeouts and cut-off bodies (exponential backoff with
//! jitter), all within `give_up_after_seconds`; downloads streamed to the engine, resumed
//! with `Range` after a cut; and typed errors that name the request and say what the app
//! said, never a body, a record's content or a credential.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncRead;
use tokio::sync::{Mutex, OnceCell};
use zeroize::Zeroizing;

use super::SourceError;
use super::scope::Scope;
use super::secret::SecretRef;
use crate::config::SourceConfig;

/// An app's limits, as its documentation gives them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// At most `requests` requests per `per`.
    pub requests: u32,
    pub per: Duration,
    /// Give up on a request that still fails after this long (retries and waits included).
    pub give_up_after: Duration,
    /// How long an answer (or, for a download, its next bytes) may take.
    pub timeout: Duration,
}

/// The defaults of the shared keys, the same for every app.
pub const GIVE_UP_AFTER_SECONDS: u64 = 600;
pub const TIMEOUT_SECONDS: u64 = 120;
pub const OVERLAP_SECONDS: u64 = 600;

/// What differs per app among the shared keys: where it is, what its credential is called,
/// and the rate its documentation allows.
pub struct AppDefaults {
    pub base_url: &'static str,
    /// The credential in messages ("Trello token") and its default variable.
    pub token_what: &'static str,
    pub token_env: &'static str,
    pub requests_per_minute: u32,
}

/// The keys every app source takes, with one meaning each, parsed once.
#[derive(Debug, Clone)]
pub struct HttpSourceOptions {
    /// The API's root, ending in `/`.
    pub base_url: reqwest::Url,
    pub token: SecretRef,
    pub scope: Scope,
    pub requests_per_minute: u32,
    pub give_up_after: Duration,
    pub timeout: Duration,
    /// How far before the last cycle's cursor the next read of changes starts.
    pub overlap: Duration,
}

/// The shared keys; each app's own keys are parsed from what is left.
pub const SHARED_KEYS: &[&str] = &[
    "base_url",
    "token_env",
    "token_file",
    "include",
    "exclude",
    "requests_per_minute",
    "give_up_after_seconds",
    "timeout_seconds",
    "overlap_seconds",
];

/// Keys of earlier releases, with what one of them is in requests a minute.
const RENAMED: &[(&str, u64)] = &[("requests_per_10s", 6), ("requests_per_second", 60)];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    base_url: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    requests_per_minute: Option<u32>,
    give_up_after_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    overlap_seconds: Option<u64>,
}

impl HttpSourceOptions {
    /// Takes the shared keys out of a source's table and parses the rest as the app's own
    /// keys (`T`, with `deny_unknown_fields`), every error naming the config line.
    pub fn parse<T: DeserializeOwned>(src: &SourceConfig, d: &AppDefaults) -> anyhow::Result<(Self, T)> {
        let mut own = src.clone();
        let mut shared = toml::Table::new();
        for k in SHARED_KEYS {
            if let Some(v) = own.options.remove(*k) {
                shared.insert(k.to_string(), v);
            }
        }
        for (old, per_minute) in RENAMED {
            if let Some(v) = own.options.get(*old) {
                let hint = match v.as_integer() {
                    Some(n) if n > 0 => format!("requests_per_minute = {}", n as u64 * per_minute),
                    _ => "requests_per_minute = <requests a minute>".into(),
                };
                return Err(super::config_error(
                    src,
                    &format!("{old} is no longer read: every app's rate is now in requests a minute; write {hint}"),
                ));
            }
        }
        let s: Shared = toml::Value::Table(shared)
            .try_into()
            .map_err(|e: toml::de::Error| super::config_error(src, e.message()))?;
        let own: T = super::parse_options(&own).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown field") {
                anyhow::anyhow!("{msg}; or one of the keys every app source takes: {}", SHARED_KEYS.join(", "))
            } else {
                e
            }
        })?;
        let mut base = s.base_url.unwrap_or_else(|| d.base_url.to_string());
        if !base.ends_with('/') {
            base.push('/');
        }
        let base_url = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| super::config_error(src, &format!("base_url {base:?} is not an http(s) URL")))?;
        let rpm = s.requests_per_minute.unwrap_or(d.requests_per_minute);
        if rpm == 0 {
            return Err(super::config_error(src, "requests_per_minute must be at least 1"));
        }
        let timeout = s.timeout_seconds.unwrap_or(TIMEOUT_SECONDS);
        if timeout == 0 {
            return Err(super::config_error(src, "timeout_seconds must be at least 1"));
        }
        let file = s.token_file.as_deref().map(|f| src.resolve(f));
        let opts = HttpSourceOptions {
            base_url,
            token: SecretRef::new(d.token_what, "token", s.token_env.as_deref(), d.token_env, file.as_deref()),
            scope: Scope { include: s.include, exclude: s.exclude },
            requests_per_minute: rpm,
            give_up_after: Duration::from_secs(s.give_up_after_seconds.unwrap_or(GIVE_UP_AFTER_SECONDS)),
            timeout: Duration::from_secs(timeout),
            overlap: Duration::from_secs(s.overlap_seconds.unwrap_or(OVERLAP_SECONDS)),
        };
        Ok((opts, own))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            requests: self.requests_per_minute,
            per: Duration::from_secs(60),
            give_up_after: self.give_up_after,
            timeout: self.timeout,
        }
    }

    pub fn overlap_secs(&self) -> i64 {
        self.overlap.as_secs() as i64
    }
}

/// Whether an app's error answer is about the credentials, where its status alone does not
/// say (ClickUp's OAUTH_* codes): given the status and the app's error code.
pub type Judge = fn(u16, Option<&str>) -> Option<bool>;

/// Credentials as headers, made when first needed.
pub type Credentials = Box<dyn Fn() -> Result<Vec<(&'static str, Zeroizing<String>)>, SourceError> + Send + Sync>;

/// The client of one source, made at its first request: only then are the credentials read,
/// so checking a config needs none.
pub struct LazyHttp {
    base: reqwest::Url,
    limits: Limits,
    hint: String,
    judge: Option<Judge>,
    credentials: Credentials,
    cell: OnceCell<Http>,
}

impl LazyHttp {
    /// `hint` says where the credentials come from ("the Trello token in $TRELLO_TOKEN").
    pub fn new(opts: &HttpSourceOptions, hint: String, credentials: Credentials) -> LazyHttp {
        LazyHttp {
            base: opts.base_url.clone(),
            limits: opts.limits(),
            hint,
            judge: None,
            credentials,
            cell: OnceCell::new(),
        }
    }

    /// One header carrying the source's token as it is.
    pub fn with_token(opts: &HttpSourceOptions, header: &'static str) -> LazyHttp {
        let token = opts.token.clone();
        LazyHttp::new(opts, token.hint(), Box::new(move || Ok(vec![(header, token.read()?)])))
    }

    pub fn judge(mut self, judge: Judge) -> LazyHttp {
        self.judge = Some(judge);
        self
    }

    pub async fn get(&self) -> Result<&Http, SourceError> {
        self.cell
            .get_or_try_init(|| async {
                let creds = (self.credentials)()?;
                let headers: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let mut http = Http::new(self.base.as_str(), &headers, &self.hint, self.limits.clone())?;
                if let Some(j) = self.judge {
                    Arc::get_mut(&mut http.inner).expect("not shared yet").judge = j;
                }
                Ok(http)
            })
            .await
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// Requests sent so far (0 before the first).
    pub fn requests(&self) -> u64 {
        self.cell.get().map_or(0, Http::requests)
    }

    /// Of them, those answered 429.
    pub fn rate_limited(&self) -> u64 {
        self.cell.get().map_or(0, Http::rate_limited)
    }
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

struct Inner {
    client: reqwest::Client,
    base: reqwest::Url,
    headers: HeaderMap,
    /// Where the credentials come from, for the message when they are refused.
    auth_hint: String,
    judge: Judge,
    pacer: Pacer,
    limits: Limits,
    requests: AtomicU64,
    /// Of them, those the app answered 429 (rate limited).
    rate_limited: AtomicU64,
    /// The app's clock (its Date header, Unix seconds) at its last answer; 0 before any.
    server_time: AtomicI64,
}

/// A paced, retrying client of one app (cheap to clone: a download holds one).
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

/// Counts one request's attempts against the give-up bound.
struct Attempts {
    what: String,
    started: Instant,
    tries: u32,
    bound: Duration,
}

impl Attempts {
    fn new(what: String, bound: Duration) -> Attempts {
        Attempts { what, started: Instant::now(), tries: 0, bound }
    }

    fn gave_up(&self, last: String) -> SourceError {
        SourceError::GaveUp { what: self.what.clone(), tries: self.tries, secs: self.started.elapsed().as_secs(), last }
    }

    /// After a failed attempt: how long to wait before the next one (`told` when the app
    /// said), or the error to give up with when that would pass the bound.
    fn next_wait(&self, last: String, told: Option<Duration>) -> Result<Duration, SourceError> {
        let wait = told.unwrap_or_else(|| backoff(self.tries));
        if self.started.elapsed() + wait <= self.bound {
            return Ok(wait);
        }
        let bound = self.bound.as_secs();
        Err(self.gave_up(match told {
            Some(w) if w > self.bound => {
                format!("{last}: told to wait {}, more than give_up_after_seconds = {bound}", secs(w))
            }
            Some(w) => format!("{last}: told to wait {}, past give_up_after_seconds = {bound}", secs(w)),
            None => last,
        }))
    }
}

fn secs(d: Duration) -> String {
    if d >= LONGEST_WAIT {
        format!("{} s or more", LONGEST_WAIT.as_secs())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// What a checked file download needs to know.
pub struct Expect<'a> {
    /// The file's name, for the check that an HTML answer is not the file.
    pub name: &'a str,
    /// The size the app lists: a body shorter or longer is an error, never a stored file.
    pub size: Option<u64>,
    /// An app's own sign of "this answer is not the file", given the first bytes and
    /// whether they are the whole body (Trello's short "unauthorized" text).
    pub sniff: Option<Sniff>,
}

/// Why the first bytes of a download are not the file, if they are not: given them and
/// whether they are the whole body.
pub type Sniff = fn(&[u8], bool) -> Option<String>;

/// How many first bytes of a download are looked at before any is handed on.
const SNIFF: usize = 4096;

impl Http {
    /// `secret_headers` carry the credentials: they are marked sensitive so that no debug
    /// output shows them.
    pub fn new(
        base: &str,
        secret_headers: &[(&str, &str)],
        auth_hint: &str,
        limits: Limits,
    ) -> Result<Http, SourceError> {
        let base = reqwest::Url::parse(base).map_err(|e| SourceError::Config(format!("base URL {base:?}: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in secret_headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| SourceError::Config(format!("header {k}: {e}")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                SourceError::Config(format!("the credential for header {k} has characters a header cannot carry"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        // Redirects are followed by hand: reqwest keeps custom credential headers (xc-token)
        // on a redirect to another host. No total timeout on the client: a download may
        // take long, but never stall for longer than the timeout.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.timeout)
            .read_timeout(limits.timeout)
            .user_agent(concat!("daybook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config(format!("the HTTP client: {e}")))?;
        // Apps count requests where they arrive, and the network delays some more than
        // others: a 4% margin keeps a late request from landing inside the next window.
        let interval = (limits.per / limits.requests.max(1)).mul_f64(1.04);
        Ok(Http {
            inner: Arc::new(Inner {
                client,
                base,
                headers,
                auth_hint: auth_hint.to_string(),
                judge: |_, _| None,
                pacer: Pacer { interval, next: Mutex::new(Instant::now()) },
                limits,
                requests: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                server_time: AtomicI64::new(0),
            }),
        })
    }

    /// Requests sent so far (every attempt counts), for benchmarks and the cycle's log.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Requests the app answered 429 so far (each was waited out or gave up).
    pub fn rate_limited(&self) -> u64 {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    /// The app's own clock at its last answer, from the Date header. "Changed since" cursors
    /// taken from it do not depend on this machine's clock.
    pub fn server_time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.inner.server_time.load(Ordering::Relaxed), 0).filter(|t| t.timestamp() > 0)
    }

    pub fn url(&self, path: &str) -> Result<reqwest::Url, SourceError> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| SourceError::Config(format!("a path or link that is not a URL ({e})")))
    }

    /// GET a JSON document.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, SourceError> {
        let bytes = self.send(Method::GET, path, query, None).await?;
        decode(&format!("GET {}", self.shown(path)), &bytes)
    }

    /// One request with an optional JSON body; see `send_with`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, SourceError> {
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
    ) -> Result<Vec<u8>, SourceError> {
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
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync,
    ) -> Result<Vec<u8>, SourceError> {
        let url = self.url(path)?;
        let what = format!("{method} {}", self.shown(path));
        let mut att = Attempts::new(what, self.inner.limits.give_up_after);
        let timeout = self.inner.limits.timeout;
        loop {
            let resp = self.exchange(&method, url.clone(), query, &build, &mut att, None, Some(timeout)).await?;
            match resp.bytes().await {
                Ok(b) => return Ok(b.to_vec()),
                // A cut-off body is never taken as whole: asked again (a POST's answer
                // being cut means it reached the app, so it is not sent again).
                Err(e) => {
                    let last = describe(e);
                    if !idempotent(&method) {
                        return Err(att.gave_up(not_again(last)));
                    }
                    let wait = att.next_wait(last, None)?;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A file's bytes from its download link, which messages call `label` (the link itself
    /// is often a credential), streamed: the first bytes are checked (an error or sign-in
    /// page is not the file), the size at the end (a short or long body is an error), a
    /// transient failure mid-body resumes with `Range` within the give-up bound. Nothing is
    /// held but the piece in flight.
    pub async fn download(
        &self,
        link: &str,
        label: &str,
        expect: Expect<'_>,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, SourceError> {
        let url = self.url(link)?;
        let mut att = Attempts::new(format!("GET {label}"), self.inner.limits.give_up_after);
        let resp = self.exchange(&Method::GET, url.clone(), &[], &|r| r, &mut att, None, None).await?;
        let mut dl = Download {
            http: self.clone(),
            url,
            label: label.to_string(),
            resp: Some(resp),
            got: 0,
            skip: 0,
            // Checked once the first bytes are: an error page says more than "too long".
            expected: None,
            att,
        };
        // The first bytes, before any is handed on.
        let mut head = Vec::new();
        let mut whole = false;
        while head.len() <= SNIFF {
            match dl.next().await? {
                Some(b) => head.extend_from_slice(&b),
                None => {
                    whole = true;
                    break;
                }
            }
        }
        let bad = |why: String| SourceError::BadFile { what: format!("attachment {}", expect.name), why };
        if let Some(why) = expect.sniff.and_then(|s| s(&head[..head.len().min(SNIFF)], whole)) {
            return Err(bad(why));
        }
        if let Some(why) = super::not_the_file(expect.name, &head) {
            return Err(bad(why.into()));
        }
        dl.expected = expect.size;
        match expect.size {
            Some(n) if dl.got > n => {
                return Err(dl.bad(format!("the download is longer than the {n} bytes the app lists")));
            }
            Some(n) if whole && dl.got != n => {
                return Err(dl.bad(format!("the download gave {} bytes where the app lists {n}", dl.got)));
            }
            _ => {}
        }
        let first = Bytes::from(head);
        let stream = futures::stream::try_unfold((Some(first), dl), |(first, mut dl)| async move {
            if let Some(f) = first.filter(|f| !f.is_empty()) {
                return Ok(Some((f, (None, dl))));
            }
            Ok(dl.next().await?.map(|b| (b, (None, dl))))
        });
        let stream = futures::TryStreamExt::map_err(stream, |e: SourceError| std::io::Error::other(e));
        Ok(Box::new(tokio_util::io::StreamReader::new(Box::pin(stream))))
    }

    /// What a path or link is called in messages: never its query (a signed link's query
    /// is a credential).
    fn shown(&self, path: &str) -> String {
        match self.url(path) {
            Ok(u) if u.origin() == self.inner.base.origin() => u.path().to_string(),
            Ok(u) => format!("{}{}", u.host_str().unwrap_or_default(), u.path()),
            Err(_) => "(a link that is not a URL)".into(),
        }
    }

    /// Sends until an answer with a 2xx status arrives (its body unread), following
    /// redirects by hand, waiting out 429s and retrying 5xx and transport failures within
    /// the bound; every other status is a typed error.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        method: &Method,
        mut url: reqwest::Url,
        query: &[(&str, String)],
        build: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
        att: &mut Attempts,
        range_from: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, SourceError> {
        let me = &self.inner;
        let what = att.what.clone();
        let mut redirects = 0u32;
        loop {
            att.tries += 1;
            me.pacer.wait().await;
            me.requests.fetch_add(1, Ordering::Relaxed);
            let headers = if url.origin() == me.base.origin() { me.headers.clone() } else { HeaderMap::new() };
            let mut req = me.client.request(method.clone(), url.clone()).headers(headers).query(query);
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            if let Some(n) = range_from {
                req = req.header(reqwest::header::RANGE, format!("bytes={n}-"));
            }
            let req = build(req);
            // What to do after a failed attempt: wait (as told, or by backoff) and retry,
            // or stop; `unsent` when the request surely did nothing.
            let (told, last, unsent) = match req.send().await {
                Err(e) => {
                    let unsent = e.is_connect();
                    (None, describe(e), unsent)
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        if let Some(t) = answer_time(resp.headers()) {
                            me.server_time.store(t.timestamp(), Ordering::Relaxed);
                        }
                        return Ok(resp);
                    }
                    if status.is_redirection() && *method == Method::GET && redirects < 10 {
                        let next = resp
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .and_then(|l| url.join(l).ok());
                        let Some(next) = next else {
                            return Err(SourceError::Status {
                                what,
                                status: status.as_u16(),
                                app_says: Some("a redirect without a usable Location".into()),
                            });
                        };
                        url = next;
                        redirects += 1;
                        att.tries -= 1;
                        continue;
                    }
                    match status {
                        StatusCode::TOO_MANY_REQUESTS => {
                            me.rate_limited.fetch_add(1, Ordering::Relaxed);
                            let wait = retry_after(resp.headers())
                                .unwrap_or_else(|| backoff(att.tries).max(Duration::from_secs(1)));
                            (Some(wait), "HTTP 429".to_string(), true)
                        }
                        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                            (None, format!("HTTP {}", s.as_u16()), false)
                        }
                        s => return Err(self.refusal(what, s.as_u16(), resp).await),
                    }
                }
            };
            if !idempotent(method) && !unsent {
                return Err(att.gave_up(not_again(last)));
            }
            let wait = att.next_wait(last.clone(), told)?;
            if told.is_some() {
                me.pacer.hold_until(Instant::now() + wait).await;
            }
            tracing::debug!("{what}: {last}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }

    /// A status not worth a retry, as a typed error with what the app said about it.
    async fn refusal(&self, what: String, status: u16, resp: reqwest::Response) -> SourceError {
        let body = read_some(resp, 16 * 1024).await;
        let says = app_says(&body);
        let credentials = (self.inner.judge)(status, says.code.as_deref()).unwrap_or(status == 401);
        let app_says = says.shown();
        match status {
            _ if credentials => SourceError::Refused { what, status, hint: self.inner.auth_hint.clone(), app_says },
            401 | 403 => SourceError::Forbidden { what, status, app_says },
            404 => SourceError::NotFound { what },
            _ => SourceError::Status { what, status, app_says },
        }
    }
}

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::PUT | Method::DELETE)
}

/// A POST that may have reached the app is not sent again: it could act twice (two copies
/// of a restored record).
fn not_again(last: String) -> String {
    format!("{last}; not sent again, as the app may have acted on it: check before retrying")
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| SourceError::bad_data(what, super::error::json_why(&e)))
}

/// At most `max` bytes of a body, for reading an error answer (never more, never kept).
async fn read_some(mut resp: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        match resp.chunk().await {
            Ok(Some(b)) => out.extend_from_slice(&b[..b.len().min(max - out.len())]),
            _ => break,
        }
    }
    out
}

/// An app's words about a failed request: its error code and message fields, as Trello
/// (`{"error": "API_TOO_MANY_CARDS_REQUESTED", "message": ...}`), ClickUp (`{"err": ...,
/// "ECODE": "OAUTH_027"}`) and NocoDB (`{"msg": ...}`) give them, or a short plain-text
/// answer. Never the rest of the body, which may hold what was sent.
#[derive(Debug, Default, PartialEq)]
pub struct AppSays {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl AppSays {
    fn shown(&self) -> Option<String> {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => Some(format!("{c}: {m}")),
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        }
    }
}

pub fn app_says(body: &[u8]) -> AppSays {
    const MAX: usize = 200;
    let clean = |s: &str| -> Option<String> {
        let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        Some(if s.chars().count() > MAX { format!("{}...", s.chars().take(MAX).collect::<String>()) } else { s.into() })
    };
    let is_code = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) {
        let field = |k: &str| o.get(k).and_then(|v| v.as_str());
        let mut says = AppSays::default();
        for k in ["ECODE", "code", "error"] {
            if let Some(v) = field(k).filter(|v| is_code(v)) {
                says.code = Some(v.to_string());
                break;
            }
        }
        for k in ["message", "err", "msg", "error"] {
            if let Some(v) = field(k).filter(|v| says.code.as_deref() != Some(*v)) {
                says.message = clean(v);
                break;
            }
        }
        return says;
    }
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    let looks_like_markup = t.starts_with('<');
    if !looks_like_markup && !t.contains('\n') && t.chars().count() <= MAX {
        return AppSays { code: None, message: clean(t) };
    }
    AppSays::default()
}

/// A download in flight: the answer being read, and how to resume it.
struct Download {
    http: Http,
    url: reqwest::Url,
    label: String,
    resp: Option<reqwest::Response>,
    /// Bytes handed on so far.
    got: u64,
    /// Bytes of the current answer to drop (a resumed download answered whole).
    skip: u64,
    expected: Option<u64>,
    /// Failures since the last bytes arrived, against the give-up bound.
    att: Attempts,
}

impl Download {
    fn bad(&self, why: String) -> SourceError {
        SourceError::BadFile { what: self.label.clone(), why }
    }

    /// The next bytes, or None at the end (with the size checked).
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError> {
        loop {
            let Some(resp) = self.resp.as_mut() else { return Ok(None) };
            match resp.chunk().await {
                Ok(Some(mut b)) => {
                    if self.skip > 0 {
                        let k = (self.skip as usize).min(b.len());
                        b = b.slice(k..);
                        self.skip -= k as u64;
                    }
                    if b.is_empty() {
                        continue;
                    }
                    self.got += b.len() as u64;
                    if let Some(n) = self.expected.filter(|n| self.got > *n) {
                        return Err(self.bad(format!("the download is longer than the {n} bytes the app lists")));
                    }
                    // Bytes arrived: the bound counts again from here.
                    self.att.started = Instant::now();
                    self.att.tries = 0;
                    return Ok(Some(b));
                }
                Ok(None) => {
                    self.resp = None;
                    if let Some(n) = self.expected.filter(|n| self.got != *n) {
                        return Err(self.bad(format!("the download gave {} bytes where the app lists {n}", self.got)));
                    }
                    return Ok(None);
                }
                Err(e) => {
                    // Cut off: asked again from where it stopped.
                    self.resp = None;
                    self.att.tries += 1;
                    let wait = self.att.next_wait(describe(e), None)?;
                    tokio::time::sleep(wait).await;
                    let from = (self.got > 0).then_some(self.got);
                    let resp = self
                        .http
                        .exchange(&Method::GET, self.url.clone(), &[], &|r| r, &mut self.att, from, None)
                        .await?;
                    // 206 continues where it stopped; a 200 is the whole file again.
                    self.skip = if resp.status() == StatusCode::PARTIAL_CONTENT {
                        let start = resp
                            .headers()
                            .get(reqwest::header::CONTENT_RANGE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("bytes "))
                            .and_then(|v| v.split('-').next()?.trim().parse::<u64>().ok());
                        if start.is_some_and(|s| s != self.got) {
                            return Err(self.bad("the resumed download does not continue where it stopped".into()));
                        }
                        0
                    } else {
                        self.got
                    };
                    self.resp = Some(resp);
                }
            }
        }
    }
}

/// 0.5 s, 1 s, 2 s, ... up to 30 s, each with up to half again of random jitter.
fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.pow(tries.saturating_sub(1).min(6));
    let base = base.min(Duration::from_secs(30));
    base + base.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

/// The longest wait a header can ask for; more is taken as this much (and then the give-up
/// bound decides).
pub const LONGEST_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The answer's own clock (its Date header), to the second.
fn answer_time(h: &HeaderMap) -> Option<DateTime<Utc>> {
    let d = h.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(d.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// How long a 429 says to wait: Retry-After (seconds or an HTTP date), or the
/// X-RateLimit-Reset time (Unix seconds or milliseconds) that some apps send instead. Times
/// are measured against the answer's Date header (the app's clock), not this machine's.
/// Headers are untrusted: nonsense (NaN, negative, garbage) is None (the caller backs off),
/// anything longer than `LONGEST_WAIT` is `LONGEST_WAIT`.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let now_ms = answer_time(h).unwrap_or_else(Utc::now).timestamp_millis();
    let until = |at_ms: f64| {
        let ms = (at_ms - now_ms as f64).clamp(0.0, LONGEST_WAIT.as_millis() as f64);
        Duration::from_millis(ms as u64)
    };
    if let Some(v) = h.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Ok(s) = v.parse::<f64>() {
            return (s >= 0.0).then(|| Duration::from_secs_f64(s.min(LONGEST_WAIT.as_secs_f64())));
        }
        if let Ok(t) = DateTime::parse_from_rfc2822(v) {
            return Some(until(t.timestamp_millis() as f64));
        }
    }
    let reset = h.get("x-ratelimit-reset").and_then(|v| v.to_str().ok())?.trim().parse::<f64>().ok()?;
    if !reset.is_finite() || reset < 0.0 {
        return None;
    }
    // Some apps give milliseconds.
    Some(until(if reset > 1e11 { reset } else { reset * 1000.0 }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_never_panics_and_is_bounded() {
        let ra = |v: &str| retry_after(&headers(&[("retry-after", v)]));
        assert_eq!(ra("2"), Some(Duration::from_secs(2)));
        assert_eq!(ra(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(ra("0"), Some(Duration::ZERO));
        for huge in ["inf", "+inf", "Infinity", "1e400", "1e300", "18446744073709551616", "100000000000"] {
            assert_eq!(ra(huge), Some(LONGEST_WAIT), "{huge}");
        }
        for nonsense in ["nan", "NaN", "-1", "-inf", "soon", "", "1s", "0x10"] {
            assert_eq!(ra(nonsense), None, "{nonsense}");
        }
        assert_eq!(ra("Fri, 31 Dec 9999 23:59:59 GMT"), Some(LONGEST_WAIT), "a far-future date");
        assert_eq!(ra("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO), "a past date");
        // An HTTP date against the answer's own Date, not this machine's clock.
        let h = headers(&[("retry-after", "Wed, 01 Jan 2020 00:00:30 GMT"), ("date", "Wed, 01 Jan 2020 00:00:00 GMT")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
    }

    #[test]
    fn x_ratelimit_reset_is_measured_against_the_answers_date() {
        let date = "Wed, 01 Jan 2020 00:00:00 GMT";
        let at = 1_577_836_800_i64; // that Date, in Unix seconds
        let reset = |v: &str| retry_after(&headers(&[("x-ratelimit-reset", v), ("date", date)]));
        assert_eq!(reset(&(at + 3).to_string()), Some(Duration::from_secs(3)), "seconds");
        assert_eq!(reset(&((at + 3) * 1000 + 250).to_string()), Some(Duration::from_millis(3250)), "milliseconds");
        assert_eq!(reset(&(at - 10).to_string()), Some(Duration::ZERO), "already passed");
        assert_eq!(reset("99999999999999999999999"), Some(LONGEST_WAIT));
        for nonsense in ["-5", "nan", "inf", "tomorrow", ""] {
            assert_eq!(reset(nonsense), None, "{nonsense}");
        }
        // Retry-After nonsense falls back to the reset header.
        let h = headers(&[("retry-after", "soon"), ("x-ratelimit-reset", &(at + 2).to_string()), ("date", date)]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_wait_past_the_bound_gives_up_and_says_why() {
        let att = Attempts::new("GET /api/v2/tables/t1/records".into(), Duration::from_secs(5));
        let e = att.next_wait("HTTP 429".into(), Some(Duration::from_secs(100_000))).unwrap_err();
        assert!(matches!(e, SourceError::GaveUp { .. }));
        assert!(e.to_string().contains("HTTP 429: told to wait 100000 s, more than give_up_after_seconds = 5"), "{e}");
        assert_eq!(att.next_wait("HTTP 429".into(), Some(Duration::from_secs(1))).unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn the_apps_words_not_the_body() {
        let trello = br#"{"error":"API_TOO_MANY_CARDS_REQUESTED","message":"Requested too many cards","card":{"name":"s3cret"}}"#;
        let s = app_says(trello);
        assert_eq!(s.code.as_deref(), Some("API_TOO_MANY_CARDS_REQUESTED"));
        assert_eq!(s.message.as_deref(), Some("Requested too many cards"));
        let clickup = app_says(br#"{"err":"Team not authorized","ECODE":"OAUTH_027"}"#);
        assert_eq!(clickup.shown().as_deref(), Some("OAUTH_027: Team not authorized"));
        assert_eq!(app_says(b"invalid value for filter").shown().as_deref(), Some("invalid value for filter"));
        assert_eq!(app_says(b"<html><body>s3cret</body></html>"), AppSays::default());
        assert_eq!(app_says("line one\nline two s3cret".as_bytes()), AppSays::default());
        assert_eq!(app_says(&[b'x'; 5000]), AppSays::default());
    }
}
