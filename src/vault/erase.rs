//! Erasing an org for good: its wrapped key and every catalog row first (one transaction:
//! from then on its packs cannot be decrypted by anyone), then its objects in the store.
//! Other orgs share no key, pack or blob with it, so they are untouched.

use anyhow::{Result, bail};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use sqlx::Row;

use super::Vault;

pub struct Erased {
    pub records: i64,
    pub objects: u64,
}

pub async fn erase_org(vault: &Vault, sid: &str) -> Result<Erased> {
    let lease = vault.catalog.acquire(&super::lease::org(sid), &format!("the erasure of org {sid}")).await?;
    let prefix = super::lease::source(sid, "");
    if let Some((name, holder)) = vault.catalog.live_leases(|n| n.starts_with(&prefix)).await?.pop() {
        let source = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
        lease.release().await?;
        return Err(super::catalog::LockError::Conflict {
            what: format!("erasing org {sid}"),
            other: format!("the backup of {sid}/{source}"),
            holder,
        }
        .into());
    }
    let r = erase_leased(vault, sid).await;
    lease.release().await?;
    r
}

async fn erase_leased(vault: &Vault, sid: &str) -> Result<Erased> {
    let mut tx = vault.catalog.begin().await?;
    if !vault.catalog.postgres {
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *tx).await?;
    }
    let Some(row) =
        sqlx::query("SELECT id, store_id FROM orgs WHERE sid = $1").bind(sid).fetch_optional(&mut *tx).await?
    else {
        bail!("no org {sid:?} in the vault");
    };
    let (org_id, store_id): (i64, String) = (row.get(0), row.get(1));
    let records: i64 =
        sqlx::query("SELECT COUNT(*) FROM records WHERE type_id IN (SELECT id FROM types WHERE org_id = $1)")
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
    const BY_TYPE: [&str; 6] = ["versions", "records", "snapshots", "type_state", "file_cache", "restores"];
    for table in BY_TYPE {
        sqlx::query(&format!("DELETE FROM {table} WHERE type_id IN (SELECT id FROM types WHERE org_id = $1)"))
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
    }
    for table in ["types", "files", "blobs", "packs"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1")).bind(org_id).execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM cycle_log WHERE org = $1").bind(sid).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM orgs WHERE id = $1").bind(org_id).execute(&mut *tx).await?;
    tx.commit().await?;
    vault.forget_org(sid);
    vault.catalog.scrub().await?;

    let prefix = Vault::org_prefix(&store_id);
    let paths: Vec<StorePath> = vault.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
    for p in &paths {
        vault.store.delete(p).await?;
    }
    // The local store leaves empty folders behind; they name nothing but are tidied.
    if let Some(dir) = vault.local_dir(&prefix) {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
    Ok(Erased { records, objects: paths.len() as u64 })
}
