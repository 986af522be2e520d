//! Data types in the catalog. Each is known by its key (the app's stable ids), carries the
//! name and hierarchy path the app gives it today, and a seed fixed when it was first seen,
//! from which its records' SIDs derive: a rename changes the name, never the SIDs.

use anyhow::{Result, bail};
use sqlx::Row;

use super::Catalog;

/// A data type as a source offers it now.
#[derive(Debug, Clone, Copy)]
pub struct TypeIdentity<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub path: &'a [String],
    /// Keys it may be stored under by an earlier release.
    pub former: &'a [String],
}

#[derive(Debug, Clone)]
pub struct TypeRow {
    pub id: i64,
    pub source: String,
    pub key: String,
    pub name: String,
    pub path: Vec<String>,
    /// What its records' SIDs derive from.
    pub seed: String,
}

fn row(r: &sqlx::any::AnyRow) -> TypeRow {
    TypeRow {
        id: r.get(0),
        source: r.get(1),
        key: r.get(2),
        name: r.get(3),
        path: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default(),
        seed: r.get(5),
    }
}

const SELECT: &str = "SELECT id, source, key, name, path, seed FROM types";

impl Catalog {
    /// Brings a source's data types in line with what it offers now: new ones are added, known
    /// ones take their current name and path, and one stored under a former key (an earlier
    /// release's name for it) moves to its stable key with its history. Returns the rows of
    /// `found`, in its order.
    pub async fn sync_types(&self, org_id: i64, source: &str, found: &[TypeIdentity<'_>]) -> Result<Vec<TypeRow>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(found.len());
        let by_key_sql = format!("{SELECT} WHERE org_id = $1 AND source = $2 AND key = $3");
        for (i, t) in found.iter().enumerate() {
            if found[..i].iter().any(|o| o.key == t.key) {
                bail!("the source offers the data type {} twice", t.key);
            }
            let path = serde_json::to_string(t.path)?;
            let by_key =
                |key: &str| sqlx::query(&by_key_sql).bind(org_id).bind(source.to_string()).bind(key.to_string());
            let mut current = by_key(t.key).fetch_optional(&mut *tx).await?.map(|r| row(&r));
            if current.is_none() {
                for f in t.former.iter().filter(|f| !found.iter().any(|o| o.key == f.as_str())) {
                    if let Some(r) = by_key(f).fetch_optional(&mut *tx).await? {
                        sqlx::query("UPDATE types SET key = $1 WHERE id = $2")
                            .bind(t.key)
                            .bind(r.get::<i64, _>(0))
                            .execute(&mut *tx)
                            .await?;
                        tracing::info!("data type {f:?} of {source} is now known by its stable key {}", t.key);
                        current = Some(TypeRow { key: t.key.to_string(), ..row(&r) });
                        break;
                    }
                }
            }
            let r = match current {
                Some(r) => {
                    if r.name != t.name || r.path != t.path {
                        sqlx::query("UPDATE types SET name = $1, path = $2 WHERE id = $3")
                            .bind(t.name)
                            .bind(&path)
                            .bind(r.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    TypeRow { name: t.name.to_string(), path: t.path.to_vec(), ..r }
                }
                None => {
                    let id: i64 = sqlx::query(
                        "INSERT INTO types (org_id, source, key, name, path, seed) VALUES ($1, $2, $3, $4, $5, $3) RETURNING id",
                    )
                    .bind(org_id)
                    .bind(source)
                    .bind(t.key)
                    .bind(t.name)
                    .bind(&path)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                    TypeRow {
                        id,
                        source: source.to_string(),
                        key: t.key.into(),
                        name: t.name.into(),
                        path: t.path.to_vec(),
                        seed: t.key.into(),
                    }
                }
            };
            out.push(r);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Every data type of a source that the catalog knows, by name.
    pub async fn types_of(&self, org_id: i64, source: &str) -> Result<Vec<TypeRow>> {
        let rows = sqlx::query(&format!("{SELECT} WHERE org_id = $1 AND source = $2 ORDER BY name, key"))
            .bind(org_id)
            .bind(source)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn type_by_id(&self, id: i64) -> Result<TypeRow> {
        let r = sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id).fetch_one(&self.pool).await?;
        Ok(row(&r))
    }
}
