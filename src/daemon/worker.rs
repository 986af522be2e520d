//! Workers: each claims a ready job, keeps its lease alive on a timer while its handler runs,
//! and records how it ended (done; queued again after a backoff; failed for good).
//!
//! A job's work is a handler registered by kind name, so parts built elsewhere (archive
//! builds) plug theirs in with `Handlers::register` without the worker knowing them.

use anyhow::{Result, anyhow};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::metrics;
use super::notify::RestoreEnd;
use super::queue::{Kind, Queue, backoff};
use crate::config::Config;
use crate::engine::{self, Filter};
use crate::vault::Vault;
use crate::vault::catalog::{JobRow, jobs};

/// What a handler gets: its job, the vault, and the config as it was when the job started.
pub struct JobCtx {
    pub job: JobRow,
    pub vault: Arc<Vault>,
    pub config: Arc<Config>,
}

impl JobCtx {
    /// Adds to the job's log: `summary` plain (an outcome, counts), `message` sealed.
    pub async fn log(&self, level: &str, summary: &str, message: &str) -> Result<()> {
        self.vault.job_log(self.job.id, self.job.org.as_deref(), level, summary, message).await
    }
}

/// How a run ended, as the handler saw it.
pub struct Outcome {
    /// Plain: an outcome and counts only ("3 data types, 120 records, 0 failed").
    pub summary: String,
    /// Why it failed, when it did (the job is retried, then stays failed).
    pub failure: Option<String>,
}

impl Outcome {
    pub fn ok(summary: impl Into<String>) -> Outcome {
        Outcome { summary: summary.into(), failure: None }
    }
}

pub type Handler = Arc<dyn Fn(JobCtx) -> BoxFuture<'static, Result<Outcome>> + Send + Sync>;

/// Handlers by job kind.
#[derive(Clone)]
pub struct Handlers(HashMap<String, Handler>);

impl Handlers {
    /// The handlers daybook has itself: backup, mirror, check, prune and restore. `archive`
    /// is registered by its part.
    pub fn standard() -> Handlers {
        let mut h = Handlers(HashMap::new());
        h.register(Kind::Backup, Arc::new(|ctx| Box::pin(backup(ctx))));
        h.register(Kind::Mirror, Arc::new(|ctx| Box::pin(mirror(ctx))));
        h.register(Kind::Check, Arc::new(|ctx| Box::pin(check(ctx))));
        h.register(Kind::Prune, Arc::new(|ctx| Box::pin(prune(ctx))));
        h.register(Kind::Restore, Arc::new(|ctx| Box::pin(restore(ctx))));
        h
    }

    pub fn register(&mut self, kind: Kind, handler: Handler) {
        self.0.insert(kind.as_str().to_string(), handler);
    }

    fn get(&self, kind: &str) -> Option<Handler> {
        self.0.get(kind).cloned()
    }
}

/// The daemon's parts every worker shares.
pub struct Shared {
    pub queue: Queue,
    pub vault: Arc<Vault>,
    pub config: RwLock<Arc<Config>>,
    pub handlers: Handlers,
    /// Set when a job is queued by this process, to wake an idle worker at once.
    pub wake: tokio::sync::Notify,
    /// Set when the config was reloaded, to have the scheduler look at once.
    pub reschedule: tokio::sync::Notify,
    /// How many jobs run now, for STATUS.
    pub running: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap().clone()
    }
}

/// How far a stop has gone: `Run`, `Drain` (claim nothing more, let running jobs end),
/// `Park` (stop running jobs now and queue them again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum Stop {
    Run,
    Drain,
    Park,
}

