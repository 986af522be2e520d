//! Packs: many small blobs in one store object, so 200,000 records are not 200,000 files.
//!
//! Blobs of one kind are gathered into chunks (about 4 MiB of records or state pages, one
//! 1 MiB piece of a file), each compressed (zstd) then sealed (AES-256-GCM): records of one
//! data type compress far better together than alone, and a chunk still opens in a few
//! milliseconds for one record. Readers take chunks of any size (vaults written before hold
//! 1 MiB ones). A pack is its chunks followed by
//! a sealed header listing, per chunk, its place, its kind and its blobs' lengths, then the
//! header's length (u32 LE), so the store alone says what each pack holds. A pack's name is the
//! BLAKE3 hash of its (encrypted) bytes. (Packs of schema 2 and before have a header that also
//! lists each blob's content id; both are read.)

use super::crypto::{CryptoError, OrgKeys, SealKey};
use super::state::Loc;

/// Chunks of records and state pages: zstd finds more of one record in the next ones over a
/// longer stretch (see `compress_text`).
pub const CHUNK_TARGET: usize = 4 << 20;
/// Per lane: two packs of 8 MiB fill at once.
pub const PACK_TARGET: usize = 8 << 20;
/// Files are stored as pieces of this size, so no file is ever held whole in memory.
pub const FILE_PIECE: usize = 1 << 20;
/// Where a chunk of this kind ends: a file piece is a chunk of its own.
fn chunk_target(kind: u8) -> usize {
    if kind == BlobKind::FilePiece as u8 { FILE_PIECE } else { CHUNK_TARGET }
}

const CHUNK_AAD: &[u8] = b"daybook chunk v1";
const HEADER_AAD_V1: &[u8] = b"daybook pack header v1";
const HEADER_AAD: &[u8] = b"daybook pack header v2";
/// A content id: keyed BLAKE3, 128 bits.
pub type BlobId = [u8; 16];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlobKind {
    Record = 1,
    FilePiece = 2,
    /// A data type's state page (a delta or a checkpoint).
    State = 3,
}

/// Where a blob lives inside its pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: u8,
    pub chunk_off: u32,
    pub chunk_len: u32,
    pub inner_off: u32,
    pub len: u32,
}

pub struct FinishedPack {
    /// The random id blobs' places name it by (known from its first blob on).
    pub pid: u64,
    pub name: String,
    pub bytes: Vec<u8>,
    /// Each chunk's offset and sealed length.
    pub chunks: Vec<(u32, u32)>,
    pub entries: Vec<PackEntry>,
}

/// Gathers blobs into chunks and chunks into packs. A full chunk is compressed on a thread of
/// its own while the next one fills, in the other of two packs: a blob's place names its
/// chunk's offset, which is known only once the chunk before it in the same pack is sealed,
/// and two packs in turn leave a whole chunk's time for that.
pub struct Packer {
    sealed: u64,
    pack_target: usize,
    lanes: [Lane; LANES],
    /// The lane of the open chunk.
    cur: usize,
    chunk: Vec<u8>,
    chunk_kind: u8,
    chunk_blobs: Vec<ChunkBlob>,
}

/// Packs filled in turn: chunks being compressed at once.
const LANES: usize = 2;

/// (content id, kind, offset in the chunk, length).
type ChunkBlob = (BlobId, u8, u32, u32);

struct Lane {
    pid: u64,
    pack: Vec<u8>,
    chunks: Vec<(u32, u32)>,
    entries: Vec<PackEntry>,
    /// A chunk being compressed, and its blobs.
    pending: Option<(std::thread::JoinHandle<Vec<u8>>, Vec<ChunkBlob>)>,
}

impl Lane {
    fn new() -> Lane {
        Lane { pid: rand::random(), pack: Vec::new(), chunks: Vec::new(), entries: Vec::new(), pending: None }
    }
}

impl Default for Packer {
    fn default() -> Self {
        Self::new()
    }
}

