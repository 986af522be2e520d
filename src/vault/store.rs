//! The raw blob store: where packs, the vault config and the wrapped master key live.
//! object_store gives the local folder (atomic writes by rename) and, later, S3.

use anyhow::{Context, Result};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::path::Path;
use std::sync::Arc;

pub fn open(spec: &str, base: &Path) -> Result<(Arc<dyn ObjectStore>, String)> {
    let p = Path::new(spec);
    let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    std::fs::create_dir_all(&p).with_context(|| format!("cannot create blob store folder {}", p.display()))?;
    let p = p.canonicalize()?;
    let fs = LocalFileSystem::new_with_prefix(&p).with_context(|| format!("blob store {}", p.display()))?;
    Ok((Arc::new(fs), p.display().to_string()))
}
