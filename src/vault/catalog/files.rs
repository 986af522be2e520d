//! Stored files: per file (by UID, a keyed hash of its bytes) its size and the places of its
//! pieces. File names are not here: they are in the sealed versions that refer to the file.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub uid: String,
    pub size: u64,
    /// Each piece's encoded place and content id (`vault::files` knows the encoding).
    pub pieces: Vec<u8>,
}

impl Catalog {
    pub async fn file_records(&self, org_id: i64) -> Result<Vec<FileRecord>> {
        let rows = sqlx::query("SELECT uid, size, pieces FROM files WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| FileRecord { uid: r.get(0), size: r.get::<i64, _>(1) as u64, pieces: r.get(2) })
            .collect())
    }

    pub async fn file_record(&self, org_id: i64, uid: &str) -> Result<Option<FileRecord>> {
        let r = sqlx::query("SELECT uid, size, pieces FROM files WHERE org_id = $1 AND uid = $2")
            .bind(org_id)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| FileRecord { uid: r.get(0), size: r.get::<i64, _>(1) as u64, pieces: r.get(2) }))
    }
}
