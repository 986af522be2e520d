//! The backup engine: drives connectors into the vault, one cycle at a time.

pub mod backup;
pub mod delta;
pub mod export;
mod files;
pub mod forget;
pub mod query;
pub mod restore;
pub mod retention;

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::config::{Config, SourceConfig};
use crate::connectors::{self, Connector};
use crate::vault::read::TypeInfo;
use crate::vault::types::TypeIdentity;
use crate::vault::{Org, Vault, catalog, lease};
use backup::{MissedByFeed, TypeJob, TypeStats};

#[derive(Debug, Serialize)]
pub struct TypeOutcome {
    pub org: String,
    pub source: String,
    /// The data type's current name ("*": the source as a whole).
    pub data_type: String,
    /// Its stable key.
    pub key: String,
    pub error: Option<String>,
    pub stats: TypeStats,
}

impl TypeOutcome {
    fn done(org: &str, source: &str, ty: &TypeInfo, stats: TypeStats) -> TypeOutcome {
        TypeOutcome {
            org: org.into(),
            source: source.into(),
            data_type: ty.name.clone(),
            key: ty.key.clone(),
            error: None,
            stats,
        }
    }

    fn failed(org: &str, source: &str, key: &str, name: &str, e: &anyhow::Error) -> TypeOutcome {
        TypeOutcome {
            org: org.into(),
            source: source.into(),
            data_type: name.into(),
            key: key.into(),
            error: Some(format!("{e:#}")),
            stats: TypeStats::default(),
        }
    }
}