impl Packer {
    pub fn new() -> Self {
        Packer {
            sealed: 0,
            pack_target: PACK_TARGET,
            lanes: std::array::from_fn(|_| Lane::new()),
            cur: 0,
            chunk: Vec::new(),
            chunk_kind: 0,
            chunk_blobs: Vec::new(),
        }
    }

    /// Adds a blob: where it will be, and a pack when one is full and must be written out.
    /// (The open chunk goes after the sealed ones, so its offset is known before it is sealed.)
    pub fn add(&mut self, seal: &SealKey, kind: BlobKind, id: BlobId, data: &[u8]) -> (Loc, Option<FinishedPack>) {
        if !self.chunk_blobs.is_empty() {
            if self.chunk.len() + data.len() > chunk_target(self.chunk_kind) {
                self.flush_chunk(true);
            } else if self.chunk_kind != kind as u8 {
                self.flush_chunk(false);
            }
        }
        let mut full = None;
        if self.chunk_blobs.is_empty() {
            // A new chunk: its lane's last chunk must be sealed to know where this one goes.
            self.settle(seal, self.cur);
            if self.lanes[self.cur].pack.len() >= self.pack_target {
                full = self.close(seal, self.cur);
            }
        }
        self.chunk_kind = kind as u8;
        let lane = &self.lanes[self.cur];
        let loc = Loc {
            pack: lane.pid,
            chunk: lane.pack.len() as u32,
            offset: self.chunk.len() as u32,
            len: data.len() as u32,
        };
        self.chunk_blobs.push((id, kind as u8, self.chunk.len() as u32, data.len() as u32));
        self.chunk.extend_from_slice(data);
        if self.chunk.len() >= chunk_target(self.chunk_kind) {
            self.flush_chunk(true);
        }
        (loc, full)
    }

    /// Bytes sealed into chunks so far, over all packs (of chunks still being compressed, once
    /// they are sealed: after `finish`, all).
    pub fn sealed_bytes(&self) -> u64 {
        self.sealed
    }

    /// Ends the open chunk now (at a data type's end: chunks do not mix data types).
    pub fn end_chunk(&mut self) {
        self.flush_chunk(false)
    }

    /// Hands the open chunk to a thread that compresses it. After a full chunk the next one
    /// goes to the next lane; after one cut short (a data type's end, another kind of blob)
    /// it stays in the same lane, so a small data type's records and pages share one pack.
    fn flush_chunk(&mut self, full: bool) {
        if self.chunk_blobs.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        let kind = self.chunk_kind;
        let work = std::thread::spawn(move || compress(&chunk, kind));
        let lane = &mut self.lanes[self.cur];
        debug_assert!(lane.pending.is_none());
        lane.pending = Some((work, std::mem::take(&mut self.chunk_blobs)));
        if full {
            self.cur = (self.cur + 1) % LANES;
        }
    }

    /// Seals the lane's chunk being compressed, if any, into its pack.
    fn settle(&mut self, seal: &SealKey, lane: usize) {
        let lane = &mut self.lanes[lane];
        let Some((work, blobs)) = lane.pending.take() else { return };
        let plain = work.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let sealed = seal.seal(CHUNK_AAD, &plain);
        let chunk_off = lane.pack.len() as u32;
        for (id, kind, inner_off, len) in blobs {
            lane.entries.push(PackEntry { id, kind, chunk_off, chunk_len: sealed.len() as u32, inner_off, len });
        }
        self.sealed += sealed.len() as u64;
        lane.chunks.push((chunk_off, sealed.len() as u32));
        lane.pack.extend_from_slice(&sealed);
    }

    /// Closes every pack that holds anything (one per lane at most).
    pub fn finish(&mut self, seal: &SealKey) -> Vec<FinishedPack> {
        self.flush_chunk(false);
        (0..LANES)
            .filter_map(|i| {
                self.settle(seal, i);
                self.close(seal, i)
            })
            .collect()
    }

