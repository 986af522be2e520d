//! The build: an org's versions and files, read through the vault's read API, written as zip
//! parts into temporary files (seekable, so sizes and CRCs go into the local headers and no
//! data descriptors are needed), each part sealed into the blob store in chunks as soon as it
//! is complete and its temporary file removed.
//!
//! Versions are compressed in batches on the blocking threads (two at a time, one per core)
//! and added to the zip as prepared entries; files stream through in 1 MiB pieces. A writer
//! thread owns the zips (zipout.rs: flat memory whatever the number of entries) and seals each
//! part's chunks as soon as no header before them can change. Part 1 stays open to the end: it
//! receives `manifest.json` and `index.csv`, which list every part's entries and are deflated
//! as they are written.

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::names::Namer;
use super::quote::precompressed;
use super::zipout::{self, Deflater, Deflating, Entry, Method, Prepared, ZipOut};
use crate::vault::catalog::PartRow;
use crate::vault::objects::{CHUNK, Objects};
use crate::vault::read::{At, RawRecordVersion, StoredFile, TypeInfo};
use crate::vault::{Org, Vault};

/// Versions compressed together on one blocking thread.
const BATCH: usize = 512;

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
    Versions(Vec<(Prepared, ManifestEntry)>),
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

fn prepare(org: &str, ty: &TypeInfo, batch: Vec<RawRecordVersion>) -> Result<Vec<(Prepared, ManifestEntry)>> {
    let namer = Namer::new(false);
    let mut deflater = Deflater::default();
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
            let prepared = deflater
                .prepare(Entry { name: path, method: Method::Deflated, modified: r.captured_at }, data)
                .with_context(|| format!("compressing {}", entry.path))?;
            Ok((prepared, entry))
        })
        .collect()
}

