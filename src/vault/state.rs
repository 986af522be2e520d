//! A data type's state: for every record it ever had, its current version and where that
//! version's content is. It lives in the sealed packs, as pages: a cycle's delta (the records
//! that changed in it) and, now and then, a checkpoint (every record at that cycle). The state
//! at any cycle is the last checkpoint at or before it with the deltas after it applied, so a
//! snapshot costs storage in proportion to its changes and the catalog holds no row per record.

use std::collections::BTreeMap;

/// A record's key: 80 bits of keyed hash of its identity (source, data type seed, id at the
/// source). Its base32 form is the record's SID.
pub type Key = [u8; 10];

/// A key's first 8 bytes as a number: keys are uniform, so it says where a key lies among
/// sorted ones.
pub fn key_value(k: &Key) -> u64 {
    u64::from_be_bytes(k[..8].try_into().expect("8 bytes"))
}

/// The position of a key in items sorted by key. Keys are uniform (keyed hashes), so where
/// a key lies is known from its value: a few guesses find it in a million (touching a page
/// or two, where a binary search touches twenty and a map's probe its own).
pub fn find_key<T>(items: &[T], key_of: impl Fn(&T) -> &Key, key: &Key) -> Option<usize> {
    let target = key_value(key);
    let (mut lo, mut hi) = (0usize, items.len());
    for _ in 0..8 {
        if hi - lo <= 8 {
            break;
        }
        let (a, b) = (key_value(key_of(&items[lo])), key_value(key_of(&items[hi - 1])));
        if target < a || target > b {
            return None;
        }
        let span = (b - a) as u128;
        let step = ((target - a) as u128 * (hi - 1 - lo) as u128).checked_div(span).unwrap_or(0) as usize;
        let guess = lo + step;
        match key_of(&items[guess]).cmp(key) {
            std::cmp::Ordering::Equal => return Some(guess),
            std::cmp::Ordering::Less => lo = guess + 1,
            std::cmp::Ordering::Greater => hi = guess,
        }
    }
    items[lo..hi].binary_search_by(|t| key_of(t).cmp(key)).ok().map(|i| lo + i)
}

/// The first bytes of a content id, kept to check what is read: 24 bits, against a bug that
/// would put one record's place in another's entry (the chunk's seal guards the bytes).
pub type Check = [u8; 3];
/// Keyed hash of a record's text as the source gave it, to skip records that did not change
/// without parsing them: 48 bits (the key is the org's, so no one can aim at a collision,
/// and a chance one hides a change once in about 3 x 10^14 changed records).
pub type RawHash = [u8; 6];

/// Where a blob is: which pack (by its random id), the offset of its chunk in the pack, and
/// its place in the chunk's plaintext.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub pack: u64,
    pub chunk: u32,
    pub offset: u32,
    pub len: u32,
}

/// A record's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id at the source.
    pub id: String,
    pub version: u32,
    /// The cycle from which this version is current.
    pub since: u64,
    /// The version is a deletion; `check` and `loc` are then the last content's.
    pub deleted: bool,
    /// Its content refers to files.
    pub has_files: bool,
    /// The first bytes of its (last) content's id (the keyed hash of the stored bytes), to
    /// check what is read. (The chunk's seal already guards it; this guards its place.)
    pub check: Check,
    /// Keyed hash of the source's text and its files' fingerprints; zero when unknown.
    pub raw: RawHash,
    pub loc: Loc,
}

/// What a cycle learnt of a data type's files: the fingerprint and vault UID of each file
/// key, so a file whose fingerprint did not change is not fetched again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    pub fingerprint: String,
    pub uid: String,
}

/// A page: entries by key (ascending), and file cache entries by file key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<(Key, Entry)>,
    pub files: BTreeMap<String, CachedFile>,
}

/// A data type's state at one cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Every record the data type ever had, by key, ascending.
    pub entries: Vec<(Key, Entry)>,
    pub files: BTreeMap<String, CachedFile>,
}

impl State {
    pub fn get(&self, key: &Key) -> Option<&Entry> {
        find_key(&self.entries, |(k, _)| k, key).map(|i| &self.entries[i].1)
    }

    pub fn live(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter().filter(|(_, e)| !e.deleted).map(|(k, e)| (k, e))
    }

    pub fn live_count(&self) -> usize {
        self.entries.iter().filter(|(_, e)| !e.deleted).count()
    }

