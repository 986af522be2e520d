//! The delta of one data type in one cycle: what the source lists now against the state of
//! the last snapshot. Records are compared by the hash of the source's text first (an
//! unchanged record is never parsed), then by the content id of their canonical form (a
//! record whose JSON only changed key order or spacing is not a new version). What the
//! listing no longer shows is deleted. No I/O here: the engine feeds it and stores.

use crate::vault::state::{CachedFile, Check, Entry, Key, Loc, Page, RawHash, State, find_key, key_value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// What the engine should do with a record that arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The same id came twice in one read.
    Duplicate,
    /// Its text is as last time: nothing to store.
    Unchanged,
    /// Parse it, store its files, and `put` its canonical content, at its place.
    Compare(Place),
}

/// Where a compared record lies: its place among the state's entries, as its look found it,
/// or none for an id new this read. The delta then finds it without a search.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Place(Option<usize>);

/// What `put` made of a record's content.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Added,
    Changed,
    /// The same content in other words: no new version.
    Same,
}

/// The state's entries stay in their sorted vector, found by key where they lie: no map of
/// entries to build, none to sort at the end.
pub struct Delta {
    cycle: u64,
    entries: Vec<(Key, Entry)>,
    /// By position: the read or the listing showed it. Held by `Arrivals` during a read.
    seen: Vec<bool>,
    /// By position: its entry changed this cycle (a new version, or a known text).
    touched: Vec<bool>,
    /// Records the state did not have: all seen and touched.
    added: BTreeMap<Key, Entry>,
    files: BTreeMap<String, CachedFile>,
    new_files: BTreeMap<String, CachedFile>,
    live_before: usize,
}

/// The first look at each record of a read: which came twice, which are as they were (by
/// the hash of their text), which must be compared. Most records of a cycle end here. Taken
/// from the delta before the read and given back after it.
pub struct Arrivals {
    known: Arc<Known>,
    seen: Vec<bool>,
    new: HashSet<Key>,
}

/// The state's keys in order, each with the text hash of its current version if it is
/// alive: a few bytes each, so that finding one touches little memory. Read by several
/// threads at once: looking a record up needs nothing of the records before it.
pub struct Known(Vec<(Key, Option<RawHash>)>);

/// Where the state has a record, and whether its text is the one of its current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    at: Option<usize>,
    pub same_text: bool,
}

impl Known {
    /// Reads where each key should lie, all at once: the reads of a batch wait for memory
    /// together (their lookups then find the lines in the cache), where one lookup after
    /// another would wait for each in turn.
    pub fn warm<'k>(&self, keys: impl Iterator<Item = &'k Key>) {
        let n = self.0.len() as u128;
        if n == 0 {
            return;
        }
        let mut any = 0u8;
        for k in keys {
            any ^= self.0[((key_value(k) as u128 * n) >> 64) as usize].0[0];
        }
        std::hint::black_box(any);
    }

    /// A record with the hash of its text (None when a file has no fingerprint: then only
    /// its bytes can say whether it changed).
    pub fn look(&self, key: &Key, raw: Option<RawHash>) -> Look {
        let at = find_key(&self.0, |(k, _)| k, key);
        let same_text = at.is_some_and(|i| matches!((self.0[i].1, raw), (Some(was), Some(now)) if was == now));
        Look { at, same_text }
    }
}

impl Arrivals {
    /// What every looking thread reads.
    pub fn known(&self) -> Arc<Known> {
        self.known.clone()
    }

    /// A record arrives, looked up in `known`: arrivals are taken in the order of the read,
    /// so the second of two records with one id is the duplicate.
    pub fn arrive(&mut self, key: &Key, look: Look) -> Arrival {
        let Some(i) = look.at else {
            return if self.new.insert(*key) { Arrival::Compare(Place(None)) } else { Arrival::Duplicate };
        };
        if std::mem::replace(&mut self.seen[i], true) {
            Arrival::Duplicate
        } else if look.same_text {
            Arrival::Unchanged
        } else {
            Arrival::Compare(Place(Some(i)))
        }
    }
}

/// A record whose content was stored, as `put` needs it.
pub struct Content {
    pub id: String,
    /// The first bytes of its content id, and where its canonical bytes are stored.
    pub check: Check,
    pub loc: Loc,
    pub raw: RawHash,
    pub has_files: bool,
}

impl Delta {
    pub fn new(state: &State, cycle: u64) -> Delta {
        Delta::of(state.clone(), cycle)
    }

    /// The delta over a state it takes (no copy of its entries).
    pub fn of(state: State, cycle: u64) -> Delta {
        let live_before = state.live_count();
        let n = state.entries.len();
        Delta {
            cycle,
            entries: state.entries,
            seen: vec![false; n],
            touched: vec![false; n],
            added: BTreeMap::new(),
            files: state.files,
            new_files: Default::default(),
            live_before,
        }
    }

