//! Forgetting snapshots and pruning what no snapshot needs.
//!
//! `forget` keeps the cycles it is given of each data type and rewrites the type's state
//! pages so that each kept snapshot's delta is what changed since the previous kept one (the
//! versions seen only on forgotten days drop out of the history). `prune` then finds, from
//! every remaining snapshot's state, which record blobs and files are still needed: packs
//! holding none of them go, packs that are mostly unused have their live blobs copied into new
//! packs, files no kept version refers to go, and every data type's pages are written anew
//! with the new places.
//!
//! Both run under the org's lease with no backup of the org running, and in the order that
//! makes an interruption harmless: new packs are written durably first (until the catalog
//! names them they are unreferenced packs, which the next backup removes), then one catalog
//! transaction swaps old for new, then the old packs are deleted from the store (until then
//! they are unreferenced packs too).

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::catalog::{Lease, LockError, PackRecord, RewriteRows, SnapshotRecord};
use super::files::{decode_pieces, encode_pieces};
use super::pack::{BlobKind, FinishedPack, Packer};
use super::read::{RawStoredVersion, TypeId, TypeInfo};
use super::state::{Loc, Page, State};
use super::write::Chain;
use super::{BlobRef, Org, Vault};

/// A pack is repacked when less than this share of its bytes is still needed.
const REPACK_BELOW: f64 = 0.5;

/// What a forget or a prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct RewriteStats {
    pub org: String,
    pub dry_run: bool,
    pub snapshots_forgotten: u64,
    pub types_rewritten: u64,
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub files_removed: u64,
    /// Packs no catalog row named (left by an interrupted backup, forget or prune).
    pub orphans_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A data type's kept cycles, by type id.
pub type Keep = BTreeMap<i64, BTreeSet<i64>>;

impl Vault {
    /// The org's lease, when nothing else reads or writes the org's snapshots: no backup, no
    /// archive being built or queued, no restore queued or running (each reads versions that
    /// a forget or prune could take away under it). Whoever starts such work after this lease
    /// is taken sees it (`Vault::rewrite_running`) and waits.
    async fn exclusive(&self, org: &Org, what: &str) -> Result<Lease> {
        let sid = org.sid.as_str();
        let lease = self.catalog.acquire(&super::lease::org(sid), what).await?;
        let conflict = match self.readers_of(org).await {
            Ok(c) => c,
            Err(e) => {
                lease.release().await?;
                return Err(e);
            }
        };
        if let Some((other, holder)) = conflict {
            lease.release().await?;
            return Err(LockError::Conflict { what: what.to_string(), other, holder }.into());
        }
        Ok(lease)
    }

    /// Work on the org that a rewrite of its snapshots must wait for, and who holds it.
    async fn readers_of(&self, org: &Org) -> Result<Option<(String, String)>> {
        let sid = org.sid.as_str();
        let prefix = super::lease::source(sid, "");
        if let Some((name, holder)) = self.catalog.live_leases(|n| n.starts_with(&prefix)).await?.pop() {
            let source = name.strip_prefix(&prefix).unwrap_or(&name).to_string();
            return Ok(Some((format!("the backup of {sid}/{source}"), holder)));
        }
        let building: HashMap<String, i64> = self
            .catalog
            .archive_rows(Some(org.id))
            .await?
            .into_iter()
            .filter(|a| a.status == "in_progress")
            .map(|a| (a.lease, a.id))
            .collect();
        if let Some((name, holder)) = self.catalog.live_leases(|n| building.contains_key(n)).await?.pop() {
            return Ok(Some((format!("the build of archive {}", building[&name]), holder)));
        }
        if let Some(j) = self.catalog.open_jobs_of(sid, &["archive", "restore"]).await?.into_iter().next() {
            let holder = j.holder.filter(|_| j.state == "running").unwrap_or_else(|| "queued".into());
            return Ok(Some((format!("the {} job {} of org {sid}", j.kind, j.id), holder)));
        }
        Ok(None)
    }

    /// Takes the lease `name` for work on org `sid` that reads or writes its snapshots (a
    /// backup, an archive build): refused, the lease let go, while a forget, prune or erasure
    /// of the org runs.
    pub async fn lease_unless_rewriting(&self, name: &str, what: &str, sid: &str) -> Result<Lease> {
        let lease = self.catalog.acquire(name, what).await?;
        if let Err(e) = self.rewrite_running(sid, what).await {
            lease.release().await?;
            return Err(e);
        }
        Ok(lease)
    }

