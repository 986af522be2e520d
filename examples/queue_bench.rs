//! The job queue alone, for bench/daemon.sh: a daemon whose `check` jobs do nothing, so what
//! is measured is the queue (claim, lease, log, finish), not a backup.
//!
//!   queue_bench daemon CONFIG      run a daemon (as `daybook daemon`) with no-op check jobs
//!   queue_bench push CONFIG N      queue N check jobs
//!   queue_bench done CONFIG N      wait until N check jobs are done; print jobs a second,
//!                                  from the first start to the last finish
//!   queue_bench claim CONFIG N     claim N queued jobs one by one, as a daemon's poll does
//!                                  (bench/daemon.sh counts their round trips)

use anyhow::{Result, bail};
use daybook::daemon::queue::Kind;
use daybook::daemon::worker::{Handlers, Outcome};
use daybook::vault::catalog::{Catalog, NewJob};
use std::path::Path;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DAYBOOK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(config)) = (args.get(1), args.get(2)) else {
        bail!("usage: queue_bench daemon|push|done CONFIG [N]")
    };
    let n: i64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let config = Path::new(config);
    let cfg = daybook::config::Config::load(config)?;
    match mode.as_str() {
        "daemon" => {
            let mut h = Handlers::standard();
            h.register(Kind::Check, Arc::new(|_| Box::pin(async { Ok(Outcome::ok("nothing")) })));
            daybook::daemon::run(config, h).await?;
            std::process::exit(0);
        }
        "push" => {
            let c = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
            let job = NewJob {
                kind: "check".into(),
                org: None,
                source: None,
                args: "{}".into(),
                manual: true,
                max_attempts: 1,
            };
            for _ in 0..n {
                c.enqueue(&job).await?;
            }
        }
        "done" => {
            let c = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
            loop {
                let jobs = c.jobs(None, n.max(1) * 2).await?;
                let done: Vec<_> = jobs.iter().filter(|j| j.kind == "check" && j.state == "done").collect();
                if done.len() as i64 >= n {
                    let first = done.iter().filter_map(|j| j.started_at.clone()).min().unwrap_or_default();
                    let last = done.iter().filter_map(|j| j.finished_at.clone()).max().unwrap_or_default();
                    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis());
                    let secs = (t(&last)? - t(&first)?) as f64 / 1000.0;
                    let holders: std::collections::BTreeSet<_> = done.iter().filter_map(|j| j.holder.clone()).collect();
                    println!("{:.1} {secs:.2} {}", n as f64 / secs.max(0.001), holders.len());
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        "claim" => {
            let c = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
            let holder = c.new_holder();
            for i in 0..n {
                let until = daybook::vault::catalog::jobs::stamp(chrono::Utc::now() + chrono::TimeDelta::seconds(60));
                if c.claim(&holder, &until, &[]).await?.is_none() {
                    bail!("only {i} of {n} jobs were there to claim");
                }
            }
        }
        m => bail!("unknown mode {m:?} (daemon, push, done or claim)"),
    }
    Ok(())
}
