//! What the pages show and the API returns, one struct per view, composed from the vault's
//! read API and the same engine functions the CLI calls. Times are RFC 3339 (UTC) plus, for
//! people, the same instant in the org's timezone.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::WebError;
use crate::daemon::notify::RestoreEnd;
use crate::engine::query;
use crate::engine::restore::{self, Deleted, RecoverFilter, RestoreOutcome, RestoreRequest};
use crate::http::HttpState;
use crate::vault::log::LogLine;
use crate::vault::read::{At, CycleId, RecordInfo, TypeId, TypeInfo, VersionInfo};
use crate::vault::restores::RestoreInfo;

pub const PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// An instant, and how the org's people read it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct When {
    pub utc: String,
    pub local: String,
    pub day: String,
}

pub fn when(t: DateTime<Utc>, tz: chrono_tz::Tz) -> When {
    let l = t.with_timezone(&tz);
    When {
        utc: t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        local: l.format("%Y-%m-%d %H:%M %Z").to_string(),
        day: l.format("%Y-%m-%d").to_string(),
    }
}

pub fn when_str(s: &str, tz: chrono_tz::Tz) -> When {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => when(t.with_timezone(&Utc), tz),
        Err(_) => When { utc: s.into(), local: s.into(), day: s.chars().take(10).collect() },
    }
}

pub fn tz(state: &HttpState, org: &str) -> chrono_tz::Tz {
    query::org_tz(&state.config, org)
}

/// A cursor is opaque to clients: the hex of the last item's sort key.
pub fn cursor_of(key: &str) -> String {
    hex::encode(key.as_bytes())
}

pub fn parse_cursor(c: Option<&str>) -> Result<Option<String>, WebError> {
    match c.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => hex::decode(c).ok().and_then(|b| String::from_utf8(b).ok()).map(Some).ok_or_else(|| {
            WebError::BadRequest("the cursor is not one this server gave: start from the first page".into())
        }),
    }
}

/// A cursor over items keyed by id, newest first: the id the last page ended before.
pub fn id_cursor(c: Option<&str>) -> Result<Option<i64>, WebError> {
    match parse_cursor(c)? {
        None => Ok(None),
        Some(c) => {
            c.parse().map(Some).map_err(|_| WebError::BadRequest("the cursor is not one this server gave".into()))
        }
    }
}

