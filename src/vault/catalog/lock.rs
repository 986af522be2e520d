//! Leases: named locks in the catalog, so that one writer at a time works on a thing (a
//! source's backup, an org's erasure) across threads, processes and hosts.
//!
//! A lease is held by one `Lease` value, never shared: taking a name that this very process
//! already holds fails like any other holder. It is kept alive by a heartbeat on a timer (not
//! by the work's progress, which a long rate-limit wait stalls), released when the `Lease` is
//! dropped (a finished job, a panic, a cancelled future), and taken over when its holder is
//! gone: on this host, when the holder's process no longer exists; elsewhere, when its
//! heartbeat is older than `STALE`.

use anyhow::{Result, bail};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Catalog;

/// How often a held lease says it is alive.
const BEAT: Duration = Duration::from_secs(20);
/// A lease of another host whose heartbeat is older than this is taken over.
const STALE: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

/// Why a lease could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is already running ({holder}, last seen {beat}); wait for it to finish")]
    Held { what: String, holder: String, beat: String },
    #[error("{what} cannot start while {other} runs ({holder}); wait for it to finish")]
    Conflict { what: String, other: String, holder: String },
    #[error("catalog: {0}")]
    Db(#[from] sqlx::Error),
}

pub struct Lease {
    pool: AnyPool,
    name: String,
    holder: String,
    postgres: bool,
    lost: Arc<AtomicBool>,
    beat: Option<tokio::task::JoinHandle<()>>,
    released: bool,
    since: chrono::DateTime<chrono::Utc>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// host:pid:nonce. The nonce makes every lease its own holder, even within one process.
pub(super) fn new_holder() -> String {
    let nonce: u64 = rand::random();
    format!("{}:{}:{nonce:016x}", hostname(), std::process::id())
}

fn now() -> String {
    crate::util::now_rfc3339()
}

/// Whether a holder (host:pid:...) is of this host and its process no longer runs: such a
/// holder's jobs and leases need not wait for their time to run out.
pub(super) fn gone_from_this_host(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (host, pid) = (parts.next().unwrap_or_default(), parts.next().and_then(|p| p.parse::<u32>().ok()));
    matches!(pid, Some(pid) if host == hostname() && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Whether the holder of a lock row is gone: its process, if on this host, else its heartbeat.
fn is_stale(holder: &str, beat: &str) -> bool {
    let mut parts = holder.split(':');
    let (host, pid) = (parts.next().unwrap_or_default(), parts.next().and_then(|p| p.parse::<u32>().ok()));
    match pid {
        Some(pid) if host == hostname() => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => chrono::DateTime::parse_from_rfc3339(beat)
            .map(|t| chrono::Utc::now().signed_duration_since(t) > STALE)
            .unwrap_or(true),
    }
}

impl Catalog {
    /// Takes the lease `name` (what it guards is `what`, for messages), taking it over from a
    /// holder that is gone.
    pub async fn acquire(&self, name: &str, what: &str) -> Result<Lease, LockError> {
        self.acquire_beating(name, what, BEAT).await
    }

    /// `acquire`, with the heartbeat every `every` (tests).
    pub async fn acquire_beating(&self, name: &str, what: &str, every: Duration) -> Result<Lease, LockError> {
        let me = new_holder();
        let since = chrono::Utc::now();
        loop {
            let inserted = sqlx::query(
                "INSERT INTO locks (name, holder, heartbeat) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(&me)
            .bind(now())
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                break;
            }
            let Some(row) = sqlx::query("SELECT holder, heartbeat FROM locks WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            else {
                continue; // released meanwhile
            };
            let (holder, beat): (String, String) = (row.get(0), row.get(1));
            if !is_stale(&holder, &beat) {
                return Err(LockError::Held { what: what.into(), holder, beat });
            }
            let took = sqlx::query("UPDATE locks SET holder = $1, heartbeat = $2 WHERE name = $3 AND holder = $4")
                .bind(&me)
                .bind(now())
                .bind(name)
                .bind(&holder)
                .execute(&self.pool)
                .await?;
            if took.rows_affected() == 1 {
                tracing::info!("took over the lock of {what} from {holder}, which is no longer running");
                break;
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        // On SQLite the holder is on this host and judged by its process, and a second
        // connection would wait behind a data type's open transaction: no heartbeat.
        let beat = self.postgres.then(|| {
            let (pool, name, holder, lost) = (self.pool.clone(), name.to_string(), me.clone(), lost.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let r = sqlx::query("UPDATE locks SET heartbeat = $1 WHERE name = $2 AND holder = $3")
                        .bind(now())
                        .bind(&name)
                        .bind(&holder)
                        .execute(&pool)
                        .await;
                    match r {
                        Ok(done) if done.rows_affected() == 0 => {
                            tracing::error!("the lock {name} was taken over by another host");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("heartbeat of lock {name}: {e}"),
                    }
                }
            })
        });
        Ok(Lease {
            pool: self.pool.clone(),
            name: name.to_string(),
            holder: me,
            postgres: self.postgres,
            lost,
            beat,
            released: false,
            since,
        })
    }

    /// Live leases (stale ones do not count) that `wanted` picks by name, as (name, holder).
    pub async fn live_leases(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, holder, heartbeat FROM locks").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<String, _>(2)))
            .filter(|(n, h, b)| wanted(n) && !is_stale(h, b))
            .map(|(n, h, _)| (n, h))
            .collect())
    }
}

impl Lease {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// When it was taken: whatever another writer left before then, and did not commit, is
    /// abandoned (if no other lease of the same scope is live).
    pub fn since(&self) -> chrono::DateTime<chrono::Utc> {
        self.since
    }

    /// Inside the transaction about to commit: fails if the lease was taken over, and (on
    /// PostgreSQL) locks its row until the commit, so no other host takes it meanwhile.
    pub async fn confirm(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            bail!("the lock {} was taken over by another host; nothing more is committed", self.name);
        }
        if !self.postgres {
            return Ok(());
        }
        let held = sqlx::query("UPDATE locks SET heartbeat = $1 WHERE name = $2 AND holder = $3")
            .bind(now())
            .bind(&self.name)
            .bind(&self.holder)
            .execute(conn)
            .await?;
        if held.rows_affected() != 1 {
            self.lost.store(true, Ordering::SeqCst);
            bail!("the lock {} was taken over by another host; nothing more is committed", self.name);
        }
        Ok(())
    }

    pub async fn release(mut self) -> Result<()> {
        self.stop_beat();
        self.released = true;
        release(&self.pool, &self.name, &self.holder).await
    }

    fn stop_beat(&mut self) {
        if let Some(b) = self.beat.take() {
            b.abort();
        }
    }
}

async fn release(pool: &AnyPool, name: &str, holder: &str) -> Result<()> {
    sqlx::query("DELETE FROM locks WHERE name = $1 AND holder = $2").bind(name).bind(holder).execute(pool).await?;
    Ok(())
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_beat();
        if self.released {
            return;
        }
        // Not released by hand: a panic, an error path, or a cancelled future. Release it
        // in the background (if the runtime is gone, the process is ending and the lease
        // goes stale with it).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (pool, name, holder) = (self.pool.clone(), std::mem::take(&mut self.name), self.holder.clone());
            rt.spawn(async move {
                if let Err(e) = release(&pool, &name, &holder).await {
                    tracing::warn!("releasing lock {name}: {e}");
                }
            });
        }
    }
}
