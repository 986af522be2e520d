//! An archive build as a job of the daemon's queue (kind `archive`): the dashboard records
//! the archive (`start`), queues this job and lets go of the build lease; the job, run later
//! by any daemon on the catalog, takes the lease itself and runs the same `run_build` the CLI
//! runs. A build whose builder dies keeps no live lease and is marked failed by
//! `recover_interrupted`; one queued and not yet claimed is not.

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::config::Config;
use crate::daemon::queue::Kind;
use crate::daemon::worker::{Handlers, JobCtx, Outcome};
use crate::vault::Vault;
use crate::vault::catalog::{NewJob, jobs};

/// A build job's `args`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Args {
    pub archive_id: i64,
    /// The day as asked for (`at_of`), none for the latest snapshots.
    #[serde(default)]
    pub at: Option<String>,
}

/// The job that builds archive `id` of `org`. Run once: a failed build is recorded on the
/// archive with its reason (create it again), never retried behind the requester's back.
pub fn new_job(org: &str, id: i64, at: Option<&str>) -> NewJob {
    NewJob {
        kind: Kind::Archive.as_str().into(),
        org: Some(org.to_string()),
        source: None,
        args: serde_json::to_string(&Args { archive_id: id, at: at.map(str::to_string) }).expect("Args serialize"),
        manual: true,
        max_attempts: 1,
    }
}

/// The archives whose build job is queued and not yet claimed.
pub async fn queued_builds(vault: &Vault) -> Result<Vec<i64>> {
    Ok(vault
        .catalog
        .jobs_in(jobs::QUEUED)
        .await?
        .into_iter()
        .filter(|j| j.kind == Kind::Archive.as_str())
        .filter_map(|j| serde_json::from_str::<Args>(&j.args).ok().map(|a| a.archive_id))
        .collect())
}

/// Registers the `archive` handler.
pub fn register(h: &mut Handlers) {
    h.register(Kind::Archive, Arc::new(|ctx| Box::pin(run(ctx))));
}

async fn run(ctx: JobCtx) -> Result<Outcome> {
    let args: Args = serde_json::from_str(&ctx.job.args).context("an archive job's args")?;
    let id = args.archive_id;
    let org = ctx.job.org.clone().ok_or_else(|| anyhow!("archive job {} names no org", ctx.job.id))?;
    let (vault, cfg): (&Vault, &Config) = (&ctx.vault, &ctx.config);
    let status = |a: Option<super::ArchiveInfo>| a.map_or_else(|| "gone".to_string(), |a| a.status);
    let before = status(super::find(vault, cfg, &org, id).await?);
    if before != "in_progress" {
        return Ok(Outcome::ok(format!("archive {id} is {before}: nothing to build")));
    }
    let lease = super::take_build_lease(vault, id).await?;
    // Marked failed between the look and the lease (its builder was taken for gone): leave it.
    let now = status(super::find(vault, cfg, &org, id).await?);
    if now != "in_progress" {
        return Ok(Outcome::ok(format!("archive {id} is {now}: nothing to build")));
    }
    // A run of this job stopped by a daemon's shutdown (parked) may have stored part of it.
    super::clear_partial(vault, id).await?;
    let at = super::at_of(cfg, &org, args.at.as_deref())?;
    let out = super::run_build(vault, cfg, id, at, lease, indicatif::ProgressBar::hidden()).await?;
    let a = &out.archive;
    let mail = match (&out.emailed, &out.email_error) {
        (true, _) => "the requester was emailed".to_string(),
        (false, Some(e)) => format!("the requester was not emailed: {e}"),
        (false, None) => "no one to email; the link is in the daemon's log".to_string(),
    };
    if a.status == "ready" {
        crate::daemon::metrics::global().archive_bytes(a.file_size.max(0) as u64);
        let summary = format!(
            "archive {id} ready: {} versions, {} files, {} bytes in {} part(s)",
            a.versions,
            a.files,
            a.file_size,
            a.parts.len()
        );
        ctx.log("info", &summary, &format!("{summary}; {mail}")).await?;
        Ok(Outcome::ok(summary))
    } else {
        let why = a.error.clone().unwrap_or_else(|| "unknown".into());
        ctx.log("error", &format!("archive {id} failed"), &format!("{why}; {mail}")).await?;
        Ok(Outcome { summary: format!("archive {id} failed, nothing charged"), failure: Some(why) })
    }
}