    /// Closes a lane's pack (its chunks all sealed), if it holds anything.
    fn close(&mut self, seal: &SealKey, lane: usize) -> Option<FinishedPack> {
        let lane = &mut self.lanes[lane];
        if lane.entries.is_empty() {
            return None;
        }
        // Per chunk: offset, length, kind, blob count; per blob its length (the offsets
        // follow). About 2 bytes a blob: the content ids are where the blobs are named.
        let mut header = Vec::with_capacity(lane.entries.len() * 2 + 64);
        for chunk in lane.entries.chunk_by(|a, b| a.chunk_off == b.chunk_off) {
            for v in [chunk[0].chunk_off as u64, chunk[0].chunk_len as u64, chunk[0].kind as u64, chunk.len() as u64] {
                put_varint(&mut header, v);
            }
            for e in chunk {
                put_varint(&mut header, e.len as u64);
            }
        }
        let sealed = seal.seal(HEADER_AAD, &header);
        let done = std::mem::replace(lane, Lane::new());
        let mut bytes = done.pack;
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let name = blake3::hash(&bytes).to_hex().to_string();
        Some(FinishedPack { pid: done.pid, name, bytes, chunks: done.chunks, entries: done.entries })
    }
}

/// Records and state pages, written once and read often: zstd's lazy2 (level 7's strategy)
/// with a window over the whole chunk and a shallower search than level 7's. On the shared
/// workload's records in 4 MiB chunks (`zstd -b1 -B4M --zstd=strat=4,slog=3,mml=6,hlog=19,
/// wlog=22`): 5.59 x at 98 MB/s, where level 7 gave 5.55 x at 74-80 MB/s, and level 7 on the
/// 1 MiB chunks written before, 5.37 x at 79-82 MB/s.
fn compress_text(chunk: &[u8]) -> std::io::Result<Vec<u8>> {
    use zstd::stream::raw::CParameter;
    let mut z = zstd::bulk::Compressor::new(1)?;
    for p in [
        CParameter::Strategy(zstd::zstd_safe::Strategy::ZSTD_lazy2),
        CParameter::WindowLog(22),
        CParameter::HashLog(19),
        CParameter::SearchLog(3),
        CParameter::MinMatch(6),
    ] {
        z.set_parameter(p)?;
    }
    z.compress(chunk)
}

/// A chunk's plaintext before sealing: a format byte, then the zstd frame (or the chunk as it
/// is, when it does not compress).
fn compress(chunk: &[u8], kind: u8) -> Vec<u8> {
    let is_piece = kind == BlobKind::FilePiece as u8;
    let mut compressed = match is_piece {
        true => zstd::bulk::compress(chunk, 3),
        false => compress_text(chunk),
    }
    .unwrap_or_default();
    // File pieces that do compress (text, CSV, JSON) are worth the slower level; most do
    // not (images, PDFs), and cost only the fast try.
    if is_piece && compressed.len() < chunk.len() / 10 * 9 {
        let better = zstd::bulk::compress(chunk, 7).unwrap_or_default();
        if !better.is_empty() && better.len() < compressed.len() {
            compressed = better;
        }
    }
    let mut plain = Vec::with_capacity(compressed.len().min(chunk.len()) + 1);
    if !compressed.is_empty() && compressed.len() < chunk.len() {
        plain.push(1);
        plain.extend_from_slice(&compressed);
    } else {
        plain.push(0);
        plain.extend_from_slice(chunk);
    }
    plain
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("pack is truncated or its header length is impossible")]
    Truncated,
    #[error("pack header: {0}")]
    Header(CryptoError),
    #[error("chunk at offset {0}: {1}")]
    Chunk(u32, CryptoError),
    #[error("chunk at offset {0} does not decompress: {1}")]
    Decompress(u32, String),
}

