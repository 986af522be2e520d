//! Sealed objects: large byte sequences (an archive's zip parts) kept in the blob store as
//! numbered chunks, each sealed alone with the org's key, so that a range of one is read by
//! opening only the chunks it spans. A chunk's associated data names its object and index,
//! so chunks cannot be swapped or moved between objects; the object's length is kept by the
//! caller (the catalog), so a lost last chunk is found. They live under the org's prefix,
//! so erasing the org removes them with its packs.

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use std::sync::Arc;
use zeroize::Zeroizing;

use super::store::Store;
use super::{DATA, Org, Vault};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 4 << 20;

const LINK_KEY: &str = "archive_link_key";

fn object_dir(org: &Org, name: &str) -> StorePath {
    StorePath::from(format!("{DATA}/{}/objects/{name}", org.store_id))
}

fn aad(org: &Org, name: &str, index: u64) -> Vec<u8> {
    format!("daybook object v1 {} {name} {index}", org.sid).into_bytes()
}

/// Reads and writes sealed objects; cloneable and owning what it needs, for a build's
/// writer thread and for downloads that outlive a call.
#[derive(Clone)]
pub struct Objects {
    store: Store,
}

impl Vault {
    pub fn objects(&self) -> Objects {
        Objects { store: self.store.clone() }
    }
}

impl Objects {
    /// Seals and writes chunk `index` of object `name` (durable when this returns).
    pub async fn put_object_chunk(&self, org: &Arc<Org>, name: &str, index: u64, plain: Vec<u8>) -> Result<()> {
        let (o, n) = (org.clone(), name.to_string());
        let sealed = tokio::task::spawn_blocking(move || o.keys.seal.seal(&aad(&o, &n, index), &plain)).await?;
        let path = object_dir(org, name).child(format!("{index:08}"));
        self.store.put_durable(&path, sealed.into()).await
    }

    /// Chunk `index` of object `name`, opened.
    pub async fn read_object_chunk(&self, org: &Arc<Org>, name: &str, index: u64) -> Result<Vec<u8>> {
        let path = object_dir(org, name).child(format!("{index:08}"));
        let sealed = self
            .store
            .get(&path)
            .await
            .with_context(|| format!("{name}: chunk {index} is missing from the store {}", self.store.shown))?
            .bytes()
            .await
            .with_context(|| format!("{name}: chunk {index} could not be read"))?;
        let (o, n) = (org.clone(), name.to_string());
        tokio::task::spawn_blocking(move || o.keys.seal.open(&aad(&o, &n, index), &sealed))
            .await?
            .map_err(|e| anyhow!("{name}: chunk {index} is damaged: {e}"))
    }

    /// Removes every object whose name starts with `prefix` (a folder of names); returns how
    /// many chunks went.
    pub async fn delete_objects(&self, org: &Org, prefix: &str) -> Result<u64> {
        let dir = object_dir(org, prefix);
        let paths: Vec<StorePath> = self.store.list(Some(&dir)).map_ok(|m| m.location).try_collect().await?;
        for p in &paths {
            match self.store.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {p} from {}", self.store.shown)),
            }
        }
        if let Some(d) = self.store.local_dir(&dir) {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(d)).await;
        }
        Ok(paths.len() as u64)
    }
}

impl Vault {
    /// The key that signs download links: random, made on first use, kept in the catalog
    /// sealed with the vault's master key.
    pub async fn link_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        const AAD: &[u8] = b"daybook archive link key v1";
        let fresh = super::crypto::random_bytes::<32>();
        let stored = self.catalog.meta_or_insert(LINK_KEY, &hex::encode(self.master.seal(AAD, fresh.as_ref()))).await?;
        let sealed = hex::decode(stored).context("catalog: the link key is damaged")?;
        let plain = Zeroizing::new(self.master.open(AAD, &sealed).map_err(|e| anyhow!("catalog: the link key: {e}"))?);
        let mut k = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            anyhow::bail!("catalog: the link key has {} bytes", plain.len());
        }
        k.copy_from_slice(&plain);
        Ok(k)
    }
}
