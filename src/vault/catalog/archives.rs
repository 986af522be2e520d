//! Archives of an org (zip copies of its data), their parts as stored in the blob store, the
//! download links issued for them, and what they were charged. An archive's name,
//! description and requester are given by a person and may name customers, so they are
//! sealed with the org's key (`sealed`), as is a failed build's reason (it names files);
//! the plain columns hold ids, counts, sizes, times and statuses.

use anyhow::{Result, bail};
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct ArchiveRow {
    pub id: i64,
    pub org_id: i64,
    /// in_progress, ready, failed or deleted.
    pub status: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub deleted_at: Option<String>,
    /// The cycle it was built at (None: not resolved yet).
    pub at_cycle: Option<i64>,
    pub history: bool,
    pub windows_safe: bool,
    pub versions: i64,
    pub files: i64,
    /// Bytes of the versions and files it holds (uncompressed, as extracted).
    pub content_bytes: i64,
    /// Bytes of its zip parts.
    pub stored_bytes: i64,
    pub parts: i64,
    pub quoted_micros: i64,
    /// Links carry it; revoking bumps it.
    pub generation: i64,
    /// The lease its builder holds while it builds (a build whose lease is gone died).
    pub lease: String,
    pub sealed: Vec<u8>,
    pub error: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct PartRow {
    pub part: i64,
    pub size: i64,
    pub chunk_bytes: i64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct LinkRow {
    pub part: i64,
    pub generation: i64,
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct ChargeRow {
    pub archive_id: i64,
    pub at: String,
    pub kind: String,
    pub amount_micros: i64,
}

/// What a new archive row starts with.
pub struct NewArchive<'a> {
    pub org_id: i64,
    pub history: bool,
    pub windows_safe: bool,
    pub quoted_micros: i64,
    pub lease: &'a str,
    pub sealed: &'a [u8],
}

/// The figures of a finished build.
pub struct Built {
    pub at_cycle: Option<i64>,
    pub versions: i64,
    pub files: i64,
    pub content_bytes: i64,
    pub stored_bytes: i64,
    pub parts: i64,
    pub charge_micros: i64,
}

const COLS: &str = "id, org_id, status, created_at, finished_at, deleted_at, at_cycle, history, windows_safe, \
     versions, files, content_bytes, stored_bytes, parts, quoted_micros, generation, lease, sealed, error";

fn archive_row(r: &sqlx::any::AnyRow) -> ArchiveRow {
    ArchiveRow {
        id: r.get(0),
        org_id: r.get(1),
        status: r.get(2),
        created_at: r.get(3),
        finished_at: r.get(4),
        deleted_at: r.get(5),
        at_cycle: r.get(6),
        history: r.get::<i64, _>(7) != 0,
        windows_safe: r.get::<i64, _>(8) != 0,
        versions: r.get(9),
        files: r.get(10),
        content_bytes: r.get(11),
        stored_bytes: r.get(12),
        parts: r.get(13),
        quoted_micros: r.get(14),
        generation: r.get(15),
        lease: r.get(16),
        sealed: r.get(17),
        error: r.get(18),
    }
}

impl Catalog {
    /// A new archive, `in_progress`.
    pub async fn insert_archive(&self, a: &NewArchive<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO archives (org_id, status, created_at, history, windows_safe, versions, files, \
             content_bytes, stored_bytes, parts, quoted_micros, generation, lease, sealed) \
             VALUES ($1, 'in_progress', $2, $3, $4, 0, 0, 0, 0, 0, $5, 1, $6, $7) RETURNING id",
        )
        .bind(a.org_id)
        .bind(crate::util::now_rfc3339())
        .bind(i64::from(a.history))
        .bind(i64::from(a.windows_safe))
        .bind(a.quoted_micros)
        .bind(a.lease)
        .bind(a.sealed)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    pub async fn archive_row(&self, id: i64) -> Result<Option<ArchiveRow>> {
        let r = sqlx::query(&format!("SELECT {COLS} FROM archives WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(archive_row))
    }

    /// An org's archives (or every org's), oldest first.
    pub async fn archive_rows(&self, org_id: Option<i64>) -> Result<Vec<ArchiveRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM archives WHERE ($1 = 0 OR org_id = $1) ORDER BY id"))
            .bind(org_id.unwrap_or(0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(archive_row).collect())
    }

    pub async fn set_archive_sealed(&self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE archives SET sealed = $1 WHERE id = $2").bind(sealed).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// A part, once its objects are durable in the store.
    pub async fn add_archive_part(&self, archive_id: i64, p: &PartRow) -> Result<()> {
        sqlx::query("INSERT INTO archive_parts (archive_id, part, size, chunk_bytes, sha256) VALUES ($1,$2,$3,$4,$5)")
            .bind(archive_id)
            .bind(p.part)
            .bind(p.size)
            .bind(p.chunk_bytes)
            .bind(&p.sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn archive_parts(&self, archive_id: i64) -> Result<Vec<PartRow>> {
        let rows = sqlx::query(
            "SELECT part, size, chunk_bytes, sha256 FROM archive_parts WHERE archive_id = $1 ORDER BY part",
        )
        .bind(archive_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PartRow { part: r.get(0), size: r.get(1), chunk_bytes: r.get(2), sha256: r.get(3) })
            .collect())
    }

    /// Marks a build ready and charges it, in one transaction: an archive is charged exactly
    /// when it becomes ready. Fails if it is no longer in progress (marked failed meanwhile).
    pub async fn archive_ready(&self, id: i64, org_id: i64, b: &Built) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = crate::util::now_rfc3339();
        let done = sqlx::query(
            "UPDATE archives SET status = 'ready', finished_at = $1, at_cycle = $2, versions = $3, files = $4, \
             content_bytes = $5, stored_bytes = $6, parts = $7 WHERE id = $8 AND status = 'in_progress'",
        )
        .bind(&now)
        .bind(b.at_cycle)
        .bind(b.versions)
        .bind(b.files)
        .bind(b.content_bytes)
        .bind(b.stored_bytes)
        .bind(b.parts)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            bail!("archive {id} is no longer being built (it was marked failed or deleted meanwhile)");
        }
        sqlx::query(
            "INSERT INTO archive_charges (org_id, archive_id, at, kind, amount_micros) VALUES ($1,$2,$3,'build',$4)",
        )
        .bind(org_id)
        .bind(id)
        .bind(&now)
        .bind(b.charge_micros)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a build failed (sealed reason) and forgets its parts; true if it was in progress.
    pub async fn archive_failed(&self, id: i64, error: &[u8]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE archives SET status = 'failed', finished_at = $1, error = $2 WHERE id = $3 AND status = 'in_progress'",
        )
        .bind(crate::util::now_rfc3339())
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM archive_parts WHERE archive_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an archive deleted (its row stays, for billing) and forgets its parts and links.
    /// The caller then removes its objects.
    pub async fn archive_deleted(&self, id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE archives SET status = 'deleted', deleted_at = $1, generation = generation + 1 WHERE id = $2",
        )
        .bind(crate::util::now_rfc3339())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for t in ["archive_parts", "archive_links"] {
            sqlx::query(&format!("DELETE FROM {t} WHERE archive_id = $1")).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every link to an archive: links carry the generation they were made under.
    pub async fn bump_archive_generation(&self, id: i64) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE archives SET generation = generation + 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM archive_links WHERE archive_id = $1").bind(id).execute(&mut *tx).await?;
        let g: i64 =
            sqlx::query("SELECT generation FROM archives WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.get(0);
        tx.commit().await?;
        Ok(g)
    }

    pub async fn add_archive_link(&self, archive_id: i64, l: &LinkRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO archive_links (archive_id, part, generation, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(archive_id)
        .bind(l.part)
        .bind(l.generation)
        .bind(&l.created_at)
        .bind(l.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Links issued for an archive, newest first.
    pub async fn archive_links(&self, archive_id: i64) -> Result<Vec<LinkRow>> {
        let rows = sqlx::query(
            "SELECT part, generation, created_at, expires_at FROM archive_links WHERE archive_id = $1 ORDER BY id DESC",
        )
        .bind(archive_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| LinkRow { part: r.get(0), generation: r.get(1), created_at: r.get(2), expires_at: r.get(3) })
            .collect())
    }

    /// An org's charges, oldest first.
    pub async fn archive_charges(&self, org_id: i64) -> Result<Vec<ChargeRow>> {
        let rows = sqlx::query(
            "SELECT archive_id, at, kind, amount_micros FROM archive_charges WHERE org_id = $1 ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ChargeRow { archive_id: r.get(0), at: r.get(1), kind: r.get(2), amount_micros: r.get(3) })
            .collect())
    }

    /// Sets a meta value unless one is there, and returns the one that is (two processes
    /// creating the same key at once agree on the first).
    pub async fn meta_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        match self.meta(key).await? {
            Some(v) => Ok(v),
            None => bail!("catalog: meta {key} vanished"),
        }
    }
}
