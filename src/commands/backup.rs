use anyhow::{Result, bail};
use std::path::Path;

use crate::engine::{self, CycleReport, Filter};
use crate::util::{human_bytes, print_table};

pub async fn run(config: &Path, filter: Filter, mirror: bool, json: bool) -> Result<bool> {
    let (cfg, vault) = super::open(config).await?;
    let report = engine::run_cycle(&vault, &cfg, &filter).await?;
    // The backup is committed: a mirror that fails now fails the command, not the backup.
    let mirrored = if mirror && cfg.orgs.iter().any(|o| !o.mirrors.is_empty()) {
        let opts = crate::mirror::Options { org: filter.org.clone(), ..Default::default() };
        Some(match super::mirror::run_with(&vault, &cfg, &opts, Some(report.cycle)).await {
            Ok(r) => r,
            Err(e) => crate::mirror::Report::failed_whole(&cfg, filter.org.as_deref(), &e),
        })
    } else {
        None
    };
    if json {
        #[derive(serde::Serialize)]
        struct Both<'a> {
            #[serde(flatten)]
            backup: &'a CycleReport,
            mirror: &'a Option<crate::mirror::Report>,
        }
        super::print_json(&Both { backup: &report, mirror: &mirrored })?
    } else {
        print(&report);
        if let Some(m) = &mirrored {
            println!();
            super::mirror::print(m);
        }
    }
    Ok(report.failed() == 0 && mirrored.is_none_or(|m| m.failed() == 0))
}

pub fn print(r: &CycleReport) {
    println!("cycle {}", r.cycle);
    let rows: Vec<Vec<String>> = r
        .types
        .iter()
        .map(|t| {
            let s = &t.stats;
            let status = match &t.error {
                Some(_) => "FAILED".to_string(),
                None => "ok".to_string(),
            };
            vec![
                t.org.clone(),
                t.source.clone(),
                t.data_type.clone(),
                status,
                s.live.to_string(),
                s.added.to_string(),
                s.changed.to_string(),
                s.deleted.to_string(),
                s.files_fetched.to_string(),
                human_bytes(s.stored_bytes),
            ]
        })
        .collect();
    print_table(&["org", "source", "type", "status", "live", "added", "changed", "deleted", "files", "stored"], &rows);
    for s in &r.sources {
        // A board or table missing here is one the credentials no longer see.
        if !s.visible.is_empty() {
            println!("{}/{}: visible: {}", s.org, s.source, s.visible.join(", "));
        }
        if !s.skipped.is_empty() {
            println!("{}/{}: left out by scope: {}", s.org, s.source, s.skipped.join(", "));
        }
        if let Some(n) = s.requests {
            println!("{}/{}: {n} API requests", s.org, s.source);
        }
        if !s.missing.is_empty() {
            eprintln!(
                "warning: {}/{}: gone from the source (deleted, renamed, no longer visible, or out of scope), kept at \
                 their last snapshot: {}",
                s.org,
                s.source,
                s.missing.join(", ")
            );
        }
    }
    for t in r.types.iter().filter(|t| t.error.is_some()) {
        eprintln!(
            "error: {}/{}/{}: {} (its last snapshot is kept)",
            t.org,
            t.source,
            t.data_type,
            t.error.as_deref().unwrap_or_default()
        );
    }
}

/// `daybook backup --now`: asks the running daemon, through the queue, for a backup of each
/// source the filter keeps. Refused, with nothing queued, if no daemon runs, or a source was
/// backed up less than 5 minutes ago (saying when it can run), or is already queued.
pub async fn now(config: &Path, filter: Filter, mirror: bool, json: bool) -> Result<()> {
    use crate::vault::catalog::Catalog;
    let cfg = super::load_config(config)?;
    let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
    if !catalog.has_table("jobs").await? || crate::daemon::daemons_running(&catalog, &cfg).await?.is_empty() {
        bail!(
            "no daemon is running on catalog {}: start `daybook daemon` (or run `daybook backup` without --now)",
            catalog.display
        );
    }
    let queued = match crate::daemon::manual::queue_backups(&catalog, &cfg, &filter, mirror).await? {
        Ok(q) => q,
        Err(refused) => bail!("refused, nothing queued:\n  {}", refused.join("\n  ")),
    };
    if json {
        return super::print_json(&queued);
    }
    for q in &queued {
        println!(
            "queued job {} (backup of {}/{}); follow it with `daybook logs --job {}`",
            q.job, q.org, q.source, q.job
        );
    }
    Ok(())
}
