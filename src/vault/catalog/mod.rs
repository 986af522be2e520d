//! The catalog: what the store holds and what it means (orgs, records, versions,
//! snapshots, packs, blobs, files). SQLite by default, PostgreSQL for several daemons.
//! Both run the same SQL through sqlx's `Any` driver.

mod lock;
mod log;
mod migrate;
mod mirror;
pub mod read;
mod restores;
mod schema;
mod types;

pub use lock::{Lease, LockError};
pub use log::LogEntry;
pub use mirror::MirrorRow;
pub use restores::RestoreRow;
pub use types::{TypeIdentity, TypeRow};

use anyhow::{Context, Result, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Row};
use std::path::Path;
use std::str::FromStr;

pub use schema::SCHEMA_VERSION;

#[derive(Clone)]
pub struct Catalog {
    pub pool: AnyPool,
    pub postgres: bool,
    /// The catalog's location with any password removed, for messages.
    pub display: String,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Bytes per record in a `type_state` row: key 10, content id 16, text hash 16,
/// version 4, deleted 1.
pub const STATE_ENTRY: usize = 10 + 16 + 16 + 4 + 1;

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
            .connect_with(opts)
            .await
            .with_context(|| format!("cannot open catalog {display}"))?;
        Ok(Catalog { pool, postgres, display })
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
        let sql = if self.postgres { format!("VACUUM {}", schema::TABLES.join(", ")) } else { "VACUUM".into() };
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
    /// The names of an org's packs.
    pub async fn pack_names(&self, org_id: i64) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT name FROM packs WHERE org_id = $1").bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

pub async fn cycle_start(conn: &mut AnyConnection) -> Result<i64> {
    let row = sqlx::query("INSERT INTO cycles (started_at, status) VALUES ($1, 'running') RETURNING id")
        .bind(crate::util::now_rfc3339())
        .fetch_one(conn)
        .await?;
    Ok(row.get(0))
}

pub async fn cycle_finish(conn: &mut AnyConnection, id: i64, status: &str) -> Result<()> {
    sqlx::query("UPDATE cycles SET finished_at = $1, status = $2 WHERE id = $3")
        .bind(crate::util::now_rfc3339())
        .bind(status)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a pack and the blobs it holds.
pub async fn insert_pack(
    conn: &mut AnyConnection,
    pg: bool,
    org_id: i64,
    cycle: i64,
    name: &str,
    size: usize,
    entries: &[crate::vault::pack::PackEntry],
) -> Result<()> {
    let row = sqlx::query("INSERT INTO packs (org_id, name, size, cycle_id) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(org_id)
        .bind(name)
        .bind(size as i64)
        .bind(cycle)
        .fetch_one(&mut *conn)
        .await?;
    let pack_id: i64 = row.get(0);
    for batch in entries.chunks(BATCH) {
        let sql = format!(
            "INSERT INTO blobs (org_id, id, pack_id, kind, chunk_off, chunk_len, inner_off, len) VALUES {} ON CONFLICT (org_id, id) DO NOTHING",
            Params::new(pg).rows(batch.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for e in batch {
            q = q
                .bind(org_id)
                .bind(e.id.to_vec())
                .bind(pack_id)
                .bind(e.kind as i64)
                .bind(e.chunk_off as i64)
                .bind(e.chunk_len as i64)
                .bind(e.inner_off as i64)
                .bind(e.len as i64);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Which of `ids` the org already stores.
pub async fn existing_blobs(
    conn: &mut AnyConnection,
    pg: bool,
    org_id: i64,
    ids: &[[u8; 16]],
) -> Result<std::collections::HashSet<[u8; 16]>> {
    let mut out = std::collections::HashSet::new();
    for batch in ids.chunks(BATCH) {
        let mut p = Params::new(pg);
        let sql = format!("SELECT id FROM blobs WHERE org_id = {} AND id IN ({})", p.one(), p.list(batch.len()));
        let mut q = sqlx::query(&sql).bind(org_id);
        for id in batch {
            q = q.bind(id.to_vec());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let v: Vec<u8> = r.get(0);
            if let Ok(a) = v.try_into() {
                out.insert(a);
            }
        }
    }
    Ok(out)
}

/// Records' ids at their source, by SID.
pub async fn source_ids(
    conn: &mut AnyConnection,
    pg: bool,
    sids: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for batch in sids.chunks(BATCH) {
        let mut p = Params::new(pg);
        let sql = format!("SELECT sid, source_id FROM records WHERE sid IN ({})", p.list(batch.len()));
        let mut q = sqlx::query(&sql);
        for sid in batch {
            q = q.bind(sid);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.get(0), r.get(1));
        }
    }
    Ok(out)
}

/// Where a blob is: pack name and offsets.
#[derive(Clone, Debug)]
pub struct BlobLoc {
    /// Its content id, to verify what is read.
    pub id: [u8; 16],
    pub pack: String,
    pub chunk_off: u32,
    pub chunk_len: u32,
    pub inner_off: u32,
    pub len: u32,
}

pub async fn blob_loc(conn: &mut AnyConnection, org_id: i64, id: &[u8]) -> Result<Option<BlobLoc>> {
    let row = sqlx::query(
        "SELECT p.name, b.chunk_off, b.chunk_len, b.inner_off, b.len FROM blobs b JOIN packs p ON p.id = b.pack_id WHERE b.org_id = $1 AND b.id = $2",
    )
    .bind(org_id)
    .bind(id.to_vec())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| BlobLoc {
        id: id.try_into().unwrap_or_default(),
        pack: r.get(0),
        chunk_off: r.get::<i64, _>(1) as u32,
        chunk_len: r.get::<i64, _>(2) as u32,
        inner_off: r.get::<i64, _>(3) as u32,
        len: r.get::<i64, _>(4) as u32,
    }))
}

/// A stored file: its pieces' blob ids, in order.
pub async fn file(conn: &mut AnyConnection, org_id: i64, uid: &str) -> Result<Option<(u64, Vec<[u8; 16]>)>> {
    let row = sqlx::query("SELECT size, pieces FROM files WHERE org_id = $1 AND uid = $2")
        .bind(org_id)
        .bind(uid)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| {
        let pieces: Vec<u8> = r.get(1);
        (r.get::<i64, _>(0) as u64, pieces.chunks(16).filter_map(|c| c.try_into().ok()).collect())
    }))
}

pub async fn insert_file(
    conn: &mut AnyConnection,
    org_id: i64,
    uid: &str,
    size: u64,
    pieces: &[[u8; 16]],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO files (org_id, uid, size, pieces) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, uid) DO NOTHING",
    )
    .bind(org_id)
    .bind(uid)
    .bind(size as i64)
    .bind(pieces.concat())
    .execute(conn)
    .await?;
    Ok(())
}
