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

use std::collections::HashMap;

use super::catalog::SnapshotRecord;
use super::state::{Entry, Key, Loc, Page, State};
use super::write::Chain;
use super::{BlobRef, Org, Vault};

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
    /// What its records' SIDs derive from (fixed when the vault first saw it).
    #[serde(skip)]
    pub(crate) seed: String,
}

impl TypeInfo {
    /// A record's key in this data type (what its SID is the base32 of).
    pub fn record_key(&self, ids: &super::crypto::IdKey, id: &str) -> Key {
        ids.record_key(&self.source, &self.seed, id)
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// A stored version with its record's JSON left as the app gave it (canonical form), unparsed.
#[derive(Debug, Clone)]
pub struct RawStoredVersion {
    pub data: Box<serde_json::value::RawValue>,
    pub files: Vec<StoredFile>,
}

impl RawStoredVersion {
    pub fn decode(bytes: &[u8]) -> Result<RawStoredVersion> {
        #[derive(Deserialize)]
        struct Raw {
            data: Box<serde_json::value::RawValue>,
            #[serde(default)]
            files: Vec<StoredFile>,
        }
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            bail!("a stored version is not the JSON object daybook writes");
        }
        let r: Raw = serde_json::from_slice(bytes).context("a stored version is not the JSON daybook writes")?;
        Ok(RawStoredVersion { data: r.data, files: r.files })
    }
}

/// A live record of a snapshot with its JSON unparsed (`records_at_raw`).
#[derive(Debug, Clone)]
pub struct RawRecordVersion {
    pub sid: String,
    pub source_id: String,
    pub version: u32,
    pub captured_at: DateTime<Utc>,
    pub since: CycleId,
    /// The record's JSON, in canonical form (keys sorted, no spaces).
    pub data: String,
    pub files: Vec<StoredFile>,
}

/// Records of a snapshot as JSON lines, and the files they refer to (`snapshot_lines`).
#[derive(Debug, Default)]
pub struct Lines {
    pub text: Vec<u8>,
    pub records: u64,
    pub files: Vec<StoredFile>,
}

/// A record and where it belongs.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

/// A record that differs between two snapshots, without its content.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeInfo {
    pub kind: ChangeKind,
    #[serde(skip)]
    key: Key,
    pub sid: String,
    pub source_id: String,
    pub before: Option<u32>,
    pub after: Option<u32>,
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
    /// The last content as JSON text in lower case, for searches.
    pub text: String,
}

/// Every data type's deleted records, as the vault remembers them (`deletions`).
pub struct Deletions(Vec<Arc<Vec<DeletedRecord>>>);

impl Deletions {
    /// Newest deletions first, then by source, data type and id.
    pub fn sorted(&self) -> Vec<&DeletedRecord> {
        let mut all: Vec<&DeletedRecord> = self.0.iter().flat_map(|t| t.iter()).collect();
        all.sort_by(|a, b| {
            (b.noticed_cycle, &a.record.source, &a.record.data_type, &a.record.source_id).cmp(&(
                a.noticed_cycle,
                &b.record.source,
                &b.record.data_type,
                &b.record.source_id,
            ))
        });
        all
    }
}

fn ts(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("catalog: time {s:?}"))?.with_timezone(&Utc))
}

/// One version of a record as a data type's deltas hold it.
#[derive(Debug, Clone)]
struct Step {
    version: u32,
    since: u64,
    deleted: bool,
    blob: Content,
}

/// Where a version's content is, and the first bytes of its id.
#[derive(Debug, Clone, Copy)]
struct Content {
    loc: Loc,
    check: super::state::Check,
}

fn content_ref(e: &Entry) -> Content {
    Content { loc: e.loc, check: e.check }
}

impl Vault {
    async fn org_of(&self, sid: &str) -> Result<Arc<Org>> {
        self.existing_org(sid).await?.ok_or_else(|| anyhow!("no org {sid:?} in the vault"))
    }

