//! Integrity: the catalog against the store, every data type's state against its snapshots,
//! and (with read_data) every byte of every pack decrypted and checked against the ids that
//! the state pages and files name.

use anyhow::Result;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

use super::files::decode_pieces;
use super::state::State;
use super::{BlobRef, Org, Vault, pack};

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub packs: u64,
    pub blobs: u64,
    pub bytes_read: u64,
    /// Damage or loss: check fails.
    pub problems: Vec<String>,
    /// Harmless leftovers (packs of an interrupted backup, removed by the next one).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A blob the catalog names: where, the first `check_len` bytes of its id (all 16 where the
/// catalog has them), and what it stands for. A vault holds millions: the message naming it
/// is made only for one with a problem.
struct Ref {
    loc: super::state::Loc,
    check: [u8; 16],
    check_len: u8,
    what: What,
}

impl Ref {
    fn new(loc: super::state::Loc, check: &[u8], what: What) -> Ref {
        let mut c = [0; 16];
        let n = check.len().min(16);
        c[..n].copy_from_slice(&check[..n]);
        Ref { loc, check: c, check_len: n as u8, what }
    }

    fn check(&self) -> &[u8] {
        &self.check[..self.check_len as usize]
    }
}

enum What {
    /// A state page: the data type (an index into `Refs::types`), delta or checkpoint, cycle.
    Page(usize, &'static str, i64),
    Version(super::state::Key, u32),
    /// A file (an index into `Refs::files`) and the piece's number, from 1.
    Piece(usize, usize),
}

#[derive(Default)]
struct Refs {
    list: Vec<Ref>,
    types: Vec<String>,
    files: Vec<String>,
}

impl Refs {
    fn describe(&self, w: &What) -> String {
        match w {
            What::Page(t, kind, cycle) => format!("the {kind} of {} at cycle {cycle}", self.types[*t]),
            What::Version(k, v) => format!("record {} version {v}", crate::util::base32(k)),
            What::Piece(f, i) => format!("file {} piece {i}", self.files[*f]),
        }
    }
}

pub async fn check(vault: &Vault, read_data: bool) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    let packs = vault.catalog.pack_records(None).await?;
    rep.packs = packs.len() as u64;
    let in_store = vault.stored_packs().await?;
    let known: HashSet<&str> = packs.iter().map(|p| p.name.as_str()).collect();
    let orphans = in_store.keys().filter(|n| super::is_pack_name(n) && !known.contains(n.as_str())).count();
    if orphans > 0 {
        rep.notes.push(format!(
            "{orphans} packs in the store are not in the catalog (left by an interrupted backup; the next backup removes them)"
        ));
    }
    let mut readable = HashSet::new();
    for p in &packs {
        match in_store.get(&p.name) {
            None => rep.problems.push(format!("pack {} is missing from the store", p.name)),
            Some((_, size)) if *size != p.size => {
                rep.problems.push(format!("pack {} has {size} bytes in the store, {} in the catalog", p.name, p.size))
            }
            _ => {
                readable.insert(p.pid);
            }
        }
    }
    let chunks: HashMap<u64, HashSet<u32>> =
        packs.iter().map(|p| (p.pid, p.chunks.iter().map(|(o, _)| *o).collect())).collect();

    for sid in vault.catalog.org_sids().await? {
        let Some(org) = vault.existing_org(&sid).await? else { continue };
        // The packs are read and verified (the store and the cipher, on the blocking pool)
        // while the references are gathered (the catalog and the state pages, here).
        let reading = read_data.then(|| read_packs(vault, &org, &packs, &readable));
        let refs = references(vault, &org, &mut rep).await?;
        rep.blobs += refs.list.len() as u64;
        // Every reference names a pack the catalog has, at one of its chunks.
        for Ref { loc, what, .. } in &refs.list {
            let what = || refs.describe(what);
            match chunks.get(&loc.pack) {
                None => rep.problems.push(format!("org {sid}: {} is in a pack the catalog does not have", what())),
                Some(c) if !c.contains(&loc.chunk) => {
                    rep.problems.push(format!("org {sid}: {} names a chunk its pack does not have", what()))
                }
                Some(_) if !readable.contains(&loc.pack) => {
                    rep.problems.push(format!("org {sid}: {} is lost with its pack", what()))
                }
                Some(_) => {}
            }
        }
        if let Some((mine, verified)) = reading {
            match_packs(&org, &mine, verified, &readable, &refs, &mut rep).await?;
        }
    }
    rep.problems.dedup();
    Ok(rep)
}

