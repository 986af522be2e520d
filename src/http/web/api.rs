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
use serde::Deserialize;
use serde_json::json;

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
    ("GET", "/api/v1/orgs/{org}/audit"),
    ("GET", "/api/v1/orgs/{org}/archives"),
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
        .route("/api/v1/orgs/{org}/audit", get(audit))
        .route("/api/v1/orgs/{org}/archives", get(archives))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError(WebError::NotFound)
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
    ok(json!({
        "actor": who.actor,
        "role": who.role,
        "org": who.org,
        "second_factor": who.totp_enrolled,
        "csrf_token": if csrf.is_empty() { None } else { Some(csrf) },
    }))
}

async fn orgs(State(s): S, headers: HeaderMap) -> ApiResult {
    let who = auth::who(&s, &headers).await?;
    ok(json!({ "orgs": views::orgs(&s, &who).await? }))
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
            super::audit(&s, Some(&org), &who.actor, "backup-now", &format!("job {}", job.id)).await;
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
    ok(json!({ "types": types }))
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    version: Option<i64>,
    #[serde(default)]
    again: bool,
    code: Option<String>,
    password: Option<String>,
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
    auth::verify_identity(&s, &who, &Proof { code: b.code, password: b.password }).await?;
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

async fn archives(State(s): S, Path(org): Path<String>, headers: HeaderMap) -> ApiResult {
    auth::org_access(&s, &headers, &org).await?;
    let a =
        s.web.archives.clone().ok_or_else(|| WebError::Refused("archives are not available on this server".into()))?;
    ok(json!({ "archives": a.list(&org).await.map_err(WebError::from)?, "next_cursor": null }))
}
