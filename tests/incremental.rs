//! Incremental sources: only what changed is read, deletions come from the id listing, a
//! full re-read happens on schedule, and what the change feed missed is found and reported
//! as drift. The source is an in-memory app with a change feed, through the engine's API.

mod common;

use async_trait::async_trait;
use common::{Backend, Env, PASS};
use daybook::config::{Config, SourceConfig};
use daybook::connectors::{Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, SourceError};
use daybook::engine::{CycleReport, Filter, run_cycle_with};
use daybook::vault::Vault;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Default)]
struct App {
    /// id -> (json, modified)
    cards: BTreeMap<String, (String, String)>,
    clock: u32,
    full_reads: u32,
    feed_reads: u32,
    /// The data types it offers (default: one, "cards").
    types: Option<Vec<DataType>>,
    /// Cards its reads and listings skip (as offset paging does when earlier ones go).
    skipped: std::collections::HashSet<String>,
    /// Whether it asks the app about cards a listing no longer shows.
    confirms: bool,
}

impl App {
    fn now(&mut self) -> String {
        self.clock += 1;
        format!("2026-01-01T00:{:02}:00Z", self.clock)
    }
    fn put(&mut self, id: &str, text: &str, modified: Option<&str>) {
        let m = modified.map(str::to_string).unwrap_or_else(|| self.now());
        self.cards.insert(id.into(), (format!("{{\"id\":\"{id}\",\"text\":\"{text}\"}}"), m));
    }
}

#[derive(Clone)]
struct Feed(Arc<Mutex<App>>);

#[async_trait]
impl Connector for Feed {
    fn incremental(&self) -> bool {
        true
    }
    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        Ok(self.0.lock().unwrap().types.clone().unwrap_or_else(|| vec![DataType::named("cards")]))
    }
    fn confirms_deletions(&self, _: &str) -> bool {
        self.0.lock().unwrap().confirms
    }
    async fn confirm_deleted(
        &self,
        _: &str,
        vanished: Vec<daybook::connectors::Vanished>,
    ) -> Result<Vec<String>, SourceError> {
        let app = self.0.lock().unwrap();
        Ok(vanished.into_iter().map(|v| v.id).filter(|id| !app.cards.contains_key(id)).collect())
    }
    async fn read(&self, _: &str, mode: ReadMode, out: mpsc::Sender<Batch>) -> Result<ReadSummary, SourceError> {
        let (batch, cursor) = {
            let mut app = self.0.lock().unwrap();
            match &mode {
                ReadMode::Full => app.full_reads += 1,
                ReadMode::Since(_) => app.feed_reads += 1,
            }
            let batch: Vec<Record> = app
                .cards
                .iter()
                .filter(|(id, _)| !app.skipped.contains(*id))
                .filter(|(_, (_, m))| match &mode {
                    ReadMode::Full => true,
                    ReadMode::Since(c) => m > c,
                })
                .map(|(id, (json, m))| Record {
                    id: id.clone(),
                    json: json.clone(),
                    files: vec![],
                    line: None,
                    modified: Some(m.clone()),
                    unparsed: None,
                })
                .collect();
            (batch, format!("2026-01-01T00:{:02}:00Z", app.clock))
        };
        out.send(batch).await.map_err(|_| SourceError::Stopped)?;
        Ok(ReadSummary { cursor: Some(cursor) })
    }
    async fn list_ids(&self, _: &str) -> Result<Vec<String>, SourceError> {
        let app = self.0.lock().unwrap();
        Ok(app.cards.keys().filter(|id| !app.skipped.contains(*id)).cloned().collect())
    }
    async fn fetch_file(&self, _: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        Err(SourceError::unsupported("files", "this test source has none"))
    }
}

async fn cycle(vault: &Vault, cfg: &Config, feed: &Feed) -> CycleReport {
    let f = feed.clone();
    let factory = move |_: &SourceConfig| -> anyhow::Result<Box<dyn Connector>> { Ok(Box::new(f.clone())) };
    let r = run_cycle_with(vault, cfg, &Filter::default(), &factory).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    r
}

both_backends!(change_feed_listing_schedule_and_drift, a_kept_record_is_asked_for_again, renames_keep_history);

async fn change_feed_listing_schedule_and_drift(b: Backend) {
    let env = Env::new(b).await;
    let mut cfg = Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = Vault::init(&cfg, PASS).await.unwrap();
    let feed = Feed(Arc::new(Mutex::new(App::default())));
    let app = |f: &dyn Fn(&mut App)| f(&mut feed.0.lock().unwrap());
    app(&|a| {
        a.put("c1", "one", None);
        a.put("c2", "two", None);
        a.put("c3", "three", None);
    });

    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert!(s.full_read, "the first read of a data type is whole");
    assert_eq!((s.live, s.added), (3, 3));

    app(&|a| a.put("c1", "one, edited", None));
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert!(!s.full_read);
    assert_eq!((s.listed, s.changed, s.unchanged, s.live), (3, 1, 0, 3), "only the changed record was read");

    app(&|a| {
        a.cards.remove("c2");
    });
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert_eq!((s.deleted, s.live, s.drift), (1, 2, 0), "the id listing finds the deletion");

    // The app changes c3 without moving its modification time: the feed cannot see it.
    app(&|a| a.put("c3", "three, changed quietly", Some("2026-01-01T00:01:00Z")));
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert_eq!((s.changed, s.full_read), (0, false));
    // The scheduled full read finds it, and says the feed had missed it.
    cfg.engine.full_every_days = 0;
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert!(s.full_read);
    assert_eq!((s.changed, s.drift, s.live), (1, 1, 2));
    cfg.engine.full_every_days = 7;

    // A record the feed never returns but the listing shows: read whole at once, as drift.
    app(&|a| a.put("c4", "added behind the feed's back", Some("2026-01-01T00:00:30Z")));
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert!(s.full_read, "a record missed by the feed makes the data type read whole");
    assert_eq!((s.added, s.drift, s.live), (1, 1, 3));

    let reads = {
        let a = feed.0.lock().unwrap();
        (a.full_reads, a.feed_reads)
    };
    assert_eq!(reads, (3, 4), "whole reads: first, scheduled, after a miss; feed reads: the rest");
    let snaps = env.json(&["snapshots"]);
    let drift: Vec<i64> = snaps.as_array().unwrap().iter().map(|s| s["drift"].as_i64().unwrap()).collect();
    assert_eq!(drift, vec![0, 0, 0, 0, 1, 1]);
    let check = daybook::vault::check::check(&vault, true).await.unwrap();
    assert!(check.ok(), "{:?}", check.problems);
}

