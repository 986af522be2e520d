//! Deleted records found (`recover`) and brought back as copies (`restore`). The vault
//! gives the content and file bytes; the source's connector creates the copy; the catalog
//! remembers it, so the same version is not copied twice by accident.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::Factory;
use super::query::{self, At, RecordInfo, VersionInfo};
use crate::config::Config;
use crate::connectors::{RestoreFile, Restored};
use crate::vault::Vault;

#[derive(Debug, Default)]
pub struct RecoverFilter {
    pub source: Option<String>,
    pub data_type: Option<String>,
    /// Text the last known content holds (any case).
    pub search: Option<String>,
    /// Deletions noticed at or after: YYYY-MM-DD (start of that day in the org's
    /// timezone), an RFC 3339 time, or cycle:N.
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub sid: String,
    pub org: String,
    pub source: String,
    pub data_type: String,
    pub source_id: String,
    /// The last version with content, and when the last snapshot that still had it was taken.
    pub last_version: i64,
    pub last_seen: Option<String>,
    /// When the backup that found it gone started.
    pub deletion_noticed: String,
    pub content: Value,
    /// Copies made of it so far, by `restore`.
    pub restored_as: Vec<String>,
}

/// Records deleted at the source, newest deletions first.
pub async fn recover(vault: &Vault, cfg: &Config, f: &RecoverFilter) -> Result<Vec<Deleted>> {
    let rows = sqlx::query(
        "SELECT r.sid, o.sid, t.source, t.name, r.source_id, d.version, c.started_at, d.from_cycle, p.blob_id, o.id, \
           (SELECT MAX(s.taken_at) FROM snapshots s WHERE s.type_id = d.type_id AND s.cycle_id < d.from_cycle) \
         FROM versions d JOIN records r ON r.sid = d.sid JOIN types t ON t.id = d.type_id \
         JOIN orgs o ON o.id = t.org_id JOIN cycles c ON c.id = d.from_cycle \
         LEFT JOIN versions p ON p.sid = d.sid AND p.version = d.version - 1 \
         WHERE d.to_cycle IS NULL AND d.deleted = 1 ORDER BY d.from_cycle DESC, t.source, t.name, r.source_id",
    )
    .fetch_all(&vault.catalog.pool)
    .await?;
    let needle = f.search.as_ref().map(|s| s.to_lowercase());
    let mut out = Vec::new();
    for r in rows {
        let (source, data_type): (String, String) = (r.get(2), r.get(3));
        if f.source.as_ref().is_some_and(|s| *s != source) || f.data_type.as_ref().is_some_and(|t| *t != data_type) {
            continue;
        }
        let org_sid: String = r.get(1);
        let noticed: String = r.get(6);
        if let Some(since) = &f.since
            && !noticed_since(since, query::org_tz(cfg, &org_sid), &noticed, r.get(7))?
        {
            continue;
        }
        let Some(blob) = r.get::<Option<Vec<u8>>, _>(8) else { continue };
        let org = vault.org_by_id(r.get(9)).await?;
        let content: Value = serde_json::from_slice(&vault.read_blob(&org, &blob).await?)?;
        if let Some(n) = &needle
            && !content.to_string().to_lowercase().contains(n)
        {
            continue;
        }
        let sid: String = r.get(0);
        let restored_as = restores_of(vault, &sid).await?.into_iter().map(|(_, new_id, _)| new_id).collect();
        out.push(Deleted {
            sid,
            org: org_sid,
            source,
            data_type,
            source_id: r.get(4),
            last_version: r.get::<i64, _>(5) - 1,
            last_seen: r.get(10),
            deletion_noticed: noticed,
            content,
            restored_as,
        });
    }
    Ok(out)
}

fn noticed_since(since: &str, tz: chrono_tz::Tz, noticed: &str, cycle: i64) -> Result<bool> {
    // A bare date means from the start of that day (query::parse_at reads it as its end).
    let at = match NaiveDate::parse_from_str(since, "%Y-%m-%d") {
        Ok(d) => At::Instant(
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
                .earliest()
                .ok_or_else(|| anyhow!("{since:?}: no such local time"))?
                .with_timezone(&Utc),
        ),
        Err(_) => query::parse_at(since, tz)?,
    };
    Ok(match at {
        At::Cycle(c) => cycle >= c,
        At::Instant(t) => chrono::DateTime::parse_from_rfc3339(noticed).is_ok_and(|n| n >= t),
    })
}

