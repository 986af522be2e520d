//! The vault: an encrypted blob store plus its catalog. It knows nothing of apps or
//! Google: it stores sealed blobs for orgs and answers where they are.
//!
//! Layers, each over the next: catalog (what is where) -> state pages (a data type's
//! records, sealed) -> packer (blobs into packs) -> sealer (zstd, then AES-256-GCM) -> raw
//! store (a folder, or S3). Readers go through `read`, the backup engine writes through
//! `write`.

pub mod access;
pub mod catalog;
pub mod check;
pub mod crypto;
pub mod erase;
pub mod files;
pub mod joblog;
pub mod log;
mod migrate;
pub mod objects;
pub mod pack;
pub mod prune;
pub mod read;
pub mod restores;
pub mod state;
pub mod store;
pub mod types;
pub mod write;

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

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use catalog::Catalog;
use crypto::{KeyFile, OrgKeys, SealKey};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};
use state::{Loc, State};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use store::Store;

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

pub struct Org {
    pub id: i64,
    pub sid: String,
    pub store_id: String,
    pub keys: OrgKeys,
}

/// A blob's place and content id, to read it and check what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub loc: Loc,
    pub id: [u8; 16],
}

impl BlobRef {
    /// 36 bytes: pack id, chunk offset, offset, length, content id.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(36);
        v.extend_from_slice(&self.loc.pack.to_le_bytes());
        for n in [self.loc.chunk, self.loc.offset, self.loc.len] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(&self.id);
        v
    }

    pub fn decode(b: &[u8]) -> Result<BlobRef> {
        if b.len() != 36 {
            bail!("catalog: a page reference of {} bytes (36 expected) is damaged", b.len());
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(BlobRef {
            loc: Loc {
                pack: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                chunk: u32_at(8),
                offset: u32_at(12),
                len: u32_at(16),
            },
            id: b[20..36].try_into().expect("16 bytes"),
        })
    }
}

pub struct Vault {
    pub(crate) store: Store,
    pub store_display: String,
    pub(crate) catalog: Catalog,
    pub id: String,
    master: SealKey,
    orgs: Mutex<HashMap<String, Arc<Org>>>,
    blobs: BlobReader,
    /// Data types' states lately read or committed, with the chain of pages they stand on.
    states: Mutex<Vec<(StateKey, Arc<State>, write::Chain)>>,
    /// Each data type's deleted records, computed for its latest snapshot and the number of
    /// snapshots it had (forget changes when the deleted were last seen).
    deleted: Mutex<HashMap<i64, DeletedOfType>>,
}

/// A data type and the cycle of one of its snapshots.
type StateKey = (i64, i64);
/// A data type's deleted records, and the (latest cycle, snapshot count) they were read at.
type DeletedOfType = ((i64, usize), Arc<Vec<read::DeletedRecord>>);
/// The plaintext of the last chunks read is kept up to this size (4 chunks of records, 16
/// file pieces).
const CACHED_CHUNK_BYTES: usize = 16 << 20;
/// The last chunks read, with their pack and offset.
type ChunkCache = Arc<Mutex<Vec<((u64, u32), Arc<Vec<u8>>)>>>;

/// Where each pack is and how its chunks lie, by pack id.
#[derive(Clone)]
struct PackInfo {
    path: StorePath,
    chunks: Vec<(u32, u32)>,
}

/// Reads blobs out of packs: one chunk decrypted serves every blob in it, and the last chunks
/// read are kept (a snapshot, an archive or a record's versions read the same ones in turn).
/// Cloneable and owning what it needs, for readers that outlive a call (a download).
#[derive(Clone)]
pub(crate) struct BlobReader {
    store: Store,
    catalog: Catalog,
    packs: Arc<Mutex<HashMap<u64, PackInfo>>>,
    chunks: ChunkCache,
}

impl BlobReader {
    async fn pack(&self, org: &Org, pid: u64) -> Result<PackInfo> {
        if let Some(p) = self.packs.lock().unwrap().get(&pid) {
            return Ok(p.clone());
        }
        // Packs committed since the last look (or by another process): read the table again.
        let fresh = self.catalog.pack_records(Some(org.id)).await?;
        let mut packs = self.packs.lock().unwrap();
        for p in fresh {
            packs.insert(p.pid, PackInfo { path: Vault::pack_path(org, &p.name), chunks: p.chunks });
        }
        packs.get(&pid).cloned().ok_or_else(|| anyhow!("org {}: pack {pid:016x} is not in the catalog", org.sid))
    }

    /// A chunk as the store has it (sealed).
    pub(crate) async fn fetch_chunk(&self, org: &Org, pid: u64, chunk_off: u32) -> Result<Bytes> {
        let pack = self.pack(org, pid).await?;
        let len = pack
            .chunks
            .binary_search_by_key(&chunk_off, |(o, _)| *o)
            .map(|i| pack.chunks[i].1)
            .map_err(|_| anyhow!("pack {}: no chunk at offset {chunk_off}", pack.path))?;
        let range = chunk_off as usize..(chunk_off + len) as usize;
        self.store
            .get_range(&pack.path, range)
            .await
            .with_context(|| format!("pack {} is missing or unreadable in {}", pack.path, self.store.shown))
    }

