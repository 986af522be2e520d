//! Connectors: each knows one app's API (or export format) and nothing of the vault.
//! The engine asks a connector which data types it has, reads records (all, or changed
//! since a cursor), lists the ids that exist now, and fetches file bytes.

pub mod clickup;
pub mod error;
pub mod http;
pub mod jsonl;
pub mod nocodb;
pub mod scope;
pub mod secret;
pub mod sink;
pub mod trello;

pub use error::SourceError;

use anyhow::{Result, bail};
use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::config::{Config, SourceConfig};

/// The kinds a config may name, each with its builder.
const KINDS: &[(&str, Builder)] =
    &[("jsonl", jsonl::build), ("nocodb", nocodb::build), ("trello", trello::build), ("clickup", clickup::build)];

type Builder = fn(&SourceConfig) -> Result<Box<dyn Connector>>;

fn builder(src: &SourceConfig) -> Result<Builder> {
    let kind = src.kind.get_ref();
    match KINDS.iter().find(|(k, _)| k == kind) {
        Some((_, b)) => Ok(*b),
        None => {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            bail!("config line {}: unknown source kind {kind:?} (known: {})", src.line, known.join(", "))
        }
    }
}

/// Checks every source of a config: its kind is known and its keys parse. (The config
/// itself knows nothing of connectors.)
pub fn check_config(cfg: &Config) -> Result<()> {
    for src in cfg.orgs.iter().flat_map(|o| o.sources.iter()) {
        build(src)?;
    }
    Ok(())
}

pub fn build(src: &SourceConfig) -> Result<Box<dyn Connector>> {
    builder(src)?(src)
}

/// Parses a connector's own keys of a `[[orgs.sources]]` table, naming the line on error.
pub fn parse_options<T: serde::de::DeserializeOwned>(src: &SourceConfig) -> Result<T> {
    let table = toml::Value::Table(src.options.clone());
    table.try_into().map_err(|e: toml::de::Error| config_error(src, e.message()))
}

/// An error in a source's config, naming its line.
pub fn config_error(src: &SourceConfig, msg: &str) -> anyhow::Error {
    anyhow::anyhow!("config line {}: source {:?} (kind {:?}): {msg}", src.line, src.name.get_ref(), src.kind.get_ref())
}

/// A data type as the source offers it now. It is known by `key`, made of the app's stable
/// ids ("board:5f0c.../cards"), which no rename changes; `name` and `path` are what the app
/// calls it and where it sits today, and may change any day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataType {
    /// Stable identity: the app's ids, never its names.
    pub key: String,
    /// The current display name ("Roadmap/cards").
    pub name: String,
    /// Its place in the app's hierarchy, by current names (["Marketing", "Roadmap"] for a
    /// Trello board in the Marketing workspace); empty at the top.
    pub path: Vec<String>,
    /// Keys an earlier release stored it under (its old names), so a vault written then keeps
    /// its history under the stable key.
    pub former: Vec<String>,
}

impl DataType {
    /// A data type whose name is its identity (an export's file name).
    pub fn named(name: impl Into<String>) -> DataType {
        let name = name.into();
        DataType { key: name.clone(), name, path: Vec::new(), former: Vec::new() }
    }
}

/// A file a record refers to. `fingerprint` changes whenever the bytes may have changed
/// (size and mtime, an API's revision id, ...), so unchanged files are not fetched again.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub key: String,
    pub name: String,
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    /// The record as one JSON object, as the source gave it (valid JSON: the connector
    /// checked it, unless `unparsed`). The engine parses it only when the text differs from
    /// last time.
    pub json: String,
    /// Some(id field): the connector took `id` off the start of the text without reading
    /// the rest (`leading_id`). The engine then reads the text whole before it stores it,
    /// as it does every text it has not stored: a malformed one fails there, with its line,
    /// and the id is the one the whole text gives.
    pub unparsed: Option<std::sync::Arc<str>>,
    pub files: Vec<FileRef>,
    /// Where the record came from (a line number in an export), for error messages.
    pub line: Option<u64>,
    /// When the source last changed it (RFC 3339, UTC), where the source says: compared
    /// with cursors to tell changes an incremental read should have returned.
    pub modified: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ReadMode {
    /// Everything the source has: the listing is complete, so absence means deletion.
    Full,
    /// Only what changed since the cursor; deletions come from `list_ids`.
    Since(String),
}

