//! The raw blob store: where packs, the vault config and the wrapped master key live.
//! object_store gives the local folder (atomic writes by rename) and, later, S3.

use anyhow::{Context, Result, bail};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store kinds `vault.store` may name.
const SUPPORTED: &str = "a folder path (relative to the config, or absolute), or file:///absolute/path";

pub struct Opened {
    pub store: Arc<dyn ObjectStore>,
    /// Where it is, for messages.
    pub shown: String,
    /// The folder, for a local store: its writes need an fsync to be durable, and its empty
    /// folders are tidied by hand.
    pub local_root: Option<PathBuf>,
}

pub fn open(spec: &str, base: &Path) -> Result<Opened> {
    let path = match spec.split_once("://") {
        Some(("file", rest)) => {
            if !rest.starts_with('/') {
                bail!("vault.store {spec:?}: a file:// URL needs an absolute path (file:///srv/daybook)");
            }
            PathBuf::from(rest)
        }
        Some((scheme, _))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            bail!("vault.store {spec:?}: {scheme}:// stores are not supported by this daybook (supported: {SUPPORTED})")
        }
        _ => {
            let p = Path::new(spec);
            if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
        }
    };
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create blob store folder {}", path.display()))?;
    let path = path.canonicalize()?;
    let fs = LocalFileSystem::new_with_prefix(&path).with_context(|| format!("blob store {}", path.display()))?;
    Ok(Opened { store: Arc::new(fs), shown: path.display().to_string(), local_root: Some(path) })
}
