//! `/api/v1`: the pages' views as JSON (schemas/openapi.json documents every route). A
//! request is signed in by an org's API token (`Authorization: Bearer dbk_...`) or by the
//! dashboard's session cookie, which then needs the `X-CSRF-Token` header on every
//! state-changing call. Errors are `{"error": {"status", "message"}}`; lists page with an
//! opaque `cursor` (`next_cursor` in each answer, none on the last page).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::archives;
use super::auth::{self, CSRF_HEADER, Proof};
use super::views::{self, DeletedQuery, LogQuery};
use super::{ApiError, WebError};
use crate::http::HttpState;

type S = State<Arc<HttpState>>;
type ApiResult = Result<Response, ApiError>;

/// Every route, as schemas/openapi.json documents it (a test holds them equal).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs/{org}/overview"),
    ("POST", "/api/v1/orgs/{org}/backup-now"),
    ("GET", "/api/v1/orgs/{org}/snapshots"),
    ("GET", "/api/v1/orgs/{org}/types/{ty}/cycles/{cycle}/records"),
    ("GET", "/api/v1/orgs/{org}/types/{ty}/records/{sid}"),
    ("POST", "/api/v1/orgs/{org}/types/{ty}/records/{sid}/restore"),
    ("GET", "/api/v1/orgs/{org}/deleted"),
    ("GET", "/api/v1/orgs/{org}/logs"),
    ("GET", "/api/v1/orgs/{org}/jobs"),
    ("GET", "/api/v1/orgs/{org}/jobs/{id}"),
    ("GET", "/api/v1/orgs/{org}/audit"),
    ("GET", "/api/v1/orgs/{org}/archives"),
    ("POST", "/api/v1/orgs/{org}/archives"),
    ("GET", "/api/v1/orgs/{org}/archives/quote"),
    ("GET", "/api/v1/orgs/{org}/archives/{id}"),
    ("POST", "/api/v1/orgs/{org}/archives/{id}/rename"),
    ("GET", "/api/v1/orgs/{org}/archives/{id}/download"),
    ("POST", "/api/v1/orgs/{org}/archives/{id}/delete"),
];

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/orgs", get(orgs))
        .route("/api/v1/orgs/{org}/overview", get(overview))
        .route("/api/v1/orgs/{org}/backup-now", post(backup_now))
        .route("/api/v1/orgs/{org}/snapshots", get(snapshots))
        .route("/api/v1/orgs/{org}/types/{ty}/cycles/{cycle}/records", get(records))
        .route("/api/v1/orgs/{org}/types/{ty}/records/{sid}", get(record))
        .route("/api/v1/orgs/{org}/types/{ty}/records/{sid}/restore", post(restore))
        .route("/api/v1/orgs/{org}/deleted", get(deleted))
        .route("/api/v1/orgs/{org}/logs", get(logs))
        .route("/api/v1/orgs/{org}/jobs", get(jobs))
        .route("/api/v1/orgs/{org}/jobs/{id}", get(job))
        .route("/api/v1/orgs/{org}/audit", get(audit))
        .route("/api/v1/orgs/{org}/archives", get(archives).post(order_archive))
        .route("/api/v1/orgs/{org}/archives/quote", get(archive_quote))
        .route("/api/v1/orgs/{org}/archives/{id}", get(archive))
        .route("/api/v1/orgs/{org}/archives/{id}/rename", post(rename_archive))
        .route("/api/v1/orgs/{org}/archives/{id}/download", get(download_archive))
        .route("/api/v1/orgs/{org}/archives/{id}/delete", post(delete_archive))
}

/// Who the request is signed in as.
#[derive(Serialize, JsonSchema)]
pub struct Me {
    /// A user's email, or "token NAME".
    pub actor: String,
    pub role: auth::Role,
    /// The user's org; none for an operator, who sees every org.
    pub org: Option<String>,
    pub second_factor: bool,
    /// What a session sends as X-CSRF-Token on each state-changing call (none for a token).
    pub csrf_token: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Orgs {
    pub orgs: Vec<views::OrgSummary>,
}

/// Per data type, one row per day, newest first.
#[derive(Serialize, JsonSchema)]
pub struct Snapshots {
    pub types: Vec<views::TypeDays>,
}

/// A signed link that downloads the archive's part (also in Location).
#[derive(Serialize, JsonSchema)]
pub struct DownloadLink {
    pub url: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ArchiveDeleted {
    /// The archive's id.
    pub deleted: i64,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError(WebError::BadRequest(format!("query: {}", e.body_text()))))
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    let b = if b.is_empty() { &b"{}"[..] } else { &b[..] };
    serde_json::from_slice(b).map_err(|e| ApiError(WebError::BadRequest(format!("request body: {e}"))))
}

fn csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

fn ok<T: serde::Serialize>(v: T) -> ApiResult {
    let mut r = Json(v).into_response();
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
    Ok(r)
}

async fn me(State(s): S, headers: HeaderMap) -> ApiResult {
    let who = auth::who(&s, &headers).await?;
    let csrf = who.csrf();
    ok(Me {
        csrf_token: if csrf.is_empty() { None } else { Some(csrf.to_string()) },
        actor: who.actor,
        role: who.role,
        org: who.org,
        second_factor: who.totp_enrolled,
    })
}

async fn orgs(State(s): S, headers: HeaderMap) -> ApiResult {
    let who = auth::who(&s, &headers).await?;
    ok(Orgs { orgs: views::orgs(&s, &who).await? })
}

async fn overview(State(s): S, Path(org): Path<String>, headers: HeaderMap) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(views::overview(&s, &org).await?)
}