/// Every blob the org's catalog names: state pages, every version they hold, file pieces.
/// Checks each data type's latest state against its last snapshot on the way.
async fn references(vault: &Vault, org: &Org, rep: &mut CheckReport) -> Result<Refs> {
    let mut refs = Refs::default();
    for t in vault.types(Some(&org.sid)).await? {
        let ti = refs.types.len();
        refs.types.push(t.full_name());
        // The state as the pages read so far make it, as a reader builds it: each page is
        // read once, and a version a page shares with the state is named once.
        let (mut state, mut whole) = (State::default(), true);
        let snaps = vault.catalog.snapshot_records(Some(t.id.0)).await?;
        for s in &snaps {
            for (page, kind) in [(&s.delta, "delta"), (&s.checkpoint, "checkpoint")] {
                let Some(p) = page else { continue };
                // A data type's first delta is its first checkpoint too: one blob, read once.
                if kind == "delta" && s.delta == s.checkpoint {
                    continue;
                }
                let r = BlobRef::decode(p)?;
                let what = What::Page(ti, kind, s.cycle);
                let page = match vault.page(org, &t, p).await {
                    Ok(p) => p,
                    Err(e) => {
                        rep.problems.push(format!("org {}: {} cannot be read: {e:#}", org.sid, refs.describe(&what)));
                        refs.list.push(Ref::new(r.loc, &r.id, what));
                        whole = false;
                        continue;
                    }
                };
                refs.list.push(Ref::new(r.loc, &r.id, what));
                for (k, e) in &page.entries {
                    // A deletion names its last content, which that version's entry named.
                    let known = state.get(k).is_some_and(|o| o.version == e.version && o.loc == e.loc);
                    if !e.deleted && !known {
                        refs.list.push(Ref::new(e.loc, &e.check, What::Version(*k, e.version)));
                    }
                }
                if kind == "checkpoint" {
                    state = State::from_page(page);
                    whole = true;
                } else {
                    state.apply(&page);
                }
            }
        }
        if let Some(last) = snaps.last().filter(|l| whole && state.live_count() as i64 != l.live) {
            rep.problems.push(format!(
                "{}: last snapshot says {} live records, its state holds {}",
                t.full_name(),
                last.live,
                state.live_count()
            ));
        }
    }
    for f in vault.catalog.file_records(org.id).await? {
        let fi = refs.files.len();
        for (i, p) in decode_pieces(&f.pieces)?.into_iter().enumerate() {
            refs.list.push(Ref::new(p.loc, &p.id, What::Piece(fi, i + 1)));
        }
        refs.files.push(f.uid);
    }
    Ok(refs)
}

/// What reading one pack found: whether its bytes match its name, how many there were, and
/// its blobs (with the damaged ones) or why it could not be opened.
type Verdict = (bool, u64, Result<(Vec<pack::PackEntry>, pack::Damaged), pack::PackError>);

