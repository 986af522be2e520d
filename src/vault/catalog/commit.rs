//! A data type's cycle, committed in one short transaction once its packs are durably in the
//! store: the packs, the files it stored, its snapshot and where its reads stand. Before
//! that the catalog knows nothing of it, so a failure or a crash leaves only unnamed packs.

use anyhow::Result;

use super::{Catalog, FileRecord, Lease, PackRecord, SnapshotRecord};

pub struct CommitRows {
    pub packs: Vec<PackRecord>,
    pub files: Vec<(i64, FileRecord)>,
    pub snapshot: SnapshotRecord,
    /// The cursor the next read of changes starts from.
    pub cursor: Option<String>,
}

impl Catalog {
    pub async fn commit_type(&self, lease: &Lease, rows: CommitRows) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        super::packs::insert_packs(&mut tx, &rows.packs).await?;
        for (org_id, f) in &rows.files {
            sqlx::query(
                "INSERT INTO files (org_id, uid, size, pieces) VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, uid) DO NOTHING",
            )
            .bind(org_id)
            .bind(&f.uid)
            .bind(f.size as i64)
            .bind(&f.pieces)
            .execute(&mut *tx)
            .await?;
        }
        let s = &rows.snapshot;
        sqlx::query(
            "INSERT INTO snapshots (type_id, cycle_id, taken_at, full_read, listed, live, added, changed, deleted, \
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
        sqlx::query(
            "UPDATE types SET last_full_cycle = CASE WHEN $1 = 1 THEN $2 ELSE last_full_cycle END, cursor = $3 WHERE id = $4",
        )
        .bind(s.full_read as i64)
        .bind(s.cycle)
        .bind(&rows.cursor)
        .bind(s.type_id)
        .execute(&mut *tx)
        .await?;
        lease.confirm(&mut tx).await?;
        crate::fault::point("before-commit");
        tx.commit().await?;
        crate::fault::point("after-commit");
        Ok(())
    }
}
