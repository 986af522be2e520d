//! Schema 2's tables, read once by the vault's upgrade to schema 3, and the step that puts
//! the schema-3 rows in their place (one transaction: a crash before it leaves schema 2 whole).

use anyhow::Result;
use sqlx::Row;
use std::collections::HashMap;

use super::packs::encode_chunks;
use super::{Catalog, FileRecord, PackRecord, RestoreRecord, SnapshotRecord, TypeRecord, schema};

pub struct V2Type {
    pub id: i64,
    pub org_id: i64,
    pub source: String,
    pub key: String,
    pub name: String,
    pub path: String,
    pub seed: String,
    pub cursor: Option<String>,
    pub last_full_cycle: Option<i64>,
}

pub struct V2Version {
    pub sid: String,
    pub version: i64,
    pub from_cycle: i64,
    pub deleted: bool,
    pub blob: Option<Vec<u8>>,
}

pub struct V2Blob {
    pub pack: i64,
    pub chunk_off: u32,
    pub chunk_len: u32,
    pub inner_off: u32,
    pub len: u32,
}

pub struct V2Pack {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub size: i64,
    pub cycle: i64,
}

pub struct V2Restore {
    pub id: i64,
    pub at: String,
    pub type_id: i64,
    pub sid: String,
    pub version: i64,
    pub new_id: String,
    pub files: i64,
    pub notes: String,
}

/// What schema 3 holds, made by the vault from schema 2's rows and its new state pages.
#[derive(Default)]
pub struct V3Rows {
    /// Each keeps its schema-2 id (snapshots, restores and the log refer to it).
    pub types: Vec<(i64, TypeRecord)>,
    pub snapshots: Vec<SnapshotRecord>,
    pub packs: Vec<PackRecord>,
    pub files: Vec<(i64, FileRecord)>,
    pub restores: Vec<(i64, i64, String, RestoreRecord)>,
}

