//! The org admins' dashboard (server-rendered HTML, `pages`) and the JSON API under it
//! (`/api/v1`, `api`), both made from the same views (`views`), which call the same
//! functions as the CLI. Who may see what is decided in `auth`: an org's admins see that org,
//! operators every org, an API token its org; anything else answers 404, as if it did not
//! exist.
//!
//! Seams for the parts built elsewhere: `Jobs` (the daemon's queue: "Back up now", the next
//! run) and `Archives` (where an archive ordered on the page is built), both optional in
//! `WebState`; the archives' list, pages and acts call `crate::archive` directly (`archives`);
//! `org_access` and `audit` for other handlers (downloads) to check access and record acts.

pub mod api;
pub mod archives;
pub mod auth;
pub mod openapi;
pub mod pages;
pub mod users;
pub mod views;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::HttpState;
use crate::config::SourceConfig;
use crate::connectors::Connector;

/// `engine::Factory`, shareable across the server's threads.
pub type SendFactory = dyn Fn(&SourceConfig) -> anyhow::Result<Box<dyn Connector>> + Send + Sync;

/// The backups queued on request (a job per source).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct JobRef {
    pub jobs: Vec<i64>,
}

/// The daemon's job queue, as the dashboard needs it (wired by `daybook daemon`).
#[async_trait::async_trait]
pub trait Jobs: Send + Sync {
    /// Queues a backup of the org now; `Err(reason)` if refused (within 5 minutes of the
    /// last one, say), the reason as a person reads it.
    async fn backup_now(&self, org: &str, actor: &str) -> anyhow::Result<Result<JobRef, String>>;
    /// When the org's next scheduled backup runs (RFC 3339), if one is scheduled.
    async fn next_run(&self, org: &str) -> anyhow::Result<Option<String>>;
}

/// How an archive the dashboard started (`archive::start`) gets built, away from the request:
/// a queued job under `daybook daemon`, a task of this process under `daybook serve`.
#[async_trait::async_trait]
pub trait Archives: Send + Sync {
    /// `lease` is the build lease `start` took; `at` the day asked for, as given. The job's
    /// id when the build was queued.
    async fn build(
        &self,
        org: &str,
        id: i64,
        at: Option<String>,
        lease: crate::vault::catalog::Lease,
    ) -> anyhow::Result<Option<i64>>;
}

/// What the web needs besides the config and the vault.
pub struct WebState {
    /// Makes the connector a restore goes through (`connectors::build`).
    pub connectors: Box<SendFactory>,
    pub jobs: Option<Arc<dyn Jobs>>,
    pub archives: Option<Arc<dyn Archives>>,
}

impl Default for WebState {
    fn default() -> Self {
        WebState { connectors: Box::new(crate::connectors::build), jobs: None, archives: None }
    }
}

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new().merge(pages::routes()).merge(api::routes()).layer(axum::middleware::from_fn(uniform_errors))
}

/// A refusal of a request for `path`: a JSON error under `/api/`, the error page elsewhere.
fn refusal(path: &str, e: WebError) -> Response {
    if path.starts_with("/api/") { ApiError(e).into_response() } else { PageError(e).into_response() }
}

/// An address that names nothing.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    refusal(uri.path(), WebError::NotFound)
}

/// Whether `path` is one of `pattern`'s (`{name}` matches any one segment).
fn same_route(pattern: &str, path: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
}

/// axum's own refusals (a method a route does not take, an id that is not a number, a query
/// or form that does not parse) come as bare text; they are answered like the handlers' own:
/// JSON under `/api/`, the error page elsewhere, with the same status and what to fix.
async fn uniform_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let r = next.run(req).await;
    let s = r.status();
    let plain = r.headers().get(header::CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(s.is_client_error() || s.is_server_error()) || !plain {
        return r;
    }
    let (parts, body) = r.into_parts();
    let message = if s == StatusCode::METHOD_NOT_ALLOWED {
        // (axum adds its Allow header outside this layer; the API's routes are listed.)
        let allow: Vec<&str> = api::ROUTES.iter().filter(|(_, p)| same_route(p, &path)).map(|(m, _)| *m).collect();
        if allow.is_empty() {
            format!("{method} {path}: this address does not take {method}")
        } else {
            format!("{method} {path}: this address takes {}", allow.join(", "))
        }
    } else {
        let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_string();
        if text.is_empty() { s.canonical_reason().unwrap_or("refused").to_lowercase() } else { text }
    };
    let mut out = refusal(&path, WebError::Status(s, message));
    for h in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

pub use auth::{Who, org_access};

/// Records an act in the org's audit log (sign-ins, restores, archive creations, downloads,
/// deletions). `detail` is sealed with the org's key.
pub async fn audit(state: &HttpState, org: Option<&str>, who: &str, action: &str, detail: &str) {
    if let Err(e) = state.vault.add_audit(org, who, action, detail).await {
        tracing::error!("audit log: cannot record {action} by {who}: {e:#}");
    }
}

/// Why a request is refused. Nothing of another org is ever named: what an admin may not
/// see is `NotFound`, like what does not exist.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("sign in first")]
    SignIn,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the form has expired or did not come from this site: reload the page and try again")]
    Csrf,
    #[error("too many failed attempts; try again in {0} minutes")]
    Limited(u64),
    /// The request was understood but cannot be done (a restore the app refuses, say).
    #[error("{0}")]
    Refused(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
    /// A refusal axum made itself (a method a route does not take, a path or query that does
    /// not parse): its status, and what to fix.
    #[error("{1}")]
    Status(StatusCode, String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::SignIn => StatusCode::UNAUTHORIZED,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden(_) | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Status(s, _) => *s,
        }
    }

    /// What a person reads. An internal error's detail goes to the log only.
    pub fn message(&self) -> String {
        match self {
            WebError::Internal(e) => {
                tracing::error!("web: {e:#}");
                "internal error: the daemon's log has the details".into()
            }
            WebError::NotFound => "not found (or not yours to see)".into(),
            e => e.to_string(),
        }
    }

    fn retry_after(&self, r: &mut Response) {
        if let WebError::Limited(m) = self
            && let Ok(v) = HeaderValue::from_str(&(m * 60).to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
}

/// A refusal answered as JSON: `{"error": {"status": 404, "message": "..."}}`.
pub struct ApiError(pub WebError);

/// Every refusal of the API, whatever its status.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Error {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// The HTTP status, again.
    pub status: u16,
    /// What was refused and what to do about it, as a person reads it.
    pub message: String,
}

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = Error { error: ErrorDetail { status: status.as_u16(), message: self.0.message() } };
        let mut r = (status, Json(body)).into_response();
        self.0.retry_after(&mut r);
        r
    }
}

/// A refusal answered as a page (or, when not signed in, a redirect to the sign-in page).
pub struct PageError(pub WebError);

impl<E: Into<WebError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let WebError::SignIn = self.0 {
            return Redirect::to("/login").into_response();
        }
        let status = self.0.status();
        let ctx = minijinja::context! { status => status.as_u16(), message => self.0.message(), title => "Error" };
        let body = pages::render("error.html", ctx).unwrap_or_else(|_| "error".into());
        let mut r = (status, Html(body)).into_response();
        self.0.retry_after(&mut r);
        r
    }
}
