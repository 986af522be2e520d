//! The dashboard's pages: plain HTML from minijinja templates (autoescaped), a form per act,
//! each form with the session's CSRF token; no script is needed to use any of it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, context};
use serde::Deserialize;

use super::archives;
use super::auth::{self, Proof, Who};
use super::views::{self, DeletedQuery, LogQuery};
use super::{PageError, WebError};
use crate::http::HttpState;

type S = State<Arc<HttpState>>;
type PageResult = Result<Response, PageError>;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("orgs.html", include_str!("templates/orgs.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("snapshots.html", include_str!("templates/snapshots.html")),
    ("records.html", include_str!("templates/records.html")),
    ("record.html", include_str!("templates/record.html")),
    ("recovery.html", include_str!("templates/recovery.html")),
    ("restored.html", include_str!("templates/restored.html")),
    ("logs.html", include_str!("templates/logs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("archives.html", include_str!("templates/archives.html")),
    ("archive_fields.html", include_str!("templates/archive_fields.html")),
    ("archive_new.html", include_str!("templates/archive_new.html")),
    ("archive.html", include_str!("templates/archive.html")),
    ("account.html", include_str!("templates/account.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        // `{{ at | local(org.timezone) }}`: a stored RFC 3339 time as the org's people read it.
        e.add_filter("local", |at: String, tz: String| -> String {
            views::when_str(&at, tz.parse().unwrap_or(chrono_tz::UTC)).local
        });
        // `{{ n | num }}`: a count with its thousands grouped (264,445), as tables are read.
        e.add_filter("num", |n: i64| -> String { grouped(n) });
        for (name, text) in TEMPLATES {
            e.add_template(name, text).expect("the built-in templates parse");
        }
        e
    })
}

fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn sv<T: serde::Serialize>(v: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

pub fn render(name: &str, ctx: minijinja::Value) -> anyhow::Result<String> {
    Ok(env().get_template(name)?.render(ctx)?)
}

fn page(name: &str, ctx: minijinja::Value) -> PageResult {
    let mut r = Html(render(name, ctx)?).into_response();
    // Pages hold an org's data: never cached by a shared cache, never framed.
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
    h.insert("x-frame-options", "DENY".parse().expect("a header value"));
    h.insert("x-content-type-options", "nosniff".parse().expect("a header value"));
    h.insert(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
            .parse()
            .expect("a header value"),
    );
    Ok(r)
}

/// What every page's frame needs: who, the org, the CSRF token for its forms.
fn frame(who: &Who, org: Option<&views::OrgSummary>, nav: &str) -> minijinja::Value {
    context! {
        me => context! { email => who.actor.clone(), role => sv(who.role), second_factor => who.totp_enrolled },
        csrf => who.csrf(),
        org => org.map(sv),
        nav => nav,
        operator => who.role == auth::Role::Operator,
    }
}

fn merge(a: minijinja::Value, b: minijinja::Value) -> minijinja::Value {
    context! { ..a, ..b }
}

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/totp", post(confirm_totp))
        .route("/orgs/{org}", get(overview))
        .route("/orgs/{org}/backup-now", post(backup_now))
        .route("/orgs/{org}/snapshots", get(snapshots))
        .route("/orgs/{org}/types/{ty}/cycles/{cycle}", get(records))
        .route("/orgs/{org}/types/{ty}/records/{sid}", get(record))
        .route("/orgs/{org}/types/{ty}/records/{sid}/restore", post(restore))
        .route("/orgs/{org}/recovery", get(recovery))
        .route("/orgs/{org}/logs", get(logs))
        .route("/orgs/{org}/jobs/{id}", get(job))
        .route("/orgs/{org}/audit", get(audit))
        .route("/orgs/{org}/archives", get(archives).post(order_archive))
        .route("/orgs/{org}/archives/new", get(new_archive))
        .route("/orgs/{org}/archives/{id}", get(archive))
        .route("/orgs/{org}/archives/{id}/rename", post(rename_archive))
        .route("/orgs/{org}/archives/{id}/download", get(download_archive))
        .route("/orgs/{org}/archives/{id}/delete", post(delete_archive))
}

async fn home(State(s): S, headers: HeaderMap) -> PageResult {
    let who = auth::who(&s, &headers).await?;
    if let (Some(org), false) = (&who.org, who.role == auth::Role::Operator) {
        return Ok(Redirect::to(&format!("/orgs/{org}")).into_response());
    }
    let orgs = views::orgs(&s, &who).await?;
    page("orgs.html", merge(frame(&who, None, "orgs"), context! { orgs => sv(&orgs), title => "Organizations" }))
}

async fn login_form(State(s): S, headers: HeaderMap) -> PageResult {
    login_page(&s, &headers, None, "")
}

fn login_page(s: &HttpState, headers: &HeaderMap, error: Option<String>, email: &str) -> PageResult {
    // Keep the pre-sign-in cookie if there is one, so a second tab's form stays valid.
    let pre = match auth::cookie(headers, auth::PRE_COOKIE).filter(|p| p.len() >= 32) {
        Some(p) => p.to_string(),
        None => auth::random_token().to_string(),
    };
    let mut r = page("login.html", context! { csrf => auth::login_csrf(&pre), error, email, title => "Sign in" })?;
    r.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(s, auth::PRE_COOKIE, &pre, 3600).parse().map_err(anyhow::Error::from)?,
    );
    Ok(r)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

async fn login(
    State(s): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> PageResult {
    auth::check_login_csrf(&headers, &f.csrf)?;
    let addr = auth::client_addr(&s, &headers, Some(peer));
    match auth::sign_in(&s, &f.email, &f.password, &addr).await {
        Ok((token, _)) => {
            let mut r = Redirect::to("/").into_response();
            let max_age = s.config.web.session_hours as i64 * 3600;
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                auth::set_cookie(&s, auth::SESSION_COOKIE, &token, max_age).parse().map_err(anyhow::Error::from)?,
            );
            h.append(
                header::SET_COOKIE,
                auth::set_cookie(&s, auth::PRE_COOKIE, "", 0).parse().map_err(anyhow::Error::from)?,
            );
            Ok(r)
        }
        Err(e @ (WebError::Forbidden(_) | WebError::Limited(_))) => {
            let status = e.status();
            let mut r = login_page(&s, &headers, Some(e.message()), &f.email)?;
            *r.status_mut() = status;
            if let WebError::Limited(m) = e {
                r.headers_mut().insert(header::RETRY_AFTER, (m * 60).to_string().parse().map_err(anyhow::Error::from)?);
            }
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(s): S, headers: HeaderMap, Form(f): Form<CsrfForm>) -> PageResult {
    let who = auth::who(&s, &headers).await?;
    who.check_csrf(Some(&f.csrf))?;
    auth::sign_out(&s, &headers).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(&s, auth::SESSION_COOKIE, "", 0).parse().map_err(anyhow::Error::from)?,
    );
    Ok(r)
}

async fn account(State(s): S, headers: HeaderMap) -> PageResult {
    let who = auth::who(&s, &headers).await?;
    account_page(&s, &who, None).await
}

async fn account_page(s: &HttpState, who: &Who, message: Option<String>) -> PageResult {
    let enrollment = match (who.user_id, who.totp_enrolled) {
        (Some(uid), false) => Some(super::users::start_totp(&s.vault, uid).await?),
        _ => None,
    };
    let org = who.org.as_deref().map(|o| views::org_summary(s, o));
    let ctx = context! {
        title => "Account",
        message,
        enrolling => enrollment.is_some(),
        secret => enrollment.as_ref().map(|e| e.secret_base32.clone()),
        qr_svg => enrollment.as_ref().map(|e| minijinja::Value::from_safe_string(e.qr_svg.clone())),
    };
    page("account.html", merge(frame(who, org.as_ref(), "account"), ctx))
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn confirm_totp(State(s): S, headers: HeaderMap, Form(f): Form<CodeForm>) -> PageResult {
    let mut who = auth::who(&s, &headers).await?;
    who.check_csrf(Some(&f.csrf))?;
    let uid = who.user_id.ok_or(WebError::SignIn)?;
    let msg = if super::users::confirm_totp(&s.vault, uid, &f.code).await? {
        who.totp_enrolled = true;
        super::audit(&s, who.org.as_deref(), &who.actor, "second-factor-enrolled", "TOTP").await;
        "Your second factor is enrolled: restores now ask for its code."
    } else {
        "That code is not the current one: check the app's clock and enter the code it shows now."
    };
    account_page(&s, &who, Some(msg.into())).await
}

async fn overview(State(s): S, Path(org): Path<String>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    overview_page(&s, &who, &org, None).await
}

/// The overview, with why "Back up now" was refused when it was (shown beside the button).
async fn overview_page(s: &HttpState, who: &Who, org: &str, refused: Option<String>) -> PageResult {
    let o = views::overview(s, org).await?;
    let ctx = context! { title => "Overview", overview => sv(&o), refused => refused };
    page("overview.html", merge(frame(who, Some(&o.org), "overview"), ctx))
}

async fn backup_now(State(s): S, Path(org): Path<String>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(Some(&f.csrf))?;
    let jobs = s.web.jobs.clone().ok_or_else(|| {
        WebError::Refused(
            "this server runs no backups: \"Back up now\" works when `daybook daemon` serves the page".into(),
        )
    })?;
    match jobs.backup_now(&org, &who.actor).await? {
        Ok(job) => {
            super::audit(&s, Some(&org), &who.actor, "backup-now", &format!("jobs {:?}", job.jobs)).await;
            Ok(Redirect::to(&format!("/orgs/{org}/logs")).into_response())
        }
        Err(why) => overview_page(&s, &who, &org, Some(why)).await,
    }
}

#[derive(Deserialize, Default)]
struct Paging {
    cursor: Option<String>,
    q: Option<String>,
}

async fn snapshots(State(s): S, Path(org): Path<String>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let types = views::snapshots(&s, &org, None, None, 366).await?;
    let summary = views::org_summary(&s, &org);
    let ctx = context! { title => "Snapshots", types => sv(&types) };
    page("snapshots.html", merge(frame(&who, Some(&summary), "snapshots"), ctx))
}

async fn records(
    State(s): S,
    Path((org, ty, cycle)): Path<(String, i64, i64)>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let t = views::org_type(&s, &org, ty).await?;
    let after = views::parse_cursor(p.cursor.as_deref())?;
    let page_ = views::records_at(&s, &org, &t, cycle, p.q.as_deref(), after.as_deref(), views::PAGE).await?;
    let summary = views::org_summary(&s, &org);
    let ctx = context! { title => format!("{} on {}", t.name, page_.taken_at.day), page => sv(&page_) };
    page("records.html", merge(frame(&who, Some(&summary), "snapshots"), ctx))
}

#[derive(Deserialize, Default)]
struct RecordQuery {
    v: Option<u32>,
    from: Option<u32>,
}

async fn record(
    State(s): S,
    Path((org, ty, sid)): Path<(String, i64, String)>,
    Query(q): Query<RecordQuery>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let t = views::org_type(&s, &org, ty).await?;
    let r = views::record(&s, &org, &t, &sid, q.v, q.from).await?;
    let summary = views::org_summary(&s, &org);
    let content = r.content.as_ref().map(|c| serde_json::to_string_pretty(c).unwrap_or_default());
    let ctx = context! {
        title => format!("{} {}", t.name, r.record.source_id),
        r => sv(&r),
        content,
    };
    page("record.html", merge(frame(&who, Some(&summary), "snapshots"), ctx))
}

async fn recovery(
    State(s): S,
    Path(org): Path<String>,
    Query(q): Query<DeletedQuery>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let summary = views::org_summary(&s, &org);
    let (found, error) = match views::deleted(&s, &org, &q).await {
        Ok(f) => (Some(f), None),
        Err(WebError::BadRequest(m)) => (None, Some(m)),
        Err(e) => return Err(e.into()),
    };
    let ctx = context! {
        title => "Recovery",
        found => found.as_ref().map(sv),
        error,
        q => context! { q => q.q, type => q.data_type, since => q.since, until => q.until },
    };
    page("recovery.html", merge(frame(&who, Some(&summary), "recovery"), ctx))
}

#[derive(Deserialize)]
struct RestoreForm {
    csrf: String,
    version: Option<String>,
    code: Option<String>,
    password: Option<String>,
    again: Option<String>,
}

async fn restore(
    State(s): S,
    Path((org, ty, sid)): Path<(String, i64, String)>,
    headers: HeaderMap,
    Form(f): Form<RestoreForm>,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(Some(&f.csrf))?;
    let t = views::org_type(&s, &org, ty).await?;
    let summary = views::org_summary(&s, &org);
    let version = match f.version.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(v.parse::<i64>().map_err(|_| WebError::BadRequest(format!("version {v:?} is not a number")))?),
        None => None,
    };
    let proof = Proof { code: f.code, password: f.password };
    let outcome = match auth::verify_identity(&s, &who, &proof, "restore").await {
        Ok(()) => views::restore(&s, &who, &org, &t, &sid, version, f.again.is_some()).await,
        Err(e) => Err(e),
    };
    let (done, error) = match outcome {
        Ok(d) => (Some(d), None),
        Err(e @ (WebError::Refused(_) | WebError::Forbidden(_) | WebError::BadRequest(_) | WebError::Limited(_))) => {
            (None, Some(e.message()))
        }
        Err(e) => return Err(e.into()),
    };
    let ctx = context! {
        title => "Restore",
        done => done.as_ref().map(sv),
        error,
        sid,
        type_id => ty,
        data_type => t.name,
    };
    let mut r = page("restored.html", merge(frame(&who, Some(&summary), "recovery"), ctx))?;
    if done.is_none() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

#[derive(Deserialize, Default)]
struct LogsPageQuery {
    source: Option<String>,
    result: Option<String>,
    cursor: Option<String>,
    /// The jobs' list pages apart from the cycles' (`cursor`).
    jobs_cursor: Option<String>,
}

async fn logs(State(s): S, Path(org): Path<String>, Query(p): Query<LogsPageQuery>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let q = LogQuery { source: p.source, result: p.result, cursor: p.cursor, limit: None };
    // A result only jobs have (queued, running) shows no cycle.
    let in_cycles = q.result.as_deref().filter(|r| !r.is_empty()).is_none_or(|r| ["ok", "warn", "error"].contains(&r));
    let l = if in_cycles {
        views::logs(&s, &org, &q).await?
    } else {
        views::LogsPage { cycles: Vec::new(), sources: Vec::new(), next_cursor: None }
    };
    let j = views::jobs(&s, &org, &LogQuery { cursor: p.jobs_cursor.clone(), ..q.clone() }).await?;
    let mut sources: Vec<String> = s
        .config
        .orgs
        .iter()
        .filter(|o| o.sid.get_ref() == &org)
        .flat_map(|o| o.sources.iter().map(|src| src.name.get_ref().clone()))
        .chain(l.sources.iter().cloned())
        .collect();
    sources.sort();
    sources.dedup();
    let summary = views::org_summary(&s, &org);
    let ctx = context! {
        title => "Logs",
        logs => sv(&l),
        jobs => sv(&j),
        sources => sources,
        q => context! { source => q.source, result => q.result, cursor => q.cursor, jobs_cursor => p.jobs_cursor },
    };
    page("logs.html", merge(frame(&who, Some(&summary), "logs"), ctx))
}

async fn job(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let j = views::job(&s, &org, id).await?;
    let summary = views::org_summary(&s, &org);
    let ctx = context! { title => format!("Job {id}"), job => sv(&j) };
    page("job.html", merge(frame(&who, Some(&summary), "logs"), ctx))
}

async fn audit(State(s): S, Path(org): Path<String>, Query(p): Query<Paging>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let a = views::audit(&s, &org, p.cursor.as_deref(), None).await?;
    let summary = views::org_summary(&s, &org);
    let ctx = context! { title => "Audit log", audit => sv(&a) };
    page("audit.html", merge(frame(&who, Some(&summary), "audit"), ctx))
}

#[derive(Deserialize, Default)]
struct ArchivesQuery {
    deleted: Option<i64>,
    cursor: Option<String>,
}

async fn archives(
    State(s): S,
    Path(org): Path<String>,
    Query(q): Query<ArchivesQuery>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let list = archives::list(&s, &org, q.cursor.as_deref(), views::PAGE).await?;
    let summary = views::org_summary(&s, &org);
    let message = q.deleted.map(|id| format!("Archive {id} is deleted: its links stop working."));
    let ctx = context! {
        title => "Archives",
        archives => sv(&list),
        days => days(&s, &org).await?,
        form => context! {},
        message,
    };
    page("archives.html", merge(frame(&who, Some(&summary), "archives"), ctx))
}

/// The local days the org has backups of, newest first (what an archive can be made of).
async fn days(s: &HttpState, org: &str) -> Result<Vec<String>, WebError> {
    let mut days: Vec<String> =
        views::snapshots(s, org, None, None, 366).await?.into_iter().flat_map(|t| t.days).map(|d| d.day).collect();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    Ok(days)
}

/// The add-archive form as sent (a checkbox is absent when unticked).
#[derive(Deserialize, Default, Clone)]
struct OrderForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    description: Option<String>,
    day: Option<String>,
    history: Option<String>,
    accept_price: Option<f64>,
}

impl OrderForm {
    fn order(&self) -> archives::Order {
        archives::Order {
            name: self.name.clone(),
            description: self.description.clone(),
            day: self.day.clone(),
            history: self.history.is_some(),
            email: None,
            accept_price: self.accept_price,
        }
    }
}

/// The price of what the form asks for, and the form again to order it.
async fn quote_page(s: &HttpState, who: &Who, org: &str, f: &OrderForm, error: Option<String>) -> PageResult {
    let (quote, error) = match archives::quote(s, org, f.day.as_deref(), f.history.is_some()).await {
        Ok(q) => (Some(q), error),
        Err(e @ WebError::BadRequest(_)) => (None, Some(e.message())),
        Err(e) => return Err(e.into()),
    };
    let summary = views::org_summary(s, org);
    let ctx = context! {
        title => "Add archive",
        quote => quote.as_ref().map(sv),
        error,
        days => days(s, org).await?,
        form => context! { name => f.name.clone(), description => f.description.clone(), day => f.day.clone(), history => f.history.is_some() },
    };
    page("archive_new.html", merge(frame(who, Some(&summary), "archives"), ctx))
}

async fn new_archive(
    State(s): S,
    Path(org): Path<String>,
    Query(f): Query<OrderForm>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    quote_page(&s, &who, &org, &f, None).await
}

async fn order_archive(
    State(s): S,
    Path(org): Path<String>,
    headers: HeaderMap,
    Form(f): Form<OrderForm>,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(f.csrf.as_deref())?;
    // Only what the person saw the price of is ordered: another day or history, or backups
    // since, show the new price first.
    let now = archives::quote(&s, &org, f.day.as_deref(), f.history.is_some()).await;
    let seen = f.accept_price;
    if let Ok(q) = &now
        && seen.is_none_or(|p| (p - q.quote.price).abs() > 0.005)
    {
        let why = "The price of this archive is as shown now: look at it and order again.".to_string();
        let mut r = quote_page(&s, &who, &org, &f, Some(why)).await?;
        *r.status_mut() = axum::http::StatusCode::CONFLICT;
        return Ok(r);
    }
    match archives::order(&s, &who, &org, &f.order()).await {
        Ok(o) => Ok(Redirect::to(&format!("/orgs/{org}/archives/{}", o.archive.archive.id)).into_response()),
        Err(e @ (WebError::BadRequest(_) | WebError::Refused(_))) => {
            let mut r = quote_page(&s, &who, &org, &f, Some(e.message())).await?;
            *r.status_mut() = e.status();
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

async fn archive_page(
    s: &HttpState,
    who: &Who,
    org: &str,
    id: i64,
    error: Option<String>,
    message: Option<String>,
) -> PageResult {
    let a = archives::show(s, org, id).await?;
    let summary = views::org_summary(s, org);
    let ctx = context! { title => format!("Archive {}", a.archive.name), a => sv(&a), error, message };
    page("archive.html", merge(frame(who, Some(&summary), "archives"), ctx))
}

async fn archive(State(s): S, Path((org, id)): Path<(String, i64)>, headers: HeaderMap) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    archive_page(&s, &who, &org, id, None, None).await
}

#[derive(Deserialize)]
struct RenameForm {
    csrf: String,
    #[serde(default)]
    name: String,
    description: Option<String>,
}

async fn rename_archive(
    State(s): S,
    Path((org, id)): Path<(String, i64)>,
    headers: HeaderMap,
    Form(f): Form<RenameForm>,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(Some(&f.csrf))?;
    match archives::rename(&s, &who, &org, id, &archives::Rename { name: f.name, description: f.description }).await {
        Ok(a) => archive_page(&s, &who, &org, id, None, Some(format!("Renamed to \"{}\".", a.archive.name))).await,
        Err(e @ WebError::BadRequest(_)) => archive_page(&s, &who, &org, id, Some(e.message()), None).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
struct PartQuery {
    part: Option<i64>,
}

async fn download_archive(
    State(s): S,
    Path((org, id)): Path<(String, i64)>,
    Query(q): Query<PartQuery>,
    headers: HeaderMap,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    let url = archives::download(&s, &who, &org, id, q.part.unwrap_or(1)).await?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf: String,
    code: Option<String>,
    password: Option<String>,
}

async fn delete_archive(
    State(s): S,
    Path((org, id)): Path<(String, i64)>,
    headers: HeaderMap,
    Form(f): Form<DeleteForm>,
) -> PageResult {
    let (who, _) = auth::org_access(&s, &headers, &org).await?;
    who.check_csrf(Some(&f.csrf))?;
    let proof = Proof { code: f.code, password: f.password };
    match archives::delete(&s, &who, &org, id, &proof).await {
        Ok(()) => Ok(Redirect::to(&format!("/orgs/{org}/archives?deleted={id}")).into_response()),
        Err(e @ (WebError::Refused(_) | WebError::Forbidden(_) | WebError::BadRequest(_) | WebError::Limited(_))) => {
            let mut r = archive_page(&s, &who, &org, id, Some(format!("Not deleted: {}", e.message())), None).await?;
            *r.status_mut() = e.status();
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_times_show_in_the_orgs_timezone() {
        let t = |at: &str, tz: &str| {
            super::env().render_str("{{ at | local(tz) }}", minijinja::context! { at => at, tz => tz }).unwrap()
        };
        assert_eq!(t("2026-07-01T12:00:00.000Z", "Europe/Dublin"), "2026-07-01 13:00 IST");
        assert_eq!(t("2026-12-01T12:00:00Z", "America/New_York"), "2026-12-01 07:00 EST");
        assert_eq!(t("not a time", "Europe/Dublin"), "not a time", "shown as it is");
    }
}
