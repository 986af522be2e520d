//! The catalog: what the store holds and what it means (orgs, cycles, data types, snapshots
//! and the state pages they name, packs, files, the backup log, restores, leases). SQLite by
//! default, PostgreSQL for several daemons; both run the same SQL through sqlx's `Any`
//! driver. All of daybook's SQL is here, behind typed functions.

mod archives;
mod commit;
mod files;
pub mod jobs;
mod lock;
mod log;
mod migrate;
mod mirror;
mod orgs;
mod packs;
mod restores;
mod rewrite;
mod schema;
mod snapshots;
mod types;
mod users;
pub mod v2;

pub use archives::{ArchiveRow, Built, ChargeRow, LinkRow, NewArchive, PartRow};
pub use commit::CommitRows;
pub use files::FileRecord;
pub use jobs::{JobLogEntry, JobRow, NewJob};
pub use lock::{Lease, LockError};
pub use log::LogEntry;
pub use mirror::MirrorRow;
pub use packs::PackRecord;
pub use restores::RestoreRecord;
pub use rewrite::RewriteRows;
pub use snapshots::SnapshotRecord;
pub use types::{TypeOp, TypeRecord};
pub use users::{AuditRow, SessionRow, TokenRow, UserRow};

use anyhow::{Context, Result, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::str::FromStr;

pub use schema::{SCHEMA_VERSION, TABLES};

#[derive(Clone)]
pub struct Catalog {
    pub pool: AnyPool,
    pub postgres: bool,
    /// The catalog's location with any password removed, for messages.
    pub display: String,
    /// PostgreSQL's: the connection job claims go over (see `jobs::Claims`).
    claims: Option<std::sync::Arc<jobs::Claims>>,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Rows per multi-row INSERT: well under both databases' bound-parameter limits.
pub const BATCH: usize = 400;

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Catalog {
    /// `sqlite://relative/or/absolute.db` (relative to `base`) or `postgres://...`.
    pub async fn connect(url: &str, base: &Path) -> Result<Catalog> {
        sqlx::any::install_default_drivers();
        let (url, postgres) = if let Some(p) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let (path, query) = p.split_once('?').unwrap_or((p, ""));
            let path = if Path::new(path).is_absolute() { Path::new(path).to_path_buf() } else { base.join(path) };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create catalog folder {}", dir.display()))?;
            }
            let q = if query.is_empty() { "mode=rwc".to_string() } else { query.to_string() };
            (format!("sqlite://{}?{q}", path.display()), false)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), true)
        } else {
            bail!("vault.catalog {url:?}: expected sqlite://PATH or postgres://USER@HOST/DB");
        };
        let display = redact(&url);
        let opts = AnyConnectOptions::from_str(&url).with_context(|| format!("catalog {display}"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 4 } else { 2 })
            // No reaping of idle connections: sqlx 0.8's maintenance task can spin on a
            // miscounted idle list and then holds up the runtime's shutdown for good (seen in
            // the tests). A broken connection is found by the check before each use.
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres {
                        for p in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 30000",
                            // Record keys are random, so each change touches pages all over
                            // the indexes.
                            "PRAGMA cache_size = -16384",
                            // Each data type runs in a savepoint, whose journal of original
                            // pages would otherwise go to a temporary file page by page.
                            "PRAGMA temp_store = MEMORY",
                        ] {
                            sqlx::query(p).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts.clone())
            .await
            .with_context(|| format!("cannot open catalog {display}"))?;
        let claims = postgres.then(|| std::sync::Arc::new(jobs::Claims::new(opts)));
        Ok(Catalog { pool, postgres, display, claims })
    }

    /// Folds SQLite's write-ahead log into the database file after a cycle, so the
    /// catalog's size on disk is its real size and the log does not grow without bound.
    pub async fn compact_log(&self) -> Result<()> {
        if !self.postgres {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// After deleting secrets: no freed page or log may keep a copy (SQLite; PostgreSQL
    /// leaves it to VACUUM, which this runs too).
    pub async fn scrub(&self) -> Result<()> {
        // On PostgreSQL a bare VACUUM would take every table of the database, other
        // applications' and other schemas' too.
        let sql = if self.postgres {
            // Those of them this catalog has (an older schema lacks some).
            let mut have = Vec::new();
            for t in schema::TABLES {
                if self.has_table(t).await? {
                    have.push(*t);
                }
            }
            format!("VACUUM {}", have.join(", "))
        } else {
            "VACUUM".into()
        };
        sqlx::query(&sql).execute(&self.pool).await?;
        self.compact_log().await
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        if !self.has_table("meta").await? {
            return Ok(None);
        }
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await;
        row.map(|r| r.map(|r| r.get(0))).map_err(|e| anyhow::anyhow!("catalog {}: {e}", self.display))
    }

    pub async fn has_table(&self, name: &str) -> Result<bool> {
        let sql = if self.postgres {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = $1 AND table_schema = current_schema()"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
        };
        let n: i64 = sqlx::query(sql).bind(name).fetch_one(&self.pool).await?.get(0);
        Ok(n > 0)
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Placeholders for statements with many parameters, numbered in order: `$N` for
/// PostgreSQL, anonymous `?` for SQLite (sqlx looks each named one up in a list, which
/// makes a 3,000-parameter insert quadratic). A statement takes all of its placeholders
/// from one `Params`, so the two kinds never mix.
pub struct Params {
    pg: bool,
    n: usize,
}

impl Params {
    pub fn new(pg: bool) -> Params {
        Params { pg, n: 0 }
    }

    pub fn one(&mut self) -> String {
        self.n += 1;
        if self.pg { format!("${}", self.n) } else { "?".to_string() }
    }

    /// "a,b,c" for an IN list.
    pub fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(",")
    }

    /// "(a,b),(c,d),..." for a multi-row VALUES.
    pub fn rows(&mut self, rows: usize, cols: usize) -> String {
        (0..rows).map(|_| format!("({})", self.list(cols))).collect::<Vec<_>>().join(",")
    }
}

impl Catalog {
    pub async fn cycle_start(&self) -> Result<i64> {
        let row = sqlx::query("INSERT INTO cycles (started_at, status) VALUES ($1, 'running') RETURNING id")
            .bind(crate::util::now_rfc3339())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    pub async fn cycle_finish(&self, id: i64, status: &str) -> Result<()> {
        sqlx::query("UPDATE cycles SET finished_at = $1, status = $2 WHERE id = $3")
            .bind(crate::util::now_rfc3339())
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When each cycle started, by id.
    pub async fn cycle_starts(&self) -> Result<std::collections::HashMap<i64, String>> {
        let rows = sqlx::query("SELECT id, started_at FROM cycles").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
