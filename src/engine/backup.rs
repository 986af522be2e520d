//! One data type's part of a cycle: read what the source has, store what is new or changed,
//! mark what vanished as deleted, and commit the snapshot. Nothing is committed unless the
//! whole listing arrived and the counts agree.

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::mpsc;

use futures::StreamExt;
use std::sync::Arc;

use super::delta::{Arrival, Content, Delta, Known, Look, Outcome, Place};
use super::files;
use crate::connectors::{Connector, IdField, ReadMode, Record, Vanished};
use crate::vault::crypto::IdKey;
use crate::vault::files::FileIndex;
use crate::vault::pack::BlobId;
use crate::vault::read::{StoredVersion, TypeInfo};
use crate::vault::state::{Check, Key, RawHash};
use crate::vault::write::{SnapshotStats, TypeWriter};
use crate::vault::{Org, Vault, catalog::Lease};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TypeStats {
    pub listed: u64,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Whether the whole source was read (not only what changed).
    pub full_read: bool,
    /// Changes an incremental read should have returned and did not.
    pub drift: u64,
    pub files_fetched: u64,
    pub stored_bytes: u64,
}

pub struct TypeJob<'a> {
    pub vault: &'a Vault,
    pub org: &'a Org,
    pub source: &'a str,
    /// The data type: its key is what the connector knows it by, its seed what SIDs derive from.
    pub ty: &'a TypeInfo,
    pub connector: &'a dyn Connector,
    pub cycle: i64,
    pub lease: &'a Lease,
    pub full_every_days: u32,
    /// Read the whole source whatever the schedule says.
    pub force_full: bool,
    /// Refuse to delete more than this share of a data type's records (None: no limit).
    pub max_deleted_share: Option<f64>,
}

/// Below this many records a data type is too small for the mass-deletion guard to mean
/// anything.
const GUARD_MIN_RECORDS: usize = 20;

/// The change feed of an incremental source missed records that its id listing shows:
/// the data type must be read whole.
#[derive(Debug, thiserror::Error)]
#[error("the source's change feed missed {0} records that its id listing shows")]
pub struct MissedByFeed(pub u64);

struct State<'a, 'w> {
    job: &'a TypeJob<'a>,
    writer: TypeWriter<'w>,
    delta: Delta,
    buf: Vec<u8>,
    stats: TypeStats,
    /// In a full read of an incremental source: the cursor its last read reached.
    drift_cursor: Option<String>,
    /// The cursor this cycle started from.
    prev_cursor: Option<String>,
    /// Records the read or listing skipped but the source confirmed: kept unchanged.
    kept_unread: u64,
}