/// A card that a listing skipped, and the app confirmed still exists, is kept without its
/// content being read: the next cycle must ask again for changes from where this one began,
/// or a change made to it meanwhile is lost until the next whole read.
async fn a_kept_record_is_asked_for_again(b: Backend) {
    let env = Env::new(b).await;
    let cfg = Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = Vault::init(&cfg, PASS).await.unwrap();
    let feed = Feed(Arc::new(Mutex::new(App { confirms: true, ..App::default() })));
    let app = |f: &dyn Fn(&mut App)| f(&mut feed.0.lock().unwrap());
    app(&|a| {
        a.put("c1", "one", None);
        a.put("c2", "two", None);
    });
    cycle(&vault, &cfg, &feed).await;
    // c2 changes, and this cycle's feed and listing both skip it; the app says it exists.
    app(&|a| {
        a.put("c2", "two, edited", None);
        a.skipped.insert("c2".into());
    });
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert_eq!((s.live, s.deleted, s.changed), (2, 0, 0), "kept, not deleted: {s:?}");
    app(&|a| a.skipped.clear());
    let s = &cycle(&vault, &cfg, &feed).await.types[0].stats;
    assert!(!s.full_read);
    assert_eq!(s.changed, 1, "the change to the kept card is read the next cycle: {s:?}");
    let shown = env.json(&["show", "c2"]);
    assert_eq!(shown["content"]["data"]["text"], "two, edited");
}

fn ty(key: &str, name: &str, path: &[&str], former: &[&str]) -> DataType {
    DataType {
        key: key.into(),
        name: name.into(),
        path: path.iter().map(|s| s.to_string()).collect(),
        former: former.iter().map(|s| s.to_string()).collect(),
    }
}

/// A vault written when data types were known by name (the board's) keeps its history when
/// the source starts to give stable keys, and a rename after that changes only the name.
async fn renames_keep_history(b: Backend) {
    let env = Env::new(b).await;
    let cfg = Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = Vault::init(&cfg, PASS).await.unwrap();
    let feed = Feed(Arc::new(Mutex::new(App::default())));
    let app = |f: &dyn Fn(&mut App)| f(&mut feed.0.lock().unwrap());
    app(&|a| {
        a.types = Some(vec![DataType::named("Roadmap/cards")]);
        a.put("c1", "one", None);
        a.put("c2", "two", None);
    });
    cycle(&vault, &cfg, &feed).await;
    let sid = env.sid("Roadmap/cards", "c1");
    // The connector now knows the board by its id; its earlier key was the board's name.
    app(&|a| {
        a.types = Some(vec![ty("board:b1/cards", "Roadmap/cards", &["Team", "Roadmap"], &["Roadmap/cards"])]);
        a.put("c1", "one, edited", None);
    });
    let r = cycle(&vault, &cfg, &feed).await;
    assert_eq!((r.types[0].stats.changed, r.types[0].stats.deleted), (1, 0), "{r:?}");
    // The board is renamed, and another board takes its old name.
    app(&|a| {
        a.types = Some(vec![
            ty("board:b1/cards", "Plans/cards", &["Team", "Plans"], &["Plans/cards"]),
            ty("board:b2/cards", "Roadmap/cards", &["Team", "Roadmap"], &["Roadmap/cards"]),
        ]);
    });
    let r = cycle(&vault, &cfg, &feed).await;
    let b1 = r.types.iter().find(|t| t.key == "board:b1/cards").unwrap();
    assert_eq!((b1.data_type.as_str(), b1.stats.deleted, b1.stats.live), ("Plans/cards", 0, 2), "{r:?}");
    assert!(r.sources[0].missing.is_empty(), "nothing is gone: {:?}", r.sources[0].missing);

    let snaps = env.json(&["snapshots"]);
    let plans: Vec<&serde_json::Value> =
        snaps.as_array().unwrap().iter().filter(|s| s["key"] == "board:b1/cards").collect();
    assert_eq!(plans.len(), 3, "one data type, three cycles: {snaps}");
    assert!(plans.iter().all(|s| s["data_type"] == "Plans/cards"), "shown by its current name: {snaps}");
    let h = env.json(&["history", &sid]);
    assert_eq!(h["record"]["data_type"], "Plans/cards");
    assert_eq!(h["versions"].as_array().unwrap().len(), 2, "the card's history goes on: {h}");
    assert_eq!(env.json(&["show", &sid])["content"]["data"]["text"], "one, edited");
    let d = env.json(&["diff", "--type", "export/board:b1/cards", "--from", "cycle:1", "--to", "cycle:3"]);
    assert_eq!(d["changed"].as_array().unwrap().len(), 1, "{d}");
    let d = env.json(&["diff", "--type", "acme/export/Plans/cards", "--from", "cycle:1", "--to", "cycle:3"]);
    assert_eq!(d["changed"].as_array().unwrap().len(), 1, "a name with / in it is found: {d}");
}
