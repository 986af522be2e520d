//! Forget and prune's swap: in one transaction, the new packs are named, the kept snapshots
//! point at their new pages, the forgotten snapshots, removed files and old packs go.

use anyhow::Result;

use super::{Catalog, Lease, PackRecord, SnapshotRecord};

#[derive(Debug, Default)]
pub struct RewriteRows {
    pub org_id: i64,
    pub packs_added: Vec<PackRecord>,
    /// By pack id.
    pub packs_removed: Vec<u64>,
    /// Kept snapshots with their new pages (and counts).
    pub snapshots_updated: Vec<SnapshotRecord>,
    /// (type id, cycle id).
    pub snapshots_removed: Vec<(i64, i64)>,
    /// (uid, encoded pieces).
    pub files_updated: Vec<(String, Vec<u8>)>,
    pub files_removed: Vec<String>,
}

impl Catalog {
    pub async fn rewrite_org(&self, lease: &Lease, rows: RewriteRows) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        super::packs::insert_packs(&mut tx, &rows.packs_added).await?;
        for s in &rows.snapshots_updated {
            sqlx::query(
                "UPDATE snapshots SET delta = $1, checkpoint = $2, added = $3, changed = $4, deleted = $5 \
                 WHERE type_id = $6 AND cycle_id = $7",
            )
            .bind(&s.delta)
            .bind(&s.checkpoint)
            .bind(s.added)
            .bind(s.changed)
            .bind(s.deleted)
            .bind(s.type_id)
            .bind(s.cycle)
            .execute(&mut *tx)
            .await?;
        }
        for (ty, cycle) in &rows.snapshots_removed {
            sqlx::query("DELETE FROM snapshots WHERE type_id = $1 AND cycle_id = $2")
                .bind(ty)
                .bind(cycle)
                .execute(&mut *tx)
                .await?;
        }
        for (uid, pieces) in &rows.files_updated {
            sqlx::query("UPDATE files SET pieces = $1 WHERE org_id = $2 AND uid = $3")
                .bind(pieces)
                .bind(rows.org_id)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
        for uid in &rows.files_removed {
            sqlx::query("DELETE FROM files WHERE org_id = $1 AND uid = $2")
                .bind(rows.org_id)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
        for pid in &rows.packs_removed {
            sqlx::query("DELETE FROM packs WHERE org_id = $1 AND pid = $2")
                .bind(rows.org_id)
                .bind(*pid as i64)
                .execute(&mut *tx)
                .await?;
        }
        lease.confirm(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