    /// The arrivals of a read, to be given back with `arrived` when it ends.
    pub fn arrivals(&mut self) -> Arrivals {
        Arrivals {
            known: Arc::new(Known(self.entries.iter().map(|(k, e)| (*k, (!e.deleted).then_some(e.raw))).collect())),
            seen: std::mem::take(&mut self.seen),
            new: HashSet::new(),
        }
    }

    pub fn arrived(&mut self, a: Arrivals) {
        self.seen = a.seen;
    }

    fn pos(&self, key: &Key) -> Option<usize> {
        find_key(&self.entries, |(k, _)| k, key)
    }

    pub fn live_before(&self) -> usize {
        self.live_before
    }

    /// A compared record's current version, while it is alive (to compare new content with).
    /// An id new this read has none: had it come before, it would be a duplicate.
    pub fn current(&self, at: Place) -> Option<&Entry> {
        at.0.map(|i| &self.entries[i].1).filter(|e| !e.deleted)
    }

    /// A compared record whose content is its current one's, in other words: no new version,
    /// but its new text is remembered (so it is not parsed again).
    pub fn same(&mut self, at: Place, raw: RawHash) -> Outcome {
        if let Some(i) = at.0 {
            let e = &mut self.entries[i].1;
            if e.raw != raw {
                e.raw = raw;
                self.touched[i] = true;
            }
        }
        Outcome::Same
    }

    /// A compared record's new content, stored: a new version.
    pub fn put(&mut self, at: Place, key: Key, c: Content) -> Outcome {
        let cycle = self.cycle;
        let entry = |version| Entry {
            id: c.id,
            version,
            since: cycle,
            deleted: false,
            has_files: c.has_files,
            check: c.check,
            raw: c.raw,
            loc: c.loc,
        };
        match at.0 {
            Some(i) => {
                let was = &self.entries[i].1;
                let outcome = if was.deleted { Outcome::Added } else { Outcome::Changed };
                let version = was.version + 1;
                self.entries[i].1 = entry(version);
                self.touched[i] = true;
                outcome
            }
            None => {
                self.added.insert(key, entry(1));
                Outcome::Added
            }
        }
    }

    /// An id an incremental source's listing shows: true if its record is known and alive
    /// (or arrived this cycle), false if the change feed missed it.
    pub fn listed(&mut self, key: &Key) -> bool {
        match self.pos(key) {
            Some(i) if !self.entries[i].1.deleted || self.seen[i] => {
                self.seen[i] = true;
                true
            }
            Some(_) => false,
            None => self.added.contains_key(key),
        }
    }

