//! Reading the vault as of a point in time: snapshots, a record's history, a record at a
//! date, and what changed between two days. The CLI and the HTTP API both call these.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use std::collections::BTreeMap;

use crate::config::Config;
use crate::vault::Vault;

#[derive(Debug, Serialize)]
pub struct SnapshotRow {
    pub org: String,
    pub source: String,
    /// The data type's current name, and its stable key.
    pub data_type: String,
    pub key: String,
    pub cycle: i64,
    pub taken_at: String,
    pub live: i64,
    pub added: i64,
    pub changed: i64,
    pub deleted: i64,
    pub full_read: bool,
    pub drift: i64,
    pub stored_bytes: i64,
}

pub async fn snapshots(vault: &Vault) -> Result<Vec<SnapshotRow>> {
    let rows = sqlx::query(
        "SELECT o.sid, t.source, t.name, s.cycle_id, s.taken_at, s.live, s.added, s.changed, s.deleted, s.stored_bytes, s.full_read, s.drift, t.key \
         FROM snapshots s JOIN types t ON t.id = s.type_id JOIN orgs o ON o.id = t.org_id \
         ORDER BY o.sid, t.source, t.name, s.cycle_id",
    )
    .fetch_all(&vault.catalog.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SnapshotRow {
            org: r.get(0),
            source: r.get(1),
            data_type: r.get(2),
            cycle: r.get(3),
            taken_at: r.get(4),
            live: r.get(5),
            added: r.get(6),
            changed: r.get(7),
            deleted: r.get(8),
            stored_bytes: r.get(9),
            full_read: r.get::<i64, _>(10) != 0,
            drift: r.get(11),
            key: r.get(12),
        })
        .collect())
}

#[derive(Debug, Serialize, Clone)]
pub struct RecordInfo {
    pub sid: String,
    pub org: String,
    pub source: String,
    /// The data type's current name, and its stable key.
    pub data_type: String,
    pub type_key: String,
    pub source_id: String,
    #[serde(skip)]
    pub type_id: i64,
    #[serde(skip)]
    pub org_id: i64,
}

#[derive(Debug, Serialize, Clone)]
pub struct VersionInfo {
    pub version: i64,
    pub deleted: bool,
    pub captured_at: String,
    /// The cycle from which this version was current, and the one that replaced it.
    pub from_cycle: i64,
    pub to_cycle: Option<i64>,
    pub size: i64,
    #[serde(skip)]
    pub blob: Option<Vec<u8>>,
}

