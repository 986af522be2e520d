//! One data type's part of a cycle, in one catalog transaction: read what the source has,
//! store what is new or changed, mark what vanished as deleted, and close the snapshot.
//! Nothing is committed unless the whole listing arrived and the counts agree.

use anyhow::{Context, Result, anyhow, bail};
use futures::TryStreamExt;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::connectors::{Connector, FileRef, ReadMode, Record, Vanished};
use crate::vault::catalog::{self, BATCH, Params, TypeRow};
use crate::vault::crypto::sid_of_key;
use crate::vault::pack::{BlobKind, FILE_PIECE};

use super::writer::{PackSink, Writer};
use crate::vault::{Org, Vault};

/// What the engine remembers per current record while it reads a data type: 38 bytes and
/// a 10-byte key, never the record itself, so memory stays small as data types grow.
struct Live {
    /// Content id of the current version (keyed hash of canonical JSON).
    hash: [u8; 16],
    /// Keyed hash of the source's text of it (and its files' fingerprints): equal text
    /// means equal record, without parsing. Zero when unknown.
    raw: [u8; 16],
    version: u32,
    deleted: bool,
    seen: bool,
}

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

struct NewVersion {
    sid: String,
    version: u32,
    blob: Option<[u8; 16]>,
    size: usize,
    new_record: Option<String>,
    closes_previous: bool,
}

pub struct TypeJob<'a> {
    pub vault: &'a Vault,
    pub org: &'a Org,
    pub source: &'a str,
    /// The data type: its key is what the connector knows it by, its seed what SIDs derive from.
    pub ty: &'a TypeRow,
    pub connector: &'a dyn Connector,
    pub cycle: i64,
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

struct State<'a, 't, 'w> {
    job: &'a TypeJob<'a>,
    tx: &'t mut sqlx::AnyConnection,
    sink: &'t mut PackSink<'w>,
    sealed_at_start: u64,
    type_id: i64,
    live: HashMap<[u8; 10], Live>,
    buf: Vec<u8>,
    file_cache: HashMap<String, (String, String)>,
    pending: Vec<NewVersion>,
    pending_blobs: Vec<([u8; 16], Vec<u8>)>,
    stats: TypeStats,
    /// In a full read of an incremental source: the cursor its last read reached.
    drift_cursor: Option<String>,
    /// The cursor this cycle started from.
    prev_cursor: Option<String>,
    /// Records the read or listing skipped but the source confirmed: kept unchanged.
    kept_unread: u64,
    /// Records alive in the last snapshot.
    live_before: usize,
}

pub async fn backup_type(job: &TypeJob<'_>, writer: &mut Writer<'_>) -> Result<TypeStats> {
    let (tx, sink) = writer.parts().await?;
    let tx: &mut sqlx::AnyConnection = tx;
    let type_id = job.ty.id;
    let sealed_at_start = sink.sealed_bytes();
    let mut st = State {
        job,
        sink,
        sealed_at_start,
        type_id,
        live: HashMap::new(),
        buf: Vec::with_capacity(4096),
        file_cache: HashMap::new(),
        pending: Vec::new(),
        pending_blobs: Vec::new(),
        stats: TypeStats::default(),
        drift_cursor: None,
        prev_cursor: None,
        kept_unread: 0,
        live_before: 0,
        tx,
    };
    let t0 = std::time::Instant::now();
    st.load().await?;
    st.live_before = st.live.values().filter(|e| !e.deleted).count();
    tracing::debug!(data_type = job.ty.name, live = st.live.len(), "loaded current state in {:?}", t0.elapsed());
    let mode = st.plan().await?;
    st.stats.full_read = matches!(mode, ReadMode::Full);

    let (sender, rx) = mpsc::channel(4);
    let reader = job.connector.read(&job.ty.key, mode, sender);
    let st_ref = &mut st;
    // The consumer owns the receiver: when it stops, on an error or not, the receiver goes
    // with it and the reader's next send fails at once (a reader left sending into a full
    // channel nobody reads would wait for ever).
    let consumer = async move {
        let mut rx = rx;
        while let Some(batch) = rx.recv().await {
            for r in batch {
                st_ref.take(r).await?;
            }
            if st_ref.pending_blobs.len() >= 1000 {
                st_ref.flush().await?;
                crate::fault::point("batch-flushed");
            }
        }
        anyhow::Ok(())
    };
    let (read, consumed) = tokio::join!(reader, consumer);
    consumed?;
    let summary = read.map_err(|e| anyhow!("{e}"))?;
    tracing::debug!(data_type = job.ty.name, "read and compared in {:?}", t0.elapsed());
    if !st.stats.full_read {
        st.mark_listed().await?;
    }
    let stats = st.finish(summary.cursor).await;
    tracing::debug!(data_type = job.ty.name, "done in {:?}", t0.elapsed());
    stats
}

