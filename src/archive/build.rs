//! The build: an org's versions and files, read through the vault's read API, written as zip
//! parts into temporary files (seekable, so sizes and CRCs go into the local headers and no
//! data descriptors are needed), each part sealed into the blob store in chunks as soon as it
//! is complete and its temporary file removed.
//!
//! Versions are compressed in batches on the blocking threads (two at a time, one per core)
//! and added to the zip as prepared entries; files stream through in 1 MiB pieces. A writer
//! thread owns the zips. Part 1 stays open to the end: it receives `manifest.json` and
//! `index.csv`, which list every part's entries.

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufWriter, Read, Seek, Write};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use zip::write::{PreparedZipFile, SimpleFileOptions};
use zip::{CompressionMethod, ZipWriter};

use super::names::Namer;
use super::quote::precompressed;
use crate::vault::catalog::PartRow;
use crate::vault::objects::{CHUNK, Objects};
use crate::vault::read::{At, RawRecordVersion, StoredFile, TypeInfo};
use crate::vault::{Org, Vault};

/// Versions compressed together on one blocking thread.
const BATCH: usize = 512;
/// Entries at or past this size get zip64 fields (the 32-bit fields end at 4 GiB).
const LARGE: u64 = 0xF000_0000;

/// What a build needs besides the vault.
pub struct Plan {
    pub archive_id: i64,
    pub at: At,
    pub history: bool,
    pub windows_safe: bool,
    pub part_bytes: u64,
    pub temp_dir: Option<std::path::PathBuf>,
    /// The manifest's header (name, description, dates...).
    pub header: serde_json::Value,
    /// Download file names, by part number (from 1).
    pub part_name: Arc<dyn Fn(i64, i64) -> String + Send + Sync>,
    pub progress: indicatif::ProgressBar,
}

/// A finished build.
#[derive(Debug, Default)]
pub struct Output {
    pub at_cycle: Option<i64>,
    pub versions: u64,
    pub files: u64,
    pub content_bytes: u64,
    pub parts: Vec<PartRow>,
}

/// One line of the manifest and one row of the index.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    pub path: String,
    pub kind: &'static str,
    pub part: i64,
    pub record: String,
    pub source_id: String,
    pub data_type: String,
    pub type_key: String,
    pub source: String,
    pub version: u32,
    pub captured_at: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// For a version: the UIDs of the files it refers to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// The chunks of object `name` for part `part` of archive `id`.
pub fn object_name(archive_id: i64, part: i64) -> String {
    format!("{}/{part}", object_prefix(archive_id))
}

pub fn object_prefix(archive_id: i64) -> String {
    format!("archive-{archive_id}")
}

enum Item {
    Versions(Vec<(PreparedZipFile, ManifestEntry)>),
    FileStart { name: String, size: u64, entry: Box<ManifestEntry> },
    FileChunk(bytes::Bytes),
    FileEnd,
}

/// The file a version refers to, and that version (for the manifest).
struct FileRef {
    file: StoredFile,
    record: String,
    source_id: String,
    version: u32,
    captured_at: chrono::DateTime<chrono::Utc>,
    ty: Arc<TypeInfo>,
}

fn zip_time(t: chrono::DateTime<chrono::Utc>) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default()
}

fn options(method: CompressionMethod, size: u64, at: chrono::DateTime<chrono::Utc>) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(if method == CompressionMethod::Stored { None } else { Some(6) })
        .large_file(size >= LARGE)
        .unix_permissions(0o644)
        .last_modified_time(zip_time(at))
}

fn prepare(org: &str, ty: &TypeInfo, batch: Vec<RawRecordVersion>) -> Result<Vec<(PreparedZipFile, ManifestEntry)>> {
    let namer = Namer::new(false);
    batch
        .into_iter()
        .map(|r| {
            let path = format!("{org}/versions/{}", namer.version(&r.sid, r.version));
            let data = r.data.as_bytes();
            let entry = ManifestEntry {
                path: path.clone(),
                kind: "version",
                part: 0,
                record: r.sid.clone(),
                source_id: r.source_id.clone(),
                data_type: ty.name.clone(),
                type_key: ty.key.clone(),
                source: ty.source.clone(),
                version: r.version,
                captured_at: r.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
                uid: None,
                file_name: None,
                files: r.files.iter().map(|f| f.uid.clone()).collect(),
            };
            let prepared = PreparedZipFile::from_data(
                &path,
                options(CompressionMethod::Deflated, data.len() as u64, r.captured_at),
                data,
            )
            .with_context(|| format!("compressing {path}"))?;
            Ok((prepared, entry))
        })
        .collect()
}

