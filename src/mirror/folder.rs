//! `kind = "folder"`: the mirror's tree as real files in a local folder (the embedded
//! default). Each file is written beside its place and renamed into it, so a reader sees
//! yesterday's file or today's, never half of one. Pointed at a folder that Drive for
//! Desktop syncs, it reaches Drive without any API.

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use super::{Counts, Job, MirrorTarget, OrgRef, TypeRef, layout};
use crate::config::MirrorConfig;
use crate::vault::Vault;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// The folder to write into (relative paths: to the config's folder).
    pub path: String,
}

pub struct Folder {
    root: PathBuf,
    counts: Counts,
}

pub fn build(m: &MirrorConfig) -> Result<Box<dyn MirrorTarget>> {
    let c: FolderConfig = super::parse_options(m)?;
    if c.path.trim().is_empty() {
        return Err(super::config_error(m, "path must name a folder"));
    }
    Ok(Box::new(Folder { root: m.resolve(&c.path), counts: Counts::default() }))
}

/// The deleted records' and the About tab's files beside a data type's CSV.
pub fn deleted_name(name: &str) -> String {
    format!("{name} (deleted).csv")
}

pub fn about_name(name: &str) -> String {
    format!("{name} (about).txt")
}

impl Folder {
    fn dir(&self, p: &layout::Place) -> PathBuf {
        p.dirs.iter().fold(self.root.clone(), |d, s| d.join(s))
    }
}

/// Writes `bytes` to `path` by way of a temporary file beside it.
async fn put(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_beside(path);
    tokio::fs::write(&tmp, bytes).await.with_context(|| format!("cannot write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("cannot write {}", path.display()))
}

fn tmp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".daybook-tmp-{name}"))
}

#[async_trait]
impl MirrorTarget for Folder {
    async fn begin(&mut self, _org: &OrgRef) -> Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .with_context(|| format!("cannot create the mirror folder {}", self.root.display()))
    }

    async fn intact(&mut self, ty: &TypeRef) -> Result<bool> {
        let p = ty.was.as_ref().unwrap_or(&ty.place);
        Ok(tokio::fs::try_exists(self.dir(p).join(p.csv_name())).await.unwrap_or(false))
    }

    async fn write(&mut self, vault: &Vault, job: &Job) -> Result<()> {
        let dir = self.dir(&job.ty.place);
        if let Some(was) = &job.ty.was {
            // A renamed board or table: its folder is renamed, not made anew, when nothing
            // is at the new name yet (the data types beside it come along).
            // The highest folder whose name changed is the one renamed.
            let new = &job.ty.place.dirs;
            if let Some(i) = (0..was.dirs.len().min(new.len())).find(|&i| was.dirs[i] != new[i]) {
                let at = |d: &[String]| d.iter().fold(self.root.clone(), |p, s| p.join(s));
                let (old, to) = (at(&was.dirs[..=i]), at(&new[..=i]));
                if tokio::fs::try_exists(&old).await? && !tokio::fs::try_exists(&to).await? {
                    tokio::fs::rename(&old, &to).await.with_context(|| format!("cannot rename {}", old.display()))?;
                }
            }
            if was.name != job.ty.place.name {
                for (a, b) in [
                    (was.csv_name(), job.ty.place.csv_name()),
                    (deleted_name(&was.name), deleted_name(&job.ty.place.name)),
                    (about_name(&was.name), about_name(&job.ty.place.name)),
                ] {
                    let _ = tokio::fs::rename(dir.join(a), dir.join(b)).await;
                }
            }
        }
        tokio::fs::create_dir_all(&dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
        let name = &job.ty.place.name;
        let csv = dir.join(job.ty.place.csv_name());
        let tmp = tmp_beside(&csv);
        tokio::fs::copy(&job.csv, &tmp).await.with_context(|| format!("cannot write {}", tmp.display()))?;
        tokio::fs::rename(&tmp, &csv).await.with_context(|| format!("cannot write {}", csv.display()))?;
        // A CSV is written whole: every cell of it counts.
        self.counts.requests += 1;
        self.counts.write_requests += 1;
        self.counts.cells += (job.csv_rows + 1) * job.header.len() as u64;

        let mut deleted = layout::CsvOut::new(Vec::new(), &["id".into(), "last content".into(), "deleted at".into()])?;
        for d in &job.deleted {
            deleted.plain(d)?;
        }
        put(&dir.join(deleted_name(name)), &deleted.finish()?).await?;
        let about: String = job.about.iter().map(|r| format!("{}\n", r.join(": "))).collect();
        put(&dir.join(about_name(name)), about.as_bytes()).await?;

        let files = dir.join("files");
        for g in &job.gone_files {
            let _ = tokio::fs::remove_file(files.join(&g.name)).await;
        }
        if !job.files.is_empty() {
            tokio::fs::create_dir_all(&files).await?;
        }
        for f in &job.files {
            let path = files.join(&f.name);
            // The catalog named this file before it was written: one already there at its
            // size is it.
            if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() == f.size) {
                continue;
            }
            let tmp = tmp_beside(&path);
            let (size, mut r) = vault.open_file(&job.org.sid, &f.uid).await?;
            let mut w =
                tokio::fs::File::create(&tmp).await.with_context(|| format!("cannot write {}", tmp.display()))?;
            let n = tokio::io::copy(&mut r, &mut w).await.with_context(|| format!("copying {}", f.name))?;
            if n != size {
                let _ = tokio::fs::remove_file(&tmp).await;
                anyhow::bail!("file {} read {n} bytes of {size} from the vault", f.name);
            }
            w.flush().await?;
            w.sync_all().await?;
            drop(w);
            tokio::fs::rename(&tmp, &path).await.with_context(|| format!("cannot write {}", path.display()))?;
            self.counts.requests += 1;
            self.counts.write_requests += 1;
            crate::fault::point("mirror-file-written");
        }
        Ok(())
    }

    fn counts(&self) -> Counts {
        self.counts
    }
}
