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

/// How long after a source's last backup a manual one through the daemon is refused (the
/// operator's direct `daybook backup` is never refused).
pub const MANUAL_GAP: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// `daybook backup --now`: asks the running daemon, through the queue, for a backup of each
/// source the filter keeps. Refused, with nothing queued, if no daemon runs, or a source was
/// backed up less than 5 minutes ago (saying when it can run), or is already queued.
pub async fn now(config: &Path, filter: Filter, mirror: bool, json: bool) -> Result<()> {
    use crate::vault::catalog::{Catalog, NewJob, jobs::stamp};
    let cfg = super::load_config(config)?;
    let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
    if !catalog.has_table("jobs").await? || crate::daemon::daemons_running(&catalog, &cfg).await?.is_empty() {
        bail!(
            "no daemon is running on catalog {}: start `daybook daemon` (or run `daybook backup` without --now)",
            catalog.display
        );
    }
    let now = chrono::Utc::now();
    let mut wanted = Vec::new();
    let mut refused = Vec::new();
    for org in cfg.orgs.iter().filter(|o| filter.org.as_ref().is_none_or(|f| f == o.sid.get_ref())) {
        for src in org.sources.iter().filter(|s| filter.source.as_ref().is_none_or(|f| f == s.name.get_ref())) {
            let (sid, name) = (org.sid.get_ref(), src.name.get_ref());
            let (last, pending) = catalog.last_backup(sid, name).await?;
            if let Some(j) = pending {
                refused.push(format!("{sid}/{name}: a backup of it is already {} (job {})", j.state, j.id));
                continue;
            }
            let last = last.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc());
            if let Some(t) = last.filter(|t| now < *t + MANUAL_GAP) {
                let when = t + MANUAL_GAP;
                refused.push(format!(
                    "{sid}/{name}: last backed up at {}, less than 5 minutes ago; it can run again from {} ({} in the org's timezone)",
                    stamp(t),
                    stamp(when),
                    when.with_timezone(&org.tz()).format("%H:%M:%S %Z")
                ));
                continue;
            }
            wanted.push((sid.clone(), name.clone()));
        }
    }
    if !refused.is_empty() {
        bail!("refused, nothing queued:\n  {}", refused.join("\n  "));
    }
    if wanted.is_empty() {
        bail!("no source matches (check --org and --source against the config)");
    }
    let args = serde_json::json!({ "allow_deletions": filter.allow_deletions, "no_mirror": !mirror }).to_string();
    let mut queued = Vec::new();
    for (org, source) in wanted {
        let job = NewJob {
            kind: crate::daemon::queue::Kind::Backup.as_str().into(),
            org: Some(org.clone()),
            source: Some(source.clone()),
            args: args.clone(),
            manual: true,
            max_attempts: cfg.daemon.max_attempts,
        };
        let id = catalog.enqueue(&job).await?;
        queued.push(serde_json::json!({ "job": id, "org": org, "source": source }));
    }
    if json {
        return super::print_json(&queued);
    }
    for q in &queued {
        println!(
            "queued job {} (backup of {}/{}); follow it with `daybook logs --job {}`",
            q["job"],
            q["org"].as_str().unwrap_or_default(),
            q["source"].as_str().unwrap_or_default(),
            q["job"]
        );
    }
    Ok(())
}
