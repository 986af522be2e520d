//! A folder export: `records/<data type>.jsonl` (one JSON object a line) and
//! `attachments/` (files, backed up as the data type "attachments"). The simplest real
//! source: apps' nightly exports look like this.

mod config;

use super::{Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, SourceError};
use crate::config::SourceConfig;
use async_trait::async_trait;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use tokio::sync::mpsc;

pub use config::JsonlConfig;

pub const ATTACHMENTS: &str = "attachments";
const BATCH: usize = 512;

pub struct Jsonl {
    root: PathBuf,
    id_field: std::sync::Arc<str>,
}

pub fn build(src: &SourceConfig) -> anyhow::Result<Box<dyn Connector>> {
    let c: JsonlConfig = super::parse_options(src)?;
    Ok(Box::new(Jsonl { root: src.resolve(&c.path), id_field: c.id_field.into() }))
}

fn utf8_name(path: &std::path::Path) -> Result<String, SourceError> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_string).ok_or_else(|| {
        SourceError::Config(format!("{}: file name is not valid UTF-8; rename it", path.to_string_lossy()))
    })
}

impl Jsonl {
    fn records_dir(&self) -> PathBuf {
        self.root.join("records")
    }

    fn read_blocking(&self, data_type: &str, out: mpsc::Sender<Batch>) -> Result<ReadSummary, SourceError> {
        if data_type == ATTACHMENTS {
            return self.read_attachments(out);
        }
        let path = self.records_dir().join(format!("{data_type}.jsonl"));
        let shown = path.display().to_string();
        let f = std::fs::File::open(&path).map_err(|err| SourceError::Io { what: shown.clone(), err })?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let mut line = Vec::new();
        let mut n = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        let bad = |line: u64, why: String| SourceError::BadLine { file: shown.clone(), line, why };
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).map_err(|err| SourceError::Io { what: shown.clone(), err })? == 0 {
                break;
            }
            n += 1;
            let text = std::str::from_utf8(&line).map_err(|e| bad(n, format!("not valid UTF-8 ({e})")))?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            // Most lines are as they were last time, and the engine never parses those: the
            // id at their start is enough (the engine reads the others whole).
            let (id, unparsed) = match super::leading_id(text, &self.id_field) {
                Some(id) => (id.to_string(), Some(self.id_field.clone())),
                None => match super::id_of(text, &self.id_field).map_err(|why| bad(n, why))? {
                    super::IdField::Id(id) => (id, None),
                    super::IdField::Missing => {
                        return Err(bad(
                            n,
                            format!(
                                "record has no {:?} field (set id_field in the source config if the id is under another name)",
                                self.id_field
                            ),
                        ));
                    }
                },
            };
            let json = text.to_string();
            batch.push(Record { id, json, files: Vec::new(), line: Some(n), modified: None, unparsed });
            if batch.len() == BATCH
                && out.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err()
            {
                return Err(SourceError::Stopped);
            }
        }
        if !batch.is_empty() && out.blocking_send(batch).is_err() {
            return Err(SourceError::Stopped);
        }
        Ok(ReadSummary::default())
    }

    fn read_attachments(&self, out: mpsc::Sender<Batch>) -> Result<ReadSummary, SourceError> {
        let dir = self.root.join(ATTACHMENTS);
        let io = |err| SourceError::Io { what: dir.display().to_string(), err };
        let mut entries: Vec<_> = std::fs::read_dir(&dir).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        let mut batch = Vec::new();
        for e in entries {
            let name = utf8_name(&e.path())?;
            let md = e.metadata().map_err(|err| SourceError::Io { what: e.path().display().to_string(), err })?;
            if !md.is_file() {
                continue;
            }
            let fingerprint = format!("{}:{}.{}:{}", md.len(), md.mtime(), md.mtime_nsec(), md.ino());
            let json = serde_json::json!({ "name": name, "size": md.len() }).to_string();
            batch.push(Record {
                id: name.clone(),
                json,
                files: vec![FileRef { key: name.clone(), name, fingerprint: Some(fingerprint) }],
                line: None,
                modified: None,
                unparsed: None,
            });
            if batch.len() == BATCH && out.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Err(SourceError::Stopped);
            }
        }
        if !batch.is_empty() && out.blocking_send(batch).is_err() {
            return Err(SourceError::Stopped);
        }
        Ok(ReadSummary::default())
    }
}

#[async_trait]
impl Connector for Jsonl {
    fn location(&self, data_type: &str) -> String {
        if data_type == ATTACHMENTS {
            self.root.join(ATTACHMENTS).display().to_string()
        } else {
            self.records_dir().join(format!("{data_type}.jsonl")).display().to_string()
        }
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        let dir = self.records_dir();
        let mut types = Vec::new();
        let io = |err| SourceError::Io { what: format!("{} (the export folder needs records/)", dir.display()), err };
        let rd = std::fs::read_dir(&dir).map_err(io)?;
        for e in rd {
            let p = e.map_err(io)?.path();
            if p.extension().and_then(|x| x.to_str()) == Some("jsonl") {
                let name = utf8_name(&p)?;
                let stem = name.trim_end_matches(".jsonl").to_string();
                if !crate::util::is_safe_sid(&stem) {
                    return Err(SourceError::Config(format!(
                        "{}: a data type name must be 1-64 characters of a-z, 0-9, '-' or '_'",
                        p.display()
                    )));
                }
                types.push(DataType::named(stem));
            }
        }
        if self.root.join(ATTACHMENTS).is_dir() {
            types.push(DataType::named(ATTACHMENTS));
        }
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(types)
    }

    async fn read(
        &self,
        data_type: &str,
        _mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let me = Jsonl { root: self.root.clone(), id_field: self.id_field.clone() };
        let ty = data_type.to_string();
        tokio::task::spawn_blocking(move || me.read_blocking(&ty, out))
            .await
            .map_err(|e| SourceError::Io { what: format!("reading {data_type}"), err: std::io::Error::other(e) })?
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let path = self.root.join(ATTACHMENTS).join(&file.key);
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|err| SourceError::Io { what: path.display().to_string(), err })?;
        Ok(Box::new(f))
    }
}