/// Builds the archive; each part is in the store (and in `out.parts`) when this returns Ok.
/// On error, parts already sealed stay in the store: the caller removes the archive's objects.
pub async fn build(vault: &Vault, org: &Arc<Org>, plan: &Plan) -> Result<Output> {
    let (tx, rx) = mpsc::channel::<Item>(4);
    let mut writer = Writer {
        org: org.clone(),
        objects: vault.objects(),
        runtime: tokio::runtime::Handle::current(),
        archive_id: plan.archive_id,
        part_bytes: plan.part_bytes,
        temp_dir: plan.temp_dir.clone(),
        header: plan.header.clone(),
        part_name: plan.part_name.clone(),
        progress: plan.progress.clone(),
        first: None,
        current: None,
        sealed: Vec::new(),
        sealed_entries: Vec::new(),
        manifest: None,
        index: None,
        entries: 0,
    };
    let writing = tokio::task::spawn_blocking(move || {
        let r = writer.run(rx);
        (writer.sealed, r)
    });
    let fed = feed(vault, org, plan, &tx).await;
    drop(tx);
    let (sealed, written) = writing.await?;
    let mut out = match (fed, written) {
        // The writer's error explains a feed that stopped because the writer went.
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(())) => return Err(e),
        (Ok(out), Ok(())) => out,
    };
    out.parts = sealed;
    out.parts.sort_by_key(|p| p.part);
    Ok(out)
}

async fn feed(vault: &Vault, org: &Arc<Org>, plan: &Plan, tx: &mpsc::Sender<Item>) -> Result<Output> {
    let gone = || anyhow!("the archive writer stopped");
    let mut out = Output::default();
    let mut files: Vec<FileRef> = Vec::new();
    let mut seen = HashSet::new();
    for t in vault.types(Some(&org.sid)).await? {
        let Some(snap) = vault.snapshot_at(t.id, plan.at).await? else { continue };
        out.at_cycle = Some(out.at_cycle.unwrap_or(0).max(snap.cycle.0));
        let ty = Arc::new(t);
        let stream = if plan.history {
            vault.versions_until_raw(ty.id, snap.cycle)
        } else {
            vault.records_at_raw(ty.id, snap.cycle)
        };
        let mut batches = stream
            .chunks(BATCH)
            .map(|batch| {
                let (ty, sid) = (ty.clone(), org.sid.clone());
                async move {
                    let batch: Vec<RawRecordVersion> = batch.into_iter().collect::<Result<_>>()?;
                    let refs: Vec<FileRef> = batch
                        .iter()
                        .flat_map(|r| {
                            r.files.iter().map(|f| FileRef {
                                file: f.clone(),
                                record: r.sid.clone(),
                                source_id: r.source_id.clone(),
                                version: r.version,
                                captured_at: r.captured_at,
                                ty: ty.clone(),
                            })
                        })
                        .collect();
                    let ty2 = ty.clone();
                    let prepared = tokio::task::spawn_blocking(move || prepare(&sid, &ty2, batch)).await??;
                    anyhow::Ok((prepared, refs))
                }
            })
            .buffered(2);
        while let Some(b) = batches.next().await {
            let (prepared, refs) = b.with_context(|| format!("reading {}", ty.full_name()))?;
            out.versions += prepared.len() as u64;
            out.content_bytes += prepared.iter().map(|(_, e)| e.size).sum::<u64>();
            for r in refs {
                if seen.insert(r.file.uid.clone()) {
                    files.push(r);
                }
            }
            tx.send(Item::Versions(prepared)).await.map_err(|_| gone())?;
        }
    }
    let mut namer = Namer::new(plan.windows_safe);
    for f in files {
        let name = format!("{}/{}", org.sid, namer.file(&f.file.uid, &f.file.name));
        let missing = |e: anyhow::Error| {
            anyhow!(
                "file {} ({:?}) of record {} in {} is missing from the vault: {e:#}",
                f.file.uid,
                f.file.name,
                f.record,
                f.ty.full_name()
            )
        };
        let (size, mut reader) = vault.open_file(&org.sid, &f.file.uid).await.map_err(missing)?;
        let entry = ManifestEntry {
            path: name.clone(),
            kind: "file",
            part: 0,
            record: f.record.clone(),
            source_id: f.source_id.clone(),
            data_type: f.ty.name.clone(),
            type_key: f.ty.key.clone(),
            source: f.ty.source.clone(),
            version: f.version,
            captured_at: f.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            size,
            sha256: String::new(),
            uid: Some(f.file.uid.clone()),
            file_name: Some(f.file.name.clone()),
            files: Vec::new(),
        };
        tx.send(Item::FileStart { name, size, entry: Box::new(entry) }).await.map_err(|_| gone())?;
        let mut left = size;
        while left > 0 {
            let mut buf = vec![0u8; (1 << 20).min(left) as usize];
            let n = reader.read(&mut buf).await.map_err(|e| missing(e.into()))?;
            if n == 0 {
                return Err(missing(anyhow!("it ends {left} bytes short of its {size} bytes")));
            }
            buf.truncate(n);
            left -= n as u64;
            tx.send(Item::FileChunk(buf.into())).await.map_err(|_| gone())?;
        }
        tx.send(Item::FileEnd).await.map_err(|_| gone())?;
        out.files += 1;
        out.content_bytes += size;
    }
    Ok(out)
}