    /// The data types of an org (or of every org), by org, source and name.
    pub async fn types(&self, org: Option<&str>) -> Result<Vec<TypeInfo>> {
        let org_id = match org {
            Some(sid) => match self.existing_org(sid).await? {
                Some(o) => Some(o.id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let mut out = Vec::new();
        for r in self.catalog.type_records(org_id, None).await? {
            let o = self.org_of(&r.org).await?;
            out.push(Vault::type_info_of(&o, &r)?);
        }
        out.sort_by(|a, b| (&a.org, &a.source, &a.name, &a.key).cmp(&(&b.org, &b.source, &b.name, &b.key)));
        Ok(out)
    }

    pub async fn type_info(&self, ty: TypeId) -> Result<TypeInfo> {
        let r = self.catalog.type_record(ty.0).await?;
        let o = self.org_of(&r.org).await?;
        Vault::type_info_of(&o, &r)
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
        self.catalog.snapshot_records(ty.map(|t| t.0)).await?.iter().map(snapshot_info).collect()
    }

    /// The snapshot of a data type that holds at `at`: the last one at or before it.
    pub async fn snapshot_at(&self, ty: TypeId, at: At) -> Result<Option<SnapshotInfo>> {
        let r = match at {
            At::Latest => self.catalog.snapshot_record_at(ty.0, None, None).await?,
            At::Cycle(c) => self.catalog.snapshot_record_at(ty.0, Some(c.0), None).await?,
            At::Instant(t) => {
                let t = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.catalog.snapshot_record_at(ty.0, None, Some(&t)).await?
            }
        };
        r.as_ref().map(snapshot_info).transpose()
    }

    /// A data type's state at a cycle (its last snapshot at or before it), and what the
    /// reading of it cost: the deltas on top of its last checkpoint.
    pub(crate) async fn state_at(&self, ty: TypeId, cycle: Option<i64>) -> Result<(Arc<State>, Chain)> {
        self.load_state(ty, cycle, true).await
    }

    /// The state, from the cache or read, and remembered only if `remember`: a reader that
    /// walks a data type once (a stream of all its records) would otherwise hold the state
    /// beside what it picked from it, twice the memory for the largest data types.
    async fn load_state(&self, ty: TypeId, cycle: Option<i64>, remember: bool) -> Result<(Arc<State>, Chain)> {
        let chain = self.catalog.page_chain(ty.0, cycle.unwrap_or(i64::MAX)).await?;
        let Some(last) = chain.last() else { return Ok((Arc::default(), Chain::default())) };
        if let Some(cached) = self.cached_state(ty.0, last.cycle) {
            return Ok(cached);
        }
        let deltas = chain.iter().skip(usize::from(chain[0].checkpoint.is_some())).filter(|s| s.delta.is_some());
        let mut info = Chain { deltas: deltas.count(), entries: 0, has_checkpoint: chain[0].checkpoint.is_some() };
        let t = self.catalog.type_record(ty.0).await?;
        let org = self.org_of(&t.org).await?;
        let ti = Vault::type_info_of(&org, &t)?;
        let mut state = match &chain[0].checkpoint {
            Some(c) => State::from_page(self.page(&org, &ti, c).await?),
            None => State::default(),
        };
        for s in chain.iter().skip(usize::from(chain[0].checkpoint.is_some())) {
            if let Some(d) = &s.delta {
                let page = self.page(&org, &ti, d).await?;
                info.entries += page.entries.len();
                state.apply(&page);
            }
        }
        let state = Arc::new(state);
        if remember {
            self.keep_state(ty.0, last.cycle, state.clone(), info);
        }
        Ok((state, info))
    }

    /// Reads a data type's state ahead into the cache, when it is small enough to hold beside
    /// another: a backup loads the next data type's state while the current one reads.
    pub(crate) async fn preload_state(&self, ty: TypeId) -> Result<()> {
        let chain = self.catalog.page_chain(ty.0, i64::MAX).await?;
        if chain.last().is_some_and(|s| s.live as usize <= PRELOADED_ENTRIES) {
            self.state_at(ty, None).await?;
        }
        Ok(())
    }

    pub(crate) async fn page(&self, org: &Org, ty: &TypeInfo, r: &[u8]) -> Result<Page> {
        let r = BlobRef::decode(r)?;
        let bytes = self.read_blob(org, &r).await?;
        let key_of = |id: &str| Vault::record_key(org, ty, id);
        Page::decode(&bytes, &key_of).with_context(|| format!("org {}: a state page of {}", org.sid, ty.full_name()))
    }

    async fn blobs_at(&self, org: &Org, c: &Content) -> Result<Vec<u8>> {
        self.reader_handle().read_at(org, &c.loc, &c.check).await
    }

    fn cached_state(&self, ty: i64, cycle: i64) -> Option<(Arc<State>, Chain)> {
        self.states.lock().unwrap().iter().find(|(k, ..)| *k == (ty, cycle)).map(|(_, s, c)| (s.clone(), *c))
    }

    fn keep_state(&self, ty: i64, cycle: i64, s: Arc<State>, chain: Chain) {
        let mut cache = self.states.lock().unwrap();
        cache.retain(|(k, ..)| *k != (ty, cycle));
        // At most three states, and not many records in all: a data type of a million
        // records is cached alone.
        while !cache.is_empty()
            && (cache.len() >= 3
                || cache.iter().map(|(_, c, _)| c.entries.len()).sum::<usize>() + s.entries.len() > CACHED_ENTRIES)
        {
            cache.remove(0);
        }
        cache.push(((ty, cycle), s, chain));
    }

    /// Frees the states remembered of a data type, for a reader that reads each data type once
    /// (an archive build): they would only crowd out the next ones.
    pub fn done_with(&self, ty: TypeId) {
        self.forget_states_of(ty.0);
    }

    /// Forgets the states remembered of a data type (a backup is about to replace them).
    pub(crate) fn forget_states_of(&self, ty: i64) {
        self.states.lock().unwrap().retain(|((t, _), ..)| *t != ty);
    }

    /// Forgets every remembered state (their pages were just written anew).
    pub(crate) fn drop_cached_states(&self) {
        self.states.lock().unwrap().clear();
    }

    /// The state a commit just made, for the next reader.
    pub(crate) fn remember_state(&self, ty: i64, cycle: i64, s: State, chain: Chain) {
        self.keep_state(ty, cycle, Arc::new(s), chain);
    }

    /// Every version of every record of a data type up to a cycle, from its deltas.
    async fn steps(&self, ty: TypeId, until: Option<i64>) -> Result<HashMap<Key, (String, Vec<Step>)>> {
        let t = self.catalog.type_record(ty.0).await?;
        let org = self.org_of(&t.org).await?;
        let ti = Vault::type_info_of(&org, &t)?;
        let mut out: HashMap<Key, (String, Vec<Step>)> = HashMap::new();
        for s in self.catalog.snapshot_records(Some(ty.0)).await? {
            if until.is_some_and(|u| s.cycle > u) {
                break;
            }
            let Some(d) = &s.delta else { continue };
            for (k, e) in self.page(&org, &ti, d).await?.entries {
                let slot = out.entry(k).or_insert_with(|| (e.id.clone(), Vec::new()));
                if slot.1.last().is_none_or(|l| l.version != e.version) {
                    slot.1.push(Step { version: e.version, since: e.since, deleted: e.deleted, blob: content_ref(&e) });
                }
            }
        }
        Ok(out)
    }

    /// A record by its SID, or by its id at the source when that names exactly one record.
    pub async fn record(&self, sid_or_id: &str) -> Result<RecordInfo> {
        let types = self.types(None).await?;
        let by_sid = crate::util::unbase32(sid_or_id).and_then(|k| <Key>::try_from(k.as_slice()).ok());
        let mut found = Vec::new();
        for t in &types {
            let (state, _) = self.state_at(t.id, None).await?;
            if let Some(k) = by_sid
                && let Some(e) = state.get(&k)
            {
                return Ok(record_info(t, &k, e));
            }
            let org = self.org_of(&t.org).await?;
            let k = Vault::record_key(&org, t, sid_or_id);
            if let Some(e) = state.get(&k) {
                found.push(record_info(t, &k, e));
            }
        }
        match found.len() {
            1 => Ok(found.pop().expect("one")),
            0 => bail!("no record with SID or source id {sid_or_id:?} in the vault"),
            _ => bail!(
                "{sid_or_id:?} is the id of several records; name one by its SID: {}",
                found
                    .iter()
                    .map(|i| format!("{} ({}/{}/{})", i.sid, i.org, i.source, i.data_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// A record of one data type by its SID (None: the data type has no such record).
    pub async fn record_in(&self, ty: &TypeInfo, sid: &str) -> Result<Option<RecordInfo>> {
        let Some(k) = crate::util::unbase32(sid).and_then(|k| <Key>::try_from(k.as_slice()).ok()) else {
            return Ok(None);
        };
        let (state, _) = self.state_at(ty.id, None).await?;
        Ok(state.get(&k).map(|e| record_info(ty, &k, e)))
    }

    async fn record_steps(&self, r: &RecordInfo) -> Result<Vec<Step>> {
        let key = record_key_of(r)?;
        Ok(self.steps(r.type_id, None).await?.remove(&key).map(|(_, s)| s).unwrap_or_default())
    }

    /// Every version of a record, oldest first.
    pub async fn history(&self, r: &RecordInfo) -> Result<Vec<VersionInfo>> {
        let steps = self.record_steps(r).await?;
        let starts = self.catalog.cycle_starts().await?;
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(VersionInfo {
                    version: s.version,
                    deleted: s.deleted,
                    captured_at: captured(&starts, s.since)?,
                    from_cycle: CycleId(s.since as i64),
                    to_cycle: steps.get(i + 1).map(|n| CycleId(n.since as i64)),
                    size: if s.deleted { 0 } else { s.blob.loc.len as u64 },
                })
            })
            .collect()
    }

    /// The content of one version (None for a deletion).
    pub async fn version_content(&self, r: &RecordInfo, version: u32) -> Result<Option<StoredVersion>> {
        let steps = self.record_steps(r).await?;
        let s = steps.iter().find(|s| s.version == version).ok_or_else(|| {
            anyhow!("{} has no version {version} (it has 1 to {})", r.sid, steps.last().map_or(0, |s| s.version))
        })?;
        if s.deleted {
            return Ok(None);
        }
        let org = self.org_of(&r.org).await?;
        Ok(Some(StoredVersion::decode(&self.blobs_at(&org, &s.blob).await?)?))
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
        Ok(versions.into_iter().rev().find(|v| cycle.is_none_or(|c| v.from_cycle <= c)))
    }

    /// Every live record of a data type at a snapshot's cycle, with its content, in the order
    /// the vault stores them (so a whole snapshot reads at the speed of the store).
    pub fn records_at(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RecordVersion>> {
        self.version_stream(ty, cycle, false)
    }

    /// Every version with content of a data type up to a cycle (deleted records' included),
    /// in the order the vault stores them.
    pub fn versions_until(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RecordVersion>> {
        self.version_stream(ty, cycle, true)
    }

    /// The versions `records_at` (or with `history`, `versions_until`) gives, without their
    /// content: (key, id at the source, version, since, content place, has files).
    async fn selection(&self, ty: TypeId, cycle: CycleId, history: bool) -> Result<Vec<Picked>> {
        let mut out = Vec::new();
        if history {
            for (k, (id, steps)) in self.steps(ty, Some(cycle.0)).await? {
                for s in steps.into_iter().filter(|s| !s.deleted) {
                    out.push(Picked {
                        key: k,
                        id: id.clone(),
                        version: s.version,
                        since: s.since,
                        blob: s.blob,
                        files: true,
                    });
                }
            }
        } else {
            let (state, _) = self.load_state(ty, Some(cycle.0), false).await?;
            out.reserve_exact(state.live_count());
            out.extend(state.live().map(|(k, e)| Picked::current(k, e)));
        }
        out.sort_by_key(|p| p.blob.loc);
        Ok(out)
    }

    fn version_stream(&self, ty: TypeId, cycle: CycleId, history: bool) -> BoxStream<'_, Result<RecordVersion>> {
        self.stream_of(ty, cycle, history, |p, b, starts| {
            Ok(RecordVersion {
                sid: crate::util::base32(&p.key),
                source_id: p.id,
                version: p.version,
                captured_at: captured(starts, p.since)?,
                since: CycleId(p.since as i64),
                content: StoredVersion::decode(b)?,
            })
        })
    }

    /// `records_at`, with each record's JSON as the app gave it, unparsed: for writing it out
    /// as it is (an export, an archive), at the speed of the store.
    pub fn records_at_raw(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RawRecordVersion>> {
        self.stream_of(ty, cycle, false, raw_version)
    }

    /// One page of a data type's live records at a cycle, ordered by id at the source: the
    /// `limit` first after the id `after`, unparsed, and how many live records there are.
    /// Only the page's contents are read, so a page costs the same whatever the snapshot's
    /// size (its state is cached after the first read).
    pub async fn records_page(
        &self,
        ty: TypeId,
        cycle: CycleId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<RawRecordVersion>, usize)> {
        let t = self.catalog.type_record(ty.0).await?;
        let org = self.org_of(&t.org).await?;
        let starts = self.catalog.cycle_starts().await?;
        let (state, _) = self.state_at(ty, Some(cycle.0)).await?;
        let order = |a: &(&Key, &Entry), b: &(&Key, &Entry)| (&a.1.id, a.0).cmp(&(&b.1.id, b.0));
        let mut rest: Vec<(&Key, &Entry)> =
            state.live().filter(|(_, e)| after.is_none_or(|a| e.id.as_str() > a)).collect();
        let live = state.live_count();
        // The page's entries without sorting all of them.
        if rest.len() > limit && limit > 0 {
            rest.select_nth_unstable_by(limit - 1, order);
        }
        rest.truncate(limit);
        rest.sort_unstable_by(order);
        let mut out = Vec::with_capacity(rest.len());
        for (k, e) in rest {
            let p = Picked::current(k, e);
            let bytes = self.blobs_at(&org, &p.blob).await?;
            out.push(raw_version(p, &bytes, &starts)?);
        }
        Ok((out, live))
    }

    /// `versions_until`, unparsed.
    pub fn versions_until_raw(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<RawRecordVersion>> {
        self.stream_of(ty, cycle, true, raw_version)
    }

    /// The versions `selection` picks, one chunk at a time in store order, two chunks in
    /// flight; each chunk's versions decoded off the async threads `DECODED_AT_ONCE` at a
    /// time, one batch ahead of the reader.
    fn stream_of<T: Send + 'static>(
        &self,
        ty: TypeId,
        cycle: CycleId,
        history: bool,
        make: MakeVersion<T>,
    ) -> BoxStream<'_, Result<T>> {
        self.stream_groups(ty, cycle, history, |group, plain, starts| Ok((Arc::new(plain), starts, group)))
            .map(move |r| match r {
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                Ok((plain, starts, group)) => {
                    let mut group = group.into_iter();
                    let batches = std::iter::from_fn(move || {
                        let b: Vec<_> = group.by_ref().take(DECODED_AT_ONCE).collect();
                        (!b.is_empty()).then_some(b)
                    });
                    futures::stream::iter(batches)
                        .map(move |b| {
                            let (plain, starts) = (plain.clone(), starts.clone());
                            async move {
                                let decode =
                                    move || b.into_iter().map(|(p, at)| make(p, &plain[at], &starts)).collect();
                                tokio::task::spawn_blocking(decode).await?
                            }
                        })
                        .buffered(2)
                        .flat_map(|r: Result<Vec<T>>| match r {
                            Ok(v) => futures::stream::iter(v.into_iter().map(Ok)).boxed(),
                            Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                        })
                        .boxed()
                }
            })
            .flatten()
            .boxed()
    }

    /// `selection`'s versions grouped by the chunk that holds them, in store order: each
    /// chunk fetched, opened and its blobs checked off the async threads, two in flight, then
    /// handed whole to `make` (the picked versions with their places in the plaintext).
    fn stream_groups<T: Send + 'static, F: MakeGroup<T>>(
        &self,
        ty: TypeId,
        cycle: CycleId,
        history: bool,
        make: F,
    ) -> BoxStream<'_, Result<T>> {
        let start = async move {
            let t = self.catalog.type_record(ty.0).await?;
            let org = self.org_of(&t.org).await?;
            let starts = Arc::new(self.catalog.cycle_starts().await?);
            anyhow::Ok((org, starts, self.selection(ty, cycle, history).await?))
        };
        futures::stream::once(start)
            .map(move |r| match r {
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                Ok((org, starts, picked)) => {
                    // Groups taken off the selection as they are read, not copied out of it.
                    let mut rest = picked.into_iter().peekable();
                    let groups = std::iter::from_fn(move || {
                        let first = rest.next()?;
                        let at = (first.blob.loc.pack, first.blob.loc.chunk);
                        let mut g = vec![first];
                        while let Some(p) = rest.next_if(|p| (p.blob.loc.pack, p.blob.loc.chunk) == at) {
                            g.push(p);
                        }
                        Some(g)
                    });
                    let reader = self.reader_handle();
                    futures::stream::iter(groups)
                        .map(move |g| {
                            let (org, starts, reader) = (org.clone(), starts.clone(), reader.clone());
                            async move { read_group(&reader, org, starts, g, make).await }
                        })
                        .buffered(2)
                        .boxed()
                }
            })
            .flatten()
            .boxed()
    }

    /// A snapshot's records as JSON lines, as the app gave them (one record a line, in store
    /// order), with the files they refer to: what an export writes, made without a value per
    /// record, a chunk's worth at a time.
    pub fn snapshot_lines(&self, ty: TypeId, cycle: CycleId) -> BoxStream<'_, Result<Lines>> {
        self.stream_groups(ty, cycle, false, |group, plain, _| {
            let mut out = Lines { text: Vec::with_capacity(plain.len()), records: 0, files: Vec::new() };
            for (p, b) in group {
                let b = &plain[b];
                match (p.files, b.strip_prefix(b"{\"data\":").and_then(|d| d.strip_suffix(b"}"))) {
                    (false, Some(data)) => out.text.extend_from_slice(data),
                    _ => {
                        let r = RawStoredVersion::decode(b)?;
                        out.text.extend_from_slice(r.data.get().as_bytes());
                        out.files.extend(r.files);
                    }
                }
                out.text.push(b'\n');
                out.records += 1;
            }
            Ok(out)
        })
    }

    /// The files the live records of a data type refer to at a cycle (with `history`: that
    /// every version up to the cycle refers to), each once, with their sizes: what an archive
    /// of it holds, known before it is built.
    pub async fn files_at(&self, ty: TypeId, cycle: CycleId, history: bool) -> Result<Vec<StoredFile>> {
        let t = self.catalog.type_record(ty.0).await?;
        let org = self.org_of(&t.org).await?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in self.selection(ty, cycle, history).await?.into_iter().filter(|p| p.files) {
            for f in StoredVersion::decode(&self.blobs_at(&org, &p.blob).await?)?.files {
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
        let picked = self.selection(ty, cycle, history).await?;
        Ok((picked.len() as u64, picked.iter().map(|p| p.blob.loc.len as u64).sum()))
    }

    /// Records added, changed and deleted between two snapshots of a data type (`from` None:
    /// since the beginning), with the later content, by id at the source.
    pub async fn changes_between(&self, ty: TypeId, from: Option<CycleId>, to: CycleId) -> Result<Vec<Change>> {
        let t = self.catalog.type_record(ty.0).await?;
        let org = self.org_of(&t.org).await?;
        let starts = self.catalog.cycle_starts().await?;
        let (list, after) = self.change_entries(ty, from, to).await?;
        // Contents in store order, each chunk read once.
        let mut reads: Vec<(usize, Content)> = list
            .iter()
            .enumerate()
            .filter(|(_, c)| c.after.is_some())
            .filter_map(|(i, c)| after.get(&c.key).map(|e| (i, content_ref(e))))
            .collect();
        reads.sort_by_key(|(_, c)| c.loc);
        let mut contents: HashMap<usize, StoredVersion> = HashMap::new();
        for (i, c) in reads {
            contents.insert(i, StoredVersion::decode(&self.blobs_at(&org, &c).await?)?);
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            let e = after.get(&c.key);
            let after = match (contents.remove(&i), e) {
                (Some(content), Some(e)) => Some(RecordVersion {
                    sid: c.sid.clone(),
                    source_id: c.source_id.clone(),
                    version: e.version,
                    captured_at: captured(&starts, e.since)?,
                    since: CycleId(e.since as i64),
                    content,
                }),
                _ => None,
            };
            out.push(Change { kind: c.kind, sid: c.sid, source_id: c.source_id, before: c.before, after });
        }
        Ok(out)
    }

    /// What `changes_between` finds, without the contents: kind, SID, id, and the versions
    /// before and after (for a listing, such as `diff`'s).
    pub async fn change_list(&self, ty: TypeId, from: Option<CycleId>, to: CycleId) -> Result<Vec<ChangeInfo>> {
        Ok(self.change_entries(ty, from, to).await?.0)
    }

    async fn change_entries(
        &self,
        ty: TypeId,
        from: Option<CycleId>,
        to: CycleId,
    ) -> Result<(Vec<ChangeInfo>, Arc<State>)> {
        let before = match from {
            Some(c) => Some(self.state_at(ty, Some(c.0)).await?.0),
            None => None,
        };
        let (after, _) = self.state_at(ty, Some(to.0)).await?;
        let lo = from.map_or(0, |c| c.0);
        let mut out = Vec::new();
        for (k, e) in after.entries.iter().filter(|(_, e)| e.since as i64 > lo) {
            let was = before.as_ref().and_then(|b| b.get(k)).filter(|b| !b.deleted).map(|b| b.version);
            let kind = match (was, e.deleted) {
                (None, false) => ChangeKind::Added,
                (Some(_), true) => ChangeKind::Deleted,
                (Some(v), false) if v != e.version => ChangeKind::Changed,
                _ => continue,
            };
            out.push(ChangeInfo {
                kind,
                key: *k,
                sid: crate::util::base32(k),
                source_id: e.id.clone(),
                before: was,
                after: (!e.deleted).then_some(e.version),
            });
        }
        out.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Ok((out, after))
    }

    /// Records deleted at their source and not back since, newest deletions first.
    pub async fn deleted_records(&self, org: Option<&str>) -> Result<Vec<DeletedRecord>> {
        Ok(self.deletions(org).await?.sorted().into_iter().cloned().collect())
    }

    /// `deleted_records` without copying them: what a search over them reads.
    pub async fn deletions(&self, org: Option<&str>) -> Result<Deletions> {
        let mut out = Vec::new();
        for t in self.types(org).await? {
            out.push(self.deleted_of(&t).await?);
        }
        Ok(Deletions(out))
    }

    /// A data type's deleted records, remembered for its latest snapshot: the search of the
    /// dashboard's Recovery page reads the vault once per new snapshot, not once a request.
    async fn deleted_of(&self, t: &TypeInfo) -> Result<Arc<Vec<DeletedRecord>>> {
        let snaps = self.snapshots(Some(t.id)).await?;
        let Some(latest) = snaps.last() else { return Ok(Arc::default()) };
        let key = (latest.cycle.0, snaps.len());
        if let Some((k, d)) = self.deleted.lock().unwrap().get(&t.id.0)
            && *k == key
        {
            return Ok(d.clone());
        }
        let starts = self.catalog.cycle_starts().await?;
        let mut out = Vec::new();
        let o = self.org_of(&t.org).await?;
        let (state, _) = self.state_at(t.id, None).await?;
        if !state.entries.iter().any(|(_, e)| e.deleted) {
            return Ok(self.keep_deleted(t, key, out));
        }
        let steps = self.steps(t.id, None).await?;
        // In store order, each chunk read once.
        let mut gone: Vec<&(Key, Entry)> = state.entries.iter().filter(|(_, e)| e.deleted).collect();
        gone.sort_by_key(|(_, e)| e.loc);
        for (k, e) in gone {
            let noticed_cycle = CycleId(e.since as i64);
            let last_seen = snaps.iter().rev().find(|s| s.cycle < noticed_cycle).map(|s| s.taken_at);
            let content = StoredVersion::decode(&self.blobs_at(&o, &content_ref(e)).await?)?;
            let text = serde_json::to_string(&content)?.to_lowercase();
            let last_since =
                steps.get(k).and_then(|(_, s)| s.iter().rev().find(|s| !s.deleted)).map_or(e.since, |s| s.since);
            out.push(DeletedRecord {
                record: record_info(t, k, e),
                last: RecordVersion {
                    sid: crate::util::base32(k),
                    source_id: e.id.clone(),
                    version: e.version.saturating_sub(1),
                    captured_at: captured(&starts, last_since)?,
                    since: CycleId(last_since as i64),
                    content,
                },
                last_seen,
                noticed: captured(&starts, e.since)?,
                noticed_cycle,
                text,
            });
        }
        Ok(self.keep_deleted(t, key, out))
    }

    fn keep_deleted(&self, t: &TypeInfo, key: (i64, usize), d: Vec<DeletedRecord>) -> Arc<Vec<DeletedRecord>> {
        let d = Arc::new(d);
        self.deleted.lock().unwrap().insert(t.id.0, (key, d.clone()));
        d
    }

    /// A stored file as an async reader over its pieces, and its size. Never the whole file
    /// in memory: one piece (1 MiB) at a time.
    pub async fn open_file(
        &self,
        org: &str,
        uid: &str,
    ) -> Result<(u64, impl tokio::io::AsyncRead + Send + Unpin + use<>)> {
        let o = self.org_of(org).await?;
        let (size, pieces) =
            self.file_pieces(&o, uid).await?.ok_or_else(|| anyhow!("file {uid} is not in the vault of org {org}"))?;
        let reader = self.reader_handle();
        let stream = futures::stream::iter(pieces).then(move |p| {
            let (reader, o) = (reader.clone(), o.clone());
            async move {
                reader.read(&o, &p).await.map(bytes::Bytes::from).map_err(|e| std::io::Error::other(format!("{e:#}")))
            }
        });
        Ok((size, tokio_util::io::StreamReader::new(Box::pin(stream))))
    }
}

/// Makes a stream's item from a picked version and its bytes (and the cycles' start times).
type MakeVersion<T> = fn(Picked, &[u8], &HashMap<i64, String>) -> Result<T>;

/// Versions decoded at a time. A 4 MiB chunk holds thousands of records, and a parsed one
/// takes several times its stored bytes: decoding whole chunks, two in flight, held tens of
/// MB (a day-1 mirror of 4 x 50,000 records peaked at 241 MiB).
const DECODED_AT_ONCE: usize = 512;

/// Makes a stream's item from one chunk's picked versions (each with its place in the chunk's
/// plaintext, already checked), the plaintext, and the cycles' start times.
/// (Both owned: a maker may keep them past the call, as `stream_of` does, without a copy.)
trait MakeGroup<T>:
    Fn(Vec<(Picked, std::ops::Range<usize>)>, Vec<u8>, Arc<HashMap<i64, String>>) -> Result<T>
    + Copy
    + Send
    + Sync
    + 'static
{
}

impl<T, F> MakeGroup<T> for F where
    F: Fn(Vec<(Picked, std::ops::Range<usize>)>, Vec<u8>, Arc<HashMap<i64, String>>) -> Result<T>
        + Copy
        + Send
        + Sync
        + 'static
{
}

/// A version picked for reading, and where its content is.
#[derive(Debug, Clone)]
struct Picked {
    key: Key,
    id: String,
    version: u32,
    since: u64,
    blob: Content,
    /// Its content may refer to files.
    files: bool,
}

impl Picked {
    /// A record's current version, as its state entry gives it.
    fn current(k: &Key, e: &Entry) -> Picked {
        Picked {
            key: *k,
            id: e.id.clone(),
            version: e.version,
            since: e.since,
            blob: content_ref(e),
            files: e.has_files,
        }
    }
}

async fn read_group<T: Send + 'static, F: MakeGroup<T>>(
    reader: &super::BlobReader,
    org: Arc<Org>,
    starts: Arc<HashMap<i64, String>>,
    group: Vec<Picked>,
    make: F,
) -> Result<T> {
    let Some(first) = group.first() else { return make(Vec::new(), Vec::new(), starts) };
    let sealed = reader.fetch_chunk(&org, first.blob.loc.pack, first.blob.loc.chunk).await?;
    tokio::task::spawn_blocking(move || {
        let (pack, chunk) = (group[0].blob.loc.pack, group[0].blob.loc.chunk);
        let plain = super::pack::open_chunk(&org.keys.seal, chunk, &sealed)
            .with_context(|| format!("pack {pack:016x} is damaged"))?;
        let placed = group
            .into_iter()
            .map(|p| {
                let l = p.blob.loc;
                let at = l.offset as usize..l.offset as usize + l.len as usize;
                let b =
                    plain.get(at.clone()).ok_or_else(|| anyhow!("pack {pack:016x}: a blob lies outside its chunk"))?;
                if org.keys.blob_id(b)[..p.blob.check.len()] != p.blob.check {
                    bail!("pack {pack:016x}: a blob does not match its id {}", hex::encode(p.blob.check));
                }
                Ok((p, at))
            })
            .collect::<Result<Vec<_>>>()?;
        make(placed, plain, starts)
    })
    .await?
}

fn raw_version(p: Picked, b: &[u8], starts: &HashMap<i64, String>) -> Result<RawRecordVersion> {
    // A version without files is `{"data":...}` exactly (its id was checked: these are the
    // bytes daybook wrote), so its JSON is a slice of it, not a parse of it.
    let (data, files) = match (p.files, b.strip_prefix(b"{\"data\":").and_then(|d| d.strip_suffix(b"}"))) {
        (false, Some(data)) => (String::from_utf8(data.to_vec())?, Vec::new()),
        _ => {
            let r = RawStoredVersion::decode(b)?;
            (r.data.get().to_string(), r.files)
        }
    };
    Ok(RawRecordVersion {
        sid: crate::util::base32(&p.key),
        source_id: p.id,
        version: p.version,
        captured_at: captured(starts, p.since)?,
        since: CycleId(p.since as i64),
        data,
        files,
    })
}

/// Records, over all the data type states a vault remembers.
const CACHED_ENTRIES: usize = 400_000;
/// The largest state read ahead of its backup (about 12 MB in memory).
const PRELOADED_ENTRIES: usize = 100_000;

fn captured(starts: &HashMap<i64, String>, cycle: u64) -> Result<DateTime<Utc>> {
    ts(starts.get(&(cycle as i64)).ok_or_else(|| anyhow!("catalog: cycle {cycle} is missing"))?)
}

fn snapshot_info(r: &SnapshotRecord) -> Result<SnapshotInfo> {
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

fn record_info(t: &TypeInfo, k: &Key, e: &Entry) -> RecordInfo {
    RecordInfo {
        sid: crate::util::base32(k),
        org: t.org.clone(),
        source: t.source.clone(),
        data_type: t.name.clone(),
        type_key: t.key.clone(),
        source_id: e.id.clone(),
        type_id: t.id,
    }
}

fn record_key_of(r: &RecordInfo) -> Result<Key> {
    crate::util::unbase32(&r.sid)
        .and_then(|k| <Key>::try_from(k.as_slice()).ok())
        .ok_or_else(|| anyhow!("{:?} is not a SID", r.sid))
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
