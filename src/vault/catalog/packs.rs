//! Packs: one row each, with its chunk table (offset and sealed length of each chunk), so a
//! blob's place (pack id, chunk offset, offset in the chunk) is enough to read it.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct PackRecord {
    pub org_id: i64,
    /// The random id blobs' places name it by.
    pub pid: u64,
    /// The BLAKE3 hash of its bytes: its object's name in the store.
    pub name: String,
    pub size: u64,
    pub cycle: i64,
    pub chunks: Vec<(u32, u32)>,
}

pub fn encode_chunks(chunks: &[(u32, u32)]) -> Vec<u8> {
    chunks.iter().flat_map(|(o, l)| o.to_le_bytes().into_iter().chain(l.to_le_bytes())).collect()
}

fn decode_chunks(b: &[u8]) -> Vec<(u32, u32)> {
    b.chunks_exact(8)
        .map(|c| (u32::from_le_bytes(c[..4].try_into().expect("4")), u32::from_le_bytes(c[4..].try_into().expect("4"))))
        .collect()
}

/// Names packs in a transaction (a commit's or a prune's).
pub(super) async fn insert_packs(tx: &mut sqlx::AnyConnection, packs: &[PackRecord]) -> Result<()> {
    for p in packs {
        sqlx::query("INSERT INTO packs (org_id, pid, name, size, cycle_id, chunks) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(p.org_id)
            .bind(p.pid as i64)
            .bind(&p.name)
            .bind(p.size as i64)
            .bind(p.cycle)
            .bind(encode_chunks(&p.chunks))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Catalog {
    /// An org's packs (or every pack).
    pub async fn pack_records(&self, org_id: Option<i64>) -> Result<Vec<PackRecord>> {
        let rows = sqlx::query(
            "SELECT org_id, pid, name, size, cycle_id, chunks FROM packs WHERE ($1 < 0 OR org_id = $1) ORDER BY id",
        )
        .bind(org_id.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PackRecord {
                org_id: r.get(0),
                pid: r.get::<i64, _>(1) as u64,
                name: r.get(2),
                size: r.get::<i64, _>(3) as u64,
                cycle: r.get(4),
                chunks: decode_chunks(&r.get::<Vec<u8>, _>(5)),
            })
            .collect())
    }

    /// The names of an org's packs.
    pub async fn pack_names(&self, org_id: i64) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT name FROM packs WHERE org_id = $1").bind(org_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
