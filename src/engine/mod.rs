//! The backup engine: drives connectors into the vault, one cycle at a time.

pub mod backup;
pub mod query;
pub mod restore;
pub mod writer;

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::config::{Config, SourceConfig};
use crate::connectors::{self, Connector};
use crate::vault::{Vault, catalog};
use backup::{MissedByFeed, TypeJob, TypeStats};
use writer::Writer;

#[derive(Debug, Serialize)]
pub struct TypeOutcome {
    pub org: String,
    pub source: String,
    pub data_type: String,
    pub error: Option<String>,
    pub stats: TypeStats,
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

pub(crate) const LOCK: &str = "backup";

/// Makes a source's connector from its config (the registry, or a test's own).
pub type Factory = dyn Fn(&SourceConfig) -> Result<Box<dyn Connector>> + Sync;

/// One backup cycle of every configured source (or those the filter keeps).
/// A data type that fails is logged and left at its last snapshot; the others complete.
pub async fn run_cycle(vault: &Vault, cfg: &Config, filter: &Filter) -> Result<CycleReport> {
    run_cycle_with(vault, cfg, filter, &connectors::build).await
}

pub async fn run_cycle_with(vault: &Vault, cfg: &Config, filter: &Filter, factory: &Factory) -> Result<CycleReport> {
    catalog::lock(&vault.catalog.pool, LOCK).await?;
    let r = cycle_locked(vault, cfg, filter, factory).await;
    catalog::unlock(&vault.catalog.pool, LOCK).await?;
    r
}

async fn cycle_locked(vault: &Vault, cfg: &Config, filter: &Filter, factory: &Factory) -> Result<CycleReport> {
    let orphan_packs_removed = vault.remove_unreferenced_packs().await?;
    let cycle = catalog::cycle_start(&mut *vault.catalog.pool.acquire().await?).await?;
    let mut report = CycleReport { cycle, types: Vec::new(), sources: Vec::new(), orphan_packs_removed };
    for org_cfg in &cfg.orgs {
        let org_sid = org_cfg.sid.get_ref();
        if filter.org.as_ref().is_some_and(|o| o != org_sid) {
            continue;
        }
        let org = vault.org(org_sid, &org_cfg.name).await?;
        let mut writer = Writer::new(vault, &org, cycle);
        for src in &org_cfg.sources {
            let source = src.name.get_ref();
            if filter.source.as_ref().is_some_and(|s| s != source) {
                continue;
            }
            let outcome = |ty: &str, r: Result<TypeStats>| {
                let (error, stats) = match r {
                    Ok(s) => (None, s),
                    Err(e) => (Some(format!("{e:#}")), TypeStats::default()),
                };
                TypeOutcome { org: org_sid.clone(), source: source.clone(), data_type: ty.to_string(), error, stats }
            };
            let connector = match factory(src) {
                Ok(c) => c,
                Err(e) => {
                    record(vault, cycle, &mut report, outcome("*", Err(e))).await?;
                    continue;
                }
            };
            let types = match connector.discover().await {
                Ok(t) => t,
                Err(e) => {
                    record(vault, cycle, &mut report, outcome("*", Err(anyhow!("cannot list data types: {e}"))))
                        .await?;
                    continue;
                }
            };
            let missing = missing_types(vault, org.id, source, &types).await?;
            for ty in types {
                if vault.catalog.postgres {
                    // Other hosts judge the lock by this; on SQLite the holder is local and
                    // judged by its process id, and a second connection would wait on ours.
                    catalog::heartbeat(&vault.catalog.pool, LOCK).await?;
                }
                let mut job = TypeJob {
                    vault,
                    org: &org,
                    source,
                    data_type: &ty.key,
                    connector: connector.as_ref(),
                    cycle,
                    full_every_days: cfg.engine.full_every_days,
                    force_full: false,
                    max_deleted_share: (!filter.allow_deletions).then_some(cfg.engine.max_deleted_share),
                };
                let mut r = backup_and_commit(&job, &mut writer).await;
                if let Some(missed) = r.as_ref().err().and_then(|e| e.downcast_ref::<MissedByFeed>()).map(|m| m.0) {
                    tracing::warn!(org = %org_sid, source = %source, data_type = %ty.key, "the change feed missed {missed} records: reading the whole source");
                    job.force_full = true;
                    // The whole read counts what it finds behind the cursor; records without
                    // a modification time are counted by the listing.
                    r = backup_and_commit(&job, &mut writer).await.map(|mut s| {
                        s.drift = s.drift.max(missed);
                        s
                    });
                }
                record(vault, cycle, &mut report, outcome(&ty.key, r)).await?;
            }
            let vis = connector.visible();
            let done = SourceOutcome {
                org: org_sid.clone(),
                source: source.clone(),
                visible: vis.kept,
                skipped: vis.skipped,
                requests: connector.requests(),
                missing,
            };
            log_source(vault, cycle, &done).await?;
            report.sources.push(done);
        }
    }
    let status = if report.failed() == 0 { "ok" } else { "partial" };
    catalog::cycle_finish(&mut *vault.catalog.pool.acquire().await?, cycle, status).await?;
    vault.catalog.compact_log().await?;
    Ok(report)
}

async fn backup_and_commit(job: &TypeJob<'_>, writer: &mut Writer<'_>) -> Result<TypeStats> {
    let r = match backup::backup_type(job, writer).await {
        Ok(stats) => writer.commit().await.map(|_| stats),
        Err(e) => Err(e),
    };
    if r.is_err() {
        writer.abort().await?;
    }
    r
}

/// Data types of earlier cycles that the source did not offer this time: a table or board
/// deleted, renamed, no longer visible to the credentials, or left out by the scope. Their
/// records stay at their last snapshot, so this is said loudly, every cycle.
async fn missing_types(
    vault: &Vault,
    org_id: i64,
    source: &str,
    found: &[connectors::DataType],
) -> Result<Vec<String>> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT name FROM types WHERE org_id = $1 AND source = $2 ORDER BY name")
        .bind(org_id)
        .bind(source)
        .fetch_all(&vault.catalog.pool)
        .await?;
    Ok(rows.iter().map(|r| r.get::<String, _>(0)).filter(|n| !found.iter().any(|t| &t.key == n)).collect())
}

