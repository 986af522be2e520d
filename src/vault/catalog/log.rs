//! The backup log: one entry per data type and source per cycle. Its plain columns say only
//! when, how it went and the counts; what a person reads (errors, names of boards and
//! tables) is sealed with the org's key by the vault before it gets here.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub cycle: i64,
    pub at: String,
    /// "info", "warn" or "error".
    pub level: String,
    pub org: String,
    pub source: String,
    /// The data type, or none for a source-wide entry.
    pub type_id: Option<i64>,
    /// Plain: an outcome and counts, never content ("snapshot: 5 live, 1 added").
    pub summary: String,
    /// Sealed: the whole message.
    pub detail: Vec<u8>,
}

impl Catalog {
    pub async fn add_log(&self, e: &LogEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO cycle_log (cycle_id, at, level, org, source, type_id, summary, detail) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(e.cycle)
        .bind(&e.at)
        .bind(&e.level)
        .bind(&e.org)
        .bind(&e.source)
        .bind(e.type_id)
        .bind(&e.summary)
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An org's entries, oldest first; of one cycle, or all.
    pub async fn log_entries(&self, org: &str, cycle: Option<i64>) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT cycle_id, at, level, org, source, type_id, summary, detail FROM cycle_log \
             WHERE org = $1 AND ($2 < 0 OR cycle_id = $2) ORDER BY cycle_id, at",
        )
        .bind(org)
        .bind(cycle.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                cycle: r.get(0),
                at: r.get(1),
                level: r.get(2),
                org: r.get(3),
                source: r.get(4),
                type_id: r.get(5),
                summary: r.get(6),
                detail: r.get(7),
            })
            .collect())
    }
}

impl Catalog {
    /// Moves a schema-1 log (kept aside as `cycle_log_v1` by the upgrade) into the log, each
    /// message sealed by `seal(org, message)` (None: its org is gone, and so is the entry);
    /// then drops the old table and wipes its pages.
    pub async fn upgrade_v1_log(&self, seal: impl Fn(&str, &str) -> Option<Vec<u8>>) -> Result<()> {
        if !self.has_table("cycle_log_v1").await? {
            return Ok(());
        }
        let rows = sqlx::query("SELECT cycle_id, at, level, org, source, data_type, message FROM cycle_log_v1")
            .fetch_all(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        for r in rows {
            let (cycle, at, level, org, source, ty, message): (i64, String, String, String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
            let Some(detail) = seal(&org, &message) else { continue };
            let type_id: Option<i64> = sqlx::query(
                "SELECT t.id FROM types t JOIN orgs o ON o.id = t.org_id WHERE o.sid = $1 AND t.source = $2 AND t.key = $3",
            )
            .bind(&org)
            .bind(&source)
            .bind(&ty)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
            sqlx::query(
                "INSERT INTO cycle_log (cycle_id, at, level, org, source, type_id, summary, detail) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            )
            .bind(cycle)
            .bind(&at)
            .bind(&level)
            .bind(&org)
            .bind(&source)
            .bind(type_id)
            .bind("logged by schema 1")
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DROP TABLE cycle_log_v1").execute(&mut *tx).await?;
        tx.commit().await?;
        self.scrub().await
    }

    pub async fn org_sids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query("SELECT sid FROM orgs ORDER BY sid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}