/// Starts reading every pack of the org whole and verifying its name, every chunk and every
/// blob in it. The verdicts come by a short queue, so only a few packs' entries wait at once
/// whatever the size of the vault.
fn read_packs(
    vault: &Vault,
    org: &std::sync::Arc<Org>,
    packs: &[super::catalog::PackRecord],
    readable: &HashSet<u64>,
) -> (Vec<super::catalog::PackRecord>, tokio::sync::mpsc::Receiver<Result<(usize, Verdict)>>) {
    let mine: Vec<super::catalog::PackRecord> =
        packs.iter().filter(|p| p.org_id == org.id && readable.contains(&p.pid)).cloned().collect();
    let jobs: Vec<_> = mine.iter().map(|p| (Vault::pack_path(org, &p.name), p.name.clone())).collect();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (org, store) = (org.clone(), vault.store.clone());
    tokio::spawn(async move {
        let mut verified = futures::stream::iter(jobs.into_iter().enumerate())
            .map(|(i, (path, expect))| {
                let (org, store) = (org.clone(), store.clone());
                async move {
                    let bytes = store.get(&path).await?.bytes().await?;
                    let verdict = tokio::task::spawn_blocking(move || {
                        (
                            blake3::hash(&bytes).to_hex().as_str() == expect,
                            bytes.len() as u64,
                            pack::verify(&org.keys, &bytes),
                        )
                    })
                    .await?;
                    anyhow::Ok((i, verdict))
                }
            })
            .buffer_unordered(2);
        // A check that stopped early (an error of its own) drops the queue: so does this.
        while let Some(v) = verified.next().await {
            if tx.send(v).await.is_err() {
                break;
            }
        }
    });
    (mine, rx)
}

/// Checks that each reference finds the blob it names where it says, as the packs' verdicts
/// arrive.
async fn match_packs(
    org: &Org,
    mine: &[super::catalog::PackRecord],
    mut verified: tokio::sync::mpsc::Receiver<Result<(usize, Verdict)>>,
    readable: &HashSet<u64>,
    refs: &Refs,
    rep: &mut CheckReport,
) -> Result<()> {
    // Each pack's blobs are matched with the references into it as the pack arrives, so
    // only one pack's entries are held at a time, not a map of every blob of the vault.
    let mut list: Vec<&Ref> = refs.list.iter().filter(|r| readable.contains(&r.loc.pack)).collect();
    list.sort_unstable_by_key(|r| r.loc);
    let not_where =
        |r: &Ref| format!("org {}: {} is not in its pack where the catalog says", org.sid, refs.describe(&r.what));
    let mut matched = HashSet::new();
    while let Some(done) = verified.recv().await {
        let (i, (name_ok, len, verdict)) = done?;
        let p = &mine[i];
        rep.bytes_read += len;
        matched.insert(p.pid);
        if !name_ok {
            rep.problems.push(format!("pack {}: its bytes do not match its name (altered in the store)", p.name));
        }
        let (mut entries, damaged) = match verdict {
            Ok(v) => v,
            Err(e) => {
                rep.problems.push(format!("pack {}: {e}", p.name));
                Default::default()
            }
        };
        let damaged: HashMap<(u32, u32), String> = damaged.into_iter().map(|(c, o, w)| ((c, o), w)).collect();
        entries.sort_unstable_by_key(|e| (e.chunk_off, e.inner_off, e.len));
        let lo = list.partition_point(|r| r.loc.pack < p.pid);
        let hi = list.partition_point(|r| r.loc.pack <= p.pid);
        for r in &list[lo..hi] {
            let l = r.loc;
            let found =
                entries.binary_search_by_key(&(l.chunk, l.offset, l.len), |e| (e.chunk_off, e.inner_off, e.len));
            let Ok(at) = found else {
                rep.problems.push(not_where(r));
                continue;
            };
            let e = &entries[at];
            match damaged.get(&(e.chunk_off, e.inner_off)) {
                Some(why) => rep.problems.push(format!(
                    "org {}: {} is damaged (pack {}: {why})",
                    org.sid,
                    refs.describe(&r.what),
                    p.name
                )),
                None if e.id[..r.check().len()] != *r.check() => rep.problems.push(not_where(r)),
                None => {}
            }
        }
    }
    // A reference into a sound pack of another org, or of none.
    for r in list.iter().filter(|r| !matched.contains(&r.loc.pack)) {
        rep.problems.push(not_where(r));
    }
    Ok(())
}
