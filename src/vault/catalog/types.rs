//! Data types. Each row is found by a keyed hash of the data type's stable key; its key, name,
//! hierarchy path and SID seed are in `meta`, sealed by the vault with the org's key. The
//! catalog neither reads nor needs them.

use anyhow::Result;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct TypeRecord {
    pub id: i64,
    pub org_id: i64,
    pub org: String,
    pub source: String,
    pub key_id: Vec<u8>,
    pub meta: Vec<u8>,
    pub cursor: Option<String>,
    pub last_full_cycle: Option<i64>,
}

/// A change to a source's data types, applied with others in one transaction.
pub enum TypeOp {
    Insert {
        key_id: Vec<u8>,
        meta: Vec<u8>,
    },
    /// A new key (adopted from a former one) or new sealed metadata.
    Update {
        id: i64,
        key_id: Vec<u8>,
        meta: Vec<u8>,
    },
}

const SELECT: &str = "SELECT t.id, t.org_id, o.sid, t.source, t.key_id, t.meta, t.cursor, t.last_full_cycle \
     FROM types t JOIN orgs o ON o.id = t.org_id";

fn record(r: &AnyRow) -> TypeRecord {
    TypeRecord {
        id: r.get(0),
        org_id: r.get(1),
        org: r.get(2),
        source: r.get(3),
        key_id: r.get(4),
        meta: r.get(5),
        cursor: r.get(6),
        last_full_cycle: r.get(7),
    }
}

impl Catalog {
    /// Data types of an org (or all orgs), of one source (or all).
    pub async fn type_records(&self, org_id: Option<i64>, source: Option<&str>) -> Result<Vec<TypeRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE ($1 < 0 OR t.org_id = $1) AND ($2 = '' OR t.source = $2) ORDER BY t.id"
        ))
        .bind(org_id.unwrap_or(-1))
        .bind(source.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(record).collect())
    }

    pub async fn type_record(&self, id: i64) -> Result<TypeRecord> {
        let r = sqlx::query(&format!("{SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&self.pool).await?;
        r.map(|r| record(&r)).ok_or_else(|| anyhow::anyhow!("no data type #{id} in the catalog"))
    }

    /// Applies changes to one source's data types in one transaction; returns the ids of
    /// the inserted ones, in order.
    pub async fn apply_type_ops(&self, org_id: i64, source: &str, ops: Vec<TypeOp>) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::new();
        for op in ops {
            match op {
                TypeOp::Insert { key_id, meta } => {
                    let id: i64 = sqlx::query(
                        "INSERT INTO types (org_id, source, key_id, meta) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(org_id)
                    .bind(source)
                    .bind(key_id)
                    .bind(meta)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                    ids.push(id);
                }
                TypeOp::Update { id, key_id, meta } => {
                    sqlx::query("UPDATE types SET key_id = $1, meta = $2 WHERE id = $3")
                        .bind(key_id)
                        .bind(meta)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Where a data type's reads stand: its change cursor, and when its last whole read began.
    pub async fn type_progress(&self, id: i64) -> Result<(Option<String>, Option<String>)> {
        let r = sqlx::query(
            "SELECT t.cursor, c.started_at FROM types t LEFT JOIN cycles c ON c.id = t.last_full_cycle WHERE t.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.get(0), r.get(1)))
    }
}
