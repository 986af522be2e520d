//! Erasing an org for good: its wrapped key and every catalog row first (one transaction:
//! from then on its packs cannot be decrypted by anyone), then its objects in the store.
//! Other orgs share no key, pack or blob with it, so they are untouched.

use anyhow::{Result, bail};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;

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
    let mut records = 0;
    for t in vault.types(Some(sid)).await? {
        records += vault.state_at(t.id, None).await?.0.entries.len() as i64;
    }
    let Some(store_id) = vault.catalog.erase_org_rows(sid).await? else {
        bail!("no org {sid:?} in the vault");
    };
    vault.forget_org(sid);
    vault.catalog.scrub().await?;

    let prefix = Vault::org_prefix(&store_id);
    let paths: Vec<StorePath> = vault.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
    for p in &paths {
        vault.store.delete(p).await?;
    }
    // The local store leaves empty folders behind; they name nothing but are tidied.
    if let Some(dir) = vault.store.local_dir(&prefix) {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
    Ok(Erased { records, objects: paths.len() as u64 })
}