/// Decrypts and decompresses one chunk.
pub fn open_chunk(seal: &SealKey, chunk_off: u32, sealed: &[u8]) -> Result<Vec<u8>, PackError> {
    let plain = seal.open(CHUNK_AAD, sealed).map_err(|e| PackError::Chunk(chunk_off, e))?;
    match plain.first() {
        Some(0) => Ok(plain[1..].to_vec()),
        Some(1) => decompress(&plain[1..]).map_err(|e| PackError::Decompress(chunk_off, e.to_string())),
        _ => Err(PackError::Decompress(chunk_off, "unknown chunk format".into())),
    }
}

/// The frame says its size (daybook's always do): decompressed into one buffer of that size,
/// not one grown as it fills.
fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= MAX_CHUNK_PLAIN => zstd::bulk::decompress(frame, n as usize),
        _ => zstd::stream::decode_all(frame),
    }
}

/// Larger than any chunk daybook writes (a chunk holds one blob at least: a record, a piece
/// or a state page), and small enough to allocate at once.
const MAX_CHUNK_PLAIN: u64 = 1 << 30;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(h: &[u8], i: &mut usize) -> Result<u64, PackError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *h.get(*i).ok_or(PackError::Truncated)?;
        *i += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(PackError::Truncated)
}

/// A pack's header: where its blobs are. Content ids are all zero when the header does not
/// carry them (schema 3's); `verify` computes them.
pub fn read_header(seal: &SealKey, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    if pack.len() < 4 {
        return Err(PackError::Truncated);
    }
    let hlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().unwrap()) as usize;
    if hlen + 4 > pack.len() {
        return Err(PackError::Truncated);
    }
    let sealed = &pack[pack.len() - 4 - hlen..pack.len() - 4];
    if let Ok(h) = seal.open(HEADER_AAD, sealed) {
        return read_header_v2(&h);
    }
    let h = seal.open(HEADER_AAD_V1, sealed).map_err(PackError::Header)?;
    let u32_at =
        |i: usize| h.get(i..i + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).ok_or(PackError::Truncated);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < h.len() {
        let (chunk_off, chunk_len, n) = (u32_at(i)?, u32_at(i + 4)?, u32_at(i + 8)?);
        i += 12;
        let mut inner_off = 0;
        for _ in 0..n {
            let id: BlobId = h.get(i..i + 16).ok_or(PackError::Truncated)?.try_into().unwrap();
            let kind = *h.get(i + 16).ok_or(PackError::Truncated)?;
            let len = u32_at(i + 17)?;
            i += 21;
            entries.push(PackEntry { id, kind, chunk_off, chunk_len, inner_off, len });
            inner_off += len;
        }
    }
    Ok(entries)
}

fn read_header_v2(h: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    let mut entries = Vec::new();
    let mut i = 0;
    let small = |v: u64| u32::try_from(v).map_err(|_| PackError::Truncated);
    while i < h.len() {
        let (chunk_off, chunk_len) = (small(varint(h, &mut i)?)?, small(varint(h, &mut i)?)?);
        let kind = u8::try_from(varint(h, &mut i)?).map_err(|_| PackError::Truncated)?;
        let n = varint(h, &mut i)?;
        if n as usize > h.len() {
            return Err(PackError::Truncated);
        }
        let mut inner_off = 0u32;
        for _ in 0..n {
            let len = small(varint(h, &mut i)?)?;
            entries.push(PackEntry { id: [0; 16], kind, chunk_off, chunk_len, inner_off, len });
            inner_off = inner_off.checked_add(len).ok_or(PackError::Truncated)?;
        }
    }
    Ok(entries)
}

/// Damaged blobs of a pack (chunk offset, offset in the chunk), with the reason.
pub type Damaged = Vec<(u32, u32, String)>;