    /// A forget or prune of the org that runs now, and who holds it: work that reads the org's
    /// snapshots (an archive build, a restore) does not start under one.
    pub async fn rewrite_running(&self, sid: &str, what: &str) -> Result<()> {
        let org = super::lease::org(sid);
        match self.catalog.live_leases(|n| n == org).await?.pop() {
            None => Ok(()),
            Some((_, holder)) => Err(LockError::Conflict {
                what: what.to_string(),
                other: format!("an erasure, forget or prune of org {sid}"),
                holder,
            }
            .into()),
        }
    }

    /// Keeps, of each data type in `keep`, only the snapshots of the cycles named there.
    /// Refuses to leave a data type with no snapshot.
    pub async fn forget(&self, sid: &str, keep: &Keep, dry_run: bool) -> Result<RewriteStats> {
        let org = self.existing_org(sid).await?.with_context(|| format!("no org {sid:?} in the vault"))?;
        let lease = self.exclusive(&org, &format!("forgetting snapshots of org {sid}")).await?;
        let r = self.forget_leased(&org, &lease, keep, dry_run).await;
        lease.release().await?;
        r
    }

    async fn forget_leased(&self, org: &Org, lease: &Lease, keep: &Keep, dry_run: bool) -> Result<RewriteStats> {
        let mut stats = RewriteStats { org: org.sid.clone(), dry_run, ..Default::default() };
        let mut rw = Rewrite::new(org);
        for ty in self.types(Some(&org.sid)).await? {
            let Some(kept) = keep.get(&ty.id.0) else { continue };
            let snaps = self.catalog.snapshot_records(Some(ty.id.0)).await?;
            let forgotten: Vec<i64> = snaps.iter().map(|s| s.cycle).filter(|c| !kept.contains(c)).collect();
            if forgotten.is_empty() {
                continue;
            }
            if forgotten.len() == snaps.len() {
                bail!("forgetting every snapshot of {} is refused: a data type keeps at least one", ty.full_name());
            }
            stats.snapshots_forgotten += forgotten.len() as u64;
            stats.types_rewritten += 1;
            if !dry_run {
                self.rebuild_type(&mut rw, &ty, &snaps, kept, &HashMap::new(), None).await?;
                rw.rows.snapshots_removed.extend(forgotten.iter().map(|c| (ty.id.0, *c)));
            }
        }
        if dry_run || stats.types_rewritten == 0 {
            return Ok(stats);
        }
        stats.packs_written = self.finish(org, lease, rw).await?;
        Ok(stats)
    }

    /// Removes what no snapshot of the org needs any more, and repacks mostly unused packs.
    pub async fn prune(&self, sid: &str, dry_run: bool) -> Result<RewriteStats> {
        let org = self.existing_org(sid).await?.with_context(|| format!("no org {sid:?} in the vault"))?;
        let lease = self.exclusive(&org, &format!("the prune of org {sid}")).await?;
        let r = self.prune_leased(&org, &lease, dry_run).await;
        lease.release().await?;
        r
    }

