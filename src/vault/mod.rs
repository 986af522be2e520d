//! The vault: an encrypted blob store plus its catalog. It knows nothing of apps or
//! Google: it stores sealed blobs for orgs and answers where they are.
//!
//! Layers, each over the next: catalog (what is where) -> packer (blobs into packs) ->
//! sealer (zstd, then AES-256-GCM) -> raw store (a folder, or S3).

pub mod catalog;
pub mod check;
pub mod crypto;
pub mod erase;
pub mod log;
pub mod read;

/// Lease names: a source's backup holds its source's lease; erasing an org holds the org's,
/// and waits for no backup of it to be running.
pub mod lease {
    pub fn source(org: &str, source: &str) -> String {
        format!("source:{org}/{source}")
    }

    pub fn org(org: &str) -> String {
        format!("org:{org}")
    }
}
pub mod pack;
pub mod store;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use catalog::Catalog;
use crypto::{KeyFile, OrgKeys, SealKey};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::Config;

const CONFIG_OBJ: &str = "config";
const MASTER_KEY_OBJ: &str = "keys/master.json";
/// Packs live under data/<org store id>/<first two hex digits>/<name>.
const DATA: &str = "data";

#[derive(Serialize, Deserialize)]
struct StoreConfig {
    daybook_vault: u32,
    id: String,
    created_at: String,
}

/// The last chunks read, by (pack, offset): reading a record's versions or an archive
/// touches the same chunks in turn.
type ChunkCache = Vec<((String, u32), Arc<Vec<u8>>)>;

pub struct Org {
    pub id: i64,
    pub sid: String,
    pub store_id: String,
    pub keys: OrgKeys,
}

pub struct Vault {
    pub store: Arc<dyn ObjectStore>,
    pub store_display: String,
    local_root: Option<std::path::PathBuf>,
    pub catalog: Catalog,
    pub id: String,
    master: SealKey,
    orgs: Mutex<HashMap<String, Arc<Org>>>,
    blobs: BlobReader,
}

/// Reads blobs out of packs: one chunk decrypted serves every blob in it, and the last chunks
/// read are kept (a snapshot, an archive or a record's versions read the same ones in turn).
#[derive(Clone)]
pub(crate) struct BlobReader {
    store: Arc<dyn ObjectStore>,
    shown: Arc<str>,
    chunks: Arc<Mutex<ChunkCache>>,
}

impl BlobReader {
    async fn chunk(&self, org: &Org, loc: &catalog::BlobLoc) -> Result<Arc<Vec<u8>>> {
        let key = (loc.pack.clone(), loc.chunk_off);
        if let Some((_, c)) = self.chunks.lock().unwrap().iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        let range = loc.chunk_off as usize..(loc.chunk_off + loc.chunk_len) as usize;
        let sealed = self
            .store
            .get_range(&Vault::pack_path(org, &loc.pack), range)
            .await
            .with_context(|| format!("pack {} is missing or unreadable in {}", loc.pack, self.shown))?;
        // One chunk (about 128 KiB) decrypts in well under a millisecond: no thread hop.
        let plain = Arc::new(
            pack::open_chunk(&org.keys.seal, loc.chunk_off, &sealed)
                .with_context(|| format!("pack {} is damaged", loc.pack))?,
        );
        let mut cache = self.chunks.lock().unwrap();
        if cache.len() >= 16 {
            cache.remove(0);
        }
        cache.push((key, plain.clone()));
        Ok(plain)
    }

    pub(crate) async fn read_blob_at(&self, org: &Org, loc: &catalog::BlobLoc) -> Result<Vec<u8>> {
        let chunk = self.chunk(org, loc).await?;
        let data = chunk
            .get(loc.inner_off as usize..(loc.inner_off + loc.len) as usize)
            .ok_or_else(|| anyhow!("pack {}: blob lies outside its chunk", loc.pack))?;
        if org.keys.blob_id(data) != loc.id {
            bail!("pack {}: blob {} does not match its id", loc.pack, hex::encode(loc.id));
        }
        Ok(data.to_vec())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("wrong passphrase for the vault at {0} (DAYBOOK_PASSPHRASE)")]
    WrongPassphrase(String),
    #[error("no vault at {0}: run `daybook init` first")]
    NotInitialized(String),
}

/// The passphrase: DAYBOOK_PASSPHRASE, or asked on the terminal.
pub fn passphrase() -> Result<zeroize::Zeroizing<String>> {
    if let Ok(p) = std::env::var("DAYBOOK_PASSPHRASE") {
        if p.is_empty() {
            bail!("DAYBOOK_PASSPHRASE is set but empty");
        }
        return Ok(zeroize::Zeroizing::new(p));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(zeroize::Zeroizing::new(rpassword::prompt_password("vault passphrase: ")?));
    }
    bail!("no passphrase: set DAYBOOK_PASSPHRASE (or run on a terminal to be asked)")
}