impl State<'_, '_, '_> {
    /// Only what changed since the cursor, for a source that can say, unless a full read
    /// is due; a full read of such a source also counts what its change feed missed.
    async fn plan(&mut self) -> Result<ReadMode> {
        let j = self.job;
        if !j.connector.incremental() {
            return Ok(ReadMode::Full);
        }
        let row = sqlx::query(
            "SELECT t.cursor, c.started_at FROM types t LEFT JOIN cycles c ON c.id = t.last_full_cycle WHERE t.id = $1",
        )
        .bind(self.type_id)
        .fetch_one(&mut *self.tx)
        .await?;
        let (cursor, last_full): (Option<String>, Option<String>) = (row.get(0), row.get(1));
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

    /// After a change feed: the id listing says which records exist; what it does not
    /// list is deleted, and what it lists that we never saw means the feed missed it.
    async fn mark_listed(&mut self) -> Result<()> {
        let j = self.job;
        let ids = j.connector.list_ids(&j.ty.key).await.map_err(|e| anyhow!("listing ids: {e}"))?;
        let mut missed = 0;
        for id in ids {
            match self.live.get_mut(&j.org.keys.record_key(j.source, &j.ty.seed, &id)) {
                Some(e) if !e.deleted || e.seen => e.seen = true,
                _ => missed += 1,
            }
        }
        if missed > 0 {
            return Err(MissedByFeed(missed).into());
        }
        self.stats.listed = self.live.values().filter(|e| e.seen && !e.deleted).count() as u64;
        Ok(())
    }

    async fn load(&mut self) -> Result<()> {
        let size: Option<i64> = sqlx::query("SELECT SUM(LENGTH(entries)) FROM type_state WHERE type_id = $1")
            .bind(self.type_id)
            .fetch_one(&mut *self.tx)
            .await?
            .get(0);
        match size {
            Some(bytes) => {
                self.live.reserve(bytes as usize / STATE_ENTRY);
                let mut parts = sqlx::query("SELECT entries FROM type_state WHERE type_id = $1 ORDER BY part")
                    .bind(self.type_id)
                    .fetch(&mut *self.tx);
                while let Some(row) = parts.try_next().await? {
                    decode_state(&row.get::<Vec<u8>, _>(0), &mut self.live)?;
                }
            }
            None => self.load_from_versions().await?,
        }
        let rows = sqlx::query("SELECT file_key, fingerprint, uid FROM file_cache WHERE type_id = $1")
            .bind(self.type_id)
            .fetch_all(&mut *self.tx)
            .await?;
        for r in rows {
            self.file_cache.insert(r.get(0), (r.get(1), r.get(2)));
        }
        Ok(())
    }

    /// The slow way to the same state, for a catalog without its `type_state` row.
    async fn load_from_versions(&mut self) -> Result<()> {
        let j = self.job;
        let mut rows = sqlx::query(
            "SELECT r.source_id, v.version, v.deleted, v.blob_id FROM versions v JOIN records r ON r.sid = v.sid \
             WHERE v.type_id = $1 AND v.to_cycle IS NULL",
        )
        .bind(self.type_id)
        .fetch(&mut *self.tx);
        while let Some(r) = rows.try_next().await? {
            let id: String = r.get(0);
            let blob: Option<Vec<u8>> = r.get(3);
            let mut hash = [0u8; 16];
            if let Some(b) = blob {
                hash.copy_from_slice(&b[..16]);
            }
            let live = Live {
                hash,
                raw: [0; 16],
                version: r.get::<i64, _>(1) as u32,
                deleted: r.get::<i64, _>(2) != 0,
                seen: false,
            };
            self.live.insert(j.org.keys.record_key(j.source, &j.ty.seed, &id), live);
        }
        Ok(())
    }

    async fn take(&mut self, rec: Record) -> Result<()> {
        let j = self.job;
        self.stats.listed += 1;
        let key = j.org.keys.record_key(j.source, &j.ty.seed, &rec.id);
        let raw = self.raw_hash(&rec);
        match self.live.get_mut(&key) {
            Some(e) if e.seen => {
                let at = rec.line.map(|l| format!(" (line {l})")).unwrap_or_default();
                bail!("{}: id {:?} appears twice{at}; ids must be unique", j.connector.location(&j.ty.key), rec.id);
            }
            Some(e) if !e.deleted && raw.is_some_and(|r| r == e.raw) => {
                e.seen = true;
                self.stats.unchanged += 1;
                return Ok(());
            }
            _ => {}
        }
        let bad_json = |e: serde_json::Error| {
            let at = rec.line.map(|l| format!(" line {l}")).unwrap_or_default();
            anyhow!("{}{at}: record {:?}: malformed JSON: {e}", j.connector.location(&j.ty.key), rec.id)
        };
        let data: Value = serde_json::from_str(&rec.json).map_err(bad_json)?;
        let mut files = Vec::with_capacity(rec.files.len());
        for f in &rec.files {
            files.push(self.file(f).await.with_context(|| {
                format!("{}: record {:?}: file {:?}", j.connector.location(&j.ty.key), rec.id, f.name)
            })?);
        }
        // Canonical JSON (serde_json sorts object keys) of {"data": .., "files": ..}.
        self.buf.clear();
        self.buf.extend_from_slice(b"{\"data\":");
        serde_json::to_writer(&mut self.buf, &data)?;
        if !files.is_empty() {
            self.buf.extend_from_slice(b",\"files\":");
            serde_json::to_writer(&mut self.buf, &files)?;
        }
        self.buf.push(b'}');
        let blob = j.org.keys.blob_id(&self.buf);
        let raw = raw.unwrap_or([0; 16]);
        let sid = || sid_of_key(&key);
        let drift = self.drift_cursor.as_ref().is_some_and(|c| rec.modified.as_ref().is_some_and(|m| m <= c));
        let (version, new_record, closes_previous) = match self.live.get_mut(&key) {
            None => {
                self.stats.drift += drift as u64;
                self.live.insert(key, Live { hash: blob, raw, version: 1, deleted: false, seen: true });
                self.stats.added += 1;
                (1, Some(rec.id.clone()), false)
            }
            Some(e) => {
                e.seen = true;
                e.raw = raw;
                if !e.deleted && e.hash == blob {
                    // Same content in other words (key order, spacing): not a new version.
                    self.stats.unchanged += 1;
                    return Ok(());
                }
                if e.deleted {
                    self.stats.added += 1
                } else {
                    self.stats.changed += 1
                }
                self.stats.drift += drift as u64;
                e.deleted = false;
                e.hash = blob;
                e.version += 1;
                (e.version, None, true)
            }
        };
        self.pending.push(NewVersion {
            sid: sid(),
            version,
            blob: Some(blob),
            size: self.buf.len(),
            new_record,
            closes_previous,
        });
        self.pending_blobs.push((blob, self.buf.clone()));
        Ok(())
    }

    /// Keyed hash of the record's text and its files' fingerprints; None when a file has
    /// no fingerprint (then only its bytes can tell whether it changed).
    fn raw_hash(&self, rec: &Record) -> Option<[u8; 16]> {
        let mut h = self.job.org.keys.hasher();
        h.update(rec.json.as_bytes());
        for f in &rec.files {
            h.update(b"\0");
            h.update(f.key.as_bytes());
            h.update(b"\0");
            h.update(f.fingerprint.as_ref()?.as_bytes());
        }
        Some(h.finalize().as_bytes()[..16].try_into().unwrap())
    }

    /// Stores a file (once per org, whatever refers to it) and says what the record keeps.
    async fn file(&mut self, f: &FileRef) -> Result<Value> {
        let j = self.job;
        if let (Some(fpr), Some((cached_fp, uid))) = (&f.fingerprint, self.file_cache.get(&f.key))
            && fpr == cached_fp
            && let Some((size, _)) = catalog::file(self.tx, j.org.id, uid).await?
        {
            return Ok(json!({ "key": f.key, "name": f.name, "size": size, "uid": uid }));
        }
        let mut reader = j.connector.fetch_file(f).await.map_err(|e| anyhow!("{e}"))?;
        let mut whole = j.org.keys.hasher();
        let mut pieces = Vec::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; FILE_PIECE];
        loop {
            let mut n = 0;
            while n < buf.len() {
                let k = reader.read(&mut buf[n..]).await?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            if n == 0 && !pieces.is_empty() {
                break;
            }
            let piece = &buf[..n];
            whole.update(piece);
            size += n as u64;
            let id = j.org.keys.blob_id(piece);
            if !self.sink.holds(&id)
                && catalog::existing_blobs(self.tx, j.vault.catalog.postgres, j.org.id, &[id]).await?.is_empty()
            {
                self.add_blob(BlobKind::FilePiece, id, piece.to_vec()).await?;
            }
            pieces.push(id);
            if n < buf.len() {
                break;
            }
        }
        self.stats.files_fetched += 1;
        let uid = hex::encode(&whole.finalize().as_bytes()[..16]);
        catalog::insert_file(self.tx, j.org.id, &uid, size, &pieces).await?;
        if let Some(fpr) = &f.fingerprint {
            sqlx::query(
                "INSERT INTO file_cache (type_id, file_key, fingerprint, uid) VALUES ($1,$2,$3,$4) \
                 ON CONFLICT (type_id, file_key) DO UPDATE SET fingerprint = excluded.fingerprint, uid = excluded.uid",
            )
            .bind(self.type_id)
            .bind(&f.key)
            .bind(fpr)
            .bind(&uid)
            .execute(&mut *self.tx)
            .await?;
            self.file_cache.insert(f.key.clone(), (fpr.clone(), uid.clone()));
        }
        Ok(json!({ "key": f.key, "name": f.name, "size": size, "uid": uid }))
    }

    async fn add_blob(&mut self, kind: BlobKind, id: [u8; 16], data: Vec<u8>) -> Result<()> {
        self.sink.add(self.tx, kind, id, &data).await
    }

    /// Packs pending blobs and writes pending version rows.
    async fn flush(&mut self) -> Result<()> {
        let j = self.job;
        let blobs = std::mem::take(&mut self.pending_blobs);
        let ids: Vec<[u8; 16]> = blobs.iter().map(|(id, _)| *id).collect();
        let existing = catalog::existing_blobs(self.tx, j.vault.catalog.postgres, j.org.id, &ids).await?;
        for (id, data) in blobs {
            if !existing.contains(&id) && !self.sink.holds(&id) {
                self.add_blob(BlobKind::Record, id, data).await?;
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let pg = j.vault.catalog.postgres;
        for batch in pending.chunks(BATCH) {
            let closing: Vec<&str> = batch.iter().filter(|v| v.closes_previous).map(|v| v.sid.as_str()).collect();
            if !closing.is_empty() {
                let mut p = Params::new(pg);
                let sql = format!(
                    "UPDATE versions SET to_cycle = {} WHERE type_id = {} AND to_cycle IS NULL AND sid IN ({})",
                    p.one(),
                    p.one(),
                    p.list(closing.len())
                );
                let mut q = sqlx::query(&sql).bind(j.cycle).bind(self.type_id);
                for s in &closing {
                    q = q.bind(*s);
                }
                let done = q.execute(&mut *self.tx).await?;
                if done.rows_affected() != closing.len() as u64 {
                    bail!(
                        "catalog inconsistency: {} current versions closed, {} expected",
                        done.rows_affected(),
                        closing.len()
                    );
                }
            }
            let new: Vec<(&str, &str)> =
                batch.iter().filter_map(|v| v.new_record.as_deref().map(|id| (v.sid.as_str(), id))).collect();
            if !new.is_empty() {
                let sql = format!(
                    "INSERT INTO records (sid, type_id, source_id, first_cycle) VALUES {}",
                    Params::new(pg).rows(new.len(), 4)
                );
                let mut q = sqlx::query(&sql);
                for (sid, id) in &new {
                    q = q.bind(*sid).bind(self.type_id).bind(*id).bind(j.cycle);
                }
                q.execute(&mut *self.tx).await.context("recording new records (an SID collision?)")?;
            }
            let sql = format!(
                "INSERT INTO versions (sid, version, type_id, from_cycle, deleted, blob_id, size) VALUES {}",
                Params::new(pg).rows(batch.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for v in batch {
                q = q
                    .bind(&v.sid)
                    .bind(v.version as i64)
                    .bind(self.type_id)
                    .bind(j.cycle)
                    .bind(v.blob.is_none() as i64)
                    .bind(v.blob.map(|b| b.to_vec()))
                    .bind(v.size as i64);
            }
            q.execute(&mut *self.tx).await?;
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
        let vanished: Vec<([u8; 16], String)> =
            self.live.iter().filter(|(_, e)| !e.seen && !e.deleted).map(|(fp, e)| (e.hash, sid_of_key(fp))).collect();
        if vanished.is_empty() {
            return Ok(());
        }
        let sids: Vec<String> = vanished.iter().map(|(_, sid)| sid.clone()).collect();
        let ids = catalog::source_ids(self.tx, j.vault.catalog.postgres, &sids).await?;
        let mut asked = Vec::with_capacity(vanished.len());
        for (blob, sid) in &vanished {
            let Some(id) = ids.get(sid) else { continue };
            let stored: serde_json::Value = serde_json::from_slice(&j.vault.read_blob(j.org, blob).await?)?;
            asked.push(Vanished { id: id.clone(), last: stored["data"].clone() });
        }
        let gone: std::collections::HashSet<String> = j
            .connector
            .confirm_deleted(&j.ty.key, asked)
            .await
            .map_err(|e| anyhow!("checking deletions: {e}"))?
            .into_iter()
            .collect();
        let mut kept = 0;
        for (fp, e) in self.live.iter_mut().filter(|(_, e)| !e.seen && !e.deleted) {
            if ids.get(&sid_of_key(fp)).is_some_and(|id| !gone.contains(id)) {
                e.seen = true;
                kept += 1;
            }
        }
        if kept > 0 {
            tracing::warn!(data_type = j.ty.name, "{kept} records the listing skipped still exist at the source: kept");
            self.stats.listed += kept;
            self.kept_unread += kept;
        }
        Ok(())
    }

    async fn finish(mut self, cursor: Option<String>) -> Result<TypeStats> {
        let mut cursor = cursor;
        let j = self.job;
        let vanished = self.live.values().filter(|e| !e.seen && !e.deleted).count();
        let had = self.live_before;
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
        for (fp, e) in self.live.iter_mut() {
            if !e.seen && !e.deleted {
                e.version += 1;
                e.deleted = true;
                self.stats.deleted += 1;
                self.pending.push(NewVersion {
                    sid: sid_of_key(fp),
                    version: e.version,
                    blob: None,
                    size: 0,
                    new_record: None,
                    closes_previous: true,
                });
            }
        }
        self.flush().await?;
        self.sink.end_chunk();
        self.stats.stored_bytes = self.sink.sealed_bytes() - self.sealed_at_start;
        let live: i64 =
            sqlx::query("SELECT COUNT(*) FROM versions WHERE type_id = $1 AND to_cycle IS NULL AND deleted = 0")
                .bind(self.type_id)
                .fetch_one(&mut *self.tx)
                .await?
                .get(0);
        self.stats.live = live as u64;
        if self.stats.live != self.stats.listed {
            bail!(
                "integrity: the snapshot would hold {} live records but the source listed {}; not committed",
                live,
                self.stats.listed
            );
        }
        self.save_state().await?;
        let s = &self.stats;
        sqlx::query(
            "INSERT INTO snapshots (type_id, cycle_id, taken_at, full_read, listed, live, added, changed, deleted, drift, stored_bytes) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
        )
        .bind(self.type_id)
        .bind(j.cycle)
        .bind(crate::util::now_rfc3339())
        .bind(s.full_read as i64)
        .bind(s.listed as i64)
        .bind(live)
        .bind(s.added as i64)
        .bind(s.changed as i64)
        .bind(s.deleted as i64)
        .bind(s.drift as i64)
        .bind(s.stored_bytes as i64)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE types SET last_full_cycle = CASE WHEN $1 = 1 THEN $2 ELSE last_full_cycle END, cursor = $3 WHERE id = $4")
            .bind(s.full_read as i64)
            .bind(j.cycle)
            .bind(cursor)
            .bind(self.type_id)
            .execute(&mut *self.tx)
            .await?;
        let stats = self.stats.clone();
        Ok(stats)
    }
}

use crate::vault::catalog::STATE_ENTRY;

/// Records per `type_state` row: rows of about 3 MB, so no buffer grows with the data type.
const STATE_PART: usize = 65_536;

impl State<'_, '_, '_> {
    /// Rewrites the data type's current state (always at least one row, so an empty data
    /// type is told from one whose state was never written).
    async fn save_state(&mut self) -> Result<()> {
        sqlx::query("DELETE FROM type_state WHERE type_id = $1").bind(self.type_id).execute(&mut *self.tx).await?;
        let mut buf = Vec::with_capacity(STATE_PART.min(self.live.len()) * STATE_ENTRY);
        let mut entries = self.live.iter().peekable();
        let mut part = 0i64;
        loop {
            buf.clear();
            for (k, e) in entries.by_ref().take(STATE_PART) {
                buf.extend_from_slice(k);
                buf.extend_from_slice(&e.hash);
                buf.extend_from_slice(&e.raw);
                buf.extend_from_slice(&e.version.to_le_bytes());
                buf.push(e.deleted as u8);
            }
            sqlx::query("INSERT INTO type_state (type_id, part, entries) VALUES ($1, $2, $3)")
                .bind(self.type_id)
                .bind(part)
                .bind(&buf[..])
                .execute(&mut *self.tx)
                .await?;
            part += 1;
            if entries.peek().is_none() {
                return Ok(());
            }
        }
    }
}

fn decode_state(b: &[u8], into: &mut HashMap<[u8; 10], Live>) -> Result<()> {
    if !b.len().is_multiple_of(STATE_ENTRY) {
        bail!("catalog: a type_state row is damaged ({} bytes)", b.len());
    }
    into.extend(b.chunks(STATE_ENTRY).map(|e| {
        let live = Live {
            hash: e[10..26].try_into().unwrap(),
            raw: e[26..42].try_into().unwrap(),
            version: u32::from_le_bytes(e[42..46].try_into().unwrap()),
            deleted: e[46] != 0,
            seen: false,
        };
        (e[..10].try_into().unwrap(), live)
    }));
    Ok(())
}