#[derive(Debug, Clone, Default)]
pub struct ReadSummary {
    /// Where the next incremental read starts: the source's time (RFC 3339, UTC) up to
    /// which this read saw every change.
    pub cursor: Option<String>,
}

pub type Batch = Vec<Record>;

/// A stored file of a record being restored, read back from the vault.
#[derive(Debug, Clone)]
pub struct RestoreFile {
    /// The `FileRef::key` the connector gave it when it was backed up.
    pub key: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A record a read or listing no longer shows: its id and its last stored content.
#[derive(Debug, Clone)]
pub struct Vanished {
    pub id: String,
    pub last: serde_json::Value,
}

/// What a restore created at the source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Restored {
    /// The id the app gave the copy.
    pub new_id: String,
    pub files_uploaded: usize,
    /// What could not be brought back, in words ("comments are restored as text: ...").
    pub notes: Vec<String>,
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// Whether `read` can take `ReadMode::Since`.
    fn incremental(&self) -> bool {
        false
    }

    /// Where a data type is read from, for error messages (a file, an endpoint).
    fn location(&self, data_type: &str) -> String {
        data_type.to_string()
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError>;

    /// Sends every record (of the mode) in batches; returns only once all were sent.
    /// An error means the listing is incomplete: nothing of it may be committed.
    async fn read(&self, data_type: &str, mode: ReadMode, out: mpsc::Sender<Batch>)
    -> Result<ReadSummary, SourceError>;

    /// Every id that exists now (for incremental sources' deletions).
    async fn list_ids(&self, data_type: &str) -> Result<Vec<String>, SourceError> {
        Err(SourceError::unsupported(data_type, "listing ids is not supported"))
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn AsyncRead + Send + Unpin>, SourceError>;

    /// Whether `confirm_deleted` should be asked about this data type's vanished records.
    fn confirms_deletions(&self, data_type: &str) -> bool {
        let _ = data_type;
        false
    }

    /// Of the records a complete read or listing no longer shows (each with its last stored
    /// content), the ids really gone from the source. A source whose listings can skip a
    /// record (pages by offset, while records before the offset are deleted) asks the app.
    async fn confirm_deleted(&self, data_type: &str, vanished: Vec<Vanished>) -> Result<Vec<String>, SourceError> {
        let _ = data_type;
        Ok(vanished.into_iter().map(|v| v.id).collect())
    }

    /// The containers (workspaces, bases, boards) the credentials could see at the last
    /// `discover`, each as "name (id)", and those the scope left out, for the cycle's log:
    /// a board missing from it is noticed.
    fn visible(&self) -> Visibility {
        Visibility::default()
    }

    /// API requests sent so far (every attempt), for the cycle's log and benchmarks.
    fn requests(&self) -> Option<u64> {
        None
    }

    /// Of those requests, the ones the app answered 429 (rate limited), for `/metrics`.
    fn rate_limited(&self) -> Option<u64> {
        None
    }

    /// Whether `restore` can create a record of this data type; the error says plainly why
    /// not (the app's API cannot create it, say).
    fn restorable(&self, data_type: &str) -> Result<(), String> {
        Err(format!("{data_type}: this kind of source cannot create records"))
    }

    /// Creates a copy of a stored record (and its files, where the app allows) as a new
    /// record in the app. Never overwrites, moves or deletes anything there.
    async fn restore(
        &self,
        data_type: &str,
        record: &serde_json::Value,
        files: Vec<RestoreFile>,
    ) -> Result<Restored, SourceError> {
        let _ = (record, files);
        Err(SourceError::unsupported(data_type, self.restorable(data_type).err().unwrap_or_default()))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// What the credentials see and the scope keeps, each "kind name (id)".
    pub kept: Vec<String>,
    /// What they see and the scope leaves out.
    pub skipped: Vec<String>,
}

/// Why the first bytes of a download show it is not the file: an app's error or sign-in
/// page answered with 200, an object store's error document. `head` is its first bytes.
pub fn not_the_file(name: &str, head: &[u8]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let is_html_name = [".htm", ".html", ".xhtml"].iter().any(|e| lower.ends_with(e));
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).trim_start().to_ascii_lowercase();
    // An object store's error ("<?xml ...><Error><Code>AccessDenied...") is not the file either.
    let store_error = text.starts_with("<?xml") && text.contains("<error>");
    if !is_html_name && (text.starts_with("<!doctype html") || text.starts_with("<html")) {
        return Some("the download is an error or sign-in page, not the file");
    }
    if !lower.ends_with(".xml") && store_error {
        return Some("the download is an object store's error, not the file");
    }
    None
}

/// The id field of a JSON object, read without building the whole object (most records of
/// a cycle are unchanged and never need parsing). Also checks the text is valid JSON.
pub fn id_of(text: &str, id_field: &str) -> Result<IdField, String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Key<'de>(std::borrow::Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(v.into()))
                }
                fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                    Ok(Key(v.to_string().into()))
                }
            }
            d.deserialize_str(V)
        }
    }
    struct Obj<'f>(&'f str);
    impl<'de> Visitor<'de> for Obj<'_> {
        type Value = Option<serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = m.next_key::<Key>()? {
                if k.0 == self.0 {
                    found = Some(m.next_value::<serde_json::Value>()?);
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    if !text.trim_start().starts_with('{') {
        return Err(if serde_json::from_str::<IgnoredAny>(text).is_ok() {
            "not a JSON object".into()
        } else {
            "malformed JSON".into()
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let id = de
        .deserialize_map(Obj(id_field))
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| format!("malformed JSON at line {} column {}", e.line(), e.column()))?;
    id_in(id.as_ref(), id_field)
}

/// What the value of a record's id field makes of it.
pub fn id_in(value: Option<&serde_json::Value>, id_field: &str) -> Result<IdField, String> {
    match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(IdField::Id(s.clone())),
        Some(serde_json::Value::Number(n)) => Ok(IdField::Id(n.to_string())),
        Some(other) => Err(format!("field {id_field:?} is {}, not a string or number id", error::kind_of(other))),
        None => Ok(IdField::Missing),
    }
}

/// The id of a JSON object whose id field comes first, as in most exports, found without
/// reading the rest: `{"id":"..."` (a string without escapes) or `{"id":123` (digits); None
/// when the text does not start so (then `id_of` reads it all). Nothing else is checked: the
/// text may be malformed, or name its id field again further on (JSON's last one wins), so
/// the id is only a guess until the whole text is read (`Record::unparsed`).
pub fn leading_id<'t>(text: &'t str, id_field: &str) -> Option<&'t str> {
    let rest = text.strip_prefix("{\"")?.strip_prefix(id_field)?.strip_prefix("\":")?;
    let (id, after) = match rest.strip_prefix('"') {
        Some(r) => {
            let end = r.find(['"', '\\'])?;
            (&r[..end], r[end..].strip_prefix('"')?)
        }
        None => {
            let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let digits = &rest[..end];
            if digits.len() > 1 && digits.starts_with('0') {
                return None;
            }
            (digits, &rest[end..])
        }
    };
    (!id.is_empty() && (after.starts_with(',') || after.starts_with('}'))).then_some(id)
}