    async fn prune_leased(&self, org: &Org, lease: &Lease, dry_run: bool) -> Result<RewriteStats> {
        let mut stats = RewriteStats { org: org.sid.clone(), dry_run, ..Default::default() };
        if !dry_run {
            // What an interrupted backup, forget or prune left: no writer of the org is live.
            let before = self.store_now(org).await?;
            stats.orphans_removed = self.remove_unreferenced_packs(org, before).await?;
        }
        let types = self.types(Some(&org.sid)).await?;

        // What every snapshot's state still points at: record blobs, and (through the
        // contents that name files) files and their pieces.
        let mut records: HashSet<Loc> = HashSet::new();
        let mut with_files: HashMap<Loc, [u8; 3]> = HashMap::new();
        let mut snaps_of = Vec::new();
        for ty in &types {
            let snaps = self.catalog.snapshot_records(Some(ty.id.0)).await?;
            for s in &snaps {
                let (state, _) = self.state_at(ty.id, Some(s.cycle)).await?;
                for (_, e) in &state.entries {
                    if records.insert(e.loc) && e.has_files {
                        with_files.insert(e.loc, e.check);
                    }
                }
            }
            snaps_of.push((ty.clone(), snaps));
        }
        let reader = self.reader_handle();
        let mut live_uids = HashSet::new();
        for (loc, check) in &with_files {
            let bytes = reader.read_at(org, loc, check).await?;
            for f in RawStoredVersion::decode(&bytes)?.files {
                live_uids.insert(f.uid);
            }
        }
        let files = self.catalog.file_records(org.id).await?;
        let mut pieces: HashSet<Loc> = HashSet::new();
        let mut dead_files = Vec::new();
        for f in &files {
            if live_uids.contains(&f.uid) {
                pieces.extend(decode_pieces(&f.pieces)?.iter().map(|p| p.loc));
            } else {
                dead_files.push(f.uid.clone());
            }
        }

        // Each pack's share still needed, counted by chunk (a chunk is read whole).
        let packs = self.catalog.pack_records(Some(org.id)).await?;
        let mut live_chunks: HashSet<(u64, u32)> = HashSet::new();
        for l in records.iter().chain(&pieces) {
            live_chunks.insert((l.pack, l.chunk));
        }
        let (mut doomed, mut repack) = (Vec::new(), Vec::new());
        for p in &packs {
            stats.bytes_before += p.size;
            let live: u64 = p
                .chunks
                .iter()
                .filter(|(off, _)| live_chunks.contains(&(p.pid, *off)))
                .map(|(_, len)| *len as u64)
                .sum();
            if live == 0 {
                doomed.push(p.clone());
            } else if (live as f64) < REPACK_BELOW * p.size as f64 {
                repack.push(p.clone());
            }
        }
        stats.packs_removed = doomed.len() as u64;
        stats.packs_repacked = repack.len() as u64;
        stats.files_removed = dead_files.len() as u64;
        if doomed.is_empty() && repack.is_empty() && dead_files.is_empty() {
            stats.bytes_after = stats.bytes_before;
            return Ok(stats);
        }
        if dry_run {
            let gone: u64 = doomed.iter().chain(&repack).map(|p| p.size).sum();
            stats.bytes_after = stats.bytes_before - gone;
            stats.types_rewritten = types.len() as u64;
            return Ok(stats);
        }

        // Copy the live blobs of the packs to repack, chunk by chunk in pack order.
        let mut rw = Rewrite::new(org);
        let moving: HashSet<u64> = repack.iter().map(|p| p.pid).collect();
        let mut to_copy: Vec<(Loc, BlobKind)> = records
            .iter()
            .filter(|l| moving.contains(&l.pack))
            .map(|l| (*l, BlobKind::Record))
            .chain(pieces.iter().filter(|l| moving.contains(&l.pack)).map(|l| (*l, BlobKind::FilePiece)))
            .collect();
        to_copy.sort_by_key(|(l, _)| (l.pack, l.chunk, l.offset));
        let mut remap: HashMap<Loc, Loc> = HashMap::new();
        for (old, kind) in to_copy {
            let data = reader.read_at(org, &old, &[]).await?;
            let new = rw.put(self, kind, &data).await?;
            remap.insert(old, new.loc);
        }
        rw.packer.end_chunk();

        for (ty, snaps) in &snaps_of {
            if snaps.is_empty() {
                continue;
            }
            let kept: BTreeSet<i64> = snaps.iter().map(|s| s.cycle).collect();
            self.rebuild_type(&mut rw, ty, snaps, &kept, &remap, Some(&live_uids)).await?;
            stats.types_rewritten += 1;
        }
        for f in &files {
            if !live_uids.contains(&f.uid) {
                continue;
            }
            let mut ps = decode_pieces(&f.pieces)?;
            if ps.iter().any(|p| remap.contains_key(&p.loc)) {
                for p in &mut ps {
                    if let Some(n) = remap.get(&p.loc) {
                        p.loc = *n;
                    }
                }
                rw.rows.files_updated.push((f.uid.clone(), encode_pieces(&ps)));
            }
        }
        rw.rows.files_removed = dead_files;
        rw.rows.packs_removed = doomed.iter().chain(&repack).map(|p| p.pid).collect();
        let old: Vec<PackRecord> = doomed.into_iter().chain(repack).collect();
        stats.packs_written = self.finish(org, lease, rw).await?;
        crate::fault::point("prune-committed");
        for (i, p) in old.iter().enumerate() {
            self.store
                .delete(&Vault::pack_path(org, &p.name))
                .await
                .with_context(|| format!("removing pack {} from {}", p.name, self.store_display))?;
            if i == 0 {
                crate::fault::point("prune-first-pack-deleted");
            }
        }
        stats.bytes_after = self.catalog.pack_records(Some(org.id)).await?.iter().map(|p| p.size).sum();
        Ok(stats)
    }

