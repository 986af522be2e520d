//! The durable job queue: jobs are rows of the catalog's `jobs` table, so a restart, crash or
//! power cut loses none, and a lease on each running job keeps any two daemons from running
//! it at once.
//!
//! Why a table of our own rather than a queue crate: apalis 1.0 needs sqlx 0.9 (daybook is on
//! sqlx 0.8, and a second sqlx means a second database layer and pool beside the catalog's),
//! and underway and sqlxmq serve PostgreSQL only, while daybook's default catalog is SQLite.
//! The table takes little: a claim is one UPDATE of the oldest ready row (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, SQLite's single writer otherwise), leases are renewed on a timer
//! (never on progress, which a long rate-limit wait stalls), and the SQL lives with the rest
//! of the catalog's (`vault/catalog/jobs.rs`).

use anyhow::{Result, bail};
use chrono::{TimeDelta, Utc};
use std::time::Duration;

use crate::vault::catalog::{Catalog, JobRow, NewJob, jobs::stamp};

/// What a job does. Each kind's work is a handler registered by name (`worker::Handlers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A cycle of an org (or one source of it): back up, mirror, log.
    Backup,
    /// Bring an org's mirrors up to date.
    Mirror,
    /// Build an archive (handler plugged in by the archive part).
    Archive,
    /// Restore records (handler plugged in by the restore part).
    Restore,
    /// Remove what retention no longer keeps.
    Prune,
    /// Verify the catalog against the store.
    Check,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Backup, Kind::Mirror, Kind::Archive, Kind::Restore, Kind::Prune, Kind::Check];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Backup => "backup",
            Kind::Mirror => "mirror",
            Kind::Archive => "archive",
            Kind::Restore => "restore",
            Kind::Prune => "prune",
            Kind::Check => "check",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        match Kind::ALL.iter().find(|k| k.as_str() == s) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown job kind {s:?} (known: {})",
                Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The wait before retry `n` (1 = the first): `base`, doubling, at most 6 hours.
pub fn backoff(base: Duration, n: i64) -> Duration {
    let factor = 1u32 << (n.clamp(1, 16) - 1) as u32;
    (base * factor).min(Duration::from_secs(6 * 3600))
}

/// The queue as one daemon uses it: its identity (lease holder) and lease length.
#[derive(Clone)]
pub struct Queue {
    pub catalog: Catalog,
    pub holder: String,
    pub lease: Duration,
}

impl Queue {
    pub fn new(catalog: Catalog, lease: Duration) -> Queue {
        let holder = catalog.new_holder();
        Queue { catalog, holder, lease }
    }

    fn lease_until(&self) -> String {
        stamp(Utc::now() + TimeDelta::from_std(self.lease).unwrap_or(TimeDelta::seconds(60)))
    }

    pub async fn push(&self, job: &NewJob) -> Result<i64> {
        self.catalog.enqueue(job).await
    }

    /// The next ready job of one of `orgs` (those this daemon's config has) or of no org,
    /// now leased to this daemon.
    pub async fn claim(&self, orgs: &[&str]) -> Result<Option<JobRow>> {
        self.catalog.claim(&self.holder, &self.lease_until(), orgs).await
    }

    /// False: the job is no longer ours.
    pub async fn renew(&self, id: i64) -> Result<bool> {
        self.catalog.renew_job(id, &self.holder, &self.lease_until()).await
    }
}
