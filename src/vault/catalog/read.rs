//! The catalog's side of the read API (`vault::read`): rows, as the vault turns them into
//! typed answers. Content rows come in pack order, so the blobs they name are read chunk by
//! chunk, each chunk once.

use anyhow::Result;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{BlobLoc, Catalog};

pub struct TypeRowFull {
    pub id: i64,
    pub org: String,
    pub source: String,
    pub key: String,
    pub name: String,
    pub path: Vec<String>,
}

pub struct SnapshotRow {
    pub type_id: i64,
    pub cycle: i64,
    pub taken_at: String,
    pub live: i64,
    pub added: i64,
    pub changed: i64,
    pub deleted: i64,
    pub full_read: bool,
    pub drift: i64,
    pub stored_bytes: i64,
}

pub struct RecordRow {
    pub sid: String,
    pub org: String,
    pub source: String,
    pub type_name: String,
    pub type_key: String,
    pub source_id: String,
    pub type_id: i64,
}

pub struct VersionRow {
    pub version: i64,
    pub deleted: bool,
    pub captured_at: String,
    pub from_cycle: i64,
    pub to_cycle: Option<i64>,
    pub size: i64,
    pub blob: Option<Vec<u8>>,
}

/// A version with content, and where its content is.
pub struct ContentRow {
    pub sid: String,
    pub source_id: String,
    pub version: i64,
    pub captured_at: String,
    pub from_cycle: i64,
    pub loc: BlobLoc,
}

pub struct ChangeRow {
    pub sid: String,
    pub source_id: String,
    pub before: Option<i64>,
    pub after: Option<ContentRow>,
}

pub struct DeletedRow {
    pub record: RecordRow,
    pub last: ContentRow,
    pub last_seen: Option<String>,
    pub noticed: String,
    pub noticed_cycle: i64,
}

/// Which versions of a data type `content_rows` gives.
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    /// The live ones at a cycle.
    LiveAt(i64),
    /// Every one with content that began at or before a cycle.
    Until(i64),
}

const TYPES: &str = "SELECT t.id, o.sid, t.source, t.key, t.name, t.path FROM types t JOIN orgs o ON o.id = t.org_id";
const SNAPSHOTS: &str =
    "SELECT type_id, cycle_id, taken_at, live, added, changed, deleted, full_read, drift, stored_bytes FROM snapshots";
const RECORDS: &str = "SELECT r.sid, o.sid, t.source, t.name, t.key, r.source_id, t.id FROM records r \
     JOIN types t ON t.id = r.type_id JOIN orgs o ON o.id = t.org_id";
/// A version with content and its blob's place: columns 0-5 of the version, 6-11 of the blob.
const CONTENT: &str = "SELECT v.sid, r.source_id, v.version, c.started_at, v.from_cycle, v.blob_id, \
     p.name, b.chunk_off, b.chunk_len, b.inner_off, b.len \
     FROM versions v JOIN records r ON r.sid = v.sid JOIN cycles c ON c.id = v.from_cycle \
     JOIN types t ON t.id = v.type_id JOIN blobs b ON b.org_id = t.org_id AND b.id = v.blob_id \
     JOIN packs p ON p.id = b.pack_id";

fn type_row(r: &AnyRow) -> TypeRowFull {
    TypeRowFull {
        id: r.get(0),
        org: r.get(1),
        source: r.get(2),
        key: r.get(3),
        name: r.get(4),
        path: serde_json::from_str(&r.get::<String, _>(5)).unwrap_or_default(),
    }
}

fn snapshot_row(r: &AnyRow) -> SnapshotRow {
    SnapshotRow {
        type_id: r.get(0),
        cycle: r.get(1),
        taken_at: r.get(2),
        live: r.get(3),
        added: r.get(4),
        changed: r.get(5),
        deleted: r.get(6),
        full_read: r.get::<i64, _>(7) != 0,
        drift: r.get(8),
        stored_bytes: r.get(9),
    }
}

fn record_row(r: &AnyRow) -> RecordRow {
    RecordRow {
        sid: r.get(0),
        org: r.get(1),
        source: r.get(2),
        type_name: r.get(3),
        type_key: r.get(4),
        source_id: r.get(5),
        type_id: r.get(6),
    }
}

