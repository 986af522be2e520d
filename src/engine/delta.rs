//! The delta of one data type in one cycle: what the source lists now against the state of
//! the last snapshot. Records are compared by the hash of the source's text first (an
//! unchanged record is never parsed), then by the content id of their canonical form (a
//! record whose JSON only changed key order or spacing is not a new version). What the
//! listing no longer shows is deleted. No I/O here: the engine feeds it and stores.

use std::collections::HashMap;

use crate::vault::state::{CachedFile, Check, Entry, Key, Loc, Page, RawHash, State};

struct Slot {
    e: Entry,
    seen: bool,
    /// Its entry changed this cycle (a new version, or a known text).
    touched: bool,
}

/// What the engine should do with a record that arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The same id came twice in one read.
    Duplicate,
    /// Its text is as last time: nothing to store.
    Unchanged,
    /// Parse it, store its files, and `put` its canonical content.
    Compare,
}

/// What `put` made of a record's content.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Added,
    Changed,
    /// The same content in other words: no new version.
    Same,
}

pub struct Delta {
    cycle: u64,
    slots: HashMap<Key, Slot>,
    files: std::collections::BTreeMap<String, CachedFile>,
    new_files: std::collections::BTreeMap<String, CachedFile>,
    live_before: usize,
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
        let slots: HashMap<Key, Slot> =
            state.entries.into_iter().map(|(k, e)| (k, Slot { e, seen: false, touched: false })).collect();
        Delta { cycle, slots, files: state.files, new_files: Default::default(), live_before }
    }

    pub fn live_before(&self) -> usize {
        self.live_before
    }

    /// A record arrives with the hash of its text (None when a file has no fingerprint: then
    /// only its bytes can say whether it changed).
    pub fn arrive(&mut self, key: &Key, raw: Option<RawHash>) -> Arrival {
        match self.slots.get_mut(key) {
            Some(s) if s.seen => Arrival::Duplicate,
            Some(s) if !s.e.deleted && raw.is_some_and(|r| r == s.e.raw) => {
                s.seen = true;
                Arrival::Unchanged
            }
            _ => Arrival::Compare,
        }
    }

    /// A record's current version, while it is alive (to compare new content with).
    pub fn current(&self, key: &Key) -> Option<&Entry> {
        self.slots.get(key).filter(|s| !s.e.deleted).map(|s| &s.e)
    }

    /// A compared record whose content is its current one's, in other words: no new version,
    /// but its new text is remembered (so it is not parsed again).
    pub fn same(&mut self, key: &Key, raw: RawHash) -> Outcome {
        if let Some(s) = self.slots.get_mut(key) {
            s.seen = true;
            if s.e.raw != raw {
                s.e.raw = raw;
                s.touched = true;
            }
        }
        Outcome::Same
    }

    /// A compared record's new content, stored: a new version.
    pub fn put(&mut self, key: Key, c: Content) -> Outcome {
        let cycle = self.cycle;
        match self.slots.get_mut(&key) {
            Some(s) => {
                let outcome = if s.e.deleted { Outcome::Added } else { Outcome::Changed };
                s.e = Entry {
                    id: c.id,
                    version: s.e.version + 1,
                    since: cycle,
                    deleted: false,
                    has_files: c.has_files,
                    check: c.check,
                    raw: c.raw,
                    loc: c.loc,
                };
                s.seen = true;
                s.touched = true;
                outcome
            }
            None => {
                let e = Entry {
                    id: c.id,
                    version: 1,
                    since: cycle,
                    deleted: false,
                    has_files: c.has_files,
                    check: c.check,
                    raw: c.raw,
                    loc: c.loc,
                };
                self.slots.insert(key, Slot { e, seen: true, touched: true });
                Outcome::Added
            }
        }
    }

    /// An id an incremental source's listing shows: true if its record is known and alive
    /// (or arrived this cycle), false if the change feed missed it.
    pub fn listed(&mut self, key: &Key) -> bool {
        match self.slots.get_mut(key) {
            Some(s) if !s.e.deleted || s.seen => {
                s.seen = true;
                true
            }
            _ => false,
        }
    }

    /// Records alive at the last snapshot that neither the read nor the listing showed.
    pub fn vanished(&self) -> Vec<(Key, Entry)> {
        self.slots.iter().filter(|(_, s)| !s.seen && !s.e.deleted).map(|(k, s)| (*k, s.e.clone())).collect()
    }

    /// A vanished record the source says still exists: kept as it was.
    pub fn keep(&mut self, key: &Key) {
        if let Some(s) = self.slots.get_mut(key) {
            s.seen = true;
        }
    }

    /// Alive records now.
    pub fn seen_alive(&self) -> u64 {
        self.slots.values().filter(|s| s.seen && !s.e.deleted).count() as u64
    }

    /// Marks what vanished as deleted; returns how many.
    pub fn delete_vanished(&mut self) -> u64 {
        let cycle = self.cycle;
        let mut n = 0;
        for s in self.slots.values_mut().filter(|s| !s.seen && !s.e.deleted) {
            s.e.version += 1;
            s.e.deleted = true;
            s.e.since = cycle;
            s.touched = true;
            n += 1;
        }
        n
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
        self.slots.values().filter(|s| !s.e.deleted).count() as u64
    }

    /// The cycle's delta page and the state after it.
    pub fn finish(self) -> (Page, State) {
        let mut entries: Vec<(Key, Entry)> = Vec::with_capacity(self.slots.len());
        let mut changed = Vec::new();
        for (k, s) in self.slots {
            if s.touched {
                changed.push((k, s.e.clone()));
            }
            entries.push((k, s.e));
        }
        entries.sort_unstable_by_key(|e| e.0);
        changed.sort_unstable_by_key(|e| e.0);
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

    fn cycle(state: &State, n: u64, records: &[(u8, u8)]) -> (Page, State, Vec<Outcome>, u64) {
        let mut d = Delta::new(state, n);
        let mut outcomes = Vec::new();
        for (k, h) in records {
            match d.arrive(&key(*k), Some([*h; 6])) {
                Arrival::Compare => outcomes.push(d.put(key(*k), content(&format!("r{k}"), *h))),
                Arrival::Unchanged => {}
                Arrival::Duplicate => panic!("duplicate"),
            }
        }
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
        assert_eq!(d.arrive(&key(1), Some([99; 6])), Arrival::Compare, "its text differs");
        assert!(d.current(&key(1)).is_some());
        assert_eq!(d.same(&key(1), [99; 6]), Outcome::Same);
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
        assert_eq!(d.arrive(&key(1), Some([10; 6])), Arrival::Duplicate);
    }
}
