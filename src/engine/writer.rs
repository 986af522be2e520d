//! The catalog transaction of a cycle for one org, and the pack being filled. Each data
//! type runs in a savepoint inside it (a failed type rolls back alone). The transaction
//! commits, after its pack is durably written, at the org's end and whenever it has been
//! open a while, so a fast cycle pays one fsync'd pack and one commit, and a slow one
//! (an API at its rate limit) still commits as it goes.

use anyhow::Result;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::vault::catalog::{self, Tx};
use crate::vault::pack::{BlobId, BlobKind, FinishedPack, Packer};
use crate::vault::{Org, Vault};

const COMMIT_AFTER: Duration = Duration::from_secs(20);

/// Blobs on their way into packs, shared by the data types of one transaction.
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

    /// Seals what the data type added so far; returns the sealed bytes of everything yet.
    pub fn end_chunk(&mut self) -> u64 {
        self.packer.end_chunk(&self.org.keys.seal);
        self.packer.sealed_bytes()
    }

    async fn write(&mut self, conn: &mut sqlx::AnyConnection, p: FinishedPack) -> Result<()> {
        let size = p.bytes.len();
        self.vault.put_pack(self.org, &p.name, p.bytes).await?;
        crate::fault::point("pack-written");
        catalog::insert_pack(conn, self.org.id, self.cycle, &p.name, size, &p.entries).await?;
        self.in_packer.clear();
        Ok(())
    }
}

pub struct Writer<'a> {
    vault: &'a Vault,
    org: &'a Org,
    tx: Option<Tx>,
    sink: PackSink<'a>,
    opened: Instant,
}

impl<'a> Writer<'a> {
    pub async fn begin(vault: &'a Vault, org: &'a Org, cycle: i64) -> Result<Writer<'a>> {
        let tx = vault.catalog.begin().await?;
        let sink = PackSink { vault, org, cycle, packer: Packer::new(), in_packer: HashSet::new() };
        Ok(Writer { vault, org, tx: Some(tx), sink, opened: Instant::now() })
    }

    /// The open transaction and the pack sink, for a data type to work in.
    pub fn parts(&mut self) -> (&mut Tx, &mut PackSink<'a>) {
        (self.tx.as_mut().expect("a writer always holds an open transaction"), &mut self.sink)
    }

    /// Commits if the transaction has been open long enough; called between data types.
    pub async fn maybe_commit(&mut self) -> Result<()> {
        if self.opened.elapsed() >= COMMIT_AFTER {
            self.commit_now().await?;
            self.tx = Some(self.vault.catalog.begin().await?);
            self.opened = Instant::now();
        }
        Ok(())
    }

    async fn commit_now(&mut self) -> Result<()> {
        let mut tx = self.tx.take().expect("a writer always holds an open transaction");
        if let Some(p) = self.sink.packer.finish(&self.org.keys.seal) {
            self.sink.write(&mut tx, p).await?;
        }
        crate::fault::point("before-commit");
        tx.commit().await?;
        crate::fault::point("after-commit");
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.commit_now().await
    }
}
