//! Snapshots: per data type and cycle, its counts and the sealed pages that hold its state
//! (`delta`: what changed in that cycle, none when nothing did; `checkpoint`, now and then:
//! every record). A page is named by its place in a pack and its content id.

use anyhow::Result;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Catalog;

#[derive(Debug, Clone, Default)]
pub struct SnapshotRecord {
    pub type_id: i64,
    pub cycle: i64,
    pub taken_at: String,
    pub full_read: bool,
    pub listed: i64,
    pub live: i64,
    pub added: i64,
    pub changed: i64,
    pub deleted: i64,
    pub drift: i64,
    pub stored_bytes: i64,
    pub delta: Option<Vec<u8>>,
    pub checkpoint: Option<Vec<u8>>,
}

const SELECT: &str = "SELECT type_id, cycle_id, taken_at, full_read, listed, live, added, changed, deleted, drift, \
     stored_bytes, delta, checkpoint FROM snapshots";

fn record(r: &AnyRow) -> SnapshotRecord {
    SnapshotRecord {
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
        delta: r.get(11),
        checkpoint: r.get(12),
    }
}

impl Catalog {
    /// Every snapshot of a data type (or of all), oldest first.
    pub async fn snapshot_records(&self, ty: Option<i64>) -> Result<Vec<SnapshotRecord>> {
        let rows = sqlx::query(&format!("{SELECT} WHERE ($1 < 0 OR type_id = $1) ORDER BY type_id, cycle_id"))
            .bind(ty.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(record).collect())
    }

    /// The last snapshot of a type at or before a cycle and taken at or before an instant.
    pub async fn snapshot_record_at(
        &self,
        ty: i64,
        cycle: Option<i64>,
        taken_by: Option<&str>,
    ) -> Result<Option<SnapshotRecord>> {
        let r = sqlx::query(&format!(
            "{SELECT} WHERE type_id = $1 AND cycle_id <= $2 AND taken_at <= $3 ORDER BY cycle_id DESC LIMIT 1"
        ))
        .bind(ty)
        .bind(cycle.unwrap_or(i64::MAX))
        .bind(taken_by.unwrap_or("9999"))
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| record(&r)))
    }

    /// The snapshots whose pages make up a type's state at a cycle: the last one with a
    /// checkpoint at or before it, then each later one, oldest first.
    pub async fn page_chain(&self, ty: i64, cycle: i64) -> Result<Vec<SnapshotRecord>> {
        let start: Option<i64> = sqlx::query(
            "SELECT MAX(cycle_id) FROM snapshots WHERE type_id = $1 AND cycle_id <= $2 AND checkpoint IS NOT NULL",
        )
        .bind(ty)
        .bind(cycle)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE type_id = $1 AND cycle_id >= $2 AND cycle_id <= $3 ORDER BY cycle_id"
        ))
        .bind(ty)
        .bind(start.unwrap_or(0))
        .bind(cycle)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(record).collect())
    }
}