async fn get_opt(store: &dyn ObjectStore, key: &str) -> Result<Option<Bytes>> {
    match store.get(&StorePath::from(key)).await {
        Ok(r) => Ok(Some(r.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Vault {
    pub async fn init(cfg: &Config, passphrase: &str) -> Result<Vault> {
        let store::Opened { store, shown, local_root } = store::open(&cfg.vault.store, &cfg.base)?;
        if get_opt(store.as_ref(), CONFIG_OBJ).await?.is_some() {
            bail!("a vault already exists at {shown}; use it, or choose another vault.store");
        }
        let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
        if let Some(id) = catalog.meta("vault_id").await? {
            bail!("catalog {} already belongs to vault {id}; choose another vault.catalog", catalog.display);
        }
        catalog.migrate().await?;
        let master = crypto::random_bytes::<32>();
        let kf = {
            // Argon2id takes 64 MiB and most of a second: not on the async workers.
            let (p, m) = (zeroize::Zeroizing::new(passphrase.to_string()), master.clone());
            tokio::task::spawn_blocking(move || KeyFile::create(&p, &m)).await??
        };
        let id = hex::encode(crypto::random_bytes::<16>().as_ref());
        store.put(&StorePath::from(MASTER_KEY_OBJ), serde_json::to_vec_pretty(&kf)?.into()).await?;
        let sc = StoreConfig { daybook_vault: 1, id: id.clone(), created_at: crate::util::now_rfc3339() };
        store.put(&StorePath::from(CONFIG_OBJ), serde_json::to_vec_pretty(&sc)?.into()).await?;
        catalog.set_meta("schema_version", &catalog::SCHEMA_VERSION.to_string()).await?;
        catalog.set_meta("vault_id", &id).await?;
        Ok(Vault::assemble(store, shown, local_root, catalog, id, SealKey::new(&master)))
    }

    pub async fn open(cfg: &Config, passphrase: &str) -> Result<Vault> {
        let store::Opened { store, shown, local_root } = store::open(&cfg.vault.store, &cfg.base)?;
        let sc: StoreConfig = match get_opt(store.as_ref(), CONFIG_OBJ).await? {
            Some(b) => serde_json::from_slice(&b).with_context(|| format!("vault config in {shown} is damaged"))?,
            None => return Err(VaultError::NotInitialized(shown).into()),
        };
        let kf: KeyFile = match get_opt(store.as_ref(), MASTER_KEY_OBJ).await? {
            Some(b) => serde_json::from_slice(&b).with_context(|| format!("{MASTER_KEY_OBJ} in {shown} is damaged"))?,
            None => bail!("the vault at {shown} has no {MASTER_KEY_OBJ}: its key is gone and its data cannot be read"),
        };
        let p = zeroize::Zeroizing::new(passphrase.to_string());
        let master = tokio::task::spawn_blocking(move || kf.unwrap(&p))
            .await??
            .ok_or_else(|| VaultError::WrongPassphrase(shown.clone()))?;
        let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await?;
        match catalog.meta("vault_id").await? {
            Some(id) if id == sc.id => {}
            Some(id) => {
                bail!("catalog {} belongs to vault {id}, but the store {shown} is vault {}", catalog.display, sc.id)
            }
            None => bail!(
                "catalog {} is empty but the store {shown} holds vault {}: wrong vault.catalog?",
                catalog.display,
                sc.id
            ),
        }
        catalog.migrate().await?;
        let vault = Vault::assemble(store, shown, local_root, catalog, sc.id, SealKey::new(&master));
        vault.seal_v1_log().await?;
        Ok(vault)
    }

    fn assemble(
        store: Arc<dyn ObjectStore>,
        store_display: String,
        local_root: Option<std::path::PathBuf>,
        catalog: Catalog,
        id: String,
        master: SealKey,
    ) -> Vault {
        let blobs = BlobReader { store: store.clone(), shown: store_display.as_str().into(), chunks: Arc::default() };
        Vault { store, store_display, local_root, catalog, id, master, orgs: Mutex::new(HashMap::new()), blobs }
    }

    /// The org's keys and ids, creating the org (and its keys) on first use.
    pub async fn org(&self, sid: &str, name: &str) -> Result<Arc<Org>> {
        if let Some(o) = self.existing_org(sid).await? {
            return Ok(o);
        }
        let material = OrgKeys::generate();
        let wrapped = OrgKeys::wrap(&self.master, sid, material.as_ref());
        let store_id = hex::encode(crypto::random_bytes::<8>().as_ref());
        sqlx::query("INSERT INTO orgs (sid, name, store_id, wrapped_key, created_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (sid) DO NOTHING")
            .bind(sid)
            .bind(name)
            .bind(&store_id)
            .bind(wrapped)
            .bind(crate::util::now_rfc3339())
            .execute(&self.catalog.pool)
            .await?;
        self.existing_org(sid).await?.ok_or_else(|| anyhow!("org {sid} could not be created"))
    }

    pub async fn existing_org(&self, sid: &str) -> Result<Option<Arc<Org>>> {
        if let Some(o) = self.orgs.lock().unwrap().get(sid) {
            return Ok(Some(o.clone()));
        }
        let row = sqlx::query("SELECT id, store_id, wrapped_key FROM orgs WHERE sid = $1")
            .bind(sid)
            .fetch_optional(&self.catalog.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let wrapped: Vec<u8> = row.get(2);
        let keys = OrgKeys::unwrap(&self.master, sid, &wrapped)
            .with_context(|| format!("org {sid}: its key does not open"))?;
        let org = Arc::new(Org { id: row.get(0), sid: sid.to_string(), store_id: row.get(1), keys });
        self.orgs.lock().unwrap().insert(sid.to_string(), org.clone());
        Ok(Some(org))
    }

    pub async fn org_by_id(&self, id: i64) -> Result<Arc<Org>> {
        let row = sqlx::query("SELECT sid FROM orgs WHERE id = $1").bind(id).fetch_one(&self.catalog.pool).await?;
        let sid: String = row.get(0);
        self.existing_org(&sid).await?.ok_or_else(|| anyhow!("org {sid} vanished"))
    }

    pub fn forget_org(&self, sid: &str) {
        self.orgs.lock().unwrap().remove(sid);
    }

    /// The folder behind a store path, when the store is a local folder.
    pub fn local_dir(&self, p: &StorePath) -> Option<std::path::PathBuf> {
        self.local_root.as_ref().map(|root| root.join(p.as_ref()))
    }

    /// Where an org's objects are, to remove them all.
    pub fn org_prefix(store_id: &str) -> StorePath {
        StorePath::from(format!("{DATA}/{store_id}"))
    }

    /// Every pack in the store, by name: its path and size.
    pub async fn stored_packs(&self) -> Result<HashMap<String, (StorePath, u64)>> {
        let mut out = HashMap::new();
        let mut list = self.store.list(Some(&StorePath::from(DATA)));
        while let Some(m) =
            list.try_next().await.map_err(|e| anyhow!("listing the store {}: {e}", self.store_display))?
        {
            out.insert(m.location.filename().unwrap_or_default().to_string(), (m.location.clone(), m.size as u64));
        }
        Ok(out)
    }

    /// Removes an org's packs that the catalog does not name and that were written before
    /// `before`: left by a backup that died before its commit, or by a data type that failed.
    /// Only safe while no other writer of the org is live and `before` is when that was
    /// established (a writer that starts later writes later packs).
    pub async fn remove_unreferenced_packs(&self, org: &Org, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let known = self.catalog.pack_names(org.id).await?;
        let mut removed = 0;
        let mut list = self.store.list(Some(&Self::org_prefix(&org.store_id)));
        let mut doomed = Vec::new();
        while let Some(m) =
            list.try_next().await.map_err(|e| anyhow!("listing the store {}: {e}", self.store_display))?
        {
            let name = m.location.filename().unwrap_or_default();
            if !known.contains(name) && m.last_modified < before {
                doomed.push(m.location.clone());
            }
        }
        drop(list);
        for path in doomed {
            self.store.delete(&path).await?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!("org {}: removed {removed} unreferenced packs left by an interrupted backup", org.sid);
        }
        Ok(removed)
    }

    pub fn pack_path(org: &Org, name: &str) -> StorePath {
        StorePath::from(format!("{DATA}/{}/{}/{}", org.store_id, &name[..2], name))
    }

    /// Writes a pack durably: the catalog may name it once this returns.
    pub async fn put_pack(&self, org: &Org, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = Self::pack_path(org, name);
        self.store
            .put(&path, bytes.into())
            .await
            .with_context(|| format!("cannot write pack {name} to {}", self.store_display))?;
        // The local store renames into place but does not fsync; after a power cut the
        // catalog must not name a pack the disk never got. (S3 acknowledges durably.)
        if let Some(file) = self.local_dir(&path) {
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                let mut dir = file.parent();
                for _ in 0..2 {
                    if let Some(d) = dir {
                        std::fs::File::open(d)?.sync_all()?;
                        dir = d.parent();
                    }
                }
                Ok(())
            })
            .await?
            .with_context(|| format!("cannot sync pack {name} to disk in {}", self.store_display))?;
        }
        Ok(())
    }

    /// What reads blobs, without borrowing the vault (for readers that outlive a call).
    pub(crate) fn reader_handle(&self) -> BlobReader {
        self.blobs.clone()
    }

    /// A blob's plaintext at a known place, verified against its id.
    pub async fn read_blob_at(&self, org: &Org, loc: &catalog::BlobLoc) -> Result<Vec<u8>> {
        self.blobs.read_blob_at(org, loc).await
    }

    /// One blob's plaintext, verified against its id.
    pub async fn read_blob(&self, org: &Org, id: &[u8]) -> Result<Vec<u8>> {
        let mut conn = self.catalog.pool.acquire().await?;
        let loc = catalog::blob_loc(&mut conn, org.id, id)
            .await?
            .ok_or_else(|| anyhow!("blob {} is not in the catalog", hex::encode(id)))?;
        drop(conn);
        self.blobs.read_blob_at(org, &loc).await
    }
}