    fn unseen_alive(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.entries.len()).filter(|&i| !self.seen[i] && !self.entries[i].1.deleted)
    }

    /// Records alive at the last snapshot that neither the read nor the listing showed.
    pub fn vanished(&self) -> Vec<(Key, Entry)> {
        self.unseen_alive().map(|i| self.entries[i].clone()).collect()
    }

    /// A vanished record the source says still exists: kept as it was.
    pub fn keep(&mut self, key: &Key) {
        if let Some(i) = self.pos(key) {
            self.seen[i] = true;
        }
    }

    /// Alive records now.
    pub fn seen_alive(&self) -> u64 {
        let known = (0..self.entries.len()).filter(|&i| self.seen[i] && !self.entries[i].1.deleted).count();
        (known + self.added.len()) as u64
    }

    /// Marks what vanished as deleted; returns how many.
    pub fn delete_vanished(&mut self) -> u64 {
        let gone: Vec<usize> = self.unseen_alive().collect();
        for &i in &gone {
            let e = &mut self.entries[i].1;
            e.version += 1;
            e.deleted = true;
            e.since = self.cycle;
            self.touched[i] = true;
        }
        gone.len() as u64
    }

    /// What the data type's cache knows of a file key.
    pub fn cached_file(&self, key: &str) -> Option<&CachedFile> {
        self.new_files.get(key).or_else(|| self.files.get(key))
    }

    pub fn cache_file(&mut self, key: &str, f: CachedFile) {
        if self.files.get(key) != Some(&f) {
            self.new_files.insert(key.to_string(), f);
        }
    }

    pub fn live(&self) -> u64 {
        (self.entries.iter().filter(|(_, e)| !e.deleted).count() + self.added.len()) as u64
    }

    /// The cycle's delta page and the state after it: the state's entries and the added
    /// ones, both in key order, merged.
    pub fn finish(self) -> (Page, State) {
        let mut entries: Vec<(Key, Entry)> = Vec::with_capacity(self.entries.len() + self.added.len());
        let mut changed = Vec::new();
        let mut old = self.entries.into_iter().zip(self.touched).peekable();
        let mut new = self.added.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some(((ko, _), _)), Some((kn, _))) => ko < kn,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (kv, touched) =
                if take_old { old.next().expect("peeked") } else { (new.next().expect("peeked"), true) };
            if touched {
                changed.push(kv.clone());
            }
            entries.push(kv);
        }
        let mut files = self.files;
        files.extend(self.new_files.clone());
        (Page { entries: changed, files: self.new_files }, State { entries, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 10]
    }

    fn content(id: &str, h: u8) -> Content {
        Content {
            id: id.into(),
            check: [h; 3],
            loc: Loc { pack: 1, chunk: 0, offset: h as u32, len: 10 },
            raw: [h; 6],
            has_files: false,
        }
    }

    fn arrive(a: &mut Arrivals, k: u8, raw: Option<RawHash>) -> Arrival {
        let look = a.known().look(&key(k), raw);
        a.arrive(&key(k), look)
    }

    fn cycle(state: &State, n: u64, records: &[(u8, u8)]) -> (Page, State, Vec<Outcome>, u64) {
        let mut d = Delta::new(state, n);
        let mut a = d.arrivals();
        let mut outcomes = Vec::new();
        for (k, h) in records {
            match arrive(&mut a, *k, Some([*h; 6])) {
                Arrival::Compare(at) => outcomes.push(d.put(at, key(*k), content(&format!("r{k}"), *h))),
                Arrival::Unchanged => {}
                Arrival::Duplicate => panic!("duplicate"),
            }
        }
        d.arrived(a);
        let deleted = d.delete_vanished();
        let (page, state) = d.finish();
        (page, state, outcomes, deleted)
    }

    #[test]
    fn adds_changes_deletes_and_brings_back() {
        let (p1, s1, o1, d1) = cycle(&State::default(), 1, &[(1, 10), (2, 20), (3, 30)]);
        assert_eq!((o1.len(), d1, p1.entries.len()), (3, 0, 3));
        assert!(o1.iter().all(|o| *o == Outcome::Added));
        // Same text: nothing; one changed; one gone.
        let (p2, s2, o2, d2) = cycle(&s1, 2, &[(1, 10), (2, 21)]);
        assert_eq!((o2, d2), (vec![Outcome::Changed], 1));
        assert_eq!(p2.entries.len(), 2, "only the changed and the deleted are in the delta");
        let gone = s2.get(&key(3)).unwrap();
        assert!(gone.deleted && gone.version == 2 && gone.since == 2);
        assert_eq!(gone.check, [30; 3], "a deletion keeps its last content's place");
        assert_eq!(s2.get(&key(2)).unwrap().version, 2);
        // Back again: a new version, counted as added.
        let (_, s3, o3, _) = cycle(&s2, 3, &[(1, 10), (2, 21), (3, 31)]);
        assert_eq!(o3, vec![Outcome::Added]);
        assert_eq!((s3.get(&key(3)).unwrap().version, s3.live_count()), (3, 3));
    }

    #[test]
    fn the_same_content_in_other_words_is_no_new_version() {
        let (_, s1, _, _) = cycle(&State::default(), 1, &[(1, 10)]);
        let mut d = Delta::new(&s1, 2);
        let mut a = d.arrivals();
        let Arrival::Compare(at) = arrive(&mut a, 1, Some([99; 6])) else { panic!("its text differs") };
        d.arrived(a);
        assert!(d.current(at).is_some());
        assert_eq!(d.same(at, [99; 6]), Outcome::Same);
        let (page, s2) = d.finish();
        assert_eq!(s2.get(&key(1)).unwrap().version, 1);
        assert_eq!(page.entries[0].1.raw, [99; 6], "its new text is remembered, so it is not parsed again");
    }

    #[test]
    fn a_listing_keeps_what_it_shows_and_tells_what_the_feed_missed() {
        let (_, s1, _, _) = cycle(&State::default(), 1, &[(1, 10), (2, 20)]);
        let mut d = Delta::new(&s1, 2);
        assert!(d.listed(&key(1)));
        assert!(!d.listed(&key(9)), "an id never seen: the feed missed it");
        assert_eq!(d.vanished().len(), 1);
        d.keep(&key(2));
        assert_eq!((d.delete_vanished(), d.seen_alive()), (0, 2));
        let mut a = d.arrivals();
        assert_eq!(arrive(&mut a, 1, Some([10; 6])), Arrival::Duplicate);
        assert_eq!(arrive(&mut a, 7, None), Arrival::Compare(Place(None)));
        assert_eq!(arrive(&mut a, 7, None), Arrival::Duplicate, "a new id twice");
    }
}
