//! The backup engine's door into the vault: one data type's part of a cycle. Blobs go into
//! packs as they come (a full pack is written to the store at once, durably); nothing reaches
//! the catalog until `commit`, which writes the cycle's state pages and then, in one short
//! transaction, names the packs, the files and the snapshot. A failure or a crash before then
//! leaves only packs no one names, which the next backup removes.

use anyhow::Result;
use std::collections::HashMap;

use super::catalog::{CommitRows, FileRecord, Lease, PackRecord, SnapshotRecord};
use super::files::{FileIndex, encode_pieces};
use super::pack::{BlobId, BlobKind, FinishedPack, Packer};
use super::read::TypeInfo;
use super::state::{Loc, Page, State};
use super::{BlobRef, Org, Vault};

/// How many deltas lie on top of the last checkpoint, and how many entries they hold: the
/// cost of reading the state, which a new checkpoint resets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chain {
    pub deltas: usize,
    pub entries: usize,
    pub has_checkpoint: bool,
}

impl Chain {
    /// A checkpoint is due when the deltas since the last one are many, or hold a quarter of
    /// the state: a reader then applies at most that much. Each delta is a blob read of its
    /// own (a chunk opened), which costs a reader about as much as a thousand entries of a
    /// checkpoint: a small data type (a few hundred attachments) is checkpointed at each
    /// change rather than read as a chain of 29 deltas, 29 chunks, at every backup.
    pub(crate) fn checkpoint_due(&self, delta: usize, state: usize) -> bool {
        !self.has_checkpoint
            || self.deltas + 1 >= 30
            || self.entries + delta > (state / 4).max(256)
            || (self.deltas + 1) * 1024 >= state
    }
}

/// A snapshot's counts, as the engine found them.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStats {
    pub full_read: bool,
    pub listed: u64,
    pub live: u64,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    pub drift: u64,
}

pub struct TypeWriter<'a> {
    vault: &'a Vault,
    org: &'a Org,
    ty: &'a TypeInfo,
    cycle: i64,
    lease: &'a Lease,
    packer: Packer,
    written: Vec<PackRecord>,
    index: &'a mut FileIndex,
    new_files: Vec<FileRecord>,
    new_pieces: HashMap<[u8; 16], Loc>,
    chain: Chain,
}