/// One worker: claims and runs jobs until told to stop.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<Stop>) {
    let poll = Duration::from_millis(shared.config().daemon.poll_ms.max(10));
    loop {
        if *stop.borrow() != Stop::Run {
            return;
        }
        let cfg = shared.config();
        let orgs: Vec<&str> = cfg.orgs.iter().map(|o| o.sid.get_ref().as_str()).collect();
        match shared.queue.claim(&orgs).await {
            Ok(Some(job)) => run_one(&shared, job, &mut stop).await,
            // Nothing ready: jobs of dead daemons of this host are freed (not before each
            // claim, which stays one round trip), and looked for again at once.
            Ok(None) if shared.queue.catalog.free_jobs_of_gone_holders().await.is_ok_and(|n| n > 0) => {}
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shared.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot claim a job (will try again): {e:#}");
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

async fn run_one(shared: &Arc<Shared>, job: JobRow, stop: &mut watch::Receiver<Stop>) {
    use std::sync::atomic::Ordering::SeqCst;
    let (id, kind) = (job.id, job.kind.clone());
    let cfg = shared.config();
    let ctx = JobCtx { job: job.clone(), vault: shared.vault.clone(), config: cfg.clone() };
    let org = job.org.clone();
    let log = |level: &'static str, summary: String, message: String| {
        let vault = shared.vault.clone();
        let org = org.clone();
        async move {
            if let Err(e) = vault.job_log(id, org.as_deref(), level, &summary, &message).await {
                tracing::warn!("job {id}: cannot write its log: {e:#}");
            }
        }
    };
    tracing::info!("job {id} ({kind}{}) starts, attempt {} of {}", org_label(&job), job.attempts, job.max_attempts);
    log(
        "info",
        format!("started, attempt {} of {}", job.attempts, job.max_attempts),
        format!("started on {}, attempt {} of {}", shared.queue.holder, job.attempts, job.max_attempts),
    )
    .await;
    shared.running.fetch_add(1, SeqCst);
    let started = Instant::now();
    let Some(handler) = shared.handlers.get(&kind) else {
        let why = format!("no handler for {kind} jobs in this daybook");
        log("error", "failed: no handler".into(), why.clone()).await;
        let _ =
            shared.queue.catalog.finish_job(id, &shared.queue.holder, jobs::FAILED, None, "failed: no handler").await;
        shared.running.fetch_sub(1, SeqCst);
        return;
    };
    let work = handler(ctx);
    // The lease is renewed on a timer, whatever the work is doing; if another daemon took
    // the job meanwhile (this one was cut off past its lease), the work stops here.
    let beat = {
        let q = shared.queue.clone();
        async move {
            let mut tick = tokio::time::interval(q.lease / 4);
            tick.tick().await;
            loop {
                tick.tick().await;
                match q.renew(id).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!("job {id}: lease renewal failed (will try again): {e:#}"),
                }
            }
        }
    };
    let parked = async {
        while *stop.borrow() != Stop::Park {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let result = tokio::select! {
        r = work => Some(r),
        _ = beat => {
            tracing::error!("job {id}: its lease was taken over by another daemon; this run stops");
            log("error", "lease lost".into(), "the lease was taken over by another daemon; this run stopped".into()).await;
            shared.running.fetch_sub(1, SeqCst);
            return;
        }
        _ = parked => None,
    };
    shared.running.fetch_sub(1, SeqCst);
    let secs = started.elapsed().as_secs_f64();
    let q = &shared.queue;
    let Some(result) = result else {
        // Stopping: what the job committed stays; the rest is done by its next run.
        match q.catalog.park_job(id, &q.holder).await {
            Ok(_) => {
                tracing::info!("job {id} parked: queued again for the next daemon");
                log("warn", "parked".into(), format!("the daemon stopped after {secs:.1} s; queued again")).await;
            }
            Err(e) => tracing::error!("job {id}: cannot park it ({e:#}); its lease will run out"),
        }
        return;
    };
    let (summary, failure) = match result {
        Ok(o) => (o.summary, o.failure),
        Err(e) => ("failed".to_string(), Some(format!("{e:#}"))),
    };
    let (state, run_after, line) = match &failure {
        None => (jobs::DONE, None, format!("done in {secs:.1} s: {summary}")),
        Some(_) if job.attempts < job.max_attempts => {
            let wait = backoff(Duration::from_secs(cfg.daemon.retry_seconds), job.attempts);
            let at = chrono::Utc::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
            (jobs::QUEUED, Some(jobs::stamp(at)), format!("failed in {secs:.1} s; retry at {}", jobs::stamp(at)))
        }
        Some(_) => (jobs::FAILED, None, format!("failed in {secs:.1} s after {} attempts", job.attempts)),
    };
    if let Some(why) = &failure {
        log("error", format!("{summary}: {line}"), format!("{why}\n{line}")).await;
    } else {
        log("info", line.clone(), line.clone()).await;
    }
    match q.catalog.finish_job(id, &q.holder, state, run_after.as_deref(), &summary).await {
        Ok(true) => {}
        Ok(false) => tracing::error!("job {id}: it was taken over by another daemon before it ended here"),
        Err(e) => tracing::error!("job {id}: cannot record its end ({e:#}); its lease will run out and it runs again"),
    }
    metrics::global().job_finished(&kind, state, secs);
    tracing::info!("job {id} ({kind}{}): {line}", org_label(&job));
    if state == jobs::FAILED && kind == Kind::Backup.as_str() {
        let org_cfg = cfg.orgs.iter().find(|o| Some(o.sid.get_ref()) == job.org.as_ref());
        let why = failure.unwrap_or_default();
        super::notify::cycle_failed(
            cfg.email.as_ref(),
            org_cfg.and_then(|o| o.admin_email.as_deref()),
            &format!("The backup{} failed (job {id}, {} attempts): {why}", org_label(&job), job.attempts),
        )
        .await;
    }
}

fn org_label(job: &JobRow) -> String {
    match (&job.org, &job.source) {
        (Some(o), Some(s)) => format!(" of {o}/{s}"),
        (Some(o), None) => format!(" of {o}"),
        _ => String::new(),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct BackupArgs {
    allow_deletions: bool,
    no_mirror: bool,
}

/// A cycle: the org's sources backed up (one failing does not stop the others), its
/// snapshots closed and checked by the engine, its mirrors brought up to date, each step in
/// the job's log. The same functions `daybook backup` calls.
async fn backup(ctx: JobCtx) -> Result<Outcome> {
    let args: BackupArgs = serde_json::from_str(&ctx.job.args).unwrap_or_default();
    let cfg = &ctx.config;
    let org = ctx.job.org.clone().ok_or_else(|| anyhow!("a backup job names no org"))?;
    let Some(org_cfg) = cfg.orgs.iter().find(|o| *o.sid.get_ref() == org) else {
        return Err(anyhow!("org {org:?} is no longer in the config"));
    };
    if let Some(s) = &ctx.job.source
        && !org_cfg.sources.iter().any(|c| c.name.get_ref() == s)
    {
        return Err(anyhow!("source {s:?} is no longer in org {org:?} of the config"));
    }
    let filter =
        Filter { org: Some(org.clone()), source: ctx.job.source.clone(), allow_deletions: args.allow_deletions };
    let started = Instant::now();
    let report = engine::run_cycle(&ctx.vault, cfg, &filter).await?;
    let (mut records, mut bytes) = (0, 0);
    // What failed and why, for the job's outcome (and the admin's email when it stays failed).
    let mut why = Vec::new();
    for t in &report.types {
        let s = &t.stats;
        records += s.listed;
        bytes += s.stored_bytes;
        let counts = format!(
            "{} live, {} added, {} changed, {} deleted, {} files, {} bytes stored",
            s.live, s.added, s.changed, s.deleted, s.files_fetched, s.stored_bytes
        );
        match &t.error {
            // What the change feed missed is in the snapshot now, but says the app's feed
            // cannot be trusted alone: the job warns, as the cycle's backup log does.
            None if s.drift > 0 => {
                let line = format!(
                    "{}/{}: {counts}; drift: {} changes the incremental reads had missed, caught by the full read",
                    t.source, t.data_type, s.drift
                );
                ctx.log("warn", &format!("drift {}: {counts}", s.drift), &line).await?
            }
            None => {
                ctx.log("info", &format!("ok: {counts}"), &format!("{}/{}: {counts}", t.source, t.data_type)).await?
            }
            Some(e) => {
                let line = format!("{}/{}: {e} (its last snapshot is kept)", t.source, t.data_type);
                ctx.log("error", "data type failed", &line).await?;
                why.push(line);
            }
        }
    }
    let m = metrics::global();
    m.backed_up(records, bytes);
    for s in &report.sources {
        if let Some(n) = s.requests {
            let kind =
                org_cfg.sources.iter().find(|c| *c.name.get_ref() == s.source).map(|c| c.kind.get_ref().as_str());
            m.api_requests(kind.unwrap_or("unknown"), n, s.rate_limited.unwrap_or(0));
        }
        if !s.missing.is_empty() {
            ctx.log(
                "warn",
                &format!("{} data types gone from the source", s.missing.len()),
                &format!("{}: gone from the source, kept at their last snapshot: {}", s.source, s.missing.join(", ")),
            )
            .await?;
        }
    }
    let mut failed = report.failed();
    if !org_cfg.mirrors.is_empty() && !args.no_mirror {
        let opts = crate::mirror::Options { org: Some(org.clone()), ..Default::default() };
        let mr = match crate::commands::mirror::run_with(&ctx.vault, cfg, &opts, Some(report.cycle)).await {
            Ok(r) => r,
            Err(e) => crate::mirror::Report::failed_whole(cfg, Some(&org), &e),
        };
        for t in &mr.targets {
            m.mirror_requests(t.requests);
            let line = format!("{} requests, {} cells, {:.1} s", t.requests, t.cells, t.seconds);
            match &t.error {
                None => ctx.log("info", &format!("mirror: {line}"), &format!("mirror {}: {line}", t.target)).await?,
                Some(e) => {
                    let line = format!("mirror {}: {e}", t.target);
                    ctx.log("error", "mirror failed", &line).await?;
                    why.push(line);
                }
            }
        }
        failed += mr.failed();
    }
    // A whole cycle ends by applying the org's retention (a failed one keeps every snapshot).
    if ctx.job.source.is_none() && failed == 0 && has_retention(org_cfg) {
        match apply_retention(&ctx, &org).await {
            Ok(line) => ctx.log("info", "retention applied", &line).await?,
            // A restore or archive build of the org still reads its versions: the next cycle
            // applies it.
            Err(e) if is_conflict(&e) => {
                ctx.log("warn", "retention deferred", &format!("retention of {org} deferred: {e:#}")).await?
            }
            Err(e) => {
                failed += 1;
                let line = format!("retention of {org}: {e:#}");
                ctx.log("error", "retention failed", &line).await?;
                why.push(line);
            }
        }
    }
    let summary = format!(
        "cycle {}: {} data types, {records} records, {bytes} bytes stored, {failed} failed, {:.1} s",
        report.cycle,
        report.types.len(),
        started.elapsed().as_secs_f64()
    );
    let failure = (failed > 0)
        .then(|| format!("{failed} data types or mirrors failed in cycle {}: {}", report.cycle, why.join("; ")));
    Ok(Outcome { summary, failure })
}

fn is_conflict(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::vault::catalog::LockError>(),
        Some(crate::vault::catalog::LockError::Conflict { .. })
    )
}

fn has_retention(o: &crate::config::OrgConfig) -> bool {
    o.retention.is_some() || o.sources.iter().any(|s| s.retention.is_some())
}

/// Forgets what the org's retention does not keep, then prunes: what `daybook forget` and
/// `daybook prune` do.
async fn apply_retention(ctx: &JobCtx, org: &str) -> Result<String> {
    let plans = engine::forget::plan(&ctx.vault, &ctx.config, Some(org)).await?;
    let mut forgotten = 0;
    for p in &plans {
        if p.forgotten_snapshots > 0 {
            forgotten += ctx.vault.forget(&p.org, &p.keep, false).await?.snapshots_forgotten;
        }
    }
    let s = ctx.vault.prune(org, false).await?;
    Ok(format!(
        "{forgotten} snapshots forgotten; {} packs and {} files removed, {} packs repacked; {} -> {} bytes",
        s.packs_removed, s.files_removed, s.packs_repacked, s.bytes_before, s.bytes_after
    ))
}

async fn prune(ctx: JobCtx) -> Result<Outcome> {
    let org = ctx.job.org.clone().ok_or_else(|| anyhow!("a prune job names no org"))?;
    let line = apply_retention(&ctx, &org).await?;
    ctx.log("info", "retention applied", &line).await?;
    Ok(Outcome { summary: line, failure: None })
}

async fn mirror(ctx: JobCtx) -> Result<Outcome> {
    let opts = crate::mirror::Options { org: ctx.job.org.clone(), ..Default::default() };
    let r = crate::commands::mirror::run_with(&ctx.vault, &ctx.config, &opts, None).await?;
    let requests: u64 = r.targets.iter().map(|t| t.requests).sum();
    metrics::global().mirror_requests(requests);
    let failed = r.failed();
    Ok(Outcome {
        summary: format!("{} targets, {requests} requests, {failed} failed", r.targets.len()),
        failure: (failed > 0).then(|| format!("{failed} mirror targets or data types failed")),
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CheckArgs {
    read_data: bool,
}

/// `daybook check`'s function, over the whole vault.
async fn check(ctx: JobCtx) -> Result<Outcome> {
    let args: CheckArgs = serde_json::from_str(&ctx.job.args).unwrap_or_default();
    let rep = crate::vault::check::check(&ctx.vault, args.read_data).await?;
    for p in &rep.problems {
        ctx.log("error", "problem", p).await?;
    }
    Ok(Outcome {
        summary: format!("{} packs, {} blobs, {} problems", rep.packs, rep.blobs, rep.problems.len()),
        failure: (!rep.ok()).then(|| format!("{} problems found", rep.problems.len())),
    })
}

/// A restore job's args: which record and version, and who to tell.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
pub struct RestoreArgs {
    pub sid: String,
    pub version: Option<i64>,
    pub again: bool,
    /// Emailed when it ends (default: the org's admin_email).
    pub email: Option<String>,
}

/// `daybook restore`'s function: a copy made in the app, its new id in the job's log (sealed,
/// as the log's messages are), and the requester told by email when `[email]` is set: at
/// once when done, after the last attempt when it failed.
async fn restore(ctx: JobCtx) -> Result<Outcome> {
    let args: RestoreArgs = serde_json::from_str(&ctx.job.args)
        .map_err(|e| anyhow!("a restore job's args are not ones this daybook writes: {e}"))?;
    let cfg = &ctx.config;
    let to = args.email.clone().or_else(|| {
        let org = ctx.job.org.as_deref()?;
        cfg.orgs.iter().find(|o| o.sid.get_ref() == org)?.admin_email.clone()
    });
    let req =
        engine::restore::RestoreRequest { sid: &args.sid, version: args.version, dry_run: false, again: args.again };
    let source = ctx.job.source.clone().unwrap_or_default();
    let (email, to) = (cfg.email.as_ref(), to.as_deref());
    let out = match engine::restore::restore(&ctx.vault, cfg, &req, &crate::connectors::build).await {
        Ok(o) => o,
        Err(e) => {
            let why = format!("{e:#}");
            if ctx.job.attempts >= ctx.job.max_attempts {
                let end = RestoreEnd::Failed { why: &why };
                let told = super::notify::restore_finished(email, to, &args.sid, &source, end).await;
                ctx.log("warn", email_line(&told), &email_detail(&told)).await?;
            }
            return Err(e);
        }
    };
    let done = out.restored.as_ref().ok_or_else(|| anyhow!("the restore made no copy"))?;
    ctx.log(
        "info",
        &format!("restored 1 record, {} of {} files uploaded", done.files_uploaded, out.files.len()),
        &format!(
            "{} version {} restored into {}/{} as new id {}{}",
            out.record.sid,
            out.version,
            out.record.source,
            out.record.data_type,
            done.new_id,
            done.notes.iter().map(|n| format!("; note: {n}")).collect::<String>()
        ),
    )
    .await?;
    let end = RestoreEnd::Done { new_id: &done.new_id, files_uploaded: done.files_uploaded };
    let told = super::notify::restore_finished(email, to, &args.sid, &source, end).await;
    ctx.log(if told.is_ok() { "info" } else { "warn" }, email_line(&told), &email_detail(&told)).await?;
    Ok(Outcome::ok(format!("restored 1 record, {} files uploaded", done.files_uploaded)))
}

fn email_line(told: &std::result::Result<String, String>) -> &'static str {
    if told.is_ok() { "requester emailed" } else { "requester not emailed" }
}

fn email_detail(told: &std::result::Result<String, String>) -> String {
    match told {
        Ok(to) => format!("emailed {to} how the restore ended"),
        Err(why) => format!("the requester was not emailed: {why}"),
    }
}
