//! The one typed door into a vault's contents: data types and their snapshots, a snapshot as
//! a stream of stored versions, what changed between two cycles, a record's history, records
//! deleted at their source, and a stored file as an async reader. Restore, `show`, `diff`,
//! `history`, `recover`, the mirror, the archive and the HTTP API all read through it.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use super::catalog::read as rows;
use super::{Org, Vault};

/// A data type in the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypeId(pub i64);

/// A backup cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CycleId(pub i64);

impl std::fmt::Display for CycleId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A point in time to read the vault at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The latest snapshot.
    Latest,
    /// The last snapshot taken at or before this instant.
    Instant(DateTime<Utc>),
    /// The last snapshot of this cycle or before.
    Cycle(CycleId),
}

impl At {
    /// `YYYY-MM-DD` (the end of that day in `tz`), an RFC 3339 instant, or `cycle:N`.
    pub fn parse(s: &str, tz: chrono_tz::Tz) -> Result<At> {
        if let Some(n) = s.strip_prefix("cycle:") {
            return Ok(At::Cycle(CycleId(n.parse().with_context(|| format!("{s:?}: cycle:N needs a number"))?)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let next = d.succ_opt().ok_or_else(|| anyhow!("{s:?}: date out of range"))?;
            return Ok(At::Instant(start_of(next, tz, s)? - chrono::Duration::milliseconds(1)));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(At::Instant(t.with_timezone(&Utc)));
        }
        bail!("{s:?} is not a date: use YYYY-MM-DD, an RFC 3339 time (2026-11-22T08:00:00Z) or cycle:N")
    }

    /// As `parse`, but a bare date means the start of that day (for "since").
    pub fn parse_since(s: &str, tz: chrono_tz::Tz) -> Result<At> {
        match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Ok(At::Instant(start_of(d, tz, s)?)),
            Err(_) => At::parse(s, tz),
        }
    }
}

fn start_of(d: NaiveDate, tz: chrono_tz::Tz, shown: &str) -> Result<DateTime<Utc>> {
    Ok(tz
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
        .ok_or_else(|| anyhow!("{shown:?}: no such local time"))?
        .with_timezone(&Utc))
}

/// A data type as the vault knows it: its current name and place in its app's hierarchy.
#[derive(Debug, Clone, Serialize)]
pub struct TypeInfo {
    pub id: TypeId,
    pub org: String,
    pub source: String,
    /// Stable identity (the app's ids).
    pub key: String,
    pub name: String,
    pub path: Vec<String>,
}

impl TypeInfo {
    /// "org/source/name", for messages.
    pub fn full_name(&self) -> String {
        format!("{}/{}/{}", self.org, self.source, self.name)
    }
}

/// One snapshot: a data type's state at one cycle.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub type_id: TypeId,
    pub cycle: CycleId,
    pub taken_at: DateTime<Utc>,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    pub full_read: bool,
    pub drift: u64,
    pub stored_bytes: u64,
}

/// A file a stored version refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The connector's key for it (how the app names the attachment).
    pub key: String,
    pub name: String,
    pub size: u64,
    /// The file's id in the vault: `open_file` reads it.
    pub uid: String,
}

/// One stored version of a record: its JSON as the app gave it, and its files.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub data: Value,
    pub files: Vec<StoredFile>,
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    data: std::borrow::Cow<'a, Value>,
    #[serde(default, skip_serializing_if = "<[StoredFile]>::is_empty")]
    files: std::borrow::Cow<'a, [StoredFile]>,
}

impl Serialize for StoredVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Envelope { data: std::borrow::Cow::Borrowed(&self.data), files: std::borrow::Cow::Borrowed(&self.files) }
            .serialize(s)
    }
}

impl StoredVersion {
    /// The canonical bytes (`schemas/version.schema.json`): `{"data":..,"files":[..]}`, object
    /// keys sorted, no spaces, `files` left out when empty. Equal records encode equally
    /// whatever the order and spacing the app sent them in.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let e =
            Envelope { data: std::borrow::Cow::Borrowed(&self.data), files: std::borrow::Cow::Borrowed(&self.files) };
        serde_json::to_writer(out, &e).expect("a JSON value always serializes");
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<StoredVersion> {
        // serde would also take the fields as a JSON array.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            bail!("a stored version is not the JSON object daybook writes");
        }
        let e: Envelope = serde_json::from_slice(bytes).context("a stored version is not the JSON daybook writes")?;
        Ok(StoredVersion { data: e.data.into_owned(), files: e.files.into_owned() })
    }
}

/// A record and where it belongs.
#[derive(Debug, Clone, Serialize)]
pub struct RecordInfo {
    pub sid: String,
    pub org: String,
    pub source: String,
    /// Its data type's current name, and stable key.
    pub data_type: String,
    pub type_key: String,
    /// Its id at the source.
    pub source_id: String,
    #[serde(skip)]
    pub type_id: TypeId,
}