impl<'a> TypeWriter<'a> {
    pub fn new(
        vault: &'a Vault,
        org: &'a Org,
        ty: &'a TypeInfo,
        cycle: i64,
        lease: &'a Lease,
        index: &'a mut FileIndex,
        chain: Chain,
    ) -> TypeWriter<'a> {
        TypeWriter {
            vault,
            org,
            ty,
            cycle,
            lease,
            packer: Packer::new(),
            written: Vec::new(),
            index,
            new_files: Vec::new(),
            new_pieces: HashMap::new(),
            chain,
        }
    }

    async fn put(&mut self, kind: BlobKind, data: &[u8]) -> Result<BlobRef> {
        self.put_as(kind, self.org.keys.blob_id(data), data).await
    }

    async fn put_as(&mut self, kind: BlobKind, id: BlobId, data: &[u8]) -> Result<BlobRef> {
        let (loc, full) = self.packer.add(&self.org.keys.seal, kind, id, data);
        if let Some(p) = full {
            self.write(p).await?;
        }
        Ok(BlobRef { loc, id })
    }

    async fn write(&mut self, p: FinishedPack) -> Result<()> {
        let row = self.vault.put_pack(self.org, self.cycle, p).await?;
        crate::fault::point("pack-written");
        self.written.push(row);
        Ok(())
    }

    /// Stores a record version's canonical bytes, whose content id (`Org::keys.blob_id`)
    /// the caller has already worked out: their place.
    pub async fn put_record(&mut self, id: BlobId, bytes: &[u8]) -> Result<BlobRef> {
        debug_assert_eq!(id, self.org.keys.blob_id(bytes), "a record's content id is of its bytes");
        self.put_as(BlobKind::Record, id, bytes).await
    }

    /// Where a file piece with this content id is already stored, if it is.
    pub fn piece(&self, id: &[u8; 16]) -> Option<BlobRef> {
        self.index.pieces.get(id).or_else(|| self.new_pieces.get(id)).map(|loc| BlobRef { loc: *loc, id: *id })
    }

    pub async fn put_piece(&mut self, bytes: &[u8]) -> Result<BlobRef> {
        let r = self.put(BlobKind::FilePiece, bytes).await?;
        self.new_pieces.insert(r.id, r.loc);
        Ok(r)
    }

    /// The size of a stored file, if it is stored.
    pub fn file(&self, uid: &str) -> Option<u64> {
        self.index.files.get(uid).copied().or_else(|| self.new_files.iter().find(|f| f.uid == uid).map(|f| f.size))
    }

    pub fn add_file(&mut self, uid: &str, size: u64, pieces: &[BlobRef]) {
        if self.file(uid).is_none() {
            self.new_files.push(FileRecord { uid: uid.to_string(), size, pieces: encode_pieces(pieces) });
        }
    }

    /// Bytes sealed so far.
    pub fn sealed_bytes(&self) -> u64 {
        self.packer.sealed_bytes()
    }

    /// Writes the cycle's pages and last pack durably, then commits the snapshot. `state` is
    /// the data type's state after `delta`. Returns the bytes stored.
    pub async fn commit(
        mut self,
        stats: &SnapshotStats,
        delta: Page,
        state: State,
        cursor: Option<String>,
    ) -> Result<u64> {
        // A data type's records share no chunk with its pages.
        self.packer.end_chunk();
        let changed = !delta.entries.is_empty() || !delta.files.is_empty();
        // A data type's first delta holds every record: it is its first checkpoint too.
        let whole = !self.chain.has_checkpoint
            && delta.entries.len() == state.entries.len()
            && delta.files.len() == state.files.len();
        let (delta_ref, checkpoint_ref) = if !changed {
            (None, None)
        } else if whole {
            let r = self.put(BlobKind::State, &delta.encode()).await?;
            (Some(r), Some(r))
        } else {
            let d = self.put(BlobKind::State, &delta.encode()).await?;
            let c = match self.chain.checkpoint_due(delta.entries.len(), state.entries.len()) {
                true => Some(self.put(BlobKind::State, &state.to_page().encode()).await?),
                false => None,
            };
            (Some(d), c)
        };
        for p in self.packer.finish(&self.org.keys.seal) {
            self.write(p).await?;
        }
        let stored = self.packer.sealed_bytes();
        let snapshot = SnapshotRecord {
            type_id: self.ty.id.0,
            cycle: self.cycle,
            taken_at: crate::util::now_rfc3339(),
            full_read: stats.full_read,
            listed: stats.listed as i64,
            live: stats.live as i64,
            added: stats.added as i64,
            changed: stats.changed as i64,
            deleted: stats.deleted as i64,
            drift: stats.drift as i64,
            stored_bytes: stored as i64,
            delta: delta_ref.map(|r| r.encode()),
            checkpoint: checkpoint_ref.map(|r| r.encode()),
        };
        let files = std::mem::take(&mut self.new_files);
        let rows = CommitRows {
            packs: std::mem::take(&mut self.written),
            files: files.iter().map(|f| (self.org.id, f.clone())).collect(),
            snapshot,
            cursor,
        };
        self.vault.catalog.commit_type(self.lease, rows).await?;
        for f in files {
            self.index.files.insert(f.uid, f.size);
        }
        self.index.pieces.extend(self.new_pieces.drain());
        // The chain the next backup of this data type stands on, so that a state it finds
        // remembered is checkpointed when due, not at every cycle.
        let chain = match (&delta_ref, &checkpoint_ref) {
            (_, Some(_)) => Chain { deltas: 0, entries: 0, has_checkpoint: true },
            (Some(_), None) => Chain {
                deltas: self.chain.deltas + 1,
                entries: self.chain.entries + delta.entries.len(),
                has_checkpoint: self.chain.has_checkpoint,
            },
            (None, None) => self.chain,
        };
        self.vault.remember_state(self.ty.id.0, self.cycle, state, chain);
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    fn chain(deltas: usize, entries: usize) -> Chain {
        Chain { deltas, entries, has_checkpoint: true }
    }

    #[test]
    fn a_small_state_is_checkpointed_rather_than_read_through_deltas() {
        // 645 attachments, 5 new a day: no chain of deltas to read at the next backup.
        assert!(chain(0, 0).checkpoint_due(5, 645));
        // 4,000 records: a chain of at most 3 deltas before a checkpoint.
        assert!(!chain(2, 20).checkpoint_due(10, 4000));
        assert!(chain(3, 30).checkpoint_due(10, 4000));
    }

    #[test]
    fn a_large_state_is_checkpointed_when_its_deltas_are_a_quarter_of_it_or_thirty() {
        // 250,000 records, 1% changed a day.
        assert!(!chain(0, 0).checkpoint_due(2500, 250_000));
        assert!(!chain(23, 60_000).checkpoint_due(2500, 250_000));
        assert!(chain(24, 62_500).checkpoint_due(2500, 250_000));
        // Few changes: thirty deltas at most.
        assert!(!chain(28, 28).checkpoint_due(1, 250_000));
        assert!(chain(29, 29).checkpoint_due(1, 250_000));
        assert!(!Chain::default().has_checkpoint && Chain::default().checkpoint_due(1, 250_000));
    }
}
