//! Where a data type's backup goes: its own catalog transaction, and a pack filling with
//! its blobs. A data type commits alone (a failed one rolls back alone), and only after
//! its last pack is durably in the store, so the catalog never names a pack the store
//! may not have.

use anyhow::Result;
use std::collections::HashSet;

use crate::vault::catalog::{self, Lease, Tx};
use crate::vault::pack::{BlobId, BlobKind, FinishedPack, Packer};
use crate::vault::{Org, Vault};

/// Blobs on their way into packs.
pub struct PackSink<'a> {
    vault: &'a Vault,
    org: &'a Org,
    cycle: i64,
    packer: Packer,
    /// Ids in the pack being filled (those in written packs are in the catalog).
    in_packer: HashSet<BlobId>,
}

impl PackSink<'_> {
    pub fn holds(&self, id: &BlobId) -> bool {
        self.in_packer.contains(id)
    }

    /// Adds a blob; writes out a pack when one is full.
    pub async fn add(&mut self, conn: &mut sqlx::AnyConnection, kind: BlobKind, id: BlobId, data: &[u8]) -> Result<()> {
        self.in_packer.insert(id);
        if let Some(p) = self.packer.add(&self.org.keys.seal, kind, id, data) {
            self.write(conn, p).await?;
        }
        Ok(())
    }

    /// Bytes sealed so far.
    pub fn sealed_bytes(&self) -> u64 {
        self.packer.sealed_bytes()
    }

    /// Seals the open chunk: a data type's blobs share no chunk with the next one's, and its
    /// stored bytes are counted whole.
    pub fn end_chunk(&mut self) {
        self.packer.end_chunk(&self.org.keys.seal)
    }

    async fn write(&mut self, conn: &mut sqlx::AnyConnection, p: FinishedPack) -> Result<()> {
        let size = p.bytes.len();
        self.vault.put_pack(self.org, &p.name, p.bytes).await?;
        crate::fault::point("pack-written");
        catalog::insert_pack(conn, self.vault.catalog.postgres, self.org.id, self.cycle, &p.name, size, &p.entries)
            .await?;
        self.in_packer.clear();
        Ok(())
    }
}

pub struct Writer<'a> {
    vault: &'a Vault,
    tx: Option<Tx>,
    sink: PackSink<'a>,
    /// The source's lease: nothing commits once it is lost.
    lease: &'a Lease,
}

impl<'a> Writer<'a> {
    pub fn new(vault: &'a Vault, org: &'a Org, cycle: i64, lease: &'a Lease) -> Writer<'a> {
        let sink = PackSink { vault, org, cycle, packer: Packer::new(), in_packer: HashSet::new() };
        Writer { vault, tx: None, sink, lease }
    }

    /// The data type's transaction (opened on first use) and the pack sink.
    pub async fn parts(&mut self) -> Result<(&mut Tx, &mut PackSink<'a>)> {
        if self.tx.is_none() {
            self.tx = Some(self.vault.catalog.begin().await?);
        }
        Ok((self.tx.as_mut().expect("just opened"), &mut self.sink))
    }

    /// Writes the data type's last pack durably, then commits its transaction.
    pub async fn commit(&mut self) -> Result<()> {
        let Some(mut tx) = self.tx.take() else { return Ok(()) };
        if let Some(p) = self.sink.packer.finish(&self.sink.org.keys.seal) {
            self.sink.write(&mut tx, p).await?;
        }
        self.lease.confirm(&mut tx).await?;
        crate::fault::point("before-commit");
        tx.commit().await?;
        crate::fault::point("after-commit");
        Ok(())
    }

    /// Drops the data type's work: its transaction rolls back and its unwritten blobs go
    /// (packs it wrote are not in the catalog; the next cycle removes them).
    pub async fn abort(&mut self) -> Result<()> {
        self.sink.packer = Packer::new();
        self.sink.in_packer.clear();
        if let Some(tx) = self.tx.take() {
            tx.rollback().await?;
        }
        Ok(())
    }
}