/// A content row from `CONTENT`'s columns, starting at column `at`.
fn content_row(r: &AnyRow, at: usize) -> ContentRow {
    let id: Vec<u8> = r.get(at + 5);
    ContentRow {
        sid: r.get(at),
        source_id: r.get(at + 1),
        version: r.get(at + 2),
        captured_at: r.get(at + 3),
        from_cycle: r.get(at + 4),
        loc: BlobLoc {
            id: id.try_into().unwrap_or_default(),
            pack: r.get(at + 6),
            chunk_off: r.get::<i64, _>(at + 7) as u32,
            chunk_len: r.get::<i64, _>(at + 8) as u32,
            inner_off: r.get::<i64, _>(at + 9) as u32,
            len: r.get::<i64, _>(at + 10) as u32,
        },
    }
}

impl Catalog {
    pub async fn all_types(&self, org: Option<&str>) -> Result<Vec<TypeRowFull>> {
        let rows =
            sqlx::query(&format!("{TYPES} WHERE ($1 = '' OR o.sid = $1) ORDER BY o.sid, t.source, t.name, t.key"))
                .bind(org.unwrap_or_default())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(type_row).collect())
    }

    pub async fn type_row(&self, id: i64) -> Result<TypeRowFull> {
        let r = sqlx::query(&format!("{TYPES} WHERE t.id = $1")).bind(id).fetch_optional(&self.pool).await?;
        r.map(|r| type_row(&r)).ok_or_else(|| anyhow::anyhow!("no data type #{id} in the catalog"))
    }

    pub async fn snapshot_rows(&self, ty: Option<i64>) -> Result<Vec<SnapshotRow>> {
        let rows = sqlx::query(&format!("{SNAPSHOTS} WHERE ($1 < 0 OR type_id = $1) ORDER BY type_id, cycle_id"))
            .bind(ty.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(snapshot_row).collect())
    }

    /// The last snapshot of a type, at or before a cycle, or taken at or before an instant.
    pub async fn snapshot_row_at(
        &self,
        ty: i64,
        cycle: Option<i64>,
        taken_by: Option<&str>,
    ) -> Result<Option<SnapshotRow>> {
        let r = sqlx::query(&format!(
            "{SNAPSHOTS} WHERE type_id = $1 AND cycle_id <= $2 AND taken_at <= $3 ORDER BY cycle_id DESC LIMIT 1"
        ))
        .bind(ty)
        .bind(cycle.unwrap_or(i64::MAX))
        .bind(taken_by.unwrap_or("9999"))
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| snapshot_row(&r)))
    }

    pub async fn record_by_sid(&self, sid: &str) -> Result<Option<RecordRow>> {
        let r = sqlx::query(&format!("{RECORDS} WHERE r.sid = $1")).bind(sid).fetch_optional(&self.pool).await?;
        Ok(r.map(|r| record_row(&r)))
    }

    pub async fn records_by_source_id(&self, id: &str) -> Result<Vec<RecordRow>> {
        let rows = sqlx::query(&format!("{RECORDS} WHERE r.source_id = $1 ORDER BY o.sid, t.source, t.name"))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(record_row).collect())
    }

    pub async fn version_rows(&self, sid: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(
            "SELECT v.version, v.deleted, c.started_at, v.from_cycle, v.to_cycle, v.size, v.blob_id \
             FROM versions v JOIN cycles c ON c.id = v.from_cycle WHERE v.sid = $1 ORDER BY v.version",
        )
        .bind(sid)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| VersionRow {
                version: r.get(0),
                deleted: r.get::<i64, _>(1) != 0,
                captured_at: r.get(2),
                from_cycle: r.get(3),
                to_cycle: r.get(4),
                size: r.get(5),
                blob: r.get(6),
            })
            .collect())
    }

    pub async fn content_rows(&self, ty: i64, which: Selection) -> Result<Vec<ContentRow>> {
        let (cond, cycle) = Self::selection(which);
        let rows =
            sqlx::query(&format!("{CONTENT} WHERE v.type_id = $1 AND {cond} ORDER BY p.id, b.chunk_off, b.inner_off"))
                .bind(ty)
                .bind(cycle)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| content_row(r, 0)).collect())
    }

    /// How many content rows `content_rows` would give, and their bytes.
    pub async fn content_totals(&self, ty: i64, which: Selection) -> Result<(u64, u64)> {
        let (cond, cycle) = Self::selection(which);
        let r = sqlx::query(&format!(
            "SELECT COUNT(*), COALESCE(SUM(v.size), 0) FROM versions v WHERE v.type_id = $1 AND {cond}"
        ))
        .bind(ty)
        .bind(cycle)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64))
    }

    fn selection(which: Selection) -> (&'static str, i64) {
        match which {
            Selection::LiveAt(c) => {
                ("v.from_cycle <= $2 AND (v.to_cycle IS NULL OR v.to_cycle > $2) AND v.deleted = 0", c)
            }
            Selection::Until(c) => ("v.from_cycle <= $2 AND v.deleted = 0", c),
        }
    }

    /// Records whose live version differs between two cycles: the version at `from` (if
    /// alive), and the live one at `to` with its place.
    pub async fn change_rows(&self, ty: i64, from: Option<i64>, to: i64) -> Result<Vec<ChangeRow>> {
        let lo = from.unwrap_or(0);
        let touched = sqlx::query(
            "SELECT DISTINCT v.sid, r.source_id FROM versions v JOIN records r ON r.sid = v.sid \
             WHERE v.type_id = $1 AND v.from_cycle > $2 AND v.from_cycle <= $3 ORDER BY r.source_id",
        )
        .bind(ty)
        .bind(lo)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let live = |c: i64| {
            sqlx::query(
                "SELECT v.sid, v.version FROM versions v WHERE v.type_id = $1 AND v.deleted = 0 AND v.from_cycle <= $2 \
                 AND (v.to_cycle IS NULL OR v.to_cycle > $2) AND v.sid IN \
                 (SELECT sid FROM versions WHERE type_id = $1 AND from_cycle > $3 AND from_cycle <= $4)",
            )
            .bind(ty)
            .bind(c)
            .bind(lo)
            .bind(to)
        };
        let before: std::collections::HashMap<String, i64> = match from {
            None => Default::default(),
            Some(c) => live(c).fetch_all(&self.pool).await?.iter().map(|r| (r.get(0), r.get(1))).collect(),
        };
        let after: std::collections::HashMap<String, ContentRow> = sqlx::query(&format!(
            "{CONTENT} WHERE v.type_id = $1 AND v.deleted = 0 AND v.from_cycle > $2 AND v.from_cycle <= $3 \
             AND (v.to_cycle IS NULL OR v.to_cycle > $3)"
        ))
        .bind(ty)
        .bind(lo)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), content_row(r, 0)))
        .collect();
        let mut after = after;
        Ok(touched
            .iter()
            .map(|r| {
                let sid: String = r.get(0);
                ChangeRow { before: before.get(&sid).copied(), after: after.remove(&sid), source_id: r.get(1), sid }
            })
            .collect())
    }

    /// Records whose current version is a deletion, with their last content, newest first.
    pub async fn deleted_rows(&self, org: Option<&str>) -> Result<Vec<DeletedRow>> {
        let rows = sqlx::query(&format!(
            "SELECT r.sid, o.sid, t.source, t.name, t.key, r.source_id, t.id, \
               c.started_at, d.from_cycle, \
               (SELECT MAX(s.taken_at) FROM snapshots s WHERE s.type_id = d.type_id AND s.cycle_id < d.from_cycle), \
               x.* FROM versions d JOIN records r ON r.sid = d.sid JOIN types t ON t.id = d.type_id \
             JOIN orgs o ON o.id = t.org_id JOIN cycles c ON c.id = d.from_cycle \
             JOIN ({CONTENT}) x ON x.sid = d.sid AND x.version = d.version - 1 \
             WHERE d.to_cycle IS NULL AND d.deleted = 1 AND ($1 = '' OR o.sid = $1) \
             ORDER BY d.from_cycle DESC, t.source, t.name, r.source_id"
        ))
        .bind(org.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeletedRow {
                record: record_row(r),
                noticed: r.get(7),
                noticed_cycle: r.get(8),
                last_seen: r.get(9),
                last: content_row(r, 10),
            })
            .collect())
    }

    /// A stored file's size and the places of its pieces, in order.
    pub async fn file_pieces(&self, org_id: i64, uid: &str) -> Result<Option<(u64, Vec<BlobLoc>)>> {
        let Some(f) = sqlx::query("SELECT size, pieces FROM files WHERE org_id = $1 AND uid = $2")
            .bind(org_id)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let (size, pieces): (i64, Vec<u8>) = (f.get(0), f.get(1));
        let mut conn = self.pool.acquire().await?;
        let mut locs = Vec::new();
        for id in pieces.chunks(16) {
            let loc = super::blob_loc(&mut conn, org_id, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("file {uid}: piece {} is not in the catalog", hex::encode(id)))?;
            locs.push(loc);
        }
        Ok(Some((size as u64, locs)))
    }
}
