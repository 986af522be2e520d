//! `daybook export`: an org as it was at a time, written out as plain files, read through the
//! vault's read API: per data type a JSON-lines file of its live records (as the app gave
//! them) and a folder of the files they refer to. A disaster-recovery copy that needs no
//! daybook to read, and the side of the benchmark that restic's `restore` is compared to.

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

use crate::vault::Vault;
use crate::vault::read::{At, SnapshotInfo, TypeInfo};

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

/// Files copied at once: enough to keep both cores opening pieces while others write.
const FILES_AT_ONCE: usize = 4;
/// Live records of the data types exported at once: each holds its state while it streams,
/// and two states of 250,000 records stay within the memory a backup of them takes.
const RECORDS_AT_ONCE: u64 = 500_000;

/// What holding a data type's state costs, in records: a small one (the files' data type)
/// costs nothing, so it never waits for a large one.
fn weight(s: &SnapshotInfo) -> u64 {
    if s.live <= RECORDS_AT_ONCE / 100 { 0 } else { s.live }
}

pub async fn export_org(vault: &Vault, org: &str, at: At, to: &Path) -> Result<Exported> {
    // As many data types at a time as their states allow, the largest first: the chunks of
    // one open while another's files are written, and a data type of a few records (the
    // files) never waits for a slot while a large one holds it.
    let mut pending = Vec::new();
    for t in vault.types(Some(org)).await? {
        if let Some(snap) = vault.snapshot_at(t.id, at).await? {
            pending.push((t, snap));
        }
    }
    pending.sort_by_key(|(_, s)| std::cmp::Reverse(s.live));
    let mut running = futures::stream::FuturesUnordered::new();
    let (mut held, mut out) = (0u64, Exported::default());
    loop {
        while let Some(i) = pending.iter().position(|(_, s)| running.is_empty() || held + weight(s) <= RECORDS_AT_ONCE)
        {
            let (t, snap) = pending.remove(i);
            held += weight(&snap);
            running.push(async move { (weight(&snap), export_type(vault, &t, &snap, to).await) });
        }
        let Some((weighed, done)) = running.next().await else { break };
        held -= weighed;
        let d = done?;
        out.data_types += d.data_types;
        out.records += d.records;
        out.files += d.files;
        out.bytes += d.bytes;
    }
    Ok(out)
}

async fn export_type(vault: &Vault, t: &TypeInfo, snap: &SnapshotInfo, to: &Path) -> Result<Exported> {
    let mut out = Exported::default();
    let t0 = std::time::Instant::now();
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
        let mut w = std::fs::File::create(&path)?;
        let mut n = 0;
        while let Some(buf) = rx.blocking_recv() {
            n += buf.len() as u64;
            std::io::Write::write_all(&mut w, &buf)?;
        }
        Ok(n)
    });
    // Files are copied as the records naming them arrive, several at a time, while the
    // records' chunks go on opening: each piece opens on whichever core is free.
    let files_dir = dir.join("files");
    let (ftx, mut frx) = tokio::sync::mpsc::channel::<(String, std::path::PathBuf)>(64);
    let produce = async {
        let mut seen = HashSet::new();
        let mut names = HashSet::new();
        let mut records = 0;
        let mut stream = vault.snapshot_lines(t.id, snap.cycle);
        while let Some(l) = stream.next().await {
            let l = l?;
            records += l.records;
            for f in l.files {
                if !seen.insert(f.uid.clone()) {
                    continue;
                }
                // Names in the order records come: the same names every time.
                let mut name = safe_name(&f.name);
                if !names.insert(name.clone()) {
                    name = format!("{}-{name}", &f.uid[..8.min(f.uid.len())]);
                    names.insert(name.clone());
                }
                if seen.len() == 1 {
                    tokio::fs::create_dir_all(&files_dir)
                        .await
                        .with_context(|| format!("cannot create {}", files_dir.display()))?;
                }
                if ftx.send((f.uid, files_dir.join(&name))).await.is_err() {
                    break;
                }
            }
            if tx.send(l.text).await.is_err() {
                break;
            }
        }
        drop((tx, ftx));
        anyhow::Ok(records)
    };
    // It owns the receiver: if a copy fails, the producer's next send fails at once.
    let copy = async move {
        let pending = futures::stream::poll_fn(|cx| frx.poll_recv(cx));
        let mut copies = pending
            .map(|(uid, path)| async move {
                let (_, reader) = vault.open_file(&t.org, &uid).await?;
                // The reader yields whole pieces (1 MiB): one write each.
                let mut reader = tokio::io::BufReader::with_capacity(1 << 20, reader);
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let n = tokio::io::copy_buf(&mut reader, &mut file).await?;
                tokio::io::AsyncWriteExt::flush(&mut file).await?;
                anyhow::Ok(n)
            })
            .buffer_unordered(FILES_AT_ONCE);
        let (mut files, mut bytes) = (0u64, 0u64);
        while let Some(n) = copies.next().await {
            bytes += n?;
            files += 1;
        }
        anyhow::Ok((files, bytes))
    };
    let (records, copied) = tokio::join!(produce, copy);
    out.records += records?;
    let (files, file_bytes) = copied?;
    (out.files, out.bytes) = (files, file_bytes);
    out.bytes += writer.await?.with_context(|| format!("writing {}", lines.display()))?;
    out.data_types += 1;
    tracing::debug!(data_type = %t.name, "{} files written, done in {:?}", out.files, t0.elapsed());
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
