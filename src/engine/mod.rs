//! The backup engine: drives connectors into the vault, one cycle at a time.

pub mod backup;
pub mod query;

use anyhow::{Result, anyhow};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashSet;

use crate::config::Config;
use crate::connectors;
use crate::vault::{Vault, catalog};
use backup::{TypeJob, TypeStats};

#[derive(Debug, Serialize)]
pub struct TypeOutcome {
    pub org: String,
    pub source: String,
    pub data_type: String,
    pub error: Option<String>,
    pub stats: TypeStats,
}

#[derive(Debug, Serialize)]
pub struct CycleReport {
    pub cycle: i64,
    pub types: Vec<TypeOutcome>,
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
}

const LOCK: &str = "backup";

/// One backup cycle of every configured source (or those the filter keeps).
/// A data type that fails is logged and left at its last snapshot; the others complete.
pub async fn run_cycle(vault: &Vault, cfg: &Config, filter: &Filter) -> Result<CycleReport> {
    catalog::lock(&vault.catalog.pool, LOCK).await?;
    let r = cycle_locked(vault, cfg, filter).await;
    catalog::unlock(&vault.catalog.pool, LOCK).await?;
    r
}

async fn cycle_locked(vault: &Vault, cfg: &Config, filter: &Filter) -> Result<CycleReport> {
    let orphan_packs_removed = remove_orphan_packs(vault).await?;
    let mut conn = vault.catalog.pool.acquire().await?;
    let cycle = catalog::cycle_start(&mut conn).await?;
    let mut report = CycleReport { cycle, types: Vec::new(), orphan_packs_removed };
    for org_cfg in &cfg.orgs {
        let org_sid = org_cfg.sid.get_ref();
        if filter.org.as_ref().is_some_and(|o| o != org_sid) {
            continue;
        }
        let org = vault.org(org_sid, &org_cfg.name).await?;
        for src in &org_cfg.sources {
            let source = src.name.get_ref();
            if filter.source.as_ref().is_some_and(|s| s != source) {
                continue;
            }
            let fail = |ty: &str, e: String| TypeOutcome {
                org: org_sid.clone(),
                source: source.clone(),
                data_type: ty.to_string(),
                error: Some(e),
                stats: TypeStats::default(),
            };
            let connector = match connectors::build(cfg, src) {
                Ok(c) => c,
                Err(e) => {
                    report.types.push(fail("*", format!("{e:#}")));
                    continue;
                }
            };
            let types = match connector.discover().await {
                Ok(t) => t,
                Err(e) => {
                    report.types.push(fail("*", format!("cannot list data types: {e}")));
                    continue;
                }
            };
            for ty in types {
                catalog::heartbeat(&vault.catalog.pool, LOCK).await?;
                let job =
                    TypeJob { vault, org: &org, source, data_type: &ty.name, connector: connector.as_ref(), cycle };
                let outcome = match backup::backup_type(&job).await {
                    Ok(stats) => TypeOutcome {
                        org: org_sid.clone(),
                        source: source.clone(),
                        data_type: ty.name.clone(),
                        error: None,
                        stats,
                    },
                    Err(e) => fail(&ty.name, format!("{e:#}")),
                };
                let (level, msg) = match &outcome.error {
                    Some(e) => {
                        tracing::error!(org = %org_sid, source = %source, data_type = %ty.name, "not snapshotted this cycle: {e}");
                        ("error", format!("not snapshotted this cycle: {e}"))
                    }
                    None => {
                        let s = &outcome.stats;
                        let m = format!(
                            "{} live: {} added, {} changed, {} deleted, {} files fetched, {} bytes stored",
                            s.live, s.added, s.changed, s.deleted, s.files_fetched, s.stored_bytes
                        );
                        tracing::info!(org = %org_sid, source = %source, data_type = %ty.name, "{m}");
                        ("info", m)
                    }
                };
                catalog::log(&mut conn, cycle, level, org_sid, source, &ty.name, &msg).await?;
                report.types.push(outcome);
            }
        }
    }
    let status = if report.failed() == 0 { "ok" } else { "partial" };
    catalog::cycle_finish(&mut conn, cycle, status).await?;
    drop(conn);
    vault.catalog.compact_log().await?;
    Ok(report)
}

/// Packs in the store that the catalog does not know were left by a backup that died
/// before its commit (or belong to an erased org). Only called under the backup lock.
pub async fn remove_orphan_packs(vault: &Vault) -> Result<u64> {
    let known: HashSet<String> = sqlx::query("SELECT name FROM packs")
        .fetch_all(&vault.catalog.pool)
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let orphans = orphan_packs(vault, &known).await?;
    for p in &orphans {
        vault.store.delete(p).await?;
    }
    if !orphans.is_empty() {
        tracing::info!("removed {} unreferenced packs left by an interrupted backup", orphans.len());
    }
    Ok(orphans.len() as u64)
}

pub async fn orphan_packs(vault: &Vault, known: &HashSet<String>) -> Result<Vec<StorePath>> {
    let mut out = Vec::new();
    let mut list = vault.store.list(Some(&StorePath::from("data")));
    while let Some(meta) = list.try_next().await.map_err(|e| anyhow!("listing the store: {e}"))? {
        let name = meta.location.filename().unwrap_or_default();
        if !known.contains(name) {
            out.push(meta.location);
        }
    }
    Ok(out)
}
