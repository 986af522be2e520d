//! Orgs: each with its keys, wrapped by the vault's master key, and its store prefix.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

pub struct OrgRecord {
    pub id: i64,
    pub store_id: String,
    pub wrapped_key: Vec<u8>,
}

impl Catalog {
    pub async fn add_org(&self, sid: &str, name: &str, store_id: &str, wrapped_key: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO orgs (sid, name, store_id, wrapped_key, created_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (sid) DO NOTHING",
        )
        .bind(sid)
        .bind(name)
        .bind(store_id)
        .bind(wrapped_key)
        .bind(crate::util::now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn org_record(&self, sid: &str) -> Result<Option<OrgRecord>> {
        let r = sqlx::query("SELECT id, store_id, wrapped_key FROM orgs WHERE sid = $1")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| OrgRecord { id: r.get(0), store_id: r.get(1), wrapped_key: r.get(2) }))
    }

    pub async fn org_sid(&self, id: i64) -> Result<String> {
        Ok(sqlx::query("SELECT sid FROM orgs WHERE id = $1").bind(id).fetch_one(&self.pool).await?.get(0))
    }
}

impl Catalog {
    /// Deletes an org and every row of it, its wrapped key first among them, in one
    /// transaction (on SQLite with secure_delete, so freed pages keep nothing). Returns its
    /// store prefix, whose objects the caller removes.
    pub async fn erase_org_rows(&self, sid: &str) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        if !self.postgres {
            sqlx::query("PRAGMA secure_delete = ON").execute(&mut *tx).await?;
        }
        let Some(row) =
            sqlx::query("SELECT id, store_id FROM orgs WHERE sid = $1").bind(sid).fetch_optional(&mut *tx).await?
        else {
            return Ok(None);
        };
        let (org_id, store_id): (i64, String) = (row.get(0), row.get(1));
        sqlx::query("DELETE FROM orgs WHERE id = $1").bind(org_id).execute(&mut *tx).await?;
        for table in ["snapshots", "restores"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE type_id IN (SELECT id FROM types WHERE org_id = $1)"))
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
        }
        for table in ["archive_parts", "archive_links"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE archive_id IN (SELECT id FROM archives WHERE org_id = $1)"
            ))
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        }
        // The org's web users go with it, and their sessions first.
        sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE org_id = $1)")
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        for table in
            ["types", "files", "packs", "mirror_state", "archives", "archive_charges", "users", "tokens", "audit"]
        {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1")).bind(org_id).execute(&mut *tx).await?;
        }
        for table in ["cycle_log", "jobs", "job_log", "due_runs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE org = $1")).bind(sid).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(store_id))
    }
}