/// (when, new id, version) of each copy made of a record.
async fn restores_of(vault: &Vault, sid: &str) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query("SELECT at, new_id, version FROM restores WHERE sid = $1 ORDER BY id")
        .bind(sid)
        .fetch_all(&vault.catalog.pool)
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    pub record: RecordInfo,
    pub version: i64,
    pub dry_run: bool,
    /// The content the copy is made from.
    pub content: Value,
    /// The files it carries: name and size.
    pub files: Vec<(String, u64)>,
    /// What the app did (none on a dry run).
    pub restored: Option<Restored>,
}

pub struct RestoreRequest<'a> {
    pub sid: &'a str,
    pub version: Option<i64>,
    pub dry_run: bool,
    /// Make another copy of a version already restored.
    pub again: bool,
}

pub async fn restore(
    vault: &Vault,
    cfg: &Config,
    req: &RestoreRequest<'_>,
    factory: &Factory,
) -> Result<RestoreOutcome> {
    let (info, versions) = query::history(vault, req.sid).await?;
    let v = pick_version(&info, &versions, req.version)?;
    let org = vault.org_by_id(info.org_id).await?;
    let blob = v.blob.as_ref().ok_or_else(|| anyhow!("version {} of {} has no content", v.version, info.sid))?;
    let stored: Value = serde_json::from_slice(&vault.read_blob(&org, blob).await?)?;
    let content = stored.get("data").cloned().unwrap_or(Value::Null);
    let stored_files = stored.get("files").and_then(Value::as_array).cloned().unwrap_or_default();
    let files = stored_files
        .iter()
        .map(|f| {
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            (name, f.get("size").and_then(Value::as_u64).unwrap_or(0))
        })
        .collect();

    let src = cfg
        .orgs
        .iter()
        .find(|o| *o.sid.get_ref() == info.org)
        .and_then(|o| o.sources.iter().find(|s| *s.name.get_ref() == info.source))
        .ok_or_else(|| {
            anyhow!("source {}/{} is no longer in the config: add it back to restore into it", info.org, info.source)
        })?;
    let connector = factory(src)?;
    connector.discover().await.map_err(|e| anyhow!("{}: cannot reach the source: {e}", info.source))?;
    connector.restorable(&info.type_key).map_err(|e| anyhow!("cannot restore {}: {e}", info.sid))?;
    if let Some((at, new_id, _)) =
        restores_of(vault, &info.sid).await?.into_iter().find(|(_, _, ver)| *ver == v.version)
        && !req.again
    {
        bail!(
            "version {} of {} was already restored on {at} as id {new_id}; pass --again to make another copy",
            v.version,
            info.sid
        );
    }
    let mut out = RestoreOutcome {
        record: info.clone(),
        version: v.version,
        dry_run: req.dry_run,
        content,
        files,
        restored: None,
    };
    if req.dry_run {
        return Ok(out);
    }
    let mut with_bytes = Vec::new();
    for f in &stored_files {
        let (Some(key), Some(uid)) = (f.get("key").and_then(Value::as_str), f.get("uid").and_then(Value::as_str))
        else {
            continue;
        };
        let mut bytes = Vec::new();
        vault.read_file(&org, uid, &mut bytes).await.with_context(|| format!("reading {uid} from the vault"))?;
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        with_bytes.push(RestoreFile { key: key.to_string(), name, bytes });
    }
    let done = connector
        .restore(&info.type_key, &out.content, with_bytes)
        .await
        .map_err(|e| anyhow!("restoring {} into {}: {e}", info.sid, info.source))?;
    sqlx::query("INSERT INTO restores (at, type_id, sid, version, new_id, files, notes) VALUES ($1,$2,$3,$4,$5,$6,$7)")
        .bind(crate::util::now_rfc3339())
        .bind(info.type_id)
        .bind(&info.sid)
        .bind(v.version)
        .bind(&done.new_id)
        .bind(done.files_uploaded as i64)
        .bind(done.notes.join("\n"))
        .execute(&vault.catalog.pool)
        .await?;
    out.restored = Some(done);
    Ok(out)
}

/// The version asked for, or the last one with content.
fn pick_version<'v>(info: &RecordInfo, versions: &'v [VersionInfo], asked: Option<i64>) -> Result<&'v VersionInfo> {
    match asked {
        Some(n) => {
            let v = versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| anyhow!("{} has no version {n} (it has 1 to {})", info.sid, versions.len()))?;
            if v.deleted {
                bail!("version {n} of {} is its deletion; the content before it is version {}", info.sid, n - 1);
            }
            Ok(v)
        }
        None => versions
            .iter()
            .rev()
            .find(|v| !v.deleted)
            .ok_or_else(|| anyhow!("{} has no version with content", info.sid)),
    }
}
