//! The raw blob store: where packs, the vault config and the wrapped master key live.
//! object_store gives the local folder (atomic writes by rename) and S3 (or any store that
//! speaks its API). Each kind knows what makes its writes durable: a local folder needs an
//! fsync, S3 acknowledges durably.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store kinds `vault.store` may name.
const SUPPORTED: &str =
    "a folder path (relative to the config, or absolute), file:///absolute/path, or s3://bucket/prefix";

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Where it is, for messages.
    pub shown: String,
    /// The folder, for a local store.
    local_root: Option<PathBuf>,
}

impl std::ops::Deref for Store {
    type Target = dyn ObjectStore;
    fn deref(&self) -> &Self::Target {
        self.inner.as_ref()
    }
}

pub fn open(spec: &str, base: &Path) -> Result<Store> {
    let path = match spec.split_once("://") {
        Some(("s3", rest)) => return open_s3(spec, rest),
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
    Ok(Store { inner: Arc::new(fs), shown: path.display().to_string(), local_root: Some(path) })
}

/// `s3://bucket/prefix`: the endpoint, region and credentials come from the environment as
/// for AWS's own tools (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `AWS_ALLOW_HTTP=true` for a plain-HTTP
/// endpoint such as a local S3-compatible server), so no key sits in the config file.
fn open_s3(spec: &str, rest: &str) -> Result<Store> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    if bucket.is_empty() {
        bail!("vault.store {spec:?}: name the bucket (s3://bucket or s3://bucket/prefix)");
    }
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("vault.store {spec:?}: cannot set up S3 (set AWS_REGION, or AWS_ENDPOINT_URL for another S3-compatible store)"))?;
    let inner: Arc<dyn ObjectStore> =
        if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, StorePath::from(prefix))) };
    Ok(Store { inner, shown: format!("s3://{bucket}/{prefix}"), local_root: None })
}

impl Store {
    /// The folder an object path is in, for a local store (to tidy empty folders).
    pub fn local_dir(&self, p: &StorePath) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| root.join(p.as_ref()))
    }

    /// Writes an object so that it survives a power cut once this returns: the catalog may
    /// then name it.
    pub async fn put_durable(&self, path: &StorePath, bytes: Bytes) -> Result<()> {
        self.inner.put(path, bytes.into()).await.with_context(|| format!("cannot write {path} to {}", self.shown))?;
        // The local store renames into place but does not fsync the file or its folders.
        if let Some(file) = self.local_dir(path) {
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                let mut dir = file.parent();
                for _ in 0..3 {
                    if let Some(d) = dir {
                        std::fs::File::open(d)?.sync_all()?;
                        dir = d.parent();
                    }
                }
                Ok(())
            })
            .await?
            .with_context(|| format!("cannot sync {path} to disk in {}", self.shown))?;
        }
        Ok(())
    }
}