pub enum IdField {
    Id(String),
    Missing,
}

#[cfg(test)]
mod tests {
    use super::{leading_id, not_the_file};

    #[test]
    fn a_leading_id_is_taken_only_where_it_is_plain() {
        assert_eq!(leading_id(r#"{"id":"t1","x":1}"#, "id"), Some("t1"));
        assert_eq!(leading_id(r#"{"id":42}"#, "id"), Some("42"));
        assert_eq!(leading_id(r#"{"key":"k","id":"t1"}"#, "key"), Some("k"));
        // Escapes, spacing, other fields first, number forms, empty ids: read whole instead.
        for text in [
            r#"{"id":"t"1","x":1}"#,
            r#"{ "id":"t1"}"#,
            r#"{"x":1,"id":"t1"}"#,
            r#"{"id":007}"#,
            r#"{"id":4.5}"#,
            r#"{"id":-4}"#,
            r#"{"id":""}"#,
            r#"{"id":"t1""#,
            r#"{"id":"t1" }"#,
            r#"{"identity":"t1"}"#,
            r#"["id"]"#,
        ] {
            assert_eq!(leading_id(text, "id"), None, "{text}");
        }
    }

    #[test]
    fn error_pages_are_not_files() {
        assert!(not_the_file("a.pdf", b"%PDF-1.7 ...").is_none());
        assert!(not_the_file("a.pdf", b"  <!DOCTYPE html><title>Sign in</title>").is_some());
        assert!(not_the_file("page.html", b"<!DOCTYPE html><p>mine</p>").is_none());
        let s3 = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>";
        assert!(not_the_file("a.png", s3).is_some());
        assert!(not_the_file("feed.xml", s3).is_none());
    }
}
