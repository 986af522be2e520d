//! Copies made by `restore`: which version of which record became a new record. The new id
//! and the notes (the app's words about fields) are sealed by the vault.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct RestoreRecord {
    pub at: String,
    pub version: i64,
    pub files: i64,
    pub sealed: Vec<u8>,
}

impl Catalog {
    pub async fn restore_records(&self, sid: &str) -> Result<Vec<RestoreRecord>> {
        let rows = sqlx::query("SELECT at, version, files, sealed FROM restores WHERE sid = $1 ORDER BY id")
            .bind(sid)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| RestoreRecord { at: r.get(0), version: r.get(1), files: r.get(2), sealed: r.get(3) })
            .collect())
    }

    /// The SIDs that have been restored at least once.
    pub async fn restored_sids(&self) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT DISTINCT sid FROM restores").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn add_restore(&self, type_id: i64, sid: &str, r: &RestoreRecord) -> Result<()> {
        sqlx::query("INSERT INTO restores (at, type_id, sid, version, files, sealed) VALUES ($1,$2,$3,$4,$5,$6)")
            .bind(&r.at)
            .bind(type_id)
            .bind(sid)
            .bind(r.version)
            .bind(r.files)
            .bind(&r.sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
