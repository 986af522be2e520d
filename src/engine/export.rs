//! `daybook export`: an org as it was at a time, written out as plain files, read through the
//! vault's read API: per data type a JSON-lines file of its live records (as the app gave
//! them) and a folder of the files they refer to. A disaster-recovery copy that needs no
//! daybook to read, and the side of the benchmark that restic's `restore` is compared to.

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::vault::Vault;
use crate::vault::read::{At, StoredFile, TypeInfo};

#[derive(Debug, Default, Serialize)]
pub struct Exported {
    pub data_types: u64,
    pub records: u64,
    pub files: u64,
    pub bytes: u64,
}

/// A name from an app made safe as one path component: nothing that leaves the folder, no
/// control characters, not empty.
pub fn safe_name(name: &str) -> String {
    let s: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let s = s.trim().to_string();
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

pub async fn export_org(vault: &Vault, org: &str, at: At, to: &Path) -> Result<Exported> {
    // Two data types at a time, one per core.
    let mut jobs = futures::stream::iter(vault.types(Some(org)).await?)
        .map(|t| async move { export_type(vault, &t, at, to).await })
        .buffer_unordered(2);
    let mut out = Exported::default();
    while let Some(done) = jobs.next().await {
        let d = done?;
        out.data_types += d.data_types;
        out.records += d.records;
        out.files += d.files;
        out.bytes += d.bytes;
    }
    Ok(out)
}

async fn export_type(vault: &Vault, t: &TypeInfo, at: At, to: &Path) -> Result<Exported> {
    let mut out = Exported::default();
    let Some(snap) = vault.snapshot_at(t.id, at).await? else { return Ok(out) };
    let mut dir = to.join(safe_name(&t.org)).join(safe_name(&t.source));
    for part in t.name.split('/') {
        dir.push(safe_name(part));
    }
    tokio::fs::create_dir_all(&dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
    let lines = dir.join("records.jsonl");
    // Lines go to a writer thread: the stream keeps both cores busy opening chunks.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let path = lines.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut n = 0;
        while let Some(buf) = rx.blocking_recv() {
            n += buf.len() as u64;
            std::io::Write::write_all(&mut w, &buf)?;
        }
        std::io::Write::flush(&mut w)?;
        Ok(n)
    });
    let mut files: Vec<StoredFile> = Vec::new();
    let mut stream = vault.records_at_raw(t.id, snap.cycle);
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some(r) = stream.next().await {
        let r = r?;
        buf.extend_from_slice(r.data.as_bytes());
        buf.push(b'\n');
        out.records += 1;
        files.extend(r.files);
        if buf.len() >= 1 << 20 && tx.send(std::mem::replace(&mut buf, Vec::with_capacity(1 << 20))).await.is_err() {
            break;
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(buf).await;
    }
    drop(tx);
    out.bytes += writer.await?.with_context(|| format!("writing {}", lines.display()))?;
    out.data_types += 1;
    let mut seen = HashSet::new();
    let mut names = HashSet::new();
    for f in files {
        if !seen.insert(f.uid.clone()) {
            continue;
        }
        let mut name = safe_name(&f.name);
        if !names.insert(name.clone()) {
            name = format!("{}-{name}", &f.uid[..8.min(f.uid.len())]);
            names.insert(name.clone());
        }
        let path: PathBuf = dir.join("files").join(&name);
        tokio::fs::create_dir_all(dir.join("files")).await?;
        let (_, reader) = vault.open_file(&t.org, &f.uid).await?;
        // The reader yields whole pieces (1 MiB): one write each.
        let mut reader = tokio::io::BufReader::with_capacity(1 << 20, reader);
        let mut file = tokio::fs::File::create(&path).await?;
        out.bytes += tokio::io::copy_buf(&mut reader, &mut file).await?;
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        out.files += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_stay_in_their_folder() {
        assert_eq!(super::safe_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(super::safe_name(".."), "_");
        assert_eq!(super::safe_name("a\u{0}b\nc"), "a_b_c");
        assert_eq!(super::safe_name("Roadmap"), "Roadmap");
    }
}
