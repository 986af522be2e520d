use anyhow::{Result, bail};
use std::path::Path;

use crate::connectors;
use crate::engine::restore::{self, RestoreRequest};

pub async fn run(config: &Path, req: &RestoreRequest<'_>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let out = restore::restore(&vault, &cfg, req, &connectors::build).await?;
    if json {
        return super::print_json(&out);
    }
    let r = &out.record;
    let files = out.files.iter().map(|(n, s)| format!("{n} ({s} bytes)")).collect::<Vec<_>>().join(", ");
    match &out.restored {
        None => {
            println!(
                "dry run: would create a copy of {} version {} in {}/{}:",
                r.sid, out.version, r.source, r.data_type
            );
            println!("{}", serde_json::to_string_pretty(&out.content)?);
            if !files.is_empty() {
                println!("with files: {files}");
            }
            println!("nothing was written");
        }
        Some(done) => {
            println!(
                "restored {} version {} as a new record in {}/{}: new id {}",
                r.sid, out.version, r.source, r.data_type, done.new_id
            );
            println!("{} of {} files uploaded again", done.files_uploaded, out.files.len());
            for n in &done.notes {
                println!("note: {n}");
            }
        }
    }
    Ok(())
}

/// `daybook restore --queue`: the same restore, as a job for the running daemon, which emails
/// `email` (default: the org's admin_email) when it ends. The record is looked up first, so a
/// wrong SID is said here, not in a job's log.
pub async fn queue(config: &Path, req: &RestoreRequest<'_>, email: Option<&str>, json: bool) -> Result<()> {
    use crate::daemon::worker::RestoreArgs;
    use crate::vault::catalog::NewJob;
    let (cfg, vault) = super::open(config).await?;
    if req.dry_run {
        bail!("--dry-run shows what a restore would create, here and now: drop --queue to see it");
    }
    if let Some(e) = email {
        e.parse::<lettre::message::Mailbox>().map_err(|_| anyhow::anyhow!("--email {e:?} is not an email address"))?;
    }
    let catalog = &vault.catalog;
    if !catalog.has_table("jobs").await? || crate::daemon::daemons_running(catalog, &cfg).await?.is_empty() {
        bail!(
            "no daemon is running on catalog {}: start `daybook daemon` (or run `daybook restore` without --queue)",
            catalog.display
        );
    }
    let (info, _) = crate::engine::query::history(&vault, req.sid).await?;
    let args =
        RestoreArgs { sid: info.sid.clone(), version: req.version, again: req.again, email: email.map(Into::into) };
    let job = NewJob {
        kind: crate::daemon::queue::Kind::Restore.as_str().into(),
        org: Some(info.org.clone()),
        source: Some(info.source.clone()),
        args: serde_json::to_string(&args)?,
        manual: true,
        // Not retried: a copy half made in the app would be made again.
        max_attempts: 1,
    };
    let id = catalog.enqueue(&job).await?;
    if json {
        return super::print_json(
            &serde_json::json!({ "job": id, "sid": info.sid, "org": info.org, "source": info.source }),
        );
    }
    println!(
        "queued job {id} (restore of {} into {}/{}); follow it with `daybook logs --job {id}`",
        info.sid, info.org, info.source
    );
    Ok(())
}
