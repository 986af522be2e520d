//! Defects found when daybook was tried as a new user would (issue 7), each with the test
//! that shows it gone: a backup that hung, the lock, the log in the clear, blocking work on
//! the async threads, a store that was not the one named, and small ones.

mod common;

use common::{Backend, Env, PASS, bounded, catalog_bytes, contains};
use serde_json::json;

both_backends!(a_duplicate_id_in_a_large_export_fails_at_once, the_log_is_sealed);

// SQLite has one writer at a time, and a data type's transaction holds it: backups at once
// need PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_two_sources_of_one_org_back_up_at_once() {
    two_sources_of_one_org_back_up_at_once(Backend::Postgres).await
}

/// 50,000 lines whose second repeats the first's id: the backup used to hang for ever (the
/// reader kept sending into a channel nobody read), holding the lock.
async fn a_duplicate_id_in_a_large_export_fails_at_once(b: Backend) {
    let env = Env::new(b).await;
    let mut text = String::new();
    for n in 0..50_000 {
        let id = if n == 1 { 0 } else { n };
        text.push_str(&format!("{{\"id\":\"t{id}\",\"title\":\"task {n}\"}}\n"));
    }
    env.write_raw("tasks", &text);
    env.write_records("comments", &[json!({"id": 1, "text": "hello"})]);
    env.write_records("zeta", &[json!({"id": 1, "text": "after tasks"})]);
    env.ok(&["init"]);
    let o = bounded(env.cmd(&["backup"]), 120);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("tasks.jsonl") && err.contains("line 2") && err.contains("appears twice"), "{err}");
    let latest = env.latest();
    assert!(!latest.contains_key("tasks"), "nothing of tasks is committed: {latest:?}");
    assert_eq!((latest["comments"].1, latest["zeta"].1), (1, 1), "the other data types are");
    // The lock went with the failed backup: the next one runs.
    env.write_records("tasks", &[json!({"id": "t0"})]);
    env.ok(&["backup"]);
}

/// The backup log holds errors that quote records (here a duplicated id); in the catalog it is
/// sealed, and `daybook log` reads it back with the org's key.
async fn the_log_is_sealed(b: Backend) {
    let env = Env::new(b).await;
    env.write_raw("tasks", "{\"id\":\"ZEBRA-7731\"}\n{\"id\":\"ZEBRA-7731\"}\n");
    env.write_records("comments", &[json!({"id": 1, "text": "hello"})]);
    env.ok(&["init"]);
    assert_eq!(env.run(&["backup"]).status.code(), Some(1));
    let log = env.json(&["log"]);
    let failed = log.as_array().unwrap().iter().find(|l| l["level"] == "error").expect("the failure is logged");
    assert_eq!(failed["data_type"], "tasks");
    assert!(failed["message"].as_str().unwrap().contains("ZEBRA-7731"), "{failed}");
    let ok = log.as_array().unwrap().iter().find(|l| l["data_type"] == "comments").unwrap();
    assert!(ok["message"].as_str().unwrap().contains("1 live"), "{ok}");
    let bytes = catalog_bytes(&env).await;
    assert!(!contains(&bytes, "ZEBRA-7731"), "the record's id is not in the catalog in the clear");
    assert!(!contains(&bytes, "appears twice"), "nor is the error's text");
}