async fn backup_now(State(s): S, Path(org): Path<String>, headers: HeaderMap) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(csrf(&headers))?;
    let jobs = s.web.jobs.clone().ok_or_else(|| {
        WebError::Refused("this server runs no backups: `daybook daemon` serves \"Back up now\"".into())
    })?;
    match jobs.backup_now(&org, &who.actor).await.map_err(WebError::from)? {
        Ok(job) => {
            super::audit(&s, Some(&org), &who.actor, "backup-now", &format!("jobs {:?}", job.jobs)).await;
            ok(job)
        }
        Err(why) => Err(WebError::Refused(why).into()),
    }
}

#[derive(Deserialize, Default)]
struct SnapQuery {
    #[serde(rename = "type")]
    ty: Option<i64>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn snapshots(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<SnapQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    let only = match q.ty {
        Some(t) => Some(views::org_type(&s, &org, t).await?.id),
        None => None,
    };
    if q.cursor.is_some() && only.is_none() {
        return Err(WebError::BadRequest("a cursor pages one data type's days: pass type=ID with it".into()).into());
    }
    let after = views::parse_cursor(q.cursor.as_deref())?;
    let types = views::snapshots(&s, &org, only, after.as_deref(), views::limit(q.limit)?).await?;
    ok(Snapshots { types })
}

#[derive(Deserialize, Default)]
struct RecordsQuery {
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn records(
    State(s): S,
    Path((org, ty, cycle)): Path<(String, i64, i64)>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    let t = views::org_type(&s, &org, ty).await?;
    let after = views::parse_cursor(q.cursor.as_deref())?;
    ok(views::records_at(&s, &org, &t, cycle, q.q.as_deref(), after.as_deref(), views::limit(q.limit)?).await?)
}

#[derive(Deserialize, Default)]
struct RecordQuery {
    v: Option<u32>,
    from: Option<u32>,
}

async fn record(
    State(s): S,
    Path((org, ty, sid)): Path<(String, i64, String)>,
    q: Result<Query<RecordQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    let t = views::org_type(&s, &org, ty).await?;
    ok(views::record(&s, &org, &t, &sid, q.v, q.from).await?)
}

/// Which version to restore (the last with content by default), and the proof of identity:
/// the second factor's code, or the password when none is enrolled.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub version: Option<i64>,
    /// Restore although a copy was made already.
    #[serde(default)]
    pub again: bool,
    pub code: Option<String>,
    pub password: Option<String>,
}

async fn restore(
    State(s): S,
    Path((org, ty, sid)): Path<(String, i64, String)>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(csrf(&headers))?;
    let b: RestoreBody = body(&b)?;
    let t = views::org_type(&s, &org, ty).await?;
    auth::verify_identity(&s, &who, &Proof { code: b.code, password: b.password }, "restore").await?;
    ok(views::restore(&s, &who, &org, &t, &sid, b.version, b.again).await?)
}

async fn deleted(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<DeletedQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(views::deleted(&s, &org, &query(q)?).await?)
}

async fn logs(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(views::logs(&s, &org, &query(q)?).await?)
}

async fn jobs(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(views::jobs(&s, &org, &query(q)?).await?)
}

async fn job(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(views::job(&s, &org, id).await?)
}

#[derive(Deserialize, Default)]
struct CursorQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn audit(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<CursorQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    ok(views::audit(&s, &org, q.cursor.as_deref(), q.limit).await?)
}

async fn archives(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<CursorQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    ok(archives::list(&s, &org, q.cursor.as_deref(), views::limit(q.limit)?).await?)
}

#[derive(Deserialize, Default)]
struct QuoteQuery {
    day: Option<String>,
    #[serde(default)]
    history: bool,
}

async fn archive_quote(
    State(s): S,
    Path(org): Path<String>,
    q: Result<Query<QuoteQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let q = query(q)?;
    ok(archives::quote(&s, &org, q.day.as_deref(), q.history).await?)
}

async fn order_archive(State(s): S, Path(org): Path<String>, headers: HeaderMap, b: Bytes) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(csrf(&headers))?;
    let o: archives::Order = body(&b)?;
    let mut r = Json(archives::order(&s, &who, &org, &o).await?).into_response();
    *r.status_mut() = axum::http::StatusCode::ACCEPTED;
    Ok(r)
}

async fn archive(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    ok(archives::show(&s, &org, id).await?)
}

async fn rename_archive(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap, b: Bytes) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(csrf(&headers))?;
    let r: archives::Rename = body(&b)?;
    ok(archives::rename(&s, &who, &org, id, &r).await?)
}

#[derive(Deserialize, Default)]
struct PartQuery {
    part: Option<i64>,
}

/// `303 See Other` to a fresh signed link (`/downloads/...`), its URL also in the body.
async fn download_archive(
    State(s): S,
    Path((org, id)): Path<(String, i64)>,
    q: Result<Query<PartQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let part = query(q)?.part.unwrap_or(1);
    let url = archives::download(&s, &who, &org, id, part).await?;
    let mut r = Json(DownloadLink { url: url.clone() }).into_response();
    *r.status_mut() = axum::http::StatusCode::SEE_OTHER;
    r.headers_mut().insert(axum::http::header::LOCATION, url.parse().map_err(anyhow::Error::from)?);
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
    Ok(r)
}

/// The proof of identity: the second factor's code, or the password when none is enrolled.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    pub code: Option<String>,
    pub password: Option<String>,
}

async fn delete_archive(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap, b: Bytes) -> ApiResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(csrf(&headers))?;
    let b: ProofBody = body(&b)?;
    archives::delete(&s, &who, &org, id, &Proof { code: b.code, password: b.password }).await?;
    ok(ArchiveDeleted { deleted: id })
}
