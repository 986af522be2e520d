//! `daybook daemon`: the scheduler, the job workers and the HTTP server in one process.
//!
//! - schedule.rs: when each org's cycle is due; due runs kept in the catalog by (org, local
//!   date), so a doubled or missed tick neither doubles nor skips a day.
//! - queue.rs: the durable job queue (catalog rows, leases, one-statement claims).
//! - worker.rs: workers running jobs through handlers registered by kind.
//! - notify.rs: systemd's sd_notify, and the failed-cycle message to an org's admin.
//! - metrics.rs: what `/metrics` reports.
//!
//! Several daemons may share one PostgreSQL catalog (and one blob store): each job runs on
//! exactly one of them, and one that dies has its job taken up by another once its lease runs
//! out. SIGTERM lets running jobs finish within `daemon.stop_seconds`, then parks them;
//! SIGHUP reloads the config, keeping the old one if the new one is bad.

pub mod config;
pub mod manual;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod schedule;
pub mod web;
pub mod worker;

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::Config;
use crate::vault::Vault;
use crate::vault::catalog::Catalog;
use queue::Queue;
use worker::{Handlers, Shared, Stop};

/// Runs the daemon until SIGTERM or SIGINT, with daybook's own handlers and any others the
/// caller registered.
pub async fn run(config_path: &Path, handlers: Handlers) -> Result<()> {
    // First of all: a SIGTERM during the start must stop it cleanly, not kill it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let cfg = Arc::new(crate::commands::load_config(config_path)?);
    let pass = crate::vault::passphrase()?;
    let vault = Arc::new(Vault::open(&cfg, &pass).await?);
    // The queue has connections of its own: a lease renewal never waits for a backup's.
    let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
    let queue = Queue::new(catalog.clone(), Duration::from_secs(cfg.daemon.lease_seconds));
    let holder = queue.holder.clone();
    let started_at = crate::util::now_rfc3339();
    catalog.daemon_beat(&holder, &started_at).await?;
    let shared = Arc::new(Shared {
        queue,
        vault: vault.clone(),
        config: std::sync::RwLock::new(cfg.clone()),
        handlers,
        wake: tokio::sync::Notify::new(),
        reschedule: tokio::sync::Notify::new(),
        running: Default::default(),
    });

    // The HTTP routes have a vault of their own (the router's state owns one).
    let http_state = Arc::new(crate::http::HttpState {
        config: cfg.clone(),
        vault: Vault::open(&cfg, &pass).await?,
        web: web::web_state(shared.clone()),
    });
    drop(pass);
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listen = cfg.daemon.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (daemon.listen; is another daybook serving there?)"))?;
    let http = tokio::spawn(async move {
        let app = crate::http::router(http_state);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop_rx.await;
            })
            .await
    });

    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..cfg.daemon.workers {
        workers.spawn(worker::run(shared.clone(), stop_rx.clone()));
    }
    let scheduler = tokio::spawn(scheduler(shared.clone(), stop_rx.clone()));
    let beat = tokio::spawn(beat(shared.clone(), started_at, stop_rx.clone()));

    notify::ready();
    tracing::info!(
        "daybook daemon {holder} runs {} workers, listening on http://{listen} (/healthz, /metrics)",
        cfg.daemon.workers
    );

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&shared, config_path),
        }
    }

    notify::stopping();
    let stop_secs = shared.config().daemon.stop_seconds;
    tracing::info!("stopping: running jobs get {stop_secs} s to finish");
    let _ = stop_tx.send(Stop::Drain);
    let drained =
        tokio::time::timeout(Duration::from_secs(stop_secs), async { while workers.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!("stopping: jobs still running after {stop_secs} s are parked (queued again)");
        let _ = stop_tx.send(Stop::Park);
        let _ =
            tokio::time::timeout(Duration::from_secs(10), async { while workers.join_next().await.is_some() {} }).await;
    }
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    scheduler.abort();
    beat.abort();
    catalog.daemon_gone(&holder).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: the config is read again; a bad one is refused and the old one kept. What needs
/// a restart (the vault, where it listens, how many workers) is said so.
fn reload(shared: &Shared, path: &Path) {
    let new = match crate::commands::load_config(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config reload refused, the running config is kept: {e:#}");
            return;
        }
    };
    let old = shared.config();
    if new.vault.catalog != old.vault.catalog || new.vault.store != old.vault.store {
        tracing::error!("config reload refused: [vault] changed, which needs a restart; the running config is kept");
        return;
    }
    if new.daemon.listen != old.daemon.listen || new.daemon.workers != old.daemon.workers {
        tracing::warn!("config reloaded; daemon.listen and daemon.workers take effect at the next start");
    } else {
        tracing::info!("config reloaded: {} orgs", new.orgs.len());
    }
    *shared.config.write().unwrap() = Arc::new(new);
    // New orgs or schedules may be due now.
    shared.reschedule.notify_one();
}

/// Wakes on tokio-cron-scheduler's minute tick (and on a plain timer behind it, should its
/// repeating job stop firing) and queues the runs that are due.
async fn scheduler(shared: Arc<Shared>, mut stop: watch::Receiver<Stop>) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let cron = {
        let wake = wake.clone();
        async move {
            let sched = tokio_cron_scheduler::JobScheduler::new().await?;
            let job = tokio_cron_scheduler::Job::new_async("0 * * * * *", move |_, _| {
                let wake = wake.clone();
                Box::pin(async move { wake.notify_one() })
            })?;
            sched.add(job).await?;
            sched.start().await?;
            Ok::<_, tokio_cron_scheduler::JobSchedulerError>(sched)
        }
        .await
    };
    let _sched = match cron {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("tokio-cron-scheduler did not start ({e}); the scheduler wakes on its own timer");
            None
        }
    };
    let mut ticker = schedule::Ticker::default();
    loop {
        let cfg = shared.config();
        match ticker.tick(&shared.queue.catalog, &cfg, &schedule::SystemClock).await {
            Ok(q) if !q.is_empty() => shared.wake.notify_waiters(),
            Ok(_) => {}
            Err(e) => tracing::warn!("scheduler: cannot queue due runs (will try at the next tick): {e:#}"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = shared.reschedule.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(61)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The daemon's own heartbeat (for `daybook status` and `backup --now`), systemd's STATUS
/// line and its watchdog.
async fn beat(shared: Arc<Shared>, started_at: String, mut stop: watch::Receiver<Stop>) {
    let every = notify::watchdog_every()
        .unwrap_or(Duration::from_secs(15))
        .min(Duration::from_secs(15))
        .min(shared.queue.lease / 4);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // While running jobs drain (up to daemon.stop_seconds), `daybook status` and
            // systemd still hear from this daemon; it falls silent when it parks them.
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() != Stop::Drain {
                    return;
                }
                continue;
            }
        }
        if let Err(e) = shared.queue.catalog.daemon_beat(&shared.queue.holder, &started_at).await {
            tracing::warn!("daemon heartbeat: {e:#}");
        }
        let running = shared.running.load(Ordering::SeqCst);
        let draining = *stop.borrow() == Stop::Drain;
        notify::status(&match draining {
            true => format!("stopping: {running} jobs finishing"),
            false => format!("{running} jobs running"),
        });
        notify::watchdog();
    }
}

/// The daemons running on this catalog (their heartbeat is fresh): (holder, started at,
/// last heartbeat).
pub async fn daemons_running(catalog: &Catalog, cfg: &Config) -> Result<Vec<(String, String, String)>> {
    let since = chrono::Utc::now() - chrono::TimeDelta::seconds((cfg.daemon.lease_seconds as i64).max(60));
    catalog.live_daemons(&crate::vault::catalog::jobs::stamp(since)).await
}