    /// A chunk's plaintext.
    async fn chunk(&self, org: &Org, pid: u64, chunk_off: u32) -> Result<Arc<Vec<u8>>> {
        let key = (pid, chunk_off);
        if let Some((_, c)) = self.chunks.lock().unwrap().iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        let sealed = self.fetch_chunk(org, pid, chunk_off).await?;
        // A chunk of 4 MiB takes a few milliseconds to open: not on a worker that serves others.
        let seal = org.keys.seal.clone();
        let plain = tokio::task::spawn_blocking(move || pack::open_chunk(&seal, chunk_off, &sealed))
            .await?
            .with_context(|| format!("pack {pid:016x} is damaged"))?;
        let plain = Arc::new(plain);
        let mut cache = self.chunks.lock().unwrap();
        cache.push((key, plain.clone()));
        while cache.iter().map(|(_, c)| c.len()).sum::<usize>() > CACHED_CHUNK_BYTES && cache.len() > 1 {
            cache.remove(0);
        }
        Ok(plain)
    }

    /// A blob's plaintext, checked against its content id.
    pub(crate) async fn read(&self, org: &Org, r: &BlobRef) -> Result<Vec<u8>> {
        self.read_at(org, &r.loc, &r.id).await
    }

    /// A blob's plaintext, checked against its content id or the first bytes of it.
    pub(crate) async fn read_at(&self, org: &Org, loc: &Loc, check: &[u8]) -> Result<Vec<u8>> {
        let chunk = self.chunk(org, loc.pack, loc.chunk).await?;
        let data = chunk
            .get(loc.offset as usize..loc.offset as usize + loc.len as usize)
            .ok_or_else(|| anyhow!("pack {:016x}: a blob lies outside its chunk", loc.pack))?;
        if org.keys.blob_id(data)[..check.len()] != *check {
            bail!("pack {:016x}: a blob does not match its id {}", loc.pack, hex::encode(check));
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

async fn get_opt(store: &Store, key: &str) -> Result<Option<Bytes>> {
    match store.get(&StorePath::from(key)).await {
        Ok(r) => Ok(Some(r.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Vault {
    pub async fn init(cfg: &Config, passphrase: &str) -> Result<Vault> {
        let store = store::open(&cfg.vault.store, &cfg.base)?;
        if get_opt(&store, CONFIG_OBJ).await?.is_some() {
            bail!("a vault already exists at {}; use it, or choose another vault.store", store.shown);
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
        store.put_durable(&StorePath::from(MASTER_KEY_OBJ), serde_json::to_vec_pretty(&kf)?.into()).await?;
        let sc = StoreConfig { daybook_vault: 1, id: id.clone(), created_at: crate::util::now_rfc3339() };
        store.put_durable(&StorePath::from(CONFIG_OBJ), serde_json::to_vec_pretty(&sc)?.into()).await?;
        catalog.set_meta("schema_version", &catalog::SCHEMA_VERSION.to_string()).await?;
        catalog.set_meta("vault_id", &id).await?;
        Ok(Vault::assemble(store, catalog, id, SealKey::new(&master)))
    }

    pub async fn open(cfg: &Config, passphrase: &str) -> Result<Vault> {
        let store = store::open(&cfg.vault.store, &cfg.base)?;
        let shown = store.shown.clone();
        let sc: StoreConfig = match get_opt(&store, CONFIG_OBJ).await? {
            Some(b) => serde_json::from_slice(&b).with_context(|| format!("vault config in {shown} is damaged"))?,
            None => return Err(VaultError::NotInitialized(shown).into()),
        };
        let kf: KeyFile = match get_opt(&store, MASTER_KEY_OBJ).await? {
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
        let version = catalog.migrate().await?;
        let vault = Vault::assemble(store, catalog, sc.id, SealKey::new(&master));
        vault.seal_v1_log().await?;
        if version == 2 {
            vault.upgrade_v2().await?;
        }
        Ok(vault)
    }

    fn assemble(store: Store, catalog: Catalog, id: String, master: SealKey) -> Vault {
        let blobs = BlobReader {
            store: store.clone(),
            catalog: catalog.clone(),
            packs: Arc::default(),
            chunks: Arc::default(),
        };
        Vault {
            store_display: store.shown.clone(),
            store,
            catalog,
            id,
            master,
            orgs: Mutex::new(HashMap::new()),
            blobs,
            states: Mutex::new(Vec::new()),
            deleted: Mutex::new(HashMap::new()),
        }
    }

    /// The catalog's schema version (it is upgraded when the vault opens).
    pub async fn schema_version(&self) -> Result<Option<String>> {
        self.catalog.meta("schema_version").await
    }

    /// The org's keys and ids, creating the org (and its keys) on first use.
    pub async fn org(&self, sid: &str, name: &str) -> Result<Arc<Org>> {
        if let Some(o) = self.existing_org(sid).await? {
            return Ok(o);
        }
        let material = OrgKeys::generate();
        let wrapped = OrgKeys::wrap(&self.master, sid, material.as_ref());
        let store_id = hex::encode(crypto::random_bytes::<8>().as_ref());
        self.catalog.add_org(sid, name, &store_id, &wrapped).await?;
        self.existing_org(sid).await?.ok_or_else(|| anyhow!("org {sid} could not be created"))
    }

    pub async fn existing_org(&self, sid: &str) -> Result<Option<Arc<Org>>> {
        if let Some(o) = self.orgs.lock().unwrap().get(sid) {
            return Ok(Some(o.clone()));
        }
        let Some(row) = self.catalog.org_record(sid).await? else { return Ok(None) };
        let keys = OrgKeys::unwrap(&self.master, sid, &row.wrapped_key)
            .with_context(|| format!("org {sid}: its key does not open"))?;
        let org = Arc::new(Org { id: row.id, sid: sid.to_string(), store_id: row.store_id, keys });
        self.orgs.lock().unwrap().insert(sid.to_string(), org.clone());
        Ok(Some(org))
    }

    pub async fn org_by_id(&self, id: i64) -> Result<Arc<Org>> {
        let sid = self.catalog.org_sid(id).await?;
        self.existing_org(&sid).await?.ok_or_else(|| anyhow!("org {sid} vanished"))
    }

    pub fn forget_org(&self, sid: &str) {
        self.orgs.lock().unwrap().remove(sid);
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

    /// The store's own clock, read by writing a marker object under the org's prefix: pack
    /// ages are compared with it, not with this machine's clock, which may differ from the
    /// store's (S3) or from the other daemons' by minutes.
    pub async fn store_now(&self, org: &Org) -> Result<chrono::DateTime<chrono::Utc>> {
        let marker = Self::org_prefix(&org.store_id).child("clock");
        self.store
            .put(&marker, bytes::Bytes::new().into())
            .await
            .map_err(|e| anyhow!("writing {marker} to {}: {e}", self.store_display))?;
        let m =
            self.store.head(&marker).await.map_err(|e| anyhow!("reading {marker} from {}: {e}", self.store_display))?;
        Ok(m.last_modified)
    }

    /// Removes an org's packs that the catalog does not name and that were written before
    /// `before`: left by a backup that died before its commit, or by a data type that failed.
    /// Only safe while no other writer of the org is live and `before` is when that was
    /// established (a writer that starts later writes later packs).
    pub async fn remove_unreferenced_packs(&self, org: &Org, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let known = self.catalog.pack_names(org.id).await?;
        let mut doomed = Vec::new();
        let mut list = self.store.list(Some(&Self::org_prefix(&org.store_id)));
        while let Some(m) =
            list.try_next().await.map_err(|e| anyhow!("listing the store {}: {e}", self.store_display))?
        {
            let name = m.location.filename().unwrap_or_default();
            if is_pack_name(name) && !known.contains(name) && m.last_modified < before {
                doomed.push(m.location.clone());
            }
        }
        drop(list);
        for path in &doomed {
            self.store.delete(path).await?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                "org {}: removed {} unreferenced packs left by an interrupted backup",
                org.sid,
                doomed.len()
            );
        }
        Ok(doomed.len() as u64)
    }

    pub fn pack_path(org: &Org, name: &str) -> StorePath {
        StorePath::from(format!("{DATA}/{}/{}/{}", org.store_id, &name[..2], name))
    }

    /// Writes a pack durably: the catalog may name it once this returns.
    /// Stores a finished pack; its catalog row, for the transaction that names it.
    pub(crate) async fn put_pack(&self, org: &Org, cycle: i64, p: pack::FinishedPack) -> Result<catalog::PackRecord> {
        let size = p.bytes.len() as u64;
        self.store.put_durable(&Self::pack_path(org, &p.name), p.bytes.into()).await?;
        Ok(catalog::PackRecord { org_id: org.id, pid: p.pid, name: p.name, size, cycle, chunks: p.chunks })
    }

    /// What reads blobs, without borrowing the vault (for readers that outlive a call).
    pub(crate) fn reader_handle(&self) -> BlobReader {
        self.blobs.clone()
    }

    /// A blob's plaintext, checked against its content id.
    pub(crate) async fn read_blob(&self, org: &Org, r: &BlobRef) -> Result<Vec<u8>> {
        self.blobs.read(org, r).await
    }

    /// The content a state entry names (for a deletion, the last content before it).
    pub(crate) async fn entry_bytes(&self, org: &Org, e: &state::Entry) -> Result<Vec<u8>> {
        self.blobs.read_at(org, &e.loc, &e.check).await
    }
}

/// Packs are named by the 64 hex digits of their hash (other objects live beside them).
fn is_pack_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