/// A zip part being written into a temporary file.
struct Part {
    number: i64,
    zip: ZipWriter<std::fs::File>,
    /// Content bytes in it (what `part_bytes` bounds).
    content: u64,
    entries: u64,
}

struct Writer {
    org: Arc<Org>,
    objects: Objects,
    runtime: tokio::runtime::Handle,
    archive_id: i64,
    part_bytes: u64,
    temp_dir: Option<std::path::PathBuf>,
    header: serde_json::Value,
    part_name: Arc<dyn Fn(i64, i64) -> String + Send + Sync>,
    progress: indicatif::ProgressBar,
    first: Option<Part>,
    /// The part being filled, when it is not the first.
    current: Option<Part>,
    sealed: Vec<PartRow>,
    /// Parts sealed before the end, and their entries.
    sealed_entries: Vec<(i64, u64)>,
    /// Manifest lines (JSON) and index rows of every entry so far, in temporary files.
    manifest: Option<BufWriter<std::fs::File>>,
    index: Option<csv::Writer<std::fs::File>>,
    entries: u64,
}

impl Writer {
    fn temp(&self) -> Result<std::fs::File> {
        // Unlinked from the start: nothing is left behind whatever stops the process.
        let f = match &self.temp_dir {
            Some(d) => tempfile::tempfile_in(d),
            None => tempfile::tempfile(),
        };
        f.with_context(|| {
            format!(
                "cannot create a temporary file in {} (archive.temp_dir)",
                self.temp_dir.as_deref().unwrap_or(&std::env::temp_dir()).display()
            )
        })
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Item>) -> Result<()> {
        self.manifest = Some(BufWriter::with_capacity(1 << 16, self.temp()?));
        let mut index = csv::Writer::from_writer(self.temp()?);
        index.write_record([
            "path",
            "kind",
            "part",
            "record",
            "source_id",
            "data_type",
            "source",
            "version",
            "captured_at",
            "size",
            "sha256",
            "file_uid",
            "file_name",
            "files",
        ])?;
        self.index = Some(index);
        self.first = Some(self.new_part(1)?);
        let mut file: Option<(ManifestEntry, Sha256, u64)> = None;
        while let Some(item) = rx.blocking_recv() {
            match item {
                Item::Versions(v) => {
                    for (prepared, mut entry) in v {
                        let part = self.room_for(entry.size)?;
                        entry.part = part.number;
                        part.content += entry.size;
                        part.entries += 1;
                        part.zip.add_prepared_file(prepared).with_context(|| format!("writing {}", entry.path))?;
                        self.record(&entry)?;
                    }
                }
                Item::FileStart { name, size, entry } => {
                    let method =
                        if precompressed(&name) { CompressionMethod::Stored } else { CompressionMethod::Deflated };
                    let at = chrono::DateTime::parse_from_rfc3339(&entry.captured_at)
                        .map(|t| t.to_utc())
                        .unwrap_or_default();
                    let part = self.room_for(size)?;
                    part.zip
                        .start_file(name.as_str(), options(method, size, at))
                        .with_context(|| format!("writing {name}"))?;
                    file = Some((*entry, Sha256::new(), 0));
                }
                Item::FileChunk(b) => {
                    let (entry, hash, n) = file.as_mut().ok_or_else(|| anyhow!("a file's bytes before its start"))?;
                    hash.update(&b);
                    *n += b.len() as u64;
                    let part = self.current.as_mut().or(self.first.as_mut()).expect("a part is open");
                    part.zip.write_all(&b).with_context(|| format!("writing {}", entry.path))?;
                }
                Item::FileEnd => {
                    let (mut entry, hash, n) = file.take().ok_or_else(|| anyhow!("a file's end before its start"))?;
                    if n != entry.size {
                        bail!("{}: {n} bytes read of {}", entry.path, entry.size);
                    }
                    entry.sha256 = hex::encode(hash.finalize());
                    let part = self.current.as_mut().or(self.first.as_mut()).expect("a part is open");
                    entry.part = part.number;
                    part.content += entry.size;
                    part.entries += 1;
                    self.record(&entry)?;
                }
            }
        }
        if file.is_some() {
            // The feed stopped mid-file: its error is the build's.
            return Ok(());
        }
        self.finish()
    }

