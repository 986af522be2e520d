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
        Ok(vec![DataType::named("cards")])
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
                })
                .collect();
            (batch, format!("2026-01-01T00:{:02}:00Z", app.clock))
        };
        out.send(batch).await.map_err(|_| SourceError::Stopped)?;
        Ok(ReadSummary { cursor: Some(cursor) })
    }
    async fn list_ids(&self, _: &str) -> Result<Vec<String>, SourceError> {
        Ok(self.0.lock().unwrap().cards.keys().cloned().collect())
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

both_backends!(change_feed_listing_schedule_and_drift);

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