/// A record by its SID, or by its id at the source when that names exactly one record.
pub async fn record(vault: &Vault, sid_or_id: &str) -> Result<RecordInfo> {
    const SELECT: &str = "SELECT r.sid, o.sid, t.source, t.name, r.source_id, t.id, o.id, t.key FROM records r \
         JOIN types t ON t.id = r.type_id JOIN orgs o ON o.id = t.org_id";
    let info = |row: &sqlx::any::AnyRow| RecordInfo {
        sid: row.get(0),
        org: row.get(1),
        source: row.get(2),
        data_type: row.get(3),
        source_id: row.get(4),
        type_id: row.get(5),
        org_id: row.get(6),
        type_key: row.get(7),
    };
    if let Some(row) =
        sqlx::query(&format!("{SELECT} WHERE r.sid = $1")).bind(sid_or_id).fetch_optional(&vault.catalog.pool).await?
    {
        return Ok(info(&row));
    }
    let rows =
        sqlx::query(&format!("{SELECT} WHERE r.source_id = $1")).bind(sid_or_id).fetch_all(&vault.catalog.pool).await?;
    match rows.as_slice() {
        [one] => Ok(info(one)),
        [] => bail!("no record with SID or source id {sid_or_id:?} in the vault"),
        many => bail!(
            "{sid_or_id:?} is the id of several records; name one by its SID: {}",
            many.iter()
                .map(|r| {
                    let i = info(r);
                    format!("{} ({}/{}/{})", i.sid, i.org, i.source, i.data_type)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn version_of(r: &sqlx::any::AnyRow) -> VersionInfo {
    VersionInfo {
        version: r.get(0),
        deleted: r.get::<i64, _>(1) != 0,
        captured_at: r.get(2),
        from_cycle: r.get(3),
        to_cycle: r.get(4),
        size: r.get(5),
        blob: r.get(6),
    }
}

/// A version's columns; it was captured when the cycle that found it started.
const VERSIONS: &str = "SELECT v.version, v.deleted, c.started_at, v.from_cycle, v.to_cycle, v.size, v.blob_id FROM versions v JOIN cycles c ON c.id = v.from_cycle";

pub async fn history(vault: &Vault, sid: &str) -> Result<(RecordInfo, Vec<VersionInfo>)> {
    let info = record(vault, sid).await?;
    let sid = info.sid.as_str();
    let rows = sqlx::query(&format!("{VERSIONS} WHERE v.sid = $1 ORDER BY v.version"))
        .bind(sid)
        .fetch_all(&vault.catalog.pool)
        .await?;
    Ok((info, rows.iter().map(version_of).collect()))
}

/// A point in time: a date (the end of that day in the org's timezone), an RFC 3339
/// instant, or `cycle:N`.
#[derive(Debug, Clone)]
pub enum At {
    Instant(DateTime<Utc>),
    Cycle(i64),
}

pub fn parse_at(s: &str, tz: chrono_tz::Tz) -> Result<At> {
    if let Some(n) = s.strip_prefix("cycle:") {
        return Ok(At::Cycle(n.parse().with_context(|| format!("{s:?}: cycle:N needs a number"))?));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let next = d.succ_opt().ok_or_else(|| anyhow!("{s:?}: date out of range"))?;
        let end = tz
            .from_local_datetime(&next.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .ok_or_else(|| anyhow!("{s:?}: no such local time"))?;
        return Ok(At::Instant(end.with_timezone(&Utc) - chrono::Duration::milliseconds(1)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(At::Instant(t.with_timezone(&Utc)));
    }
    bail!("{s:?} is not a date: use YYYY-MM-DD, an RFC 3339 time (2026-11-22T08:00:00Z) or cycle:N")
}

pub fn org_tz(cfg: &Config, org: &str) -> chrono_tz::Tz {
    cfg.orgs.iter().find(|o| o.sid.get_ref() == org).map(|o| o.tz()).unwrap_or(chrono_tz::UTC)
}

/// The last snapshot cycle of a data type at or before `at`.
pub async fn snapshot_at(vault: &Vault, type_id: i64, at: &At) -> Result<Option<i64>> {
    let row = match at {
        At::Cycle(c) => {
            sqlx::query("SELECT MAX(cycle_id) FROM snapshots WHERE type_id = $1 AND cycle_id <= $2")
                .bind(type_id)
                .bind(*c)
                .fetch_one(&vault.catalog.pool)
                .await?
        }
        At::Instant(t) => {
            sqlx::query("SELECT MAX(cycle_id) FROM snapshots WHERE type_id = $1 AND taken_at <= $2")
                .bind(type_id)
                .bind(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .fetch_one(&vault.catalog.pool)
                .await?
        }
    };
    Ok(row.get(0))
}

#[derive(Debug, Serialize)]
pub struct Shown {
    pub record: RecordInfo,
    pub version: VersionInfo,
    /// For a deletion: the last content before it.
    pub content: Option<Value>,
    pub deleted_since: Option<String>,
}

pub async fn show(vault: &Vault, cfg: &Config, sid: &str, at: Option<&str>) -> Result<Shown> {
    let info = record(vault, sid).await?;
    let sid = info.sid.clone();
    let sid = sid.as_str();
    let row = match at {
        None => {
            sqlx::query(&format!("{VERSIONS} WHERE v.sid = $1 AND v.to_cycle IS NULL"))
                .bind(sid)
                .fetch_optional(&vault.catalog.pool)
                .await?
        }
        Some(a) => {
            let at = parse_at(a, org_tz(cfg, &info.org))?;
            let Some(c) = snapshot_at(vault, info.type_id, &at).await? else {
                bail!("no snapshot of {}/{} exists at or before {a}", info.source, info.data_type);
            };
            sqlx::query(&format!(
                "{VERSIONS} WHERE v.sid = $1 AND v.from_cycle <= $2 AND (v.to_cycle IS NULL OR v.to_cycle > $2)"
            ))
            .bind(sid)
            .bind(c)
            .fetch_optional(&vault.catalog.pool)
            .await?
        }
    };
    let version = row
        .as_ref()
        .map(version_of)
        .ok_or_else(|| anyhow!("record {sid} did not exist yet at {}", at.unwrap_or("that time")))?;
    let org = vault.org_by_id(info.org_id).await?;
    let (content_version, deleted_since) = if version.deleted {
        let prev = sqlx::query(&format!("{VERSIONS} WHERE v.sid = $1 AND v.version = $2"))
            .bind(sid)
            .bind(version.version - 1)
            .fetch_optional(&vault.catalog.pool)
            .await?;
        (prev.as_ref().map(version_of), Some(version.captured_at.clone()))
    } else {
        (Some(version.clone()), None)
    };
    let content = match content_version.and_then(|v| v.blob) {
        Some(b) => Some(serde_json::from_slice(&vault.read_blob(&org, &b).await?)?),
        None => None,
    };
    Ok(Shown { record: info, version, content, deleted_since })
}

/// A data type named as `T`, `source/T` or `org/source/T`, where T is its name or its key
/// (names may hold `/` themselves: "Roadmap/cards").
pub async fn find_type(vault: &Vault, spec: &str) -> Result<(i64, String)> {
    let rows = sqlx::query("SELECT t.id, o.sid, t.source, t.name, t.key FROM types t JOIN orgs o ON o.id = t.org_id ORDER BY o.sid, t.source, t.name")
        .fetch_all(&vault.catalog.pool)
        .await?;
    let all: Vec<(i64, String, String, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let full = |(_, org, source, name, _): &(i64, String, String, String, String)| format!("{org}/{source}/{name}");
    let hits: Vec<&(i64, String, String, String, String)> = all
        .iter()
        .filter(|(_, org, source, name, key)| {
            [name, key]
                .iter()
                .any(|t| spec == t.as_str() || spec == format!("{source}/{t}") || spec == format!("{org}/{source}/{t}"))
        })
        .collect();
    match hits.as_slice() {
        [one] => Ok((one.0, full(one))),
        [] => {
            bail!("no data type {spec:?} in the vault (known: {})", all.iter().map(full).collect::<Vec<_>>().join(", "))
        }
        many => bail!(
            "data type {spec:?} is ambiguous: {}; name it as org/source/type",
            many.iter().map(|h| full(h)).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[derive(Debug, Serialize, Default)]
pub struct Diff {
    pub data_type: String,
    pub from_cycle: Option<i64>,
    pub to_cycle: Option<i64>,
    pub added: Vec<DiffEntry>,
    pub changed: Vec<DiffEntry>,
    pub deleted: Vec<DiffEntry>,
}

#[derive(Debug, Serialize)]
pub struct DiffEntry {
    pub sid: String,
    pub id: String,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
}

pub async fn diff(vault: &Vault, cfg: &Config, type_spec: &str, from: &str, to: &str) -> Result<Diff> {
    let (type_id, name) = find_type(vault, type_spec).await?;
    let tz = org_tz(cfg, name.split('/').next().unwrap_or_default());
    let c1 = snapshot_at(vault, type_id, &parse_at(from, tz)?).await?;
    let Some(c2) = snapshot_at(vault, type_id, &parse_at(to, tz)?).await? else {
        bail!("no snapshot of {name} exists at or before {to}");
    };
    let lo = c1.unwrap_or(0);
    let rows = sqlx::query(
        "SELECT v.sid, r.source_id, v.version, v.deleted, v.from_cycle, v.to_cycle FROM versions v JOIN records r ON r.sid = v.sid \
         WHERE v.type_id = $1 AND v.from_cycle <= $3 AND (v.to_cycle IS NULL OR v.to_cycle > $2) AND v.sid IN \
         (SELECT sid FROM versions WHERE type_id = $1 AND from_cycle > $2 AND from_cycle <= $3) ORDER BY r.source_id, v.version",
    )
    .bind(type_id)
    .bind(lo)
    .bind(c2)
    .fetch_all(&vault.catalog.pool)
    .await?;
    // sid -> (id, state at c1, state at c2), a state being (version, deleted)
    type State = Option<(i64, bool)>;
    let mut by: BTreeMap<String, (String, State, State)> = BTreeMap::new();
    for r in rows {
        let (sid, id, v, del, f, t): (String, String, i64, i64, i64, Option<i64>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let e = by.entry(sid).or_insert((id, None, None));
        let holds = |c: i64| f <= c && t.is_none_or(|t| t > c);
        if c1.is_some() && holds(lo) {
            e.1 = Some((v, del != 0));
        }
        if holds(c2) {
            e.2 = Some((v, del != 0));
        }
    }
    let mut d = Diff { data_type: name, from_cycle: c1, to_cycle: Some(c2), ..Default::default() };
    for (sid, (id, a, b)) in by {
        let alive = |s: State| s.filter(|(_, del)| !del).map(|(v, _)| v);
        let entry = DiffEntry { sid, id, from_version: alive(a), to_version: alive(b) };
        match (entry.from_version, entry.to_version) {
            (None, Some(_)) => d.added.push(entry),
            (Some(_), None) => d.deleted.push(entry),
            (Some(x), Some(y)) if x != y => d.changed.push(entry),
            _ => {}
        }
    }
    Ok(d)
}