impl Catalog {
    pub async fn v2_types(&self) -> Result<Vec<V2Type>> {
        let rows = sqlx::query("SELECT id, org_id, source, key, name, path, seed, cursor, last_full_cycle FROM types")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| V2Type {
                id: r.get(0),
                org_id: r.get(1),
                source: r.get(2),
                key: r.get(3),
                name: r.get(4),
                path: r.get(5),
                seed: r.get(6),
                cursor: r.get(7),
                last_full_cycle: r.get(8),
            })
            .collect())
    }

    /// A data type's versions, by record and version.
    pub async fn v2_versions(&self, type_id: i64) -> Result<Vec<V2Version>> {
        let rows = sqlx::query(
            "SELECT sid, version, from_cycle, deleted, blob_id FROM versions WHERE type_id = $1 ORDER BY sid, version",
        )
        .bind(type_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| V2Version {
                sid: r.get(0),
                version: r.get(1),
                from_cycle: r.get(2),
                deleted: r.get::<i64, _>(3) != 0,
                blob: r.get(4),
            })
            .collect())
    }

    pub async fn v2_source_ids(&self, type_id: i64) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT sid, source_id FROM records WHERE type_id = $1")
            .bind(type_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn v2_blobs(&self, org_id: i64) -> Result<HashMap<[u8; 16], V2Blob>> {
        let rows = sqlx::query("SELECT id, pack_id, chunk_off, chunk_len, inner_off, len FROM blobs WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id: [u8; 16] = r.get::<Vec<u8>, _>(0).try_into().ok()?;
                let n = |i: usize| r.get::<i64, _>(i) as u32;
                Some((id, V2Blob { pack: r.get(1), chunk_off: n(2), chunk_len: n(3), inner_off: n(4), len: n(5) }))
            })
            .collect())
    }

    pub async fn v2_packs(&self) -> Result<Vec<V2Pack>> {
        let rows = sqlx::query("SELECT id, org_id, name, size, cycle_id FROM packs").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| V2Pack { id: r.get(0), org_id: r.get(1), name: r.get(2), size: r.get(3), cycle: r.get(4) })
            .collect())
    }

    /// (uid, size, piece ids) of an org's files.
    pub async fn v2_files(&self, org_id: i64) -> Result<Vec<(String, u64, Vec<[u8; 16]>)>> {
        let rows = sqlx::query("SELECT uid, size, pieces FROM files WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let pieces: Vec<u8> = r.get(2);
                (r.get(0), r.get::<i64, _>(1) as u64, pieces.chunks(16).filter_map(|c| c.try_into().ok()).collect())
            })
            .collect())
    }

    /// (file key, fingerprint, uid) a data type cached.
    pub async fn v2_file_cache(&self, type_id: i64) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT file_key, fingerprint, uid FROM file_cache WHERE type_id = $1")
            .bind(type_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    pub async fn v2_snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let rows = sqlx::query(
            "SELECT type_id, cycle_id, taken_at, full_read, listed, live, added, changed, deleted, drift, stored_bytes \
             FROM snapshots ORDER BY type_id, cycle_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SnapshotRecord {
                type_id: r.get(0),
                cycle: r.get(1),
                taken_at: r.get(2),
                full_read: r.get::<i64, _>(3) != 0,
                listed: r.get(4),
                live: r.get(5),
                added: r.get(6),
                changed: r.get(7),
                deleted: r.get(8),
                drift: r.get(9),
                stored_bytes: r.get(10),
                delta: None,
                checkpoint: None,
            })
            .collect())
    }

    pub async fn v2_restores(&self) -> Result<Vec<V2Restore>> {
        let rows = sqlx::query("SELECT id, at, type_id, sid, version, new_id, files, notes FROM restores")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| V2Restore {
                id: r.get(0),
                at: r.get(1),
                type_id: r.get(2),
                sid: r.get(3),
                version: r.get(4),
                new_id: r.get(5),
                files: r.get(6),
                notes: r.get(7),
            })
            .collect())
    }

    /// Replaces schema 2's tables with schema 3's rows, in one transaction.
    pub async fn v2_finish(&self, rows: V3Rows) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for s in schema::v2_to_v3_tables(self.postgres) {
            sqlx::query(&s).execute(&mut *tx).await?;
        }
        for (id, t) in &rows.types {
            sqlx::query(
                "INSERT INTO types_v3 (id, org_id, source, key_id, meta, cursor, last_full_cycle) VALUES ($1,$2,$3,$4,$5,$6,$7)",
            )
            .bind(id)
            .bind(t.org_id)
            .bind(&t.source)
            .bind(&t.key_id)
            .bind(&t.meta)
            .bind(&t.cursor)
            .bind(t.last_full_cycle)
            .execute(&mut *tx)
            .await?;
        }
        for s in &rows.snapshots {
            sqlx::query(
                "INSERT INTO snapshots_v3 (type_id, cycle_id, taken_at, full_read, listed, live, added, changed, deleted, \
                 drift, stored_bytes, delta, checkpoint) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            )
            .bind(s.type_id)
            .bind(s.cycle)
            .bind(&s.taken_at)
            .bind(s.full_read as i64)
            .bind(s.listed)
            .bind(s.live)
            .bind(s.added)
            .bind(s.changed)
            .bind(s.deleted)
            .bind(s.drift)
            .bind(s.stored_bytes)
            .bind(&s.delta)
            .bind(&s.checkpoint)
            .execute(&mut *tx)
            .await?;
        }
        for p in &rows.packs {
            sqlx::query("INSERT INTO packs_v3 (org_id, pid, name, size, cycle_id, chunks) VALUES ($1,$2,$3,$4,$5,$6)")
                .bind(p.org_id)
                .bind(p.pid as i64)
                .bind(&p.name)
                .bind(p.size as i64)
                .bind(p.cycle)
                .bind(encode_chunks(&p.chunks))
                .execute(&mut *tx)
                .await?;
        }
        for (org_id, f) in &rows.files {
            sqlx::query("INSERT INTO files_v3 (org_id, uid, size, pieces) VALUES ($1,$2,$3,$4)")
                .bind(org_id)
                .bind(&f.uid)
                .bind(f.size as i64)
                .bind(&f.pieces)
                .execute(&mut *tx)
                .await?;
        }
        for (id, type_id, sid, r) in &rows.restores {
            sqlx::query(
                "INSERT INTO restores_v3 (id, at, type_id, sid, version, files, sealed) VALUES ($1,$2,$3,$4,$5,$6,$7)",
            )
            .bind(id)
            .bind(&r.at)
            .bind(type_id)
            .bind(sid)
            .bind(r.version)
            .bind(r.files)
            .bind(&r.sealed)
            .execute(&mut *tx)
            .await?;
        }
        for s in schema::v2_to_v3_swap(self.postgres) {
            sqlx::query(&s).execute(&mut *tx).await?;
        }
        // The swap made every table of the current schema, so it lands there, not at 3.
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'schema_version'")
            .bind(schema::SCHEMA_VERSION.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.scrub().await
    }
}
