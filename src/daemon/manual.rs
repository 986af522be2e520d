//! Backups asked for by a person (`daybook backup --now`, the dashboard's "Back up now"):
//! queued for the daemon's workers, or refused with the reason and nothing queued.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::engine::Filter;
use crate::vault::catalog::{Catalog, NewJob, jobs::stamp};

/// How long after a source's last backup a manual one through the daemon is refused (the
/// operator's direct `daybook backup` is never refused).
pub const MANUAL_GAP: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    pub job: i64,
    pub org: String,
    pub source: String,
}

/// Queues a backup of each source the filter keeps; `Err(reasons)`, with nothing queued, if
/// any was backed up less than 5 minutes ago (saying when it can run) or is already queued.
pub async fn queue_backups(
    catalog: &Catalog,
    cfg: &Config,
    filter: &Filter,
    mirror: bool,
) -> Result<Result<Vec<Queued>, Vec<String>>> {
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
    if wanted.is_empty() && refused.is_empty() {
        refused.push("no source matches (check --org and --source against the config)".into());
    }
    if !refused.is_empty() {
        return Ok(Err(refused));
    }
    let args = serde_json::json!({ "allow_deletions": filter.allow_deletions, "no_mirror": !mirror }).to_string();
    let mut queued = Vec::new();
    for (org, source) in wanted {
        let job = NewJob {
            kind: super::queue::Kind::Backup.as_str().into(),
            org: Some(org.clone()),
            source: Some(source.clone()),
            args: args.clone(),
            manual: true,
            max_attempts: cfg.daemon.max_attempts,
        };
        let id = catalog.enqueue(&job).await?;
        queued.push(Queued { job: id, org, source });
    }
    Ok(Ok(queued))
}