    /// The state after a delta: its entries replace or join the state's.
    pub fn apply(&mut self, delta: &Page) {
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() + delta.entries.len());
        let (mut a, mut b) = (old.into_iter().peekable(), delta.entries.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => merged.push(a.next().expect("peeked")),
                    std::cmp::Ordering::Greater => merged.push(b.next().cloned().expect("peeked")),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        merged.push(b.next().cloned().expect("peeked"));
                    }
                },
                (Some(_), None) => merged.push(a.next().expect("peeked")),
                (None, Some(_)) => merged.push(b.next().cloned().expect("peeked")),
                (None, None) => break,
            }
        }
        self.entries = merged;
        for (k, f) in &delta.files {
            self.files.insert(k.clone(), f.clone());
        }
    }

    /// The whole state as a checkpoint page.
    pub fn to_page(&self) -> Page {
        Page { entries: self.entries.clone(), files: self.files.clone() }
    }

    pub fn from_page(p: Page) -> State {
        State { entries: p.entries, files: p.files }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a state page is damaged: {0}")]
pub struct PageError(&'static str);

/// Pages of schema 5 and before: offsets and ids written whole.
const MAGIC_V1: &[u8; 4] = b"DBS1";
/// Each offset as its distance from where the blob before it in the same chunk ends
/// (mostly 0), each chunk as its distance from the one before, each id as the length it
/// shares with the id before and the rest: a third fewer bytes per record after zstd.
const MAGIC: &[u8; 4] = b"DBS2";

/// Signed differences as varints: small either way.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The bytes `a` and `b` start with, cut back to a character boundary of `b`.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PageError> {
        if self.b.len() < n {
            return Err(PageError("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn varint(&mut self) -> Result<u64, PageError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first().expect("one byte");
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(PageError("a number is too long"))
    }

    fn u32(&mut self) -> Result<u32, PageError> {
        u32::try_from(self.varint()?).map_err(|_| PageError("a number is out of range"))
    }

    fn count(&mut self, each_at_least: usize) -> Result<usize, PageError> {
        let n = self.varint()? as usize;
        if n.saturating_mul(each_at_least) > self.b.len() {
            return Err(PageError("a count is larger than the page"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<String, PageError> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| PageError("a text is not UTF-8"))
    }
}

/// Where a blob would start if it followed the one before it in the same chunk.
fn expected_offset(prev: Option<Loc>, here: Loc) -> u32 {
    match prev {
        Some(p) if p.pack == here.pack && p.chunk == here.chunk => p.offset.saturating_add(p.len),
        _ => 0,
    }
}

impl Page {
    /// Column by column, so that the packer's compression finds what repeats (versions,
    /// cycles, packs, offsets) next to itself. Keys are not written: each is the keyed hash
    /// of the record's id, which the reader computes again.
    pub fn encode(&self) -> Vec<u8> {
        // In the order the contents are stored, not by key (a hash: random): places, ids,
        // versions and cycles then follow each other and compress to a few bits.
        let mut order: Vec<&(Key, Entry)> = self.entries.iter().collect();
        order.sort_by_key(|(_, e)| (e.loc, e.version));
        let n = order.len();
        let mut packs: Vec<u64> = order.iter().map(|(_, e)| e.loc.pack).collect();
        packs.sort_unstable();
        packs.dedup();
        let mut out = Vec::with_capacity(16 + n * 48);
        out.extend_from_slice(MAGIC);
        put_varint(&mut out, n as u64);
        put_varint(&mut out, packs.len() as u64);
        for p in &packs {
            out.extend_from_slice(&p.to_le_bytes());
        }
        for (_, e) in &order {
            out.extend_from_slice(&e.check);
        }
        for (_, e) in &order {
            out.extend_from_slice(&e.raw);
        }
        for (_, e) in &order {
            put_varint(&mut out, e.version as u64);
        }
        for (_, e) in &order {
            put_varint(&mut out, e.since);
        }
        for (_, e) in &order {
            out.push(e.deleted as u8 | (e.has_files as u8) << 1);
        }
        for (_, e) in &order {
            let i = packs.binary_search(&e.loc.pack).expect("listed above");
            put_varint(&mut out, i as u64);
        }
        let mut prev = 0;
        for (_, e) in &order {
            put_varint(&mut out, zigzag(e.loc.chunk as i64 - prev as i64));
            prev = e.loc.chunk;
        }
        let mut prev: Option<Loc> = None;
        for (_, e) in &order {
            put_varint(&mut out, zigzag(e.loc.offset as i64 - expected_offset(prev, e.loc) as i64));
            prev = Some(e.loc);
        }
        for (_, e) in &order {
            put_varint(&mut out, e.loc.len as u64);
        }
        let shared: Vec<usize> =
            (0..n).map(|i| if i == 0 { 0 } else { shared_prefix(&order[i - 1].1.id, &order[i].1.id) }).collect();
        for &k in &shared {
            put_varint(&mut out, k as u64);
        }
        for ((_, e), &k) in order.iter().zip(&shared) {
            put_str(&mut out, &e.id[k..]);
        }
        put_varint(&mut out, self.files.len() as u64);
        for (k, f) in &self.files {
            put_str(&mut out, k);
            put_str(&mut out, &f.fingerprint);
            put_str(&mut out, &f.uid);
        }
        out
    }

    /// `key_of` gives a record's key from its id.
    pub fn decode(b: &[u8], key_of: &dyn Fn(&str) -> Key) -> Result<Page, PageError> {
        let mut r = Reader { b };
        let v2 = match r.take(4)? {
            m if m == MAGIC => true,
            m if m == MAGIC_V1 => false,
            _ => return Err(PageError("not a state page")),
        };
        let (cl, rl) = (std::mem::size_of::<Check>(), std::mem::size_of::<RawHash>());
        let n = r.count(cl + rl)?;
        let np = r.count(8)?;
        let packs: Vec<u64> = (0..np)
            .map(|_| Ok(u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"))))
            .collect::<Result<_, _>>()?;
        let checks = r.take(n * cl)?;
        let raws = r.take(n * rl)?;
        let col = |r: &mut Reader| (0..n).map(|_| r.varint()).collect::<Result<Vec<u64>, _>>();
        let versions = col(&mut r)?;
        let since = col(&mut r)?;
        let flags = r.take(n)?;
        let pack_idx = col(&mut r)?;
        let u32s = |r: &mut Reader| (0..n).map(|_| r.u32()).collect::<Result<Vec<u32>, _>>();
        let pack_at =
            |i: usize| packs.get(pack_idx[i] as usize).copied().ok_or(PageError("a pack index is out of range"));
        let (chunks, offsets, lens, ids) = if v2 {
            let (mut chunks, mut at) = (Vec::with_capacity(n), 0i64);
            for _ in 0..n {
                at = at.checked_add(unzigzag(r.varint()?)).ok_or(PageError("a number is out of range"))?;
                chunks.push(u32::try_from(at).map_err(|_| PageError("a chunk is out of range"))?);
            }
            let offset_steps = col(&mut r)?;
            let lens = u32s(&mut r)?;
            let (mut offsets, mut prev) = (Vec::with_capacity(n), None);
            for i in 0..n {
                let here = Loc { pack: pack_at(i)?, chunk: chunks[i], offset: 0, len: lens[i] };
                let o = (expected_offset(prev, here) as i64)
                    .checked_add(unzigzag(offset_steps[i]))
                    .and_then(|o| u32::try_from(o).ok())
                    .ok_or(PageError("an offset is out of range"))?;
                offsets.push(o);
                prev = Some(Loc { offset: o, ..here });
            }
            let shared = col(&mut r)?;
            let mut ids: Vec<String> = Vec::with_capacity(n);
            for (i, &k) in shared.iter().enumerate() {
                let before = if i == 0 { "" } else { ids[i - 1].as_str() };
                let head =
                    before.as_bytes().get(..k as usize).ok_or(PageError("an id shares more than its neighbour has"))?;
                let mut id = head.to_vec();
                let rest = r.count(1)?;
                id.extend_from_slice(r.take(rest)?);
                ids.push(String::from_utf8(id).map_err(|_| PageError("a text is not UTF-8"))?);
            }
            (chunks, offsets, lens, ids)
        } else {
            let (chunks, offsets, lens) = (u32s(&mut r)?, u32s(&mut r)?, u32s(&mut r)?);
            let ids = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
            (chunks, offsets, lens, ids)
        };
        let mut entries = Vec::with_capacity(n);
        for (i, id) in ids.into_iter().enumerate() {
            let key = key_of(&id);
            let pack = pack_at(i)?;
            entries.push((
                key,
                Entry {
                    id,
                    version: u32::try_from(versions[i]).map_err(|_| PageError("a version is out of range"))?,
                    since: since[i],
                    deleted: flags[i] & 1 != 0,
                    has_files: flags[i] & 2 != 0,
                    check: checks[i * cl..i * cl + cl].try_into().expect("a check"),
                    raw: raws[i * rl..i * rl + rl].try_into().expect("a text hash"),
                    loc: Loc { pack, chunk: chunks[i], offset: offsets[i], len: lens[i] },
                },
            ));
        }
        entries.sort_unstable_by_key(|e| e.0);
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(PageError("a record is in it twice"));
        }
        let nf = r.count(3)?;
        let mut files = BTreeMap::new();
        for _ in 0..nf {
            let k = r.str()?;
            files.insert(k, CachedFile { fingerprint: r.str()?, uid: r.str()? });
        }
        if !r.b.is_empty() {
            return Err(PageError("bytes after the end"));
        }
        Ok(Page { entries, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_where_their_value_says_and_absent_ones_are_not() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut keys: Vec<Key> = (0..50_000).map(|_| rng.r#gen()).collect();
        // Keys that share their first 8 bytes, and the smallest and largest there are.
        keys.extend([[0u8; 10], [0xff; 10], [1, 2, 3, 4, 5, 6, 7, 8, 0, 1], [1, 2, 3, 4, 5, 6, 7, 8, 0, 2]]);
        keys.sort_unstable();
        keys.dedup();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(find_key(&keys, |k| k, k), Some(i));
        }
        let absent: Vec<Key> = (0..5_000).map(|_| rng.r#gen()).chain([[1, 2, 3, 4, 5, 6, 7, 8, 0, 0]]).collect();
        for k in absent.iter().filter(|k| keys.binary_search(k).is_err()) {
            assert_eq!(find_key(&keys, |k| k, k), None);
        }
        assert_eq!(find_key(&[] as &[Key], |k| k, &[3; 10]), None);
    }

    fn entry(n: u32, deleted: bool) -> Entry {
        Entry {
            id: format!("task-{n:04}"),
            version: n % 3 + 1,
            since: 7 + (n % 2) as u64,
            deleted,
            has_files: n.is_multiple_of(5),
            check: [n as u8; 3],
            raw: [(n * 7) as u8; 6],
            loc: Loc { pack: 0xdead_beef_0000 + (n % 4) as u64, chunk: n * 1000, offset: n * 3, len: 400 + n },
        }
    }

    fn key(n: u32) -> Key {
        key_of(&format!("task-{n:04}"))
    }

    /// As the vault derives keys: a hash of the id.
    fn key_of(id: &str) -> Key {
        blake3::hash(id.as_bytes()).as_bytes()[..10].try_into().unwrap()
    }

    fn sorted(mut p: Page) -> Page {
        p.entries.sort_by_key(|e| e.0);
        p
    }

    #[test]
    fn pages_round_trip() {
        let mut p = Page::default();
        for n in 0..1000 {
            p.entries.push((key(n), entry(n, n % 17 == 0)));
        }
        let mut p = sorted(p);
        p.files.insert("invoice.pdf".into(), CachedFile { fingerprint: "12:34".into(), uid: "abcd".into() });
        let bytes = p.encode();
        assert_eq!(Page::decode(&bytes, &key_of).unwrap(), p);
        assert_eq!(Page::decode(&Page::default().encode(), &key_of).unwrap(), Page::default());
    }

    #[test]
    fn ids_sharing_part_of_a_character_round_trip() {
        // é and è share their first byte: what two ids share is cut back to a character.
        let long = "x".repeat(300);
        let ids = ["aé", "aè", "aèz", "b", "c", "日本語-1", "日本語-2", "日本", long.as_str()];
        let mut p = Page::default();
        for (n, id) in ids.iter().enumerate() {
            let mut e = entry(n as u32, false);
            e.id = id.to_string();
            // Contiguous blobs of one chunk, then of a later chunk.
            e.loc = Loc { pack: 9, chunk: if n < 5 { 0 } else { 4096 }, offset: (n as u32 % 5) * 10, len: 10 };
            p.entries.push((key_of(id), e));
        }
        let p = sorted(p);
        assert_eq!(Page::decode(&p.encode(), &key_of).unwrap(), p);
    }

    #[test]
    fn damaged_pages_are_errors_not_panics() {
        let mut p = Page::default();
        for n in 0..50 {
            p.entries.push((key(n), entry(n, false)));
        }
        let p = sorted(p);
        let bytes = p.encode();
        for cut in 0..bytes.len() {
            assert!(Page::decode(&bytes[..cut], &key_of).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[4] = 0xff; // the entry count
        assert!(Page::decode(&flipped, &key_of).is_err());
        let mut twice = p.clone();
        twice.entries[4] = twice.entries[3].clone();
        assert!(Page::decode(&twice.encode(), &key_of).is_err(), "a record twice");
    }

    #[test]
    fn a_delta_replaces_and_adds() {
        let mut s = State::default();
        s.apply(&sorted(Page {
            entries: (0..10).map(|n| (key(n * 2), entry(n * 2, false))).collect(),
            ..Page::default()
        }));
        assert_eq!(s.live_count(), 10);
        let delta = sorted(Page {
            entries: vec![(key(3), entry(3, false)), (key(4), entry(4, true)), (key(99), entry(99, false))],
            ..Page::default()
        });
        s.apply(&delta);
        assert_eq!(s.entries.len(), 12);
        assert!(s.entries.windows(2).all(|w| w[0].0 < w[1].0), "still sorted");
        assert!(s.get(&key(4)).unwrap().deleted);
        assert_eq!(s.live_count(), 11);
        assert_eq!(s.get(&key(99)).unwrap().id, "task-0099");
        assert!(s.get(&key(5)).is_none());
    }
}