/// One version of a record, without its content.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u32,
    /// A deletion at the source (no content of its own).
    pub deleted: bool,
    /// When the cycle that found it started.
    pub captured_at: DateTime<Utc>,
    /// The cycle from which it was current, and the one that replaced it.
    pub from_cycle: CycleId,
    pub to_cycle: Option<CycleId>,
    /// Bytes of its stored form.
    pub size: u64,
}

/// A live record of a snapshot, with its content.
#[derive(Debug, Clone)]
pub struct RecordVersion {
    pub sid: String,
    pub source_id: String,
    pub version: u32,
    pub captured_at: DateTime<Utc>,
    /// The cycle from which this version was current.
    pub since: CycleId,
    pub content: StoredVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// A record that differs between two snapshots of its data type.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub sid: String,
    pub source_id: String,
    /// The live version at the earlier snapshot (none if it was not alive then).
    pub before: Option<u32>,
    /// The live version at the later snapshot, with its content (none if deleted by then).
    pub after: Option<RecordVersion>,
}

/// A record deleted at its source: its last content and when it went.
#[derive(Debug, Clone)]
pub struct DeletedRecord {
    pub record: RecordInfo,
    /// The last version with content.
    pub last: RecordVersion,
    /// When the last snapshot that still had it was taken.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the backup that found it gone started, and that cycle.
    pub noticed: DateTime<Utc>,
    pub noticed_cycle: CycleId,
}

fn ts(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("catalog: time {s:?}"))?.with_timezone(&Utc))
}

impl Vault {
    /// The data types of an org (or of every org), by org, source and name.
    pub async fn types(&self, org: Option<&str>) -> Result<Vec<TypeInfo>> {
        Ok(self.catalog.all_types(org).await?.into_iter().map(type_info).collect())
    }

    pub async fn type_info(&self, ty: TypeId) -> Result<TypeInfo> {
        Ok(type_info(self.catalog.type_row(ty.0).await?))
    }