/// Keeps the first `limit` of `items` (fetched `limit + 1` to know): the cursor of the next
/// page, keyed by `key` of this page's last item, if there is one.
pub fn page_end<T>(items: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Option<String> {
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(|t| cursor_of(&key(t)))
}

pub fn limit(l: Option<usize>) -> Result<usize, WebError> {
    match l {
        None => Ok(PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(WebError::BadRequest(format!("limit {n}: ask for 1 to {MAX_PAGE} items a page"))),
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrgSummary {
    pub sid: String,
    pub name: String,
    pub timezone: String,
}

pub fn org_summary(state: &HttpState, sid: &str) -> OrgSummary {
    let o = state.config.orgs.iter().find(|o| o.sid.get_ref() == sid);
    OrgSummary {
        sid: sid.into(),
        name: o.map(|o| o.name.clone()).unwrap_or_else(|| sid.into()),
        timezone: o.map(|o| o.timezone.get_ref().clone()).unwrap_or_else(|| "UTC".into()),
    }
}

/// The orgs a user may see.
pub async fn orgs(state: &HttpState, who: &super::Who) -> Result<Vec<OrgSummary>> {
    let mut out = Vec::new();
    for sid in state.vault.catalog.org_sids().await? {
        if who.may_see(&sid) {
            out.push(org_summary(state, &sid));
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TypeCount {
    pub id: i64,
    pub name: String,
    pub path: Vec<String>,
    pub cycle: Option<i64>,
    pub taken_at: Option<When>,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LastBackup {
    pub cycle: i64,
    pub at: When,
    /// "ok", "warn" or "error": the worst of the cycle's entries for the source.
    pub result: String,
    pub summary: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SourceOverview {
    pub name: String,
    pub kind: String,
    pub last_backup: Option<LastBackup>,
    pub types: Vec<TypeCount>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Overview {
    pub org: OrgSummary,
    pub sources: Vec<SourceOverview>,
    pub mirrors: Vec<crate::mirror::StatusRow>,
    /// From the daemon's schedule, when it serves this page.
    pub next_run: Option<When>,
    /// Whether "Back up now" can be offered (a daemon's queue is wired).
    pub can_back_up_now: bool,
}

fn result_of(levels: impl Iterator<Item = String>) -> String {
    let mut worst = "ok";
    for l in levels {
        match l.as_str() {
            "error" => worst = "error",
            "warn" if worst != "error" => worst = "warn",
            _ => {}
        }
    }
    worst.into()
}

pub async fn overview(state: &HttpState, org: &str) -> Result<Overview> {
    let tz = tz(state, org);
    let types = state.vault.types(Some(org)).await?;
    let log = state.vault.read_log(org, None).await?;
    let mut names: Vec<String> = types.iter().map(|t| t.source.clone()).collect();
    let cfg_org = state.config.orgs.iter().find(|o| o.sid.get_ref() == org);
    if let Some(o) = cfg_org {
        names.extend(o.sources.iter().map(|s| s.name.get_ref().clone()));
    }
    names.sort();
    names.dedup();
    let mut sources = Vec::new();
    for name in names {
        let kind = cfg_org
            .and_then(|o| o.sources.iter().find(|s| *s.name.get_ref() == name))
            .map(|s| s.kind.get_ref().clone())
            .unwrap_or_else(|| "(no longer configured)".into());
        let mine: Vec<&LogLine> = log.iter().filter(|l| l.source == name).collect();
        let last_backup = mine.last().map(|last| {
            let cycle: Vec<&&LogLine> = mine.iter().filter(|l| l.cycle == last.cycle).collect();
            LastBackup {
                cycle: last.cycle,
                at: when_str(&cycle[0].at, tz),
                result: result_of(cycle.iter().map(|l| l.level.clone())),
                summary: cycle.iter().map(|l| format!("{}: {}", l.data_type, l.message)).collect(),
            }
        });
        let mut counts = Vec::new();
        for t in types.iter().filter(|t| t.source == name) {
            let s = state.vault.snapshot_at(t.id, At::Latest).await?;
            counts.push(TypeCount {
                id: t.id.0,
                name: t.name.clone(),
                path: t.path.clone(),
                cycle: s.as_ref().map(|s| s.cycle.0),
                taken_at: s.as_ref().map(|s| when(s.taken_at, tz)),
                live: s.as_ref().map_or(0, |s| s.live),
                added: s.as_ref().map_or(0, |s| s.added),
                changed: s.as_ref().map_or(0, |s| s.changed),
                deleted: s.as_ref().map_or(0, |s| s.deleted),
            });
        }
        sources.push(SourceOverview { name, kind, last_backup, types: counts });
    }
    let mirrors = crate::mirror::status(&state.vault, &state.config, Some(org)).await?;
    let next_run = match &state.web.jobs {
        Some(j) => j.next_run(org).await?.map(|t| when_str(&t, tz)),
        None => None,
    };
    Ok(Overview { org: org_summary(state, org), sources, mirrors, next_run, can_back_up_now: state.web.jobs.is_some() })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Day {
    pub day: String,
    pub cycle: i64,
    pub taken_at: When,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TypeDays {
    pub id: i64,
    pub source: String,
    pub name: String,
    pub path: Vec<String>,
    /// Newest first; a day's last snapshot stands for it.
    pub days: Vec<Day>,
    pub next_cursor: Option<String>,
}

/// Per data type, a row per day, newest first, `limit` days after the cursor (a day).
pub async fn snapshots(
    state: &HttpState,
    org: &str,
    only: Option<TypeId>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<TypeDays>> {
    let tz = tz(state, org);
    let mut out = Vec::new();
    for t in state.vault.types(Some(org)).await?.into_iter().filter(|t| only.is_none_or(|o| o == t.id)) {
        let mut days: Vec<Day> = Vec::new();
        for s in state.vault.snapshots(Some(t.id)).await?.into_iter().rev() {
            let w = when(s.taken_at, tz);
            if days.last().is_some_and(|d| d.day == w.day) {
                continue;
            }
            days.push(Day {
                day: w.day.clone(),
                cycle: s.cycle.0,
                taken_at: w,
                live: s.live,
                added: s.added,
                changed: s.changed,
                deleted: s.deleted,
            });
        }
        if let Some(a) = after {
            days.retain(|d| d.day.as_str() < a);
        }
        let more = days.len() > limit;
        days.truncate(limit);
        let next_cursor = if more { days.last().map(|d| cursor_of(&d.day)) } else { None };
        out.push(TypeDays { id: t.id.0, source: t.source, name: t.name, path: t.path, days, next_cursor });
    }
    Ok(out)
}

/// A data type of the org, or `NotFound` (also when it is another org's).
pub async fn org_type(state: &HttpState, org: &str, ty: i64) -> Result<TypeInfo, WebError> {
    state.vault.types(Some(org)).await?.into_iter().find(|t| t.id.0 == ty).ok_or(WebError::NotFound)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RecordRow {
    pub sid: String,
    pub source_id: String,
    pub version: u32,
    pub captured_at: When,
    /// A line to tell it by: its name or title, else the start of its JSON.
    pub label: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RecordsPage {
    pub type_id: i64,
    pub source: String,
    pub data_type: String,
    pub cycle: i64,
    pub taken_at: When,
    pub search: String,
    /// Records that match (all of the snapshot's without a search).
    pub matched: usize,
    pub records: Vec<RecordRow>,
    pub next_cursor: Option<String>,
}

pub fn label(data: &Value) -> String {
    for k in ["name", "title", "Title", "Name", "subject", "text", "desc"] {
        if let Some(s) = data.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            return s.chars().take(120).collect();
        }
    }
    data.to_string().chars().take(120).collect()
}

/// A data type as it was at a cycle: its live records by id at the source, those holding
/// `search` (any case), `limit` after the cursor.
pub async fn records_at(
    state: &HttpState,
    org: &str,
    ty: &TypeInfo,
    cycle: i64,
    search: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<RecordsPage, WebError> {
    let snap = state.vault.snapshot_at(ty.id, At::Cycle(CycleId(cycle))).await?.ok_or(WebError::NotFound)?;
    if snap.cycle.0 != cycle {
        return Err(WebError::NotFound);
    }
    let needle = search.map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    let tz = tz(state, org);
    let row = |r: &crate::vault::read::RawRecordVersion| RecordRow {
        sid: r.sid.clone(),
        source_id: r.source_id.clone(),
        version: r.version,
        captured_at: when(r.captured_at, tz),
        label: serde_json::from_str(&r.data).map(|v| label(&v)).unwrap_or_default(),
    };
    let (page, matched, more) = match &needle {
        // Without a search, only the page is read.
        None => {
            let (mut hits, live) = state.vault.records_page(ty.id, snap.cycle, after, limit + 1).await?;
            let more = hits.len() > limit;
            hits.truncate(limit);
            (hits.iter().map(row).collect(), live, more)
        }
        Some(n) => {
            let mut stream = state.vault.records_at_raw(ty.id, snap.cycle);
            let mut hits = Vec::new();
            while let Some(r) = stream.next().await {
                let r = r?;
                if r.data.to_lowercase().contains(n) {
                    hits.push(r);
                }
            }
            hits.sort_by(|a, b| (&a.source_id, &a.sid).cmp(&(&b.source_id, &b.sid)));
            let start = match after {
                Some(a) => hits.partition_point(|r| r.source_id.as_str() <= a),
                None => 0,
            };
            let page: Vec<RecordRow> = hits[start..].iter().take(limit).map(row).collect();
            let more = start + page.len() < hits.len();
            (page, hits.len(), more)
        }
    };
    let next_cursor = more.then(|| page.last().map(|r| cursor_of(&r.source_id))).flatten();
    Ok(RecordsPage {
        type_id: ty.id.0,
        source: ty.source.clone(),
        data_type: ty.name.clone(),
        cycle: snap.cycle.0,
        taken_at: when(snap.taken_at, tz),
        search: search.unwrap_or_default().into(),
        matched,
        records: page,
        next_cursor,
    })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VersionRow {
    pub version: u32,
    pub deleted: bool,
    pub captured_at: When,
    pub from_cycle: i64,
    pub to_cycle: Option<i64>,
    pub size: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub field: String,
    /// JSON text of the value (None: the field was not there).
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VersionDiff {
    pub from: u32,
    pub to: u32,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RecordView {
    pub record: RecordInfo,
    pub type_id: i64,
    pub versions: Vec<VersionRow>,
    /// The version shown, and its content (None for a deletion).
    pub shown: u32,
    pub content: Option<Value>,
    pub files: Vec<crate::vault::read::StoredFile>,
    pub diff: Option<VersionDiff>,
    pub restores: Vec<RestoreInfo>,
}

/// What changed between two contents, field by field (nested objects by dotted path).
pub fn field_diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    fn walk(prefix: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, x.get(k), y.get(k), out);
                }
            }
            (a, b) if a != b => out.push(FieldChange {
                field: if prefix.is_empty() { "(whole record)".into() } else { prefix.into() },
                before: a.map(Value::to_string),
                after: b.map(Value::to_string),
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(before), Some(after), &mut out);
    out
}

async fn content(state: &HttpState, r: &RecordInfo, v: &[VersionInfo], n: u32) -> Result<Option<Value>, WebError> {
    if !v.iter().any(|x| x.version == n) {
        return Err(WebError::NotFound);
    }
    Ok(state.vault.version_content(r, n).await?.map(|c| c.data))
}

/// A record's history; the version `show` (default the last with content) and what changed
/// from `from` (default: the version before it).
pub async fn record(
    state: &HttpState,
    org: &str,
    ty: &TypeInfo,
    sid: &str,
    show: Option<u32>,
    from: Option<u32>,
) -> Result<RecordView, WebError> {
    let r = state.vault.record_in(ty, sid).await?.ok_or(WebError::NotFound)?;
    let versions = state.vault.history(&r).await?;
    let tz = tz(state, org);
    let shown = match show {
        Some(n) => n,
        None => versions.iter().rev().find(|v| !v.deleted).or(versions.last()).map_or(1, |v| v.version),
    };
    let stored = if versions.iter().any(|v| v.version == shown) {
        state.vault.version_content(&r, shown).await?
    } else {
        return Err(WebError::NotFound);
    };
    let before = match from.or_else(|| shown.checked_sub(1).filter(|v| *v > 0)) {
        Some(f) => content(state, &r, &versions, f).await?.map(|c| (f, c)),
        None => None,
    };
    let diff = match (&before, &stored) {
        (Some((f, b)), Some(a)) => Some(VersionDiff { from: *f, to: shown, fields: field_diff(b, &a.data) }),
        _ => None,
    };
    let restores = state.vault.restores_of(&r).await?;
    Ok(RecordView {
        type_id: ty.id.0,
        versions: versions
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                deleted: v.deleted,
                captured_at: when(v.captured_at, tz),
                from_cycle: v.from_cycle.0,
                to_cycle: v.to_cycle.map(|c| c.0),
                size: v.size,
            })
            .collect(),
        shown,
        files: stored.as_ref().map(|s| s.files.clone()).unwrap_or_default(),
        content: stored.map(|s| s.data),
        diff,
        restores,
        record: r,
    })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeletedRow {
    #[serde(flatten)]
    pub record: Deleted,
    pub label: String,
    pub last_seen_local: Option<When>,
    pub noticed_local: When,
    pub restores: Vec<RestoreInfo>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeletedPage {
    pub records: Vec<DeletedRow>,
    pub next_cursor: Option<String>,
    pub data_types: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct DeletedQuery {
    pub q: Option<String>,
    #[serde(rename = "type")]
    pub data_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// Records deleted at the source, newest deletions first.
pub async fn deleted(state: &HttpState, org: &str, q: &DeletedQuery) -> Result<DeletedPage, WebError> {
    let blank = |s: &Option<String>| s.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let tz = tz(state, org);
    for d in [&q.since, &q.until].into_iter().filter_map(blank) {
        At::parse(&d, tz).map_err(|e| WebError::BadRequest(format!("{e:#}")))?;
    }
    let f = RecoverFilter {
        org: Some(org.into()),
        source: None,
        data_type: blank(&q.data_type),
        search: blank(&q.q),
        since: blank(&q.since),
        until: blank(&q.until),
    };
    let after = parse_cursor(q.cursor.as_deref())?;
    let limit = limit(q.limit)?;
    let (page, more) = restore::recover_page(&state.vault, &state.config, &f, after.as_deref(), limit).await?;
    let mut records = Vec::new();
    for d in page {
        // Only a record copied before has restores to show (looking it up reads its state).
        let r = match d.restored_as.is_empty() {
            true => None,
            false => state.vault.record_in(&state.vault.type_info(TypeId(d.type_id)).await?, &d.sid).await?,
        };
        let restores = match &r {
            Some(r) => state.vault.restores_of(r).await?,
            None => Vec::new(),
        };
        records.push(DeletedRow {
            label: label(d.content.get("data").unwrap_or(&d.content)),
            last_seen_local: d.last_seen.as_deref().map(|s| when_str(s, tz)),
            noticed_local: when_str(&d.deletion_noticed, tz),
            restores,
            record: d,
        });
    }
    let next_cursor = more.then(|| records.last().map(|r| cursor_of(&r.record.sid))).flatten();
    let mut data_types: Vec<String> = state.vault.types(Some(org)).await?.into_iter().map(|t| t.name).collect();
    data_types.sort();
    data_types.dedup();
    Ok(DeletedPage { records, next_cursor, data_types })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RestoreDone {
    pub sid: String,
    pub type_id: i64,
    pub version: u32,
    pub new_id: String,
    pub files_uploaded: usize,
    pub notes: Vec<String>,
    /// The address told by email (with `[email]`), as the daemon's restore jobs do.
    pub emailed: Option<String>,
}

/// Restores a record of the org as a copy (after the caller verified the user), through the
/// same function as `daybook restore`; an app's or a data type's refusal is `Refused`, in
/// the engine's words. Either way the user is emailed how it ended when `[email]` is set.
pub async fn restore(
    state: &HttpState,
    who: &super::Who,
    org: &str,
    ty: &TypeInfo,
    sid: &str,
    version: Option<i64>,
    again: bool,
) -> Result<RestoreDone, WebError> {
    let r = state.vault.record_in(ty, sid).await?.ok_or(WebError::NotFound)?;
    let req = RestoreRequest { sid: &r.sid, version, dry_run: false, again };
    let out: RestoreOutcome = match restore::restore(&state.vault, &state.config, &req, &*state.web.connectors).await {
        Ok(o) => o,
        Err(e) => {
            let why = format!("{e:#}");
            super::audit(state, Some(org), &who.actor, "restore-failed", &format!("{} ({}): {why}", r.sid, ty.name))
                .await;
            tell(state, who, &r, RestoreEnd::Failed { why: &why }).await;
            return Err(WebError::Refused(why));
        }
    };
    let done = out.restored.as_ref().ok_or_else(|| anyhow::anyhow!("the restore made no copy"))?;
    let emailed =
        tell(state, who, &r, RestoreEnd::Done { new_id: &done.new_id, files_uploaded: done.files_uploaded }).await;
    super::audit(
        state,
        Some(org),
        &who.actor,
        "restore",
        &format!("{} ({}) version {} as new id {}", r.sid, ty.name, out.version, done.new_id),
    )
    .await;
    Ok(RestoreDone {
        sid: r.sid,
        type_id: ty.id.0,
        version: out.version,
        new_id: done.new_id.clone(),
        files_uploaded: done.files_uploaded,
        notes: done.notes.clone(),
        emailed,
    })
}

/// Emails the user (not an API token) how their restore ended, when `[email]` is set.
async fn tell(state: &HttpState, who: &super::Who, r: &RecordInfo, end: RestoreEnd<'_>) -> Option<String> {
    let email = state.config.email.as_ref()?;
    who.user_id?;
    crate::daemon::notify::restore_finished(Some(email), Some(&who.actor), &r.sid, &r.source, end).await.ok()
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogLineView {
    pub at: When,
    pub level: String,
    pub source: String,
    pub data_type: String,
    pub message: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CycleLog {
    pub cycle: i64,
    pub at: When,
    pub result: String,
    pub sources: Vec<String>,
    pub lines: Vec<LogLineView>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogsPage {
    pub cycles: Vec<CycleLog>,
    pub sources: Vec<String>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LogQuery {
    pub source: Option<String>,
    /// ok, warn or error
    pub result: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// The backup log by cycle (a cycle is a job until the daemon's job list is wired), newest
/// first, filtered by source and result.
pub async fn logs(state: &HttpState, org: &str, q: &LogQuery) -> Result<LogsPage, WebError> {
    let result = q.result.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = result
        && !["ok", "warn", "error"].contains(&r)
    {
        return Err(WebError::BadRequest(format!("result {r:?}: use ok, warn or error")));
    }
    let source = q.source.as_deref().filter(|s| !s.is_empty());
    let tz = tz(state, org);
    let lines = state.vault.read_log(org, None).await?;
    let mut sources: Vec<String> = lines.iter().map(|l| l.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let mut by_cycle: HashMap<i64, Vec<LogLine>> = HashMap::new();
    for l in lines.into_iter().filter(|l| source.is_none_or(|s| s == l.source)) {
        by_cycle.entry(l.cycle).or_default().push(l);
    }
    let mut cycles: Vec<CycleLog> = by_cycle
        .into_iter()
        .map(|(cycle, lines)| {
            let mut srcs: Vec<String> = lines.iter().map(|l| l.source.clone()).collect();
            srcs.sort();
            srcs.dedup();
            CycleLog {
                cycle,
                at: when_str(&lines[0].at, tz),
                result: result_of(lines.iter().map(|l| l.level.clone())),
                sources: srcs,
                lines: lines
                    .into_iter()
                    .map(|l| LogLineView {
                        at: when_str(&l.at, tz),
                        level: l.level,
                        source: l.source,
                        data_type: l.data_type,
                        message: l.message,
                    })
                    .collect(),
            }
        })
        .filter(|c| result.is_none_or(|r| r == c.result))
        .collect();
    cycles.sort_by_key(|c| std::cmp::Reverse(c.cycle));
    if let Some(c) = id_cursor(q.cursor.as_deref())? {
        cycles.retain(|x| x.cycle < c);
    }
    let next_cursor = page_end(&mut cycles, limit(q.limit)?, |c| c.cycle.to_string());
    Ok(LogsPage { cycles, sources, next_cursor })
}

/// One of the daemon's jobs of an org (a backup cycle, a mirror, an archive build, a
/// restore...), as the Logs page lists it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub source: Option<String>,
    /// queued, running, done or failed.
    pub state: String,
    /// ok, warn (done, with warnings in its log), error (failed), or the state while it runs.
    pub result: String,
    pub manual: bool,
    pub attempts: i64,
    pub max_attempts: i64,
    pub created: When,
    pub started: Option<When>,
    pub finished: Option<When>,
    pub seconds: Option<i64>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobsPage {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobLineView {
    pub at: When,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobDetail {
    pub job: JobView,
    pub lines: Vec<JobLineView>,
}

fn job_view(j: crate::vault::catalog::JobRow, worst: Option<&str>, tz: chrono_tz::Tz) -> JobView {
    let result = match (j.state.as_str(), worst) {
        ("failed", _) => "error",
        ("done", Some(w)) => w,
        ("done", None) => "ok",
        (s, _) => s,
    }
    .to_string();
    let at = |t: &Option<String>| t.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let seconds = match (at(&j.started_at), at(&j.finished_at)) {
        (Some(a), Some(b)) => Some((b - a).num_seconds()),
        _ => None,
    };
    JobView {
        id: j.id,
        kind: j.kind,
        source: j.source,
        state: j.state,
        result,
        manual: j.manual,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        created: when_str(&j.created_at, tz),
        started: j.started_at.as_deref().map(|t| when_str(t, tz)),
        finished: j.finished_at.as_deref().map(|t| when_str(t, tz)),
        seconds,
        outcome: j.outcome,
    }
}

/// The org's jobs, newest first, filtered by source and result (`LogQuery`'s).
pub async fn jobs(state: &HttpState, org: &str, q: &LogQuery) -> Result<JobsPage, WebError> {
    let result = q.result.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = result
        && !["ok", "warn", "error", "queued", "running"].contains(&r)
    {
        return Err(WebError::BadRequest(format!("result {r:?}: use ok, warn, error, queued or running")));
    }
    let source = q.source.as_deref().filter(|s| !s.is_empty());
    let before = id_cursor(q.cursor.as_deref())?;
    let limit = limit(q.limit)?;
    let catalog = &state.vault.catalog;
    let mut worst: HashMap<i64, &str> = HashMap::new();
    let levels = catalog.job_log_levels(org).await?;
    for (job, level) in &levels {
        let w = worst.entry(*job).or_insert("warn");
        if level == "error" {
            *w = "error";
        }
    }
    let tz = tz(state, org);
    let mut jobs: Vec<JobView> = catalog
        .jobs(Some(org), i64::MAX)
        .await?
        .into_iter()
        .filter(|j| before.is_none_or(|b| j.id < b) && source.is_none_or(|s| j.source.as_deref() == Some(s)))
        .map(|j| {
            let w = worst.get(&j.id).copied();
            job_view(j, w, tz)
        })
        .filter(|j| result.is_none_or(|r| r == j.result))
        .take(limit + 1)
        .collect();
    let next_cursor = page_end(&mut jobs, limit, |j| j.id.to_string());
    Ok(JobsPage { jobs, next_cursor })
}

/// One job of the org with its log, oldest line first; another org's job is `NotFound`.
pub async fn job(state: &HttpState, org: &str, id: i64) -> Result<JobDetail, WebError> {
    let j = state.vault.catalog.job(id).await?.filter(|j| j.org.as_deref() == Some(org)).ok_or(WebError::NotFound)?;
    let tz = tz(state, org);
    let lines: Vec<JobLineView> = state
        .vault
        .read_job_log(Some(id), Some(org))
        .await?
        .into_iter()
        .map(|l| JobLineView { at: when_str(&l.at, tz), level: l.level, message: l.message })
        .collect();
    let worst = result_of(lines.iter().map(|l| l.level.clone()));
    let worst = (worst != "ok").then_some(worst);
    Ok(JobDetail { job: job_view(j, worst.as_deref(), tz), lines })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AuditView {
    #[serde(flatten)]
    pub entry: crate::vault::access::AuditEntry,
    pub local: When,
}

pub async fn audit(
    state: &HttpState,
    org: &str,
    cursor: Option<&str>,
    l: Option<usize>,
) -> Result<AuditPage, WebError> {
    let before = id_cursor(cursor)?;
    let limit = limit(l)?;
    let tz = tz(state, org);
    let mut entries: Vec<AuditView> = state
        .vault
        .audit_entries(org, before, limit as i64 + 1)
        .await?
        .into_iter()
        .map(|e| AuditView { local: when_str(&e.at, tz), entry: e })
        .collect();
    let next_cursor = page_end(&mut entries, limit, |e| e.entry.id.to_string());
    Ok(AuditPage { entries, next_cursor })
}
