use anyhow::Result;
use serde::Serialize;
use std::path::Path;

use crate::daemon::schedule::{Clock, Schedule, SystemClock};
use crate::util::print_table;
use crate::vault::catalog::{Catalog, JobRow, jobs};

#[derive(Serialize)]
struct Daemon {
    holder: String,
    started_at: String,
    heartbeat: String,
}

#[derive(Serialize)]
struct OrgStatus {
    org: String,
    /// When the next scheduled run starts (UTC), and the same in the org's timezone.
    next_run: Option<String>,
    next_run_local: Option<String>,
    running: Vec<JobRow>,
    queued: usize,
    last: Option<JobRow>,
}

#[derive(Serialize)]
struct Status {
    daemons: Vec<Daemon>,
    orgs: Vec<OrgStatus>,
    /// Jobs failed for good (no retry left), newest first.
    failed: Vec<JobRow>,
}

/// Reads the catalog only: no passphrase needed.
pub async fn run(config: &Path, json: bool) -> Result<()> {
    let cfg = super::load_config(config)?;
    let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
    let known = catalog.has_table("jobs").await?;
    let (running, queued, last, daemons) = if known {
        let daemons = crate::daemon::daemons_running(&catalog, &cfg)
            .await?
            .into_iter()
            .map(|(holder, started_at, heartbeat)| Daemon { holder, started_at, heartbeat })
            .collect();
        (
            catalog.jobs_in(jobs::RUNNING).await?,
            catalog.jobs_in(jobs::QUEUED).await?,
            catalog.last_finished("backup").await?,
            daemons,
        )
    } else {
        Default::default()
    };
    let failed: Vec<JobRow> = if known {
        catalog.jobs(None, 1000).await?.into_iter().filter(|j| j.state == jobs::FAILED).collect()
    } else {
        vec![]
    };
    let now = SystemClock.now();
    let mut orgs = Vec::new();
    for o in &cfg.orgs {
        let sid = o.sid.get_ref();
        let next = Schedule::of(o).ok().and_then(|s| s.next_due(now)).map(|(_, t)| t);
        orgs.push(OrgStatus {
            org: sid.clone(),
            next_run: next.map(jobs::stamp),
            next_run_local: next.map(|t| t.with_timezone(&o.tz()).format("%Y-%m-%d %H:%M %Z").to_string()),
            running: running.iter().filter(|j| j.org.as_ref() == Some(sid)).cloned().collect(),
            queued: queued.iter().filter(|j| j.org.as_ref() == Some(sid)).count(),
            last: last.iter().find(|j| j.org.as_ref() == Some(sid)).cloned(),
        });
    }
    let st = Status { daemons, orgs, failed };
    if json {
        return super::print_json(&st);
    }
    if st.daemons.is_empty() {
        println!("no daemon is running on catalog {}", catalog.display);
    }
    for d in &st.daemons {
        println!("daemon {} running since {} (last seen {})", d.holder, d.started_at, d.heartbeat);
    }
    println!();
    let rows: Vec<Vec<String>> = st
        .orgs
        .iter()
        .map(|o| {
            let running = o
                .running
                .iter()
                .map(|j| format!("job {} {} since {}", j.id, j.kind, j.started_at.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ");
            let last = o
                .last
                .as_ref()
                .map(|j| {
                    format!(
                        "job {} {} at {}: {}",
                        j.id,
                        j.state,
                        j.finished_at.as_deref().unwrap_or("?"),
                        j.outcome.as_deref().unwrap_or("")
                    )
                })
                .unwrap_or_else(|| "-".into());
            vec![
                o.org.clone(),
                o.next_run_local.clone().unwrap_or_else(|| "-".into()),
                if running.is_empty() { "-".into() } else { running },
                o.queued.to_string(),
                last,
            ]
        })
        .collect();
    print_table(&["org", "next run", "running", "queued", "last backup"], &rows);
    for j in &st.failed {
        println!(
            "failed: job {} ({}{}) after {} attempts, at {}; see daybook logs --job {}",
            j.id,
            j.kind,
            j.org.as_deref().map(|o| format!(" of {o}")).unwrap_or_default(),
            j.attempts,
            j.finished_at.as_deref().unwrap_or("?"),
            j.id
        );
    }
    Ok(())
}