/// Two sources of one org back up at the same time, each under its own lease: neither
/// removes the other's packs, which are not in the catalog until it commits.
async fn two_sources_of_one_org_back_up_at_once(b: Backend) {
    use daybook::config::{Config, SourceConfig};
    use daybook::connectors::{self, Connector};
    use daybook::engine::{Filter, run_cycle_with};
    use std::sync::Arc;

    let env = Env::new(b).await;
    let big = env.path().join("big");
    std::fs::create_dir_all(big.join("records")).unwrap();
    // About 40 MB of records that do not compress well: at least one pack is written (and
    // durable) long before the data type commits.
    let mut text = String::new();
    let mut state = 0x9e3779b97f4a7c15u64;
    for n in 0..40_000 {
        let noise: String = (0..512)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{:02x}", state as u8)
            })
            .collect();
        text.push_str(&format!("{{\"id\":{n},\"noise\":\"{noise}\"}}\n"));
    }
    std::fs::write(big.join("records/blobs.jsonl"), text).unwrap();
    env.write_records("tasks", &[json!({"id": 1})]);
    env.write_config(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n\n\
         [[orgs.sources]]\nname = \"big\"\nkind = \"jsonl\"\npath = \"big\"\n",
    );
    let cfg = Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = Arc::new(daybook::vault::Vault::init(&cfg, PASS).await.unwrap());

    // The big source's reader stops after its first pack is in the store, until released.
    let gate = Arc::new(tokio::sync::Notify::new());
    let written = Arc::new(tokio::sync::Notify::new());
    struct Gated {
        inner: Box<dyn Connector>,
        store: std::path::PathBuf,
        gate: Arc<tokio::sync::Notify>,
        written: Arc<tokio::sync::Notify>,
    }
    #[async_trait::async_trait]
    impl Connector for Gated {
        async fn discover(&self) -> Result<Vec<connectors::DataType>, connectors::SourceError> {
            self.inner.discover().await
        }
        async fn read(
            &self,
            ty: &str,
            mode: connectors::ReadMode,
            out: tokio::sync::mpsc::Sender<connectors::Batch>,
        ) -> Result<connectors::ReadSummary, connectors::SourceError> {
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            let inner = self.inner.read(ty, mode, tx);
            let relay = async {
                let mut held = false;
                while let Some(b) = rx.recv().await {
                    out.send(b).await.map_err(|_| connectors::SourceError::Stopped)?;
                    if !held && packs_in(&self.store) > 0 {
                        held = true;
                        self.written.notify_one();
                        self.gate.notified().await;
                    }
                }
                Ok::<_, connectors::SourceError>(())
            };
            let (r, relayed) = tokio::join!(inner, relay);
            relayed?;
            r
        }
        async fn fetch_file(
            &self,
            f: &connectors::FileRef,
        ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, connectors::SourceError> {
            self.inner.fetch_file(f).await
        }
    }
    fn packs_in(store: &std::path::Path) -> usize {
        fn walk(p: &std::path::Path) -> usize {
            std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum::<usize>())
                .unwrap_or(0)
        }
        walk(&store.join("data"))
    }

    let store = env.store();
    let (v, c, g, w) = (vault.clone(), cfg.clone(), gate.clone(), written.clone());
    let big_backup = tokio::spawn(async move {
        let factory = move |src: &SourceConfig| -> anyhow::Result<Box<dyn Connector>> {
            Ok(Box::new(Gated {
                inner: connectors::build(src)?,
                store: store.clone(),
                gate: g.clone(),
                written: w.clone(),
            }))
        };
        let only_big = Filter { source: Some("big".into()), ..Filter::default() };
        run_cycle_with(&v, &c, &only_big, &factory).await.unwrap()
    });
    let bound = std::time::Duration::from_secs(600);
    tokio::time::timeout(bound, written.notified()).await.expect("the big backup writes a pack");
    // Meanwhile the other source of the org backs up (and would tidy the org's store).
    let r = env.json(&["backup", "--source", "export"]);
    assert_eq!(r["types"][0]["error"], serde_json::Value::Null, "{r}");
    assert_eq!(r["orphan_packs_removed"], 0, "the running backup's packs are not orphans: {r}");
    // A second backup of the same source is refused while the first runs.
    let again = env.run(&["backup", "--source", "big", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let why = again["types"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("the backup of acme/big is already running"), "{again}");
    gate.notify_one();
    let report = tokio::time::timeout(bound, big_backup).await.expect("the big backup ends").unwrap();
    assert_eq!(report.failed(), 0, "{report:?}");
    assert_eq!(env.latest()["blobs"].1, 40_000);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!((check["problems"].clone(), check["notes"].clone()), (json!([]), json!([])), "{check}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_with_an_unsupported_scheme_is_refused() {
    let env = Env::new(Backend::Sqlite).await;
    std::fs::write(
        env.path().join("daybook.toml"),
        format!(
            "[vault]\ncatalog = \"{}\"\nstore = \"gs://bucket/prefix\"\n\n[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n",
            env.catalog
        ),
    )
    .unwrap();
    let o = env.run(&["init"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("gs:// stores are not supported") && err.contains("supported:"), "{err}");
    assert!(!env.path().join("gs:").exists(), "no folder named after the URL is made");
}

/// Errors in a journal or a file carry no colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn logs_to_a_file_have_no_colour_codes() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_raw("tasks", "not json\n");
    env.ok(&["init"]);
    let o = env.cmd(&["backup"]).env("DAYBOOK_LOG", "info").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not snapshotted"), "{err}");
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
}

/// `history task-0042` names the record by its id at the source: the one record with that
/// id, never one whose id merely contains it, and an id two data types share is refused with
/// both SIDs. (It is found by its key, a hash of the id, in each data type's state: nothing
/// is scanned.)
#[tokio::test(flavor = "multi_thread")]
async fn a_record_is_found_by_its_exact_id() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("tasks", &(0..2000).map(|n| json!({"id": format!("task-{n:04}")})).collect::<Vec<_>>());
    env.write_records("notes", &[json!({"id": "task-0042"}), json!({"id": "note-1"})]);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let h = env.json(&["history", "task-0007"]);
    assert_eq!(
        (h["record"]["source_id"].as_str(), h["record"]["data_type"].as_str()),
        (Some("task-0007"), Some("tasks"))
    );
    let o = env.run(&["history", "task-0042"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is the id of several records") && err.matches("(acme/export/").count() == 2, "{err}");
    assert!(!env.run(&["history", "task-004"]).status.success(), "no record has that id");
}

/// Argon2id (64 MiB, most of a second) runs off the async threads: a runtime with one thread
/// keeps serving its other tasks while a vault opens.
#[test]
fn opening_a_vault_does_not_block_the_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let env = Env::new(Backend::Sqlite).await;
        env.ok(&["init"]);
        let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            let mut i = tokio::time::interval(std::time::Duration::from_millis(5));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                i.tick().await;
                t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let started = std::time::Instant::now();
        let t0 = ticks.load(std::sync::atomic::Ordering::Relaxed);
        daybook::vault::Vault::open(&cfg, PASS).await.unwrap();
        let (elapsed, n) = (started.elapsed(), ticks.load(std::sync::atomic::Ordering::Relaxed) - t0);
        ticker.abort();
        // Blocked, the thread would miss nearly every tick; free, it misses few.
        let possible = elapsed.as_millis() as u64 / 5;
        assert!(n * 3 >= possible, "{n} of {possible} ticks while the vault opened ({elapsed:?})");
    });
}