/// Builds the archive; each part is in the store (and in `out.parts`) when this returns Ok.
/// On error, parts already sealed stay in the store: the caller removes the archive's objects.
pub async fn build(vault: &Vault, org: &Arc<Org>, plan: &Plan) -> Result<Output> {
    let (tx, rx) = mpsc::channel::<Item>(4);
    let mut writer = Writer {
        sealer: Sealer {
            org: org.clone(),
            objects: vault.objects(),
            runtime: tokio::runtime::Handle::current(),
            archive_id: plan.archive_id,
        },
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
        drop(batches);
        vault.done_with(ty.id);
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

/// A zip part being written into a temporary file, and sealed from its start as it grows.
struct Part {
    number: i64,
    zip: ZipOut<BufWriter<File>>,
    sealing: Sealing,
    /// Content bytes in it (what `part_bytes` bounds).
    content: u64,
    entries: u64,
}

/// How far a part's file is sealed into the store.
struct Sealing {
    /// The part's file, read back to seal it (positioned reads: the writer's offset stays).
    file: File,
    /// Bytes sealed so far: whole chunks, up to where no header can change any more.
    done: u64,
    chunks: u64,
    hash: Sha256,
}

/// Where parts' chunks go.
struct Sealer {
    org: Arc<Org>,
    objects: Objects,
    runtime: tokio::runtime::Handle,
    archive_id: i64,
}

impl Sealer {
    /// Seals the whole chunks of a part's first `end` bytes, which no later write changes;
    /// with `all`, the finished part's last bytes too.
    fn seal(&self, number: i64, s: &mut Sealing, end: u64, all: bool) -> Result<()> {
        let name = object_name(self.archive_id, number);
        while end - s.done >= CHUNK as u64 || (all && end > s.done) {
            let n = (end - s.done).min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            s.file.read_exact_at(&mut buf, s.done)?;
            s.hash.update(&buf);
            self.runtime.block_on(self.objects.put_object_chunk(&self.org, &name, s.chunks, buf))?;
            crate::fault::point("archive-chunk-sealed");
            s.chunks += 1;
            s.done += n as u64;
        }
        Ok(())
    }

    /// Seals what is settled of a part being written (nothing while an entry's header waits
    /// for its sizes).
    fn seal_ready(&self, part: &mut Part) -> Result<()> {
        if part.zip.in_entry() || part.zip.position() - part.sealing.done < CHUNK as u64 {
            return Ok(());
        }
        part.zip.get_mut().flush()?;
        self.seal(part.number, &mut part.sealing, part.zip.position(), false)
    }
}

type Text = Deflating<BufWriter<File>>;

struct Writer {
    sealer: Sealer,
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
    /// Manifest lines (JSON) and index rows of every entry so far, deflated into temporary
    /// files.
    manifest: Option<BufWriter<Text>>,
    index: Option<csv::Writer<Text>>,
    entries: u64,
}

impl Writer {
    fn temp(&self) -> Result<File> {
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

    fn text(&self) -> Result<Text> {
        Ok(Deflating::new(BufWriter::with_capacity(1 << 16, self.temp()?)))
    }

    fn part(&mut self) -> &mut Part {
        self.current.as_mut().or(self.first.as_mut()).expect("a part is open")
    }

    /// Seals what is settled of the part being filled.
    fn seal_settled(&mut self) -> Result<()> {
        let part = self.current.as_mut().or(self.first.as_mut()).expect("a part is open");
        self.sealer.seal_ready(part)
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Item>) -> Result<()> {
        self.manifest = Some(BufWriter::with_capacity(1 << 16, self.text()?));
        let mut index = csv::Writer::from_writer(self.text()?);
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
                        part.zip.add_prepared(&prepared).with_context(|| format!("writing {}", entry.path))?;
                        self.record(&entry)?;
                    }
                    self.seal_settled()?;
                }
                Item::FileStart { name, size, entry } => {
                    let method = if precompressed(&name) { Method::Stored } else { Method::Deflated };
                    let modified = chrono::DateTime::parse_from_rfc3339(&entry.captured_at)
                        .map(|t| t.to_utc())
                        .unwrap_or_default();
                    let part = self.room_for(size)?;
                    part.zip
                        .start(Entry { name: name.clone(), method, modified }, size)
                        .with_context(|| format!("writing {name}"))?;
                    file = Some((*entry, Sha256::new(), 0));
                }
                Item::FileChunk(b) => {
                    let (entry, hash, n) = file.as_mut().ok_or_else(|| anyhow!("a file's bytes before its start"))?;
                    hash.update(&b);
                    *n += b.len() as u64;
                    self.part().zip.write(&b).with_context(|| format!("writing {}", entry.path))?;
                }
                Item::FileEnd => {
                    let (mut entry, hash, n) = file.take().ok_or_else(|| anyhow!("a file's end before its start"))?;
                    if n != entry.size {
                        bail!("{}: {n} bytes read of {}", entry.path, entry.size);
                    }
                    entry.sha256 = hex::encode(hash.finalize());
                    let part = self.part();
                    part.zip.end().with_context(|| format!("writing {}", entry.path))?;
                    entry.part = part.number;
                    part.content += entry.size;
                    part.entries += 1;
                    self.seal_settled()?;
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
        let file = self.temp()?;
        let reader = file.try_clone()?;
        Ok(Part {
            number,
            zip: ZipOut::new(BufWriter::with_capacity(1 << 16, file), self.temp()?),
            sealing: Sealing { file: reader, done: 0, chunks: 0, hash: Sha256::new() },
            content: 0,
            entries: 0,
        })
    }

    /// The part an entry of `size` goes into: a new one when the current one would pass
    /// `part_bytes` (an entry larger than that has a part of its own).
    fn room_for(&mut self, size: u64) -> Result<&mut Part> {
        let limit = self.part_bytes;
        let full = {
            let p = self.part();
            p.entries > 0 && p.content + size > limit
        };
        if full {
            let next = self.part().number + 1;
            let fresh = self.new_part(next)?;
            if let Some(done) = self.current.replace(fresh) {
                self.seal(done)?;
            }
        }
        Ok(self.part())
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
        let org = self.sealer.org.sid.clone();
        let now = chrono::Utc::now();
        let manifest = self.manifest.take().expect("open").into_inner().map_err(|e| e.into_error())?;
        let (entries, entries_seg) = manifest.end(false)?;
        // The header's object, its last brace replaced by the entries, deflated apart and put
        // first.
        let head = serde_json::to_string(&header)?;
        let head = [&head.as_bytes()[..head.len() - 1], b",\"entries\":[\n"].concat();
        let (head, head_seg) = zipout::deflate_segment(&head, false)?;
        let (tail, tail_seg) = zipout::deflate_segment(b"\n]}\n", true)?;
        let (crc, size, csize) = zipout::join(&[&head_seg, &entries_seg, &tail_seg]);
        let mut entries = entries.into_inner().map_err(|e| e.into_error())?;
        entries.rewind()?;
        let mut body = Read::chain(Read::chain(&head[..], entries), &tail[..]);
        let e = Entry { name: format!("{org}/manifest.json"), method: Method::Deflated, modified: now };
        let first = self.first.as_mut().expect("open");
        first.zip.add_raw(&e, crc, size, csize, &mut body)?;
        let index = self.index.take().expect("open").into_inner().map_err(|e| e.into_error())?;
        let (index, seg) = index.end(true)?;
        let (crc, size, csize) = zipout::join(&[&seg]);
        let mut index = index.into_inner().map_err(|e| e.into_error())?;
        index.rewind()?;
        let e = Entry { name: format!("{org}/index.csv"), method: Method::Deflated, modified: now };
        first.zip.add_raw(&e, crc, size, csize, &mut index)?;
        let first = self.first.take().expect("open");
        self.seal(first)?;
        if let Some(p) = last {
            self.seal(p)?;
        }
        Ok(())
    }

    /// Finishes a part's zip and seals what is left of it; its temporary files go when this
    /// returns (they were never linked).
    fn seal(&mut self, part: Part) -> Result<()> {
        let Part { number, zip, mut sealing, entries, .. } = part;
        let size = zip.finish().with_context(|| format!("finishing part {number}"))?.1;
        self.sealer.seal(number, &mut sealing, size, true)?;
        self.sealed.push(PartRow {
            part: number,
            size: size as i64,
            chunk_bytes: CHUNK as i64,
            sha256: hex::encode(sealing.hash.finalize()),
        });
        self.sealed_entries.push((number, entries));
        Ok(())
    }
}
