//! The daemon's part of the config: `[daemon]` (workers, leases, where /metrics listens) and
//! each org's `[orgs.schedule]`.

use anyhow::{Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use toml::Spanned;

use crate::config::Config;

/// `[daemon]`: how the daemon runs its queue and serves its HTTP routes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where `/healthz`, `/metrics` (and the other routes) listen: loopback unless changed.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Jobs run at once by this daemon.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// A running job's lease: renewed every quarter of it; another daemon takes the job up
    /// once it runs out (at once, when its holder was a process of this host that is gone).
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How often an idle worker looks for a ready job (milliseconds).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Runs of a job before it stays failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    /// The wait before the first retry; it doubles with each further one (capped at 6 hours).
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: u64,
    /// On SIGTERM, running jobs get this long to finish, then are parked (queued again, for
    /// this daemon's next start or another daemon). Keep it below systemd's TimeoutStopSec.
    #[serde(default = "default_stop_seconds")]
    pub stop_seconds: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8417))
}
fn default_workers() -> usize {
    2
}
fn default_lease_seconds() -> u64 {
    60
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_max_attempts() -> i64 {
    3
}
fn default_retry_seconds() -> u64 {
    300
}
fn default_stop_seconds() -> u64 {
    60
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            workers: default_workers(),
            lease_seconds: default_lease_seconds(),
            poll_ms: default_poll_ms(),
            max_attempts: default_max_attempts(),
            retry_seconds: default_retry_seconds(),
            stop_seconds: default_stop_seconds(),
        }
    }
}

/// `[orgs.schedule]`: when the org's cycle runs, in the org's timezone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `daily` (default), `weekly` or `monthly`.
    pub every: Option<Spanned<String>>,
    /// Local time of day, HH:MM (default 20:00).
    pub at: Option<Spanned<String>>,
    /// For `weekly`: the day (monday ... sunday; default sunday).
    pub weekday: Option<Spanned<String>>,
    /// For `monthly`: the day of the month, 1 to 28 (default 1).
    pub day_of_month: Option<Spanned<u32>>,
    /// Starts are spread over this many minutes after `at`, by a stable per-org offset, so
    /// that a thousand orgs do not start in the same second (default 60; 0: exactly at `at`).
    pub window_minutes: Option<Spanned<u32>>,
    /// A cron expression (minute hour day-of-month month day-of-week, local time) instead of
    /// `every`/`at`; at most one run per local day.
    pub cron: Option<Spanned<String>>,
}

/// Every org's schedule, checked: a bad one names its config line.
pub fn validate(cfg: &Config) -> Result<()> {
    if cfg.daemon.workers == 0 || cfg.daemon.workers > 64 {
        bail!("config: daemon.workers must be between 1 and 64");
    }
    if cfg.daemon.lease_seconds < 4 {
        bail!("config: daemon.lease_seconds must be at least 4 (its heartbeat is a quarter of it)");
    }
    if cfg.daemon.max_attempts < 1 {
        bail!("config: daemon.max_attempts must be at least 1");
    }
    for org in &cfg.orgs {
        if let Err(e) = super::schedule::Schedule::of(org) {
            let at = e.span.map(|s| format!("config line {}: ", cfg.line_of(s))).unwrap_or_else(|| "config: ".into());
            bail!("{at}org {:?}: {}", org.sid.get_ref(), e.message);
        }
    }
    Ok(())
}
