//! Deleted records found (`recover`) and brought back as copies (`restore`). The vault
//! gives the content and file bytes; the source's connector creates the copy; the catalog
//! remembers it, so the same version is not copied twice by accident.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use super::Factory;
use super::query;
use crate::config::Config;
use crate::connectors::{RestoreFile, Restored};
use crate::vault::Vault;
use crate::vault::read::{At, RecordInfo, VersionInfo};

#[derive(Debug, Default)]
pub struct RecoverFilter {
    /// Only this org (its SID).
    pub org: Option<String>,
    pub source: Option<String>,
    pub data_type: Option<String>,
    /// Text the last known content holds (any case).
    pub search: Option<String>,
    /// Deletions noticed at or after: YYYY-MM-DD (start of that day in the org's
    /// timezone), an RFC 3339 time, or cycle:N.
    pub since: Option<String>,
    /// Deletions noticed at or before: YYYY-MM-DD (end of that day), an RFC 3339 time, or cycle:N.
    pub until: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    pub sid: String,
    /// Its data type in the vault.
    pub type_id: i64,
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
    Ok(recover_page(vault, cfg, f, None, usize::MAX).await?.0)
}

/// The deleted records `recover` finds, `limit` of them after the one whose SID is `after`,
/// and whether more follow: a page costs the filtering of references, and the building of
/// its own records only.
pub async fn recover_page(
    vault: &Vault,
    cfg: &Config,
    f: &RecoverFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Deleted>, bool)> {
    let needle = f.search.as_ref().map(|s| s.to_lowercase());
    let all = vault.deletions(f.org.as_deref()).await?;
    // The bounds, parsed once per org (they are in its timezone).
    let mut bounds: HashMap<String, (Option<At>, Option<At>)> = HashMap::new();
    let mut hits = Vec::new();
    for d in all.sorted() {
        let r = &d.record;
        if f.source.as_ref().is_some_and(|s| *s != r.source)
            || f.data_type.as_ref().is_some_and(|t| *t != r.data_type && *t != r.type_key)
        {
            continue;
        }
        if !bounds.contains_key(&r.org) {
            let tz = query::org_tz(cfg, &r.org);
            let since = f.since.as_ref().map(|s| At::parse_since(s, tz)).transpose()?;
            let until = f.until.as_ref().map(|s| At::parse(s, tz)).transpose()?;
            bounds.insert(r.org.clone(), (since, until));
        }
        let (since, until) = &bounds[&r.org];
        let after_since = match since {
            Some(At::Cycle(c)) => d.noticed_cycle >= *c,
            Some(At::Instant(t)) => d.noticed >= *t,
            _ => true,
        };
        let before_until = match until {
            Some(At::Cycle(c)) => d.noticed_cycle <= *c,
            Some(At::Instant(t)) => d.noticed <= *t,
            _ => true,
        };
        if !after_since || !before_until || needle.as_ref().is_some_and(|n| !d.text.contains(n)) {
            continue;
        }
        hits.push(d);
    }
    let start = match after {
        Some(sid) => hits.iter().position(|d| d.record.sid == sid).map_or(0, |i| i + 1),
        None => 0,
    };
    let more = hits.len() > start.saturating_add(limit);
    let restored = vault.restored_sids().await?;
    let mut out = Vec::new();
    for d in hits.into_iter().skip(start).take(limit) {
        let r = &d.record;
        let restored_as = match restored.contains(&r.sid) {
            true => vault.restores_of(r).await?.into_iter().map(|x| x.new_id).collect(),
            false => Vec::new(),
        };
        out.push(Deleted {
            sid: r.sid.clone(),
            type_id: r.type_id.0,
            org: r.org.clone(),
            source: r.source.clone(),
            data_type: r.data_type.clone(),
            source_id: r.source_id.clone(),
            last_version: d.last.version as i64,
            last_seen: d.last_seen.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            deletion_noticed: d.noticed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            content: serde_json::to_value(&d.last.content)?,
            restored_as,
        });
    }
    Ok((out, more))
}

#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    pub record: RecordInfo,
    pub version: u32,
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
    vault.rewrite_running(&info.org, &format!("the restore of {}", info.sid)).await?;
    let v = pick_version(&info, &versions, req.version)?;
    let stored = vault
        .version_content(&info, v.version)
        .await?
        .ok_or_else(|| anyhow!("version {} of {} has no content", v.version, info.sid))?;
    let files = stored.files.iter().map(|f| (f.name.clone(), f.size)).collect();

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
    if let Some(done) = vault.restores_of(&info).await?.into_iter().find(|r| r.version == v.version)
        && !req.again
    {
        bail!(
            "version {} of {} was already restored on {} as id {}; pass --again to make another copy",
            v.version,
            info.sid,
            done.at,
            done.new_id
        );
    }
    let mut out = RestoreOutcome {
        record: info.clone(),
        version: v.version,
        dry_run: req.dry_run,
        content: stored.data.clone(),
        files,
        restored: None,
    };
    if req.dry_run {
        return Ok(out);
    }
    let mut with_bytes = Vec::new();
    for f in &stored.files {
        let (_, mut reader) = vault.open_file(&info.org, &f.uid).await?;
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
            .await
            .with_context(|| format!("reading {} from the vault", f.uid))?;
        with_bytes.push(RestoreFile { key: f.key.clone(), name: f.name.clone(), bytes });
    }
    let done = connector
        .restore(&info.type_key, &out.content, with_bytes)
        .await
        .map_err(|e| anyhow!("restoring {} into {}: {e}", info.sid, info.source))?;
    vault.add_restore(&info, v.version, &done.new_id, done.files_uploaded as u64, &done.notes).await?;
    out.restored = Some(done);
    Ok(out)
}

/// The version asked for, or the last one with content.
fn pick_version<'v>(info: &RecordInfo, versions: &'v [VersionInfo], asked: Option<i64>) -> Result<&'v VersionInfo> {
    match asked {
        Some(n) => {
            let v = versions
                .iter()
                .find(|v| v.version as i64 == n)
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