    /// A data type named as `T`, `source/T` or `org/source/T`, T its name or its key.
    pub async fn find_type(&self, spec: &str) -> Result<TypeInfo> {
        let all = self.types(None).await?;
        let hits: Vec<&TypeInfo> = all
            .iter()
            .filter(|t| {
                [&t.name, &t.key].iter().any(|n| {
                    spec == n.as_str()
                        || spec == format!("{}/{n}", t.source)
                        || spec == format!("{}/{}/{n}", t.org, t.source)
                })
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!(
                "no data type {spec:?} in the vault (known: {})",
                all.iter().map(TypeInfo::full_name).collect::<Vec<_>>().join(", ")
            ),
            many => bail!(
                "data type {spec:?} is ambiguous: {}; name it as org/source/type, or by its key",
                many.iter().map(|t| format!("{} ({})", t.full_name(), t.key)).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Every snapshot (of one data type, or all), oldest first.
    pub async fn snapshots(&self, ty: Option<TypeId>) -> Result<Vec<SnapshotInfo>> {
        self.catalog.snapshot_rows(ty.map(|t| t.0)).await?.into_iter().map(snapshot_info).collect()
    }

    /// The snapshot of a data type that holds at `at`: the last one at or before it.
    pub async fn snapshot_at(&self, ty: TypeId, at: At) -> Result<Option<SnapshotInfo>> {
        let row = match at {
            At::Latest => self.catalog.snapshot_row_at(ty.0, None, None).await?,
            At::Cycle(c) => self.catalog.snapshot_row_at(ty.0, Some(c.0), None).await?,
            At::Instant(t) => {
                let t = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.catalog.snapshot_row_at(ty.0, None, Some(&t)).await?
            }
        };
        row.map(snapshot_info).transpose()
    }

    /// A record by its SID, or by its id at the source when that names exactly one record.
    pub async fn record(&self, sid_or_id: &str) -> Result<RecordInfo> {
        if let Some(r) = self.catalog.record_by_sid(sid_or_id).await? {
            return Ok(record_info(r));
        }
        let found = self.catalog.records_by_source_id(sid_or_id).await?;
        match found.len() {
            1 => Ok(record_info(found.into_iter().next().expect("one"))),
            0 => bail!("no record with SID or source id {sid_or_id:?} in the vault"),
            _ => bail!(
                "{sid_or_id:?} is the id of several records; name one by its SID: {}",
                found
                    .into_iter()
                    .map(record_info)
                    .map(|i| format!("{} ({}/{}/{})", i.sid, i.org, i.source, i.data_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Every version of a record, oldest first.
    pub async fn history(&self, r: &RecordInfo) -> Result<Vec<VersionInfo>> {
        self.catalog.version_rows(&r.sid).await?.iter().map(version_info).collect()
    }

    /// The content of one version (None for a deletion).
    pub async fn version_content(&self, r: &RecordInfo, version: u32) -> Result<Option<StoredVersion>> {
        let rows = self.catalog.version_rows(&r.sid).await?;
        let v = rows
            .iter()
            .find(|v| v.version == version as i64)
            .ok_or_else(|| anyhow!("{} has no version {version} (it has 1 to {})", r.sid, rows.len()))?;
        let Some(blob) = &v.blob else { return Ok(None) };
        let org = self.org_of(&r.org).await?;
        Ok(Some(StoredVersion::decode(&self.read_blob(&org, blob).await?)?))
    }

    /// The version of a record current at `at` (None: it did not exist yet).
    pub async fn version_at(&self, r: &RecordInfo, at: At) -> Result<Option<VersionInfo>> {
        let cycle = match at {
            At::Latest => None,
            at => match self.snapshot_at(r.type_id, at).await? {
                Some(s) => Some(s.cycle),
                None => return Ok(None),
            },
        };
        let versions = self.history(r).await?;
        Ok(versions.into_iter().find(|v| match cycle {
            None => v.to_cycle.is_none(),
            Some(c) => v.from_cycle <= c && v.to_cycle.is_none_or(|t| t > c),
        }))
    }

    /// Every live record of a data type at a snapshot's cycle, with its content, in the order
    /// the vault stores them (so a whole snapshot reads at the speed of the store).
    pub fn records_at(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RecordVersion>> {
        self.version_stream(ty, rows::Selection::LiveAt(cycle.0))
    }

    /// Every version with content of a data type up to a cycle (deleted records' included),
    /// in the order the vault stores them.
    pub fn versions_until(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RecordVersion>> {
        self.version_stream(ty, rows::Selection::Until(cycle.0))
    }

    /// The files the live records of a data type refer to at a cycle (with `history`: that
    /// every version up to the cycle refers to), each once, with their sizes: what an archive
    /// of it holds, known before it is built.
    pub async fn files_at(&self, ty: TypeId, cycle: CycleId, history: bool) -> Result<Vec<StoredFile>> {
        let which = if history { rows::Selection::Until(cycle.0) } else { rows::Selection::LiveAt(cycle.0) };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut s = self.version_stream(ty, which);
        while let Some(v) = s.next().await {
            for f in v?.content.files {
                if seen.insert(f.uid.clone()) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// How many versions a snapshot (or with `history`, every version up to it) holds, and
    /// their bytes as stored, without reading them.
    pub async fn count_at(&self, ty: TypeId, cycle: CycleId, history: bool) -> Result<(u64, u64)> {
        let which = if history { rows::Selection::Until(cycle.0) } else { rows::Selection::LiveAt(cycle.0) };
        self.catalog.content_totals(ty.0, which).await
    }

    fn version_stream(&self, ty: TypeId, which: rows::Selection) -> BoxStream<'_, Result<RecordVersion>> {
        let start = async move {
            let info = self.type_info(ty).await?;
            let org = self.org_of(&info.org).await?;
            let list = self.catalog.content_rows(ty.0, which).await?;
            anyhow::Ok((org, list))
        };
        futures::stream::once(start)
            .map(move |r| match r {
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                Ok((org, list)) => futures::stream::iter(list)
                    .then(move |row| {
                        let org = org.clone();
                        async move { self.record_version(&org, row).await }
                    })
                    .boxed(),
            })
            .flatten()
            .boxed()
    }

    async fn record_version(&self, org: &Org, row: rows::ContentRow) -> Result<RecordVersion> {
        let bytes = self.read_blob_at(org, &row.loc).await?;
        Ok(RecordVersion {
            sid: row.sid,
            source_id: row.source_id,
            version: row.version as u32,
            captured_at: ts(&row.captured_at)?,
            since: CycleId(row.from_cycle),
            content: StoredVersion::decode(&bytes)?,
        })
    }

    /// Records added, changed and deleted between two snapshots of a data type (`from` None:
    /// since the beginning), with the later content, by id at the source.
    pub async fn changes_between(&self, ty: TypeId, from: Option<CycleId>, to: CycleId) -> Result<Vec<Change>> {
        let info = self.type_info(ty).await?;
        let org = self.org_of(&info.org).await?;
        let mut out = Vec::new();
        for c in self.catalog.change_rows(ty.0, from.map(|c| c.0), to.0).await? {
            let kind = match (c.before, &c.after) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Deleted,
                (Some(x), Some(y)) if x != y.version => ChangeKind::Changed,
                _ => continue,
            };
            let after = match c.after {
                Some(row) => Some(self.record_version(&org, row).await?),
                None => None,
            };
            out.push(Change { kind, sid: c.sid, source_id: c.source_id, before: c.before.map(|v| v as u32), after });
        }
        Ok(out)
    }

    /// Records deleted at their source and not back since, newest deletions first.
    pub async fn deleted_records(&self, org: Option<&str>) -> Result<Vec<DeletedRecord>> {
        let mut out = Vec::new();
        for d in self.catalog.deleted_rows(org).await? {
            let o = self.org_of(&d.record.org).await?;
            let noticed = ts(&d.noticed)?;
            let noticed_cycle = CycleId(d.noticed_cycle);
            let last_seen = d.last_seen.as_deref().map(ts).transpose()?;
            let record = record_info(d.record);
            let last = self.record_version(&o, d.last).await?;
            out.push(DeletedRecord { record, last, last_seen, noticed, noticed_cycle });
        }
        Ok(out)
    }

    /// A stored file as an async reader over its pieces, and its size. Never the whole file
    /// in memory: one piece (1 MiB) at a time.
    pub async fn open_file(
        &self,
        org: &str,
        uid: &str,
    ) -> Result<(u64, impl tokio::io::AsyncRead + Send + Unpin + use<>)> {
        let o = self.org_of(org).await?;
        let (size, pieces) = self
            .catalog
            .file_pieces(o.id, uid)
            .await?
            .ok_or_else(|| anyhow!("file {uid} is not in the vault of org {org}"))?;
        let me = self.reader_handle();
        let stream = futures::stream::iter(pieces).then(move |loc| {
            let (me, o) = (me.clone(), o.clone());
            async move {
                me.read_blob_at(&o, &loc)
                    .await
                    .map(bytes::Bytes::from)
                    .map_err(|e| std::io::Error::other(format!("{e:#}")))
            }
        });
        Ok((size, tokio_util::io::StreamReader::new(Box::pin(stream))))
    }

    async fn org_of(&self, sid: &str) -> Result<Arc<Org>> {
        self.existing_org(sid).await?.ok_or_else(|| anyhow!("no org {sid:?} in the vault"))
    }
}

fn type_info(r: rows::TypeRowFull) -> TypeInfo {
    TypeInfo { id: TypeId(r.id), org: r.org, source: r.source, key: r.key, name: r.name, path: r.path }
}

fn snapshot_info(r: rows::SnapshotRow) -> Result<SnapshotInfo> {
    Ok(SnapshotInfo {
        type_id: TypeId(r.type_id),
        cycle: CycleId(r.cycle),
        taken_at: ts(&r.taken_at)?,
        live: r.live as u64,
        added: r.added as u64,
        changed: r.changed as u64,
        deleted: r.deleted as u64,
        full_read: r.full_read,
        drift: r.drift as u64,
        stored_bytes: r.stored_bytes as u64,
    })
}

fn record_info(r: rows::RecordRow) -> RecordInfo {
    RecordInfo {
        sid: r.sid,
        org: r.org,
        source: r.source,
        data_type: r.type_name,
        type_key: r.type_key,
        source_id: r.source_id,
        type_id: TypeId(r.type_id),
    }
}

fn version_info(v: &rows::VersionRow) -> Result<VersionInfo> {
    Ok(VersionInfo {
        version: v.version as u32,
        deleted: v.deleted,
        captured_at: ts(&v.captured_at)?,
        from_cycle: CycleId(v.from_cycle),
        to_cycle: v.to_cycle.map(CycleId),
        size: v.size as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_versions_are_canonical() {
        let v = StoredVersion::decode(
            br#"{"files":[{"key":"k","name":"a.pdf","size":3,"uid":"u"}],"data":{"b":1,"a":[2,{"d":0,"c":1}]}}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(v.encode()).unwrap(),
            r#"{"data":{"a":[2,{"c":1,"d":0}],"b":1},"files":[{"key":"k","name":"a.pdf","size":3,"uid":"u"}]}"#
        );
        let plain = StoredVersion { data: serde_json::json!({"x": "y"}), files: vec![] };
        assert_eq!(plain.encode(), br#"{"data":{"x":"y"}}"#);
        assert_eq!(StoredVersion::decode(&plain.encode()).unwrap(), plain);
        assert!(StoredVersion::decode(b"[1]").is_err());
    }

    #[test]
    fn times_in_the_orgs_timezone() {
        let tz: chrono_tz::Tz = "Europe/Dublin".parse().unwrap();
        let end = At::parse("2026-07-01", tz).unwrap();
        assert_eq!(end, At::Instant("2026-07-01T22:59:59.999Z".parse().unwrap()));
        assert_eq!(At::parse_since("2026-07-01", tz).unwrap(), At::Instant("2026-06-30T23:00:00Z".parse().unwrap()));
        assert_eq!(At::parse("cycle:7", tz).unwrap(), At::Cycle(CycleId(7)));
        assert!(At::parse("yesterday", tz).is_err());
    }
}