    fn new_part(&self, number: i64) -> Result<Part> {
        Ok(Part { number, zip: ZipWriter::new(self.temp()?), content: 0, entries: 0 })
    }

    /// The part an entry of `size` goes into: a new one when the current one would pass
    /// `part_bytes` (an entry larger than that has a part of its own).
    fn room_for(&mut self, size: u64) -> Result<&mut Part> {
        let full = {
            let p = self.current.as_ref().or(self.first.as_ref()).expect("a part is open");
            p.entries > 0 && p.content + size > self.part_bytes
        };
        if full {
            let next = self.current.as_ref().or(self.first.as_ref()).map_or(1, |p| p.number) + 1;
            let fresh = self.new_part(next)?;
            if let Some(done) = self.current.replace(fresh) {
                self.seal(done)?;
            }
        }
        Ok(self.current.as_mut().or(self.first.as_mut()).expect("a part is open"))
    }

    fn record(&mut self, e: &ManifestEntry) -> Result<()> {
        let m = self.manifest.as_mut().expect("open");
        if self.entries > 0 {
            m.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut *m, e)?;
        self.entries += 1;
        self.index.as_mut().expect("open").write_record([
            e.path.as_str(),
            e.kind,
            &e.part.to_string(),
            &e.record,
            &e.source_id,
            &e.data_type,
            &e.source,
            &e.version.to_string(),
            &e.captured_at,
            &e.size.to_string(),
            &e.sha256,
            e.uid.as_deref().unwrap_or(""),
            e.file_name.as_deref().unwrap_or(""),
            &e.files.join(" "),
        ])?;
        self.progress.inc(1);
        Ok(())
    }

    /// Writes the manifest and index into part 1 and seals the last parts.
    fn finish(&mut self) -> Result<()> {
        let last = self.current.take();
        let first_entries = self.first.as_ref().expect("open").entries;
        let counts: Vec<(i64, u64)> = std::iter::once((1, first_entries))
            .chain(self.sealed_entries.iter().copied())
            .chain(last.as_ref().map(|p| (p.number, p.entries)))
            .collect();
        let total = counts.len() as i64;
        let parts: Vec<serde_json::Value> = counts
            .iter()
            .map(|&(n, e)| serde_json::json!({"part": n, "file_name": (self.part_name)(n, total), "entries": e}))
            .collect();
        let mut header = self.header.clone();
        header["parts"] = serde_json::Value::Array(parts);
        let org = self.org.sid.clone();
        let mut manifest = self.manifest.take().expect("open").into_inner().map_err(|e| e.into_error())?;
        let mut index = self.index.take().expect("open").into_inner().map_err(|e| e.into_error())?;
        let now = chrono::Utc::now();
        let first = self.first.as_mut().expect("open");
        let head = serde_json::to_string(&header)?;
        let mlen = manifest.stream_position()?;
        first.zip.start_file(format!("{org}/manifest.json"), options(CompressionMethod::Deflated, mlen + 1024, now))?;
        // The header's object, its last brace replaced by the entries.
        first.zip.write_all(&head.as_bytes()[..head.len() - 1])?;
        first.zip.write_all(b",\"entries\":[\n")?;
        manifest.rewind()?;
        std::io::copy(&mut manifest, &mut first.zip)?;
        first.zip.write_all(b"\n]}\n")?;
        let ilen = index.stream_position()?;
        first.zip.start_file(format!("{org}/index.csv"), options(CompressionMethod::Deflated, ilen, now))?;
        index.rewind()?;
        std::io::copy(&mut index, &mut first.zip)?;
        drop((manifest, index));
        let first = self.first.take().expect("open");
        self.seal(first)?;
        if let Some(p) = last {
            self.seal(p)?;
        }
        Ok(())
    }

    /// Finishes a part's zip and seals it into the store, chunk by chunk; its temporary file
    /// goes when this returns (it was never linked).
    fn seal(&mut self, part: Part) -> Result<()> {
        let mut file = part.zip.finish().with_context(|| format!("finishing part {}", part.number))?;
        file.flush()?;
        let size = file.stream_position()?;
        file.rewind()?;
        let name = object_name(self.archive_id, part.number);
        let mut hash = Sha256::new();
        let mut index = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                let k = file.read(&mut buf[n..])?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            hash.update(&buf);
            self.runtime.block_on(self.objects.put_object_chunk(&self.org, &name, index, buf))?;
            crate::fault::point("archive-chunk-sealed");
            index += 1;
        }
        self.sealed.push(PartRow {
            part: part.number,
            size: size as i64,
            chunk_bytes: CHUNK as i64,
            sha256: hex::encode(hash.finalize()),
        });
        self.sealed_entries.push((part.number, part.entries));
        Ok(())
    }
}