/// Verifies every chunk of a pack against its header: each chunk must open and hold its
/// blobs, each blob must hash to its id where the header gives one. Returns the blobs with
/// their ids (computed where the header has none) and the damaged ones.
pub fn verify(keys: &OrgKeys, pack: &[u8]) -> Result<(Vec<PackEntry>, Damaged), PackError> {
    let mut entries = read_header(&keys.seal, pack)?;
    let mut bad = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let (off, len) = (entries[i].chunk_off, entries[i].chunk_len);
        let mut j = i;
        while j < entries.len() && entries[j].chunk_off == off {
            j += 1;
        }
        let raw = pack.get(off as usize..off as usize + len as usize);
        let plain = match raw {
            None => Err(PackError::Truncated),
            Some(r) => open_chunk(&keys.seal, off, r),
        };
        for e in &mut entries[i..j] {
            let why = match &plain {
                Err(err) => Some(err.to_string()),
                Ok(p) => match p.get(e.inner_off as usize..(e.inner_off as usize + e.len as usize)) {
                    None => Some("blob lies outside its chunk".into()),
                    // A header without ids: the content names itself (the catalog's ids are
                    // checked against it).
                    Some(b) if e.id == [0; 16] => {
                        e.id = keys.blob_id(b);
                        None
                    }
                    Some(b) if keys.blob_id(b) != e.id => Some("content does not match its id".into()),
                    Some(_) => None,
                },
            };
            if let Some(w) = why {
                bad.push((e.chunk_off, e.inner_off, w));
            }
        }
        i = j;
    }
    Ok((entries, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_flip() {
        let keys = OrgKeys::from_material(&[3u8; 64]);
        let mut p = Packer::new();
        let mut ids = Vec::new();
        let mut locs = Vec::new();
        for i in 0..2000 {
            let data = format!("{{\"id\":{i},\"name\":\"record number {i}\"}}");
            let id = keys.blob_id(data.as_bytes());
            ids.push((id, data.clone()));
            let (loc, full) = p.add(&keys.seal, BlobKind::Record, id, data.as_bytes());
            assert!(full.is_none());
            locs.push(loc);
        }
        let mut packs = p.finish(&keys.seal);
        assert_eq!(packs.len(), 1, "one chunk, one pack");
        let pack = packs.pop().unwrap();
        let raw: usize = ids.iter().map(|(_, d)| d.len()).sum();
        assert!(pack.bytes.len() < raw / 2 + 2000 * 21, "packed records must compress: {} of {raw}", pack.bytes.len());
        let (entries, bad) = verify(&keys, &pack.bytes).unwrap();
        assert_eq!(entries, pack.entries);
        assert!(bad.is_empty());
        assert!(locs.iter().all(|l| l.pack == pack.pid));
        for (l, e) in locs.iter().zip(&pack.entries) {
            assert_eq!((l.chunk, l.offset, l.len), (e.chunk_off, e.inner_off, e.len), "a blob is where add said");
        }
        assert_eq!(pack.chunks.len(), pack.entries.chunk_by(|a, b| a.chunk_off == b.chunk_off).count());
        let e = &pack.entries[1234];
        let chunk = open_chunk(
            &keys.seal,
            e.chunk_off,
            &pack.bytes[e.chunk_off as usize..(e.chunk_off + e.chunk_len) as usize],
        )
        .unwrap();
        assert_eq!(&chunk[e.inner_off as usize..(e.inner_off + e.len) as usize], ids[1234].1.as_bytes());
        let mut flipped = pack.bytes.clone();
        flipped[e.chunk_off as usize + 20] ^= 0x10;
        let (_, bad) = verify(&keys, &flipped).unwrap();
        assert!(bad.iter().any(|(c, o, _)| (*c, *o) == (e.chunk_off, e.inner_off)));
        let first = &pack.entries[0];
        assert!(
            !bad.iter().any(|(c, o, _)| (*c, *o) == (first.chunk_off, first.inner_off))
                || first.chunk_off == e.chunk_off
        );
    }

    /// A file piece is a chunk of its own, so that a file is read a piece at a time.
    #[test]
    fn file_pieces_are_chunks_of_their_own() {
        let keys = OrgKeys::from_material(&[6u8; 64]);
        let mut p = Packer::new();
        let piece = vec![7u8; FILE_PIECE];
        let locs: Vec<Loc> = (0..3u8)
            .map(|i| {
                let mut data = piece.clone();
                data[0] = i;
                p.add(&keys.seal, BlobKind::FilePiece, keys.blob_id(&data), &data).0
            })
            .collect();
        let packs = p.finish(&keys.seal);
        let chunks: std::collections::HashSet<(u64, u32)> = locs.iter().map(|l| (l.pack, l.chunk)).collect();
        assert_eq!(chunks.len(), 3, "{locs:?}");
        assert!(locs.iter().all(|l| l.offset == 0 && l.len as usize == FILE_PIECE));
        assert_eq!(packs.iter().map(|p| p.chunks.len()).sum::<usize>(), 3);
    }

    /// Chunks compressed while the next ones fill, packs filled in turn: every blob is still
    /// where `add` said, in whichever pack it went to, and full packs come out as they fill.
    #[test]
    fn blobs_of_many_chunks_are_where_add_said() {
        let keys = OrgKeys::from_material(&[5u8; 64]);
        let mut p = Packer::new();
        let mut packs = Vec::new();
        let mut added = Vec::new();
        // 13 MB of poorly compressible records: more chunks than lanes, and full packs.
        p.pack_target = 2_000_000;
        let mut x = 1u64;
        for i in 0..13_000u32 {
            let noise: String = (0..1000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'a' + (x % 26) as u8)
                })
                .collect();
            let data = format!("{{\"id\":{i},\"text\":\"{noise}\"}}");
            let kind = if i % 6_000 == 5_999 { BlobKind::State } else { BlobKind::Record };
            let id = keys.blob_id(data.as_bytes());
            let (loc, full) = p.add(&keys.seal, kind, id, data.as_bytes());
            packs.extend(full);
            added.push((loc, data));
        }
        assert!(!packs.is_empty(), "a full pack comes out before the end");
        packs.extend(p.finish(&keys.seal));
        assert!(packs.len() >= 3, "{} packs", packs.len());
        let by_pid: std::collections::HashMap<u64, &FinishedPack> = packs.iter().map(|p| (p.pid, p)).collect();
        assert_eq!(by_pid.len(), packs.len(), "each pack has its own id");
        let sealed: usize = packs.iter().map(|p| p.chunks.iter().map(|c| c.1 as usize).sum::<usize>()).sum();
        assert_eq!(sealed as u64, p.sealed_bytes());
        for p in &packs {
            let (entries, bad) = verify(&keys, &p.bytes).unwrap();
            assert_eq!(entries, p.entries);
            assert!(bad.is_empty());
        }
        let mut largest = 0;
        for p in &packs {
            for &(off, len) in &p.chunks {
                let plain = open_chunk(&keys.seal, off, &p.bytes[off as usize..(off + len) as usize]).unwrap();
                assert!(plain.len() <= CHUNK_TARGET, "a chunk of {} bytes", plain.len());
                largest = largest.max(plain.len());
            }
        }
        assert!(largest > CHUNK_TARGET - 1100, "records gather into chunks of {CHUNK_TARGET} bytes: {largest}");
        for (loc, data) in added.iter().step_by(97) {
            let pack = by_pid[&loc.pack];
            let (_, len) = *pack.chunks.iter().find(|c| c.0 == loc.chunk).expect("the chunk add named");
            let chunk =
                open_chunk(&keys.seal, loc.chunk, &pack.bytes[loc.chunk as usize..(loc.chunk + len) as usize]).unwrap();
            assert_eq!(&chunk[loc.offset as usize..(loc.offset + loc.len) as usize], data.as_bytes());
        }
    }
}