pub async fn backup_type(job: &TypeJob<'_>, index: &mut FileIndex) -> Result<TypeStats> {
    let t0 = std::time::Instant::now();
    let (state, chain) = job.vault.state_at(job.ty.id, None).await?;
    tracing::debug!(data_type = %job.ty.name, "read its state ({} entries) in {:?}", state.entries.len(), t0.elapsed());
    // The delta takes the state over: the cached one goes now, not after the commit.
    job.vault.forget_states_of(job.ty.id.0);
    let state = std::sync::Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
    let mut delta = Delta::of(state, job.cycle as u64);
    let mut arrivals = delta.arrivals();
    let looker = Looker { ids: job.org.keys.ids.clone(), ty: job.ty.clone(), known: arrivals.known() };
    tracing::debug!(data_type = %job.ty.name, "loaded current state in {:?}", t0.elapsed());
    let writer = TypeWriter::new(job.vault, job.org, job.ty, job.cycle, job.lease, index, chain);
    let mut st = State {
        job,
        writer,
        delta,
        buf: Vec::with_capacity(4096),
        stats: TypeStats::default(),
        drift_cursor: None,
        prev_cursor: None,
        kept_unread: 0,
    };
    let mode = st.plan().await?;
    st.stats.full_read = matches!(mode, ReadMode::Full);

    // The connector reads on a thread of its own; each batch it sends is then looked at
    // (hashed, found in the state, parsed if it must be compared: the half of the work that
    // needs no other record) on the blocking pool, two batches at once so both cores hash,
    // and the batches come out in the order they were read; the consumer takes them in
    // that order (which record of an id came first), compares, compresses and stores.
    // Each channel's receiver goes with its stage: when a stage stops, on an error or not,
    // the one before it fails its next send at once (a stage left sending into a full
    // channel nobody reads would wait for ever).
    let (sender, mut rx) = mpsc::channel(4);
    let (looked_tx, mut looked) = mpsc::channel::<Vec<Looked>>(4);
    let reader = job.connector.read(&job.ty.key, mode, sender);
    let looking = async move {
        let mut batches = futures::stream::poll_fn(|cx| rx.poll_recv(cx))
            .map(|batch| {
                let looker = looker.clone();
                tokio::task::spawn_blocking(move || looker.batch(batch))
            })
            .buffered(BATCHES_AT_ONCE);
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| anyhow!("looking at the records read: {e}"))?;
            if looked_tx.send(batch).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    };
    let st_ref = &mut st;
    let consumer = async move {
        let (mut n, mut unchanged) = (0usize, 0u64);
        while let Some(batch) = looked.recv().await {
            for l in batch {
                match arrivals.arrive(&l.key, l.look) {
                    Arrival::Unchanged => unchanged += 1,
                    Arrival::Duplicate => st_ref.take(l, None).await?,
                    Arrival::Compare(place) => st_ref.take(l, Some(place)).await?,
                }
            }
            n += 1;
            if n.is_multiple_of(2) {
                crate::fault::point("batch-flushed");
            }
        }
        anyhow::Ok((arrivals, unchanged))
    };
    let (read, consumed, looked) = tokio::join!(reader, consumer, looking);
    let (arrivals, unchanged) = consumed?;
    looked?;
    let summary = read.map_err(|e| anyhow!("{e}"))?;
    st.delta.arrived(arrivals);
    st.stats.listed += unchanged;
    st.stats.unchanged += unchanged;
    tracing::debug!(data_type = %job.ty.name, "read and compared in {:?}", t0.elapsed());
    if !st.stats.full_read {
        st.mark_listed().await?;
    }
    let stats = st.finish(summary.cursor).await;
    tracing::debug!(data_type = %job.ty.name, "done in {:?}", t0.elapsed());
    stats
}

/// Batches looked at at once: one per core.
const BATCHES_AT_ONCE: usize = 2;

/// A record with what could be worked out of it alone.
struct Looked {
    /// Its text is dropped when it is the stored one (only its id and line are still needed,
    /// should it have come twice).
    rec: Record,
    key: Key,
    raw: Option<RawHash>,
    look: Look,
    /// For a record without files whose text is not the one of the last snapshot: its
    /// canonical bytes and content id, or why its JSON could not be parsed.
    canon: Option<Result<Canon, serde_json::Error>>,
    /// Why a text the connector did not parse cannot be read.
    unreadable: Option<String>,
}

struct Canon {
    bytes: Vec<u8>,
    id: BlobId,
}

/// What a looking thread needs, owned.
#[derive(Clone)]
struct Looker {
    ids: IdKey,
    ty: TypeInfo,
    known: Arc<Known>,
}

impl Looker {
    /// Keys and hashes first, so that looking them all up in the state waits for memory
    /// once, not once for each.
    fn batch(&self, batch: Vec<Record>) -> Vec<Looked> {
        let keyed: Vec<(Record, Key, Option<RawHash>)> = batch
            .into_iter()
            .map(|rec| {
                let (key, raw) = (self.ty.record_key(&self.ids, &rec.id), files::raw_hash(&self.ids, &rec));
                (rec, key, raw)
            })
            .collect();
        self.known.warm(keyed.iter().map(|(_, k, _)| k));
        keyed.into_iter().map(|(rec, key, raw)| self.one(rec, key, raw)).collect()
    }