/// What a source's connector saw and cost this cycle.
#[derive(Debug, Serialize)]
pub struct SourceOutcome {
    pub org: String,
    pub source: String,
    /// Containers (workspaces, bases, boards) the credentials could see and the scope kept.
    pub visible: Vec<String>,
    /// Those the scope left out.
    pub skipped: Vec<String>,
    /// API requests, every attempt counted (none for exports).
    pub requests: Option<u64>,
    /// Of them, those the app answered 429.
    pub rate_limited: Option<u64>,
    /// Data types backed up before that the source no longer has.
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CycleReport {
    pub cycle: i64,
    pub types: Vec<TypeOutcome>,
    pub sources: Vec<SourceOutcome>,
    pub orphan_packs_removed: u64,
}

impl CycleReport {
    pub fn failed(&self) -> usize {
        self.types.iter().filter(|t| t.error.is_some()).count()
    }
}

#[derive(Default, Clone)]
pub struct Filter {
    pub org: Option<String>,
    pub source: Option<String>,
    /// Commit deletions however many there are (engine.max_deleted_share is lifted).
    pub allow_deletions: bool,
}

/// Makes a source's connector from its config (the registry, or a test's own).
pub type Factory = dyn Fn(&SourceConfig) -> Result<Box<dyn Connector>> + Sync;

/// One backup cycle of every configured source (or those the filter keeps).
/// A data type that fails is logged and left at its last snapshot; the others complete.
pub async fn run_cycle(vault: &Vault, cfg: &Config, filter: &Filter) -> Result<CycleReport> {
    run_cycle_with(vault, cfg, filter, &connectors::build).await
}

pub async fn run_cycle_with(vault: &Vault, cfg: &Config, filter: &Filter, factory: &Factory) -> Result<CycleReport> {
    let cycle = vault.catalog.cycle_start().await?;
    let mut report = CycleReport { cycle, types: Vec::new(), sources: Vec::new(), orphan_packs_removed: 0 };
    for org_cfg in &cfg.orgs {
        let org_sid = org_cfg.sid.get_ref();
        if filter.org.as_ref().is_some_and(|o| o != org_sid) {
            continue;
        }
        let org = vault.org(org_sid, &org_cfg.name).await?;
        let mut tidied = false;
        for src in &org_cfg.sources {
            let source = src.name.get_ref();
            if filter.source.as_ref().is_some_and(|s| s != source) {
                continue;
            }
            let what = format!("the backup of {org_sid}/{source}");
            let lease = match take_source_lease(vault, org_sid, source, &what).await {
                Ok(l) => l,
                Err(e) => {
                    let o = TypeOutcome::failed(org_sid, source, "*", "*", &e);
                    record(vault, &org, cycle, &mut report, None, o).await?;
                    continue;
                }
            };
            if !tidied {
                report.orphan_packs_removed += tidy_org(vault, &org, &lease).await?;
                tidied = true;
            }
            let r = backup_source(vault, cfg, filter, factory, &org, src, &lease, cycle, &mut report).await;
            lease.release().await?;
            r?;
        }
    }
    let status = if report.failed() == 0 { "ok" } else { "partial" };
    vault.catalog.cycle_finish(cycle, status).await?;
    vault.catalog.compact_log().await?;
    Ok(report)
}

/// The source's lease, unless the org is being erased.
async fn take_source_lease(vault: &Vault, org: &str, source: &str, what: &str) -> Result<catalog::Lease> {
    vault.lease_unless_rewriting(&lease::source(org, source), what, org).await
}

/// Packs that earlier, interrupted backups of the org left behind are removed, when no other
/// backup of the org is running (its packs are not in the catalog until it commits).
async fn tidy_org(vault: &Vault, org: &Org, lease: &catalog::Lease) -> Result<u64> {
    // The store's "now" is read before the others' leases: a backup that takes its lease after
    // that look writes its packs later than it, and is not touched.
    let before = vault.store_now(org).await?;
    let prefix = lease::source(&org.sid, "");
    let others = vault.catalog.live_leases(|n| n.starts_with(&prefix) && n != lease.name()).await?;
    if !others.is_empty() {
        tracing::debug!("org {}: other backups are running; unreferenced packs are left for later", org.sid);
        return Ok(0);
    }
    vault.remove_unreferenced_packs(org, before).await
}

#[allow(clippy::too_many_arguments)]
async fn backup_source(
    vault: &Vault,
    cfg: &Config,
    filter: &Filter,
    factory: &Factory,
    org: &Org,
    src: &SourceConfig,
    lease: &catalog::Lease,
    cycle: i64,
    report: &mut CycleReport,
) -> Result<()> {
    let (org_sid, source) = (&org.sid, src.name.get_ref());
    let connector = match factory(src) {
        Ok(c) => c,
        Err(e) => {
            return record(vault, org, cycle, report, None, TypeOutcome::failed(org_sid, source, "*", "*", &e)).await;
        }
    };
    let found = match connector.discover().await {
        Ok(t) => t,
        Err(e) => {
            let e = anyhow!("cannot list data types: {e}");
            return record(vault, org, cycle, report, None, TypeOutcome::failed(org_sid, source, "*", "*", &e)).await;
        }
    };
    let ids: Vec<TypeIdentity> =
        found.iter().map(|t| TypeIdentity { key: &t.key, name: &t.name, path: &t.path, former: &t.former }).collect();
    let types = vault.sync_types(org, source, &ids).await?;
    let missing: Vec<String> = vault
        .types_of(org, source)
        .await?
        .into_iter()
        .filter(|t| !types.iter().any(|f| f.id == t.id))
        .map(|t| t.name)
        .collect();
    let mut index = vault.file_index(org).await?;
    for (i, ty) in types.iter().enumerate() {
        let mut job = TypeJob {
            vault,
            org,
            source,
            ty,
            connector: connector.as_ref(),
            cycle,
            lease,
            full_every_days: cfg.engine.full_every_days,
            force_full: false,
            max_deleted_share: (!filter.allow_deletions).then_some(cfg.engine.max_deleted_share),
        };
        // The next data type's state is read while this one's records come in (a read
        // that fails here is only a cache not warmed: that backup reads it again).
        let preload = async {
            if let Some(next) = types.get(i + 1) {
                let _ = vault.preload_state(next.id).await;
            }
        };
        let (mut r, ()) = tokio::join!(backup::backup_type(&job, &mut index), preload);
        if let Some(missed) = r.as_ref().err().and_then(|e| e.downcast_ref::<MissedByFeed>()).map(|m| m.0) {
            tracing::warn!(org = %org_sid, source = %source, data_type = %ty.name, "the change feed missed {missed} records: reading the whole source");
            job.force_full = true;
            // The whole read counts what it finds behind the cursor; records without
            // a modification time are counted by the listing.
            r = backup::backup_type(&job, &mut index).await.map(|mut s| {
                s.drift = s.drift.max(missed);
                s
            });
        }
        let o = match r {
            Ok(stats) => TypeOutcome::done(org_sid, source, ty, stats),
            Err(e) => TypeOutcome::failed(org_sid, source, &ty.key, &ty.name, &e),
        };
        record(vault, org, cycle, report, Some(ty.id.0), o).await?;
    }
    let vis = connector.visible();
    let done = SourceOutcome {
        org: org_sid.clone(),
        source: source.clone(),
        visible: vis.kept,
        skipped: vis.skipped,
        requests: connector.requests(),
        rate_limited: connector.rate_limited(),
        missing,
    };
    log_source(vault, org, cycle, &done).await?;
    report.sources.push(done);
    Ok(())
}

/// Logs what a source's credentials could see, so a workspace or board gone missing is noticed.
async fn log_source(vault: &Vault, org: &Org, cycle: i64, s: &SourceOutcome) -> Result<()> {
    let mut parts = Vec::new();
    if !s.visible.is_empty() {
        parts.push(format!("visible: {}", s.visible.join(", ")));
    }
    if !s.skipped.is_empty() {
        parts.push(format!("left out by scope: {}", s.skipped.join(", ")));
    }
    if let Some(n) = s.requests {
        match s.rate_limited.unwrap_or(0) {
            0 => parts.push(format!("{n} API requests")),
            r => parts.push(format!("{n} API requests ({r} answered 429, waited out or given up)")),
        }
    }
    if !s.missing.is_empty() {
        let msg = format!(
            "data types backed up before are gone from the source (deleted, no longer visible to the \
             credentials, or left out by the scope); their records stay at their last snapshot: {}",
            s.missing.join(", ")
        );
        tracing::warn!(org = %s.org, source = %s.source, "{msg}");
        let summary = format!("{} data types gone from the source", s.missing.len());
        vault.log(org, cycle, "warn", &s.source, None, &summary, &msg).await?;
    }
    if parts.is_empty() {
        return Ok(());
    }
    let msg = parts.join("; ");
    tracing::info!(org = %s.org, source = %s.source, "{msg}");
    let summary = format!(
        "{} visible, {} left out, {} API requests",
        s.visible.len(),
        s.skipped.len(),
        s.requests.map(|n| n.to_string()).unwrap_or_else(|| "no".into())
    );
    vault.log(org, cycle, "info", &s.source, None, &summary, &msg).await
}

/// Logs a data type's outcome in the cycle's backup log.
async fn record(
    vault: &Vault,
    org: &Org,
    cycle: i64,
    report: &mut CycleReport,
    type_id: Option<i64>,
    o: TypeOutcome,
) -> Result<()> {
    let s = &o.stats;
    let counts = format!(
        "{} live, {} added, {} changed, {} deleted, {} files fetched, {} bytes stored",
        s.live, s.added, s.changed, s.deleted, s.files_fetched, s.stored_bytes
    );
    let (level, summary, msg) = match &o.error {
        Some(e) => {
            tracing::error!(org = %o.org, source = %o.source, data_type = %o.data_type, "not snapshotted this cycle: {e}");
            ("error", "failed: not snapshotted this cycle".to_string(), format!("not snapshotted this cycle: {e}"))
        }
        None => {
            let m = format!("{} read: {counts}", if s.full_read { "whole source" } else { "changes" });
            if s.drift > 0 {
                let d = format!("{m}; DRIFT: {} changes the incremental reads had missed", s.drift);
                tracing::warn!(org = %o.org, source = %o.source, data_type = %o.data_type, "{d}");
                ("warn", format!("snapshot: {counts}; drift {}", s.drift), d)
            } else {
                tracing::info!(org = %o.org, source = %o.source, data_type = %o.data_type, "{m}");
                ("info", format!("snapshot: {counts}"), m)
            }
        }
    };
    vault.log(org, cycle, level, &o.source, type_id, &summary, &msg).await?;
    report.types.push(o);
    Ok(())
}
