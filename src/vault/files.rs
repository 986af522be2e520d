//! Stored files: the pieces (1 MiB each) of a file, in order, each with its place and content
//! id. A file is stored once per org, whatever refers to it, and so is each piece.

use anyhow::{Result, bail};
use std::collections::HashMap;

use super::catalog::FileRecord;
use super::state::Loc;
use super::{BlobRef, Org, Vault};

pub(crate) fn encode_pieces(pieces: &[BlobRef]) -> Vec<u8> {
    pieces.iter().flat_map(|p| p.encode()).collect()
}

pub(crate) fn decode_pieces(b: &[u8]) -> Result<Vec<BlobRef>> {
    if !b.len().is_multiple_of(36) {
        bail!("catalog: a file's piece list of {} bytes is damaged", b.len());
    }
    b.chunks(36).map(BlobRef::decode).collect()
}

/// An org's stored files and pieces, for storing each only once.
#[derive(Default)]
pub struct FileIndex {
    pub files: HashMap<String, u64>,
    pub pieces: HashMap<[u8; 16], Loc>,
}

impl Vault {
    pub(crate) async fn file_index(&self, org: &Org) -> Result<FileIndex> {
        let mut ix = FileIndex::default();
        for f in self.catalog.file_records(org.id).await? {
            for p in decode_pieces(&f.pieces)? {
                ix.pieces.insert(p.id, p.loc);
            }
            ix.files.insert(f.uid, f.size);
        }
        Ok(ix)
    }

    /// A stored file's size and pieces.
    pub(crate) async fn file_pieces(&self, org: &Org, uid: &str) -> Result<Option<(u64, Vec<BlobRef>)>> {
        match self.catalog.file_record(org.id, uid).await? {
            Some(FileRecord { size, pieces, .. }) => Ok(Some((size, decode_pieces(&pieces)?))),
            None => Ok(None),
        }
    }
}
