//! Catalog schema versions: a new catalog gets the current schema; an older one is brought
//! up to it in place, in one transaction per step, so a crash mid-way leaves the old
//! version whole. Steps that need the vault's keys (2 to 3 seals what was plain and writes
//! state pages) are the vault's: `migrate` says when one is due.

use anyhow::{Context, Result, bail};

use super::{Catalog, schema};

impl Catalog {
    /// Creates the schema of a new catalog, or runs the upgrade steps that need no keys.
    /// Returns the schema version the catalog is at now (the vault upgrades 2 to 3).
    pub async fn migrate(&self) -> Result<i64> {
        let had = match self.meta("schema_version").await? {
            None => None,
            Some(v) => {
                Some(v.parse::<i64>().with_context(|| format!("catalog {}: schema_version {v:?}", self.display))?)
            }
        };
        match had {
            None => {
                self.run(&schema::statements(self.postgres), None).await?;
                Ok(schema::SCHEMA_VERSION)
            }
            Some(v) if v > schema::SCHEMA_VERSION => bail!(
                "catalog {} has schema {v}, newer than this daybook knows ({}): upgrade daybook",
                self.display,
                schema::SCHEMA_VERSION
            ),
            Some(1) => {
                tracing::warn!("catalog {}: upgrading schema 1 to 2", self.display);
                self.run(&schema::v1_to_v2(self.postgres), Some(2)).await?;
                Ok(2)
            }
            Some(3) => {
                // The tables schema 4 added are made as this release has them.
                tracing::info!("catalog {}: upgrading schema 3 to 6 (new tables only)", self.display);
                self.run(&schema::statements(self.postgres), Some(6)).await?;
                Ok(6)
            }
            Some(4) => {
                tracing::info!(
                    "catalog {}: upgrading schema 4 to 6 (users remember their last TOTP step)",
                    self.display
                );
                self.run(&["ALTER TABLE users ADD COLUMN totp_step BIGINT".to_string()], Some(6)).await?;
                Ok(6)
            }
            Some(5) => {
                tracing::info!("catalog {}: upgrading schema 5 to 6 (compact state pages from now on)", self.display);
                self.run(&[], Some(6)).await?;
                Ok(6)
            }
            // Up to date, or at 2 for the vault to upgrade: nothing runs here (DDL would
            // wait for the locks of running backups).
            Some(v) => Ok(v),
        }
    }

    pub(crate) async fn run(&self, statements: &[String], version: Option<i64>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for s in statements {
            sqlx::query(s).execute(&mut *tx).await.with_context(|| format!("catalog schema: {s}"))?;
        }
        if let Some(v) = version {
            sqlx::query("UPDATE meta SET value = $1 WHERE key = 'schema_version'")
                .bind(v.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