    /// Writes a data type's pages anew for the `kept` cycles of `snaps` (its snapshots, oldest
    /// first): each kept snapshot's delta against the kept one before it, checkpoints as a
    /// backup would place them, blobs' places moved by `remap`, and the file cache limited
    /// to `live_uids` (so no later backup takes a removed file for stored).
    async fn rebuild_type(
        &self,
        rw: &mut Rewrite<'_>,
        ty: &TypeInfo,
        snaps: &[SnapshotRecord],
        kept: &BTreeSet<i64>,
        remap: &HashMap<Loc, Loc>,
        live_uids: Option<&HashSet<String>>,
    ) -> Result<()> {
        let mut prev = State::default();
        let mut chain = Chain::default();
        let mut prev_was_kept = true;
        let mut first = true;
        for s in snaps {
            if !kept.contains(&s.cycle) {
                prev_was_kept = false;
                continue;
            }
            let (st, _) = self.state_at(TypeId(ty.id.0), Some(s.cycle)).await?;
            let mut st = (*st).clone();
            for (_, e) in &mut st.entries {
                if let Some(n) = remap.get(&e.loc) {
                    e.loc = *n;
                }
            }
            if let Some(live) = live_uids {
                st.files.retain(|_, f| live.contains(&f.uid));
            }
            let delta = Page {
                entries: st.entries.iter().filter(|(k, e)| prev.get(k) != Some(e)).cloned().collect(),
                files: st
                    .files
                    .iter()
                    .filter(|(k, f)| prev.files.get(*k) != Some(*f))
                    .map(|(k, f)| (k.clone(), f.clone()))
                    .collect(),
            };
            let mut row = s.clone();
            if !prev_was_kept {
                // The days between are gone: count against the kept day before.
                let (mut added, mut changed, mut deleted) = (0, 0, 0);
                for (k, e) in &delta.entries {
                    match (prev.get(k), e.deleted) {
                        (None, false) => added += 1,
                        (Some(p), false) if p.deleted => added += 1,
                        (Some(_), false) => changed += 1,
                        (Some(p), true) if !p.deleted => deleted += 1,
                        _ => {}
                    }
                }
                (row.added, row.changed, row.deleted) = (added, changed, deleted);
            }
            let changed = !delta.entries.is_empty() || !delta.files.is_empty();
            let (d, c) = if !changed {
                (None, None)
            } else if first || !chain.has_checkpoint {
                let r = rw.put(self, BlobKind::State, &delta.encode()).await?;
                // A first delta that is not the whole state (the state before is empty, so it is).
                (Some(r), Some(r))
            } else {
                let d = rw.put(self, BlobKind::State, &delta.encode()).await?;
                let c = match chain.checkpoint_due(delta.entries.len(), st.entries.len()) {
                    true => Some(rw.put(self, BlobKind::State, &st.to_page().encode()).await?),
                    false => None,
                };
                (Some(d), c)
            };
            if c.is_some() {
                chain = Chain { deltas: 0, entries: 0, has_checkpoint: true };
            } else if d.is_some() {
                chain.deltas += 1;
                chain.entries += delta.entries.len();
            }
            row.delta = d.map(|r| r.encode());
            row.checkpoint = c.map(|r| r.encode());
            rw.rows.snapshots_updated.push(row);
            prev = st;
            prev_was_kept = true;
            first = false;
        }
        rw.packer.end_chunk();
        Ok(())
    }

    /// Writes the last pack, then swaps old for new in one transaction. Returns the packs
    /// written.
    async fn finish(&self, org: &Org, lease: &Lease, mut rw: Rewrite<'_>) -> Result<u64> {
        for p in rw.packer.finish(&org.keys.seal) {
            rw.write(self, p).await?;
        }
        crate::fault::point("prune-packs-written");
        let written = rw.written.len() as u64;
        rw.rows.packs_added = std::mem::take(&mut rw.written);
        rw.rows.org_id = org.id;
        self.catalog.rewrite_org(lease, rw.rows).await?;
        self.drop_cached_states();
        Ok(written)
    }
}

/// New packs being written for one org, and the rows that will name them.
struct Rewrite<'a> {
    org: &'a Org,
    packer: Packer,
    written: Vec<PackRecord>,
    rows: RewriteRows,
    cycle: i64,
}

impl<'a> Rewrite<'a> {
    fn new(org: &'a Org) -> Rewrite<'a> {
        Rewrite { org, packer: Packer::new(), written: Vec::new(), rows: RewriteRows::default(), cycle: 0 }
    }

    async fn put(&mut self, vault: &Vault, kind: BlobKind, data: &[u8]) -> Result<BlobRef> {
        let id = self.org.keys.blob_id(data);
        let (loc, full) = self.packer.add(&self.org.keys.seal, kind, id, data);
        if let Some(p) = full {
            self.write(vault, p).await?;
        }
        Ok(BlobRef { loc, id })
    }

    async fn write(&mut self, vault: &Vault, p: FinishedPack) -> Result<()> {
        self.written.push(vault.put_pack(self.org, self.cycle, p).await?);
        Ok(())
    }
}