    fn one(&self, mut rec: Record, mut key: Key, raw: Option<RawHash>) -> Looked {
        let mut look = self.known.look(&key, raw);
        let (mut unreadable, mut parsed) = (None, None);
        // A text stored before gave this id when it was read whole; any other is read whole
        // now, and the id is the one it gives.
        if let Some(field) = rec.unparsed.take().filter(|_| !look.same_text) {
            match serde_json::from_str::<serde_json::Value>(&rec.json) {
                Err(e) => unreadable = Some(format!("malformed JSON at line {} column {}", e.line(), e.column())),
                Ok(data) => {
                    match crate::connectors::id_in(data.get(&*field), &field) {
                        Ok(IdField::Id(id)) if id == rec.id => {}
                        Ok(IdField::Id(id)) => {
                            rec.id = id;
                            key = self.ty.record_key(&self.ids, &rec.id);
                            look = self.known.look(&key, raw);
                        }
                        Ok(IdField::Missing) => unreadable = Some(format!("record has no {field:?} field")),
                        Err(why) => unreadable = Some(why),
                    }
                    parsed = Some(data);
                }
            }
        }
        if look.same_text {
            rec.json = String::new();
            rec.files = Vec::new();
        }
        let canon = (!look.same_text && rec.files.is_empty() && unreadable.is_none()).then(|| {
            let data = match parsed {
                Some(data) => data,
                None => serde_json::from_str(&rec.json)?,
            };
            let mut bytes = Vec::with_capacity(rec.json.len() + 16);
            StoredVersion { data, files: Vec::new() }.encode_into(&mut bytes);
            Ok(Canon { id: self.ids.blob_id(&bytes), bytes })
        });
        // Its canonical bytes are what is stored: the text is not held while it waits.
        if matches!(canon, Some(Ok(_))) {
            rec.json = String::new();
        }
        Looked { rec, key, raw, look, canon, unreadable }
    }
}

