//! What each mirror target last wrote of each data type: the cycle, when, how many requests
//! and cells it took, the last error and the target's own state. The error and the state
//! name boards, files and fields, so the vault seals both with the org's key before they
//! get here; the plain columns hold only ids, counts and times.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

/// One target's record of one data type.
#[derive(Debug, Clone, Default)]
pub struct MirrorRow {
    pub type_id: i64,
    /// The cycle whose snapshot the target holds (None: never written whole).
    pub cycle: Option<i64>,
    pub mirrored_at: Option<String>,
    pub attempted_at: String,
    /// Requests and cells of the last attempt.
    pub requests: i64,
    pub cells: i64,
    /// Sealed: the last attempt's error (None: it succeeded).
    pub error: Option<Vec<u8>>,
    /// Sealed: the target's own state.
    pub state: Option<Vec<u8>>,
}

impl Catalog {
    pub async fn mirror_rows(&self, org_id: i64, target: Option<&str>) -> Result<Vec<(String, MirrorRow)>> {
        let rows = sqlx::query(
            "SELECT target, type_id, cycle, mirrored_at, attempted_at, requests, cells, error, state \
             FROM mirror_state WHERE org_id = $1 AND ($2 = '' OR target = $2) ORDER BY target, type_id",
        )
        .bind(org_id)
        .bind(target.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    MirrorRow {
                        type_id: r.get(1),
                        cycle: r.get(2),
                        mirrored_at: r.get(3),
                        attempted_at: r.get(4),
                        requests: r.get(5),
                        cells: r.get(6),
                        error: r.get(7),
                        state: r.get(8),
                    },
                )
            })
            .collect())
    }

    pub async fn put_mirror_row(&self, org_id: i64, target: &str, row: &MirrorRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO mirror_state (org_id, target, type_id, cycle, mirrored_at, attempted_at, requests, cells, \
             error, state) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (org_id, target, type_id) DO UPDATE SET \
             cycle = excluded.cycle, mirrored_at = excluded.mirrored_at, attempted_at = excluded.attempted_at, \
             requests = excluded.requests, cells = excluded.cells, error = excluded.error, state = excluded.state",
        )
        .bind(org_id)
        .bind(target)
        .bind(row.type_id)
        .bind(row.cycle)
        .bind(&row.mirrored_at)
        .bind(&row.attempted_at)
        .bind(row.requests)
        .bind(row.cells)
        .bind(&row.error)
        .bind(&row.state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets what a target wrote (`--rebuild`), so the next mirror writes it whole.
    pub async fn forget_mirror(&self, org_id: i64, target: &str) -> Result<()> {
        sqlx::query("UPDATE mirror_state SET cycle = NULL WHERE org_id = $1 AND target = $2")
            .bind(org_id)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