/// Logs what a source's credentials could see, so a workspace or board gone missing is noticed.
async fn log_source(vault: &Vault, cycle: i64, s: &SourceOutcome) -> Result<()> {
    let mut parts = Vec::new();
    if !s.visible.is_empty() {
        parts.push(format!("visible: {}", s.visible.join(", ")));
    }
    if !s.skipped.is_empty() {
        parts.push(format!("left out by scope: {}", s.skipped.join(", ")));
    }
    if let Some(n) = s.requests {
        parts.push(format!("{n} API requests"));
    }
    let mut conn = vault.catalog.pool.acquire().await?;
    if !s.missing.is_empty() {
        let msg = format!(
            "data types backed up before are gone from the source (deleted, renamed, no longer visible to the \
             credentials, or left out by the scope); their records stay at their last snapshot: {}",
            s.missing.join(", ")
        );
        tracing::warn!(org = %s.org, source = %s.source, "{msg}");
        catalog::log(&mut conn, cycle, "warn", &s.org, &s.source, "*", &msg).await?;
    }
    if parts.is_empty() {
        return Ok(());
    }
    let msg = parts.join("; ");
    tracing::info!(org = %s.org, source = %s.source, "{msg}");
    catalog::log(&mut conn, cycle, "info", &s.org, &s.source, "*", &msg).await
}

/// Logs a data type's outcome in the cycle's backup log.
async fn record(vault: &Vault, cycle: i64, report: &mut CycleReport, o: TypeOutcome) -> Result<()> {
    let (level, msg) = match &o.error {
        Some(e) => {
            tracing::error!(org = %o.org, source = %o.source, data_type = %o.data_type, "not snapshotted this cycle: {e}");
            ("error", format!("not snapshotted this cycle: {e}"))
        }
        None => {
            let s = &o.stats;
            let m = format!(
                "{} read: {} live, {} added, {} changed, {} deleted, {} files fetched, {} bytes stored",
                if s.full_read { "whole source" } else { "changes" },
                s.live,
                s.added,
                s.changed,
                s.deleted,
                s.files_fetched,
                s.stored_bytes
            );
            if s.drift > 0 {
                let d = format!("{m}; DRIFT: {} changes the incremental reads had missed", s.drift);
                tracing::warn!(org = %o.org, source = %o.source, data_type = %o.data_type, "{d}");
                ("warn", d)
            } else {
                tracing::info!(org = %o.org, source = %o.source, data_type = %o.data_type, "{m}");
                ("info", m)
            }
        }
    };
    catalog::log(&mut *vault.catalog.pool.acquire().await?, cycle, level, &o.org, &o.source, &o.data_type, &msg)
        .await?;
    report.types.push(o);
    Ok(())
}