impl State<'_, '_> {
    /// Only what changed since the cursor, for a source that can say, unless a full read
    /// is due; a full read of such a source also counts what its change feed missed.
    async fn plan(&mut self) -> Result<ReadMode> {
        let j = self.job;
        if !j.connector.incremental() {
            return Ok(ReadMode::Full);
        }
        let (cursor, last_full) = j.vault.type_progress(j.ty.id).await?;
        self.prev_cursor = cursor.clone();
        let due = last_full.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).is_none_or(|t| {
            chrono::Utc::now().signed_duration_since(t) >= chrono::Duration::days(j.full_every_days as i64)
        });
        match cursor {
            Some(c) if !due && !j.force_full => Ok(ReadMode::Since(c)),
            c => {
                self.drift_cursor = c;
                Ok(ReadMode::Full)
            }
        }
    }

    fn key(&self, id: &str) -> crate::vault::state::Key {
        Vault::record_key(self.job.org, self.job.ty, id)
    }

    /// After a change feed: the id listing says which records exist; what it does not
    /// list is deleted, and what it lists that we never saw means the feed missed it.
    async fn mark_listed(&mut self) -> Result<()> {
        let j = self.job;
        let ids = j.connector.list_ids(&j.ty.key).await.map_err(|e| anyhow!("listing ids: {e}"))?;
        let mut missed = 0;
        for id in ids {
            let k = self.key(&id);
            if !self.delta.listed(&k) {
                missed += 1;
            }
        }
        if missed > 0 {
            return Err(MissedByFeed(missed).into());
        }
        self.stats.listed = self.delta.seen_alive();
        Ok(())
    }

    /// A record to compare, at its place in the state (none: its id came twice).
    async fn take(&mut self, l: Looked, place: Option<Place>) -> Result<()> {
        let j = self.job;
        self.stats.listed += 1;
        let Looked { rec, key, raw, canon, unreadable, .. } = l;
        if let Some(why) = unreadable {
            let at = rec.line.map(|l| format!(" line {l}")).unwrap_or_default();
            bail!("{}{at}: {why}", j.connector.location(&j.ty.key));
        }
        let Some(place) = place else {
            let at = rec.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            bail!("{}: id {:?} appears twice{at}; ids must be unique", j.connector.location(&j.ty.key), rec.id);
        };
        let at = || rec.line.map(|l| format!(" line {l}")).unwrap_or_default();
        let malformed =
            |e| anyhow!("{}{}: record {:?}: malformed JSON: {e}", j.connector.location(&j.ty.key), at(), rec.id);
        let (id, has_files) = match canon {
            Some(c) => {
                let c = c.map_err(malformed)?;
                self.buf = c.bytes;
                (c.id, false)
            }
            None => {
                let data: serde_json::Value = serde_json::from_str(&rec.json).map_err(malformed)?;
                let mut stored_files = Vec::with_capacity(rec.files.len());
                for f in &rec.files {
                    let s = files::store(j, &mut self.writer, &mut self.delta, f).await.with_context(|| {
                        format!("{}: record {:?}: file {:?}", j.connector.location(&j.ty.key), rec.id, f.name)
                    })?;
                    self.stats.files_fetched += u64::from(s.1);
                    stored_files.push(s.0);
                }
                let has_files = !stored_files.is_empty();
                let version = StoredVersion { data, files: stored_files };
                self.buf.clear();
                version.encode_into(&mut self.buf);
                (j.org.keys.blob_id(&self.buf), has_files)
            }
        };
        let check: Check = id[..3].try_into().expect("3 bytes");
        let raw = raw.unwrap_or_default();
        let drift = self.drift_cursor.as_ref().is_some_and(|c| rec.modified.as_ref().is_some_and(|m| m <= c));
        // The same content in other words (key order, spacing) is no new version; the check
        // says when the content may be the same, its bytes whether it is.
        let same = match self.delta.current(place) {
            Some(e) if e.check == check => j.vault.entry_bytes(j.org, e).await? == self.buf,
            _ => false,
        };
        let outcome = if same {
            self.delta.same(place, raw)
        } else {
            let loc = self.writer.put_record(id, &self.buf).await?.loc;
            self.delta.put(place, key, Content { id: rec.id.clone(), check, loc, raw, has_files })
        };
        match outcome {
            Outcome::Same => self.stats.unchanged += 1,
            Outcome::Added => {
                self.stats.added += 1;
                self.stats.drift += drift as u64;
            }
            Outcome::Changed => {
                self.stats.changed += 1;
                self.stats.drift += drift as u64;
            }
        }
        Ok(())
    }

    /// Asks the source about each record its read or listing no longer showed: one a
    /// listing skipped is kept (unchanged) rather than marked deleted.
    async fn confirm_vanished(&mut self) -> Result<()> {
        let j = self.job;
        if !j.connector.confirms_deletions(&j.ty.key) {
            return Ok(());
        }
        let vanished = self.delta.vanished();
        if vanished.is_empty() {
            return Ok(());
        }
        let mut asked = Vec::with_capacity(vanished.len());
        for (_, e) in &vanished {
            let last = j.vault.content(j.org, e).await?;
            asked.push(Vanished { id: e.id.clone(), last: last.data });
        }
        let gone: std::collections::HashSet<String> = j
            .connector
            .confirm_deleted(&j.ty.key, asked)
            .await
            .map_err(|e| anyhow!("checking deletions: {e}"))?
            .into_iter()
            .collect();
        let mut kept = 0;
        for (k, e) in &vanished {
            if !gone.contains(&e.id) {
                self.delta.keep(k);
                kept += 1;
            }
        }
        if kept > 0 {
            tracing::warn!(data_type = %j.ty.name, "{kept} records the listing skipped still exist at the source: kept");
            self.stats.listed += kept;
            self.kept_unread += kept;
        }
        Ok(())
    }

    async fn finish(mut self, cursor: Option<String>) -> Result<TypeStats> {
        let mut cursor = cursor;
        let j = self.job;
        let vanished = self.delta.vanished().len();
        let had = self.delta.live_before();
        if let Some(share) = j.max_deleted_share
            && had >= GUARD_MIN_RECORDS
            && vanished as f64 > share * had as f64
        {
            bail!(
                "the source lists {} records where the last snapshot had {had}: {vanished} would be marked deleted, \
                 more than engine.max_deleted_share ({:.0}%); not committed. If they really were deleted, run \
                 `daybook backup --allow-deletions`",
                self.stats.listed,
                share * 100.0
            );
        }
        self.confirm_vanished().await?;
        if self.kept_unread > 0 {
            // Their content was not read this cycle: the next one starts where this one did,
            // so a change made to them before now is still asked for.
            cursor = self.prev_cursor.clone();
        }
        // The listing was complete: what was live and not seen is gone at the source.
        self.stats.deleted = self.delta.delete_vanished();
        self.stats.live = self.delta.live();
        if self.stats.live != self.stats.listed {
            bail!(
                "integrity: the snapshot would hold {} live records but the source listed {}; not committed",
                self.stats.live,
                self.stats.listed
            );
        }
        let s = &self.stats;
        let counts = SnapshotStats {
            full_read: s.full_read,
            listed: s.listed,
            live: s.live,
            added: s.added,
            changed: s.changed,
            deleted: s.deleted,
            drift: s.drift,
        };
        let (page, state) = self.delta.finish();
        self.stats.stored_bytes = self.writer.commit(&counts, page, state, cursor).await?;
        Ok(self.stats)
    }
}

impl Vault {
    /// The content a state entry names (for a deletion, the last content before it).
    pub(crate) async fn content(&self, org: &Org, e: &crate::vault::state::Entry) -> Result<StoredVersion> {
        StoredVersion::decode(&self.entry_bytes(org, e).await?)
    }
}
