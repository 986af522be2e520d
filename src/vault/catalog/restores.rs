//! Copies made by `restore`: which version of which record became which new record.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct RestoreRow {
    pub at: String,
    pub version: i64,
    pub new_id: String,
}

impl Catalog {
    pub async fn restores_of(&self, sid: &str) -> Result<Vec<RestoreRow>> {
        let rows = sqlx::query("SELECT at, version, new_id FROM restores WHERE sid = $1 ORDER BY id")
            .bind(sid)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| RestoreRow { at: r.get(0), version: r.get(1), new_id: r.get(2) }).collect())
    }

    pub async fn add_restore(
        &self,
        type_id: i64,
        sid: &str,
        version: i64,
        new_id: &str,
        files: i64,
        notes: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO restores (at, type_id, sid, version, new_id, files, notes) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(crate::util::now_rfc3339())
        .bind(type_id)
        .bind(sid)
        .bind(version)
        .bind(new_id)
        .bind(files)
        .bind(notes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
