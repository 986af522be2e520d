//! What `snapshots`, `history`, `show` and `diff` answer, composed from the vault's read API.
//! The CLI and the HTTP API both call these.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use std::collections::HashMap;

use crate::config::Config;
use crate::vault::Vault;
use crate::vault::read::{At, ChangeKind, CycleId, RecordInfo, StoredVersion, TypeId, TypeInfo, VersionInfo};

#[derive(Debug, Serialize)]
pub struct SnapshotRow {
    pub org: String,
    pub source: String,
    /// The data type's current name, and its stable key.
    pub data_type: String,
    pub key: String,
    pub cycle: i64,
    pub taken_at: String,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    pub full_read: bool,
    pub drift: u64,
    pub stored_bytes: u64,
}

pub async fn snapshots(vault: &Vault) -> Result<Vec<SnapshotRow>> {
    let types: HashMap<TypeId, TypeInfo> = vault.types(None).await?.into_iter().map(|t| (t.id, t)).collect();
    let mut rows: Vec<SnapshotRow> = vault
        .snapshots(None)
        .await?
        .into_iter()
        .filter_map(|s| {
            let t = types.get(&s.type_id)?;
            Some(SnapshotRow {
                org: t.org.clone(),
                source: t.source.clone(),
                data_type: t.name.clone(),
                key: t.key.clone(),
                cycle: s.cycle.0,
                taken_at: s.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                live: s.live,
                added: s.added,
                changed: s.changed,
                deleted: s.deleted,
                full_read: s.full_read,
                drift: s.drift,
                stored_bytes: s.stored_bytes,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.org, &a.source, &a.data_type, &a.key, a.cycle).cmp(&(&b.org, &b.source, &b.data_type, &b.key, b.cycle))
    });
    Ok(rows)
}

pub fn org_tz(cfg: &Config, org: &str) -> chrono_tz::Tz {
    cfg.orgs.iter().find(|o| o.sid.get_ref() == org).map(|o| o.tz()).unwrap_or(chrono_tz::UTC)
}

pub async fn history(vault: &Vault, sid: &str) -> Result<(RecordInfo, Vec<VersionInfo>)> {
    let info = vault.record(sid).await?;
    let versions = vault.history(&info).await?;
    Ok((info, versions))
}

#[derive(Debug, Serialize)]
pub struct Shown {
    pub record: RecordInfo,
    pub version: VersionInfo,
    /// The version's content; for a deletion, the last content before it.
    pub content: Option<StoredVersion>,
    pub deleted_since: Option<String>,
}

pub async fn show(vault: &Vault, cfg: &Config, sid: &str, at: Option<&str>) -> Result<Shown> {
    let info = vault.record(sid).await?;
    let when = match at {
        None => At::Latest,
        Some(a) => {
            let when = At::parse(a, org_tz(cfg, &info.org))?;
            if vault.snapshot_at(info.type_id, when).await?.is_none() {
                bail!("no snapshot of {}/{} exists at or before {a}", info.source, info.data_type);
            }
            when
        }
    };
    let version = vault
        .version_at(&info, when)
        .await?
        .ok_or_else(|| anyhow!("record {} did not exist yet at {}", info.sid, at.unwrap_or("that time")))?;
    let (content, deleted_since) = if version.deleted {
        let before = match version.version {
            1 => None,
            v => vault.version_content(&info, v - 1).await?,
        };
        (before, Some(version.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
    } else {
        (vault.version_content(&info, version.version).await?, None)
    };
    Ok(Shown { record: info, version, content, deleted_since })
}

#[derive(Debug, Serialize, Default)]
pub struct Diff {
    pub data_type: String,
    pub from_cycle: Option<CycleId>,
    pub to_cycle: Option<CycleId>,
    pub added: Vec<DiffEntry>,
    pub changed: Vec<DiffEntry>,
    pub deleted: Vec<DiffEntry>,
}

#[derive(Debug, Serialize)]
pub struct DiffEntry {
    pub sid: String,
    pub id: String,
    pub from_version: Option<u32>,
    pub to_version: Option<u32>,
}

pub async fn diff(vault: &Vault, cfg: &Config, type_spec: &str, from: &str, to: &str) -> Result<Diff> {
    let ty = vault.find_type(type_spec).await?;
    let tz = org_tz(cfg, &ty.org);
    let c1 = vault.snapshot_at(ty.id, At::parse(from, tz)?).await?.map(|s| s.cycle);
    let Some(c2) = vault.snapshot_at(ty.id, At::parse(to, tz)?).await?.map(|s| s.cycle) else {
        bail!("no snapshot of {} exists at or before {to}", ty.full_name());
    };
    let mut d = Diff { data_type: ty.full_name(), from_cycle: c1, to_cycle: Some(c2), ..Default::default() };
    if c1.is_some_and(|c| c >= c2) {
        return Ok(d);
    }
    for c in vault.change_list(ty.id, c1, c2).await? {
        let entry = DiffEntry { sid: c.sid, id: c.source_id, from_version: c.before, to_version: c.after };
        match c.kind {
            ChangeKind::Added => d.added.push(entry),
            ChangeKind::Changed => d.changed.push(entry),
            ChangeKind::Deleted => d.deleted.push(entry),
        }
    }
    Ok(d)
}
