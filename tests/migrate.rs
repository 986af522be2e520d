//! Vaults written by earlier releases (schema 1, tests/fixtures/vault-v1, and schema 2,
//! tests/fixtures/vault-v2, both made by tests/fixtures/make-vault.sh from the same exports)
//! open with this one: the catalog is upgraded in place, every version and file reads back as
//! it was, SIDs stay, the backup log is sealed, and nothing an app said stays in the clear.
//! On SQLite, on PostgreSQL, and on PostgreSQL with the fixture's blobs moved to S3 (a real
//! S3-compatible server), as an operator moving to several machines would have them.

mod common;

use common::{Backend, bounded, contains};
use daybook::engine::query;
use daybook::vault::Vault;
use serde_json::{Value, json};
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "fixture passphrase";

fn fixture(release: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/vault-v{release}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target)
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

struct Old {
    dir: tempfile::TempDir,
    /// source id -> SID, as the first release derived them.
    sids: Vec<(String, String)>,
    /// The old log's entries: their text where schema 1 kept it in the clear.
    log: Vec<Option<String>>,
}

impl Old {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_daybook"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("DAYBOOK_CONFIG", self.dir.path().join("daybook.toml"))
            .env("DAYBOOK_PASSPHRASE", PASS)
            .env_remove("DAYBOOK_LOG");
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = bounded(self.cmd(&a), 120);
        assert!(o.status.success(), "daybook {a:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

async fn sqlite_pool(path: &Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rw", path.display())).await.unwrap()
}

/// The fixture in a fresh folder, its catalog in SQLite or copied row by row into a fresh
/// PostgreSQL schema built with the first release's DDL; for S3, its blobs copied object by
/// object under a prefix of its own in the test bucket (and gone from the folder).
async fn old_vault(b: Backend, release: u32) -> Old {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(release), dir.path());
    let db = dir.path().join("vault/catalog.db");
    let pool = sqlite_pool(&db).await;
    let sids = sqlx::query("SELECT source_id, sid FROM records ORDER BY source_id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let column = if release == 1 { "message" } else { "NULL" };
    let log = sqlx::query(&format!("SELECT {column} FROM cycle_log"))
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Backend::Postgres | Backend::S3 = b {
        let url = to_postgres(&pool, release).await;
        std::fs::remove_file(&db).unwrap();
        let cfg = std::fs::read_to_string(dir.path().join("daybook.toml")).unwrap();
        std::fs::write(dir.path().join("daybook.toml"), cfg.replace("sqlite://vault/catalog.db", &url)).unwrap();
    }
    if let Backend::S3 = b {
        let at = format!("{}/v{release}_{}_{}", common::s3::server().bucket, std::process::id(), rand_suffix());
        let blobs = dir.path().join("vault/blobs");
        let mut files = Vec::new();
        walk(&blobs, &mut files);
        for f in &files {
            let name = f.strip_prefix(&blobs).unwrap().to_str().unwrap().to_string();
            common::s3::put(&at, &name, std::fs::read(f).unwrap());
        }
        assert!(!files.is_empty());
        std::fs::remove_dir_all(&blobs).unwrap();
        let cfg = std::fs::read_to_string(dir.path().join("daybook.toml")).unwrap();
        let moved = cfg.replace("store = \"vault/blobs\"", &format!("store = \"s3://{at}\""));
        assert_ne!(moved, cfg, "the fixture's config names its store");
        std::fs::write(dir.path().join("daybook.toml"), moved).unwrap();
    }
    pool.close().await;
    Old { dir, sids, log }
}

async fn to_postgres(from: &sqlx::AnyPool, release: u32) -> String {
    let base =
        std::env::var("DAYBOOK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("v1_{}_{}", std::process::id(), rand_suffix());
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    admin.close().await;
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let pg = sqlx::AnyPool::connect(&url).await.unwrap();
    let ddl = std::fs::read_to_string(fixture(release).join("schema.sql")).unwrap();
    let ddl: String = ddl.lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n");
    let ddl = ddl
        .replace("{pk}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("{blob}", "BYTEA")
        .replace("{norowid}", "");
    for s in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(s).execute(&pg).await.unwrap();
    }
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(from)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in tables {
        let cols: Vec<(String, String)> = sqlx::query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&t)
        .fetch_all(&pg)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let insert = format!("INSERT INTO {t} ({}) VALUES ({})", names.join(", "), marks.join(", "));
        for r in sqlx::query(&format!("SELECT {} FROM {t}", names.join(", "))).fetch_all(from).await.unwrap() {
            let mut q = sqlx::query(&insert);
            for (i, (_, ty)) in cols.iter().enumerate() {
                q = match ty.as_str() {
                    "bigint" | "integer" => q.bind(r.get::<Option<i64>, _>(i)),
                    "bytea" => q.bind(r.get::<Option<Vec<u8>>, _>(i)),
                    _ => q.bind(r.get::<Option<String>, _>(i)),
                };
            }
            q.execute(&pg).await.unwrap();
        }
    }
    // As PostgreSQL would have them after those inserts through the identity columns.
    for t in ["orgs", "cycles", "types", "packs", "restores"].into_iter().chain((release > 1).then_some("cycle_log")) {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
        ))
        .execute(&pg)
        .await
        .unwrap();
    }
    pg.close().await;
    url
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() { walk(&e.path(), out) } else { out.push(e.path()) }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

both_backends!(
    a_schema_1_vault_opens_whole,
    a_schema_2_vault_opens_whole,
    a_schema_3_catalog_gains_the_new_tables,
    a_schema_4_catalog_gains_the_totp_step
);

/// The fixture's export as its last cycle saw it, with t4's title edited and the photo gone,
/// for the next backup.
fn write_next_export(old: &Old) {
    let export = old.dir.path().join("export");
    std::fs::create_dir_all(export.join("records")).unwrap();
    std::fs::create_dir_all(export.join("attachments")).unwrap();
    let tasks = ["alpha", "bravo renamed", "charlie is back", "delta, edited", "echo"]
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{{\"id\":\"t{}\",\"title\":\"{t}\",\"n\":{}}}\n", i + 1, i + 1))
        .collect::<String>();
    std::fs::write(export.join("records/tasks.jsonl"), tasks).unwrap();
    std::fs::write(
        export.join("records/comments.jsonl"),
        "{\"id\":1,\"text\":\"first comment\"}\n{\"id\":2,\"text\":\"second\"}\n",
    )
    .unwrap();
    std::fs::write(export.join("attachments/invoice.pdf"), "invoice bytes ".repeat(500)).unwrap();
}

/// Each task's versions' titles, by the read API, and the catalog's schema version.
async fn task_titles(old: &Old) -> (Vec<(&'static str, Vec<Option<String>>)>, Option<String>) {
    let cfg = daybook::config::Config::load(&old.dir.path().join("daybook.toml")).unwrap();
    let vault = Vault::open(&cfg, PASS).await.unwrap();
    let mut all = Vec::new();
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        let (info, versions) = query::history(&vault, id).await.unwrap();
        let mut got: Vec<Option<String>> = Vec::new();
        for v in &versions {
            let content = vault.version_content(&info, v.version).await.unwrap();
            got.push(content.map(|c| c.data["title"].as_str().unwrap().to_string()));
        }
        all.push((id, got));
    }
    (all, vault.schema_version().await.unwrap())
}

/// Schema 5 wrote its state pages with whole offsets and ids (`DBS1`); this release writes
/// them compact (`DBS2`). A vault of schema 5 reads back every version, and its next backup
/// writes the new pages on top of the old ones, which still read.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_5_vault_reads_every_version_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(5), dir.path());
    let old = Old { dir, sids: Vec::new(), log: Vec::new() };
    let s = |t: &str| Some(t.to_string());
    let mut want = vec![
        ("t1", vec![s("alpha")]),
        ("t2", vec![s("bravo"), s("bravo renamed")]),
        ("t3", vec![s("charlie"), None, s("charlie is back")]),
        ("t4", vec![s("delta")]),
        ("t5", vec![s("echo")]),
    ];
    let (got, version) = task_titles(&old).await;
    assert_eq!(got, want);
    assert_eq!(version, Some(daybook::vault::catalog::SCHEMA_VERSION.to_string()));
    assert_eq!(old.json(&["check", "--read-data"])["problems"], json!([]));

    write_next_export(&old);
    let o = bounded(old.cmd(&["backup"]), 120);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    want[3].1.push(s("delta, edited"));
    assert_eq!(task_titles(&old).await.0, want, "only t4 has a new version");
    assert_eq!(old.json(&["check", "--read-data"])["problems"], json!([]));
}

async fn a_schema_1_vault_opens_whole(b: Backend) {
    opens_whole(b, 1).await
}

async fn a_schema_2_vault_opens_whole(b: Backend) {
    opens_whole(b, 2).await
}

async fn opens_whole(b: Backend, release: u32) {
    let old = old_vault(b, release).await;
    let snaps = old.json(&["snapshots"]);
    let rows: Vec<(String, i64, i64)> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["data_type"].as_str().unwrap().to_string(), s["cycle"].as_i64().unwrap(), s["live"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        [("attachments", 1, 2), ("attachments", 2, 1), ("attachments", 3, 1), ("comments", 1, 2), ("comments", 2, 2)]
            .iter()
            .chain(&[("comments", 3, 2), ("tasks", 1, 4), ("tasks", 2, 4), ("tasks", 3, 5)])
            .map(|(t, c, l)| (t.to_string(), *c, *l))
            .collect::<Vec<_>>()
    );

    // Every version, by the read API, as the first release stored it.
    let cfg = daybook::config::Config::load(&old.dir.path().join("daybook.toml")).unwrap();
    let vault = Vault::open(&cfg, PASS).await.unwrap();
    let expected: &[(&str, &[Option<&str>])] = &[
        ("t1", &[Some("alpha")]),
        ("t2", &[Some("bravo"), Some("bravo renamed")]),
        ("t3", &[Some("charlie"), None, Some("charlie is back")]),
        ("t4", &[Some("delta")]),
        ("t5", &[Some("echo")]),
    ];
    for (id, titles) in expected {
        let (info, versions) = query::history(&vault, id).await.unwrap();
        let sid = &old.sids.iter().find(|(s, _)| s == id).unwrap().1;
        assert_eq!(&info.sid, sid, "{id}: its SID is the one the first release gave it");
        let mut got: Vec<Option<String>> = Vec::new();
        for v in &versions {
            let content = vault.version_content(&info, v.version).await.unwrap();
            got.push(content.map(|c| c.data["title"].as_str().unwrap().to_string()));
        }
        let want: Vec<Option<String>> = titles.iter().map(|t| t.map(str::to_string)).collect();
        assert_eq!(got, want, "{id}");
    }
    let shown = old.json(&["show", "invoice.pdf"]);
    let uid = shown["content"]["files"][0]["uid"].as_str().unwrap().to_string();
    let (size, mut reader) = vault.open_file("acme", &uid).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes).await.unwrap();
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(bytes, "invoice bytes ".repeat(500).into_bytes());
    assert!(old.json(&["show", "photo.jpg"])["deleted_since"].is_string(), "a deleted file says so");
    let check = old.json(&["check", "--read-data"]);
    assert_eq!(check["problems"], json!([]), "{check}");
    assert_eq!(
        vault.schema_version().await.unwrap().as_deref(),
        Some(daybook::vault::catalog::SCHEMA_VERSION.to_string().as_str())
    );

    // The old log reads back through the org's key, and is no longer in the clear.
    let log = old.json(&["log"]);
    let messages: Vec<&str> = log.as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(messages.len(), old.log.len());
    for m in old.log.iter().flatten() {
        assert!(messages.contains(&m.as_str()), "{m} is in the upgraded log");
    }
    assert!(messages.iter().any(|m| m.contains("5 live")), "{messages:?}");
    let env = common::Env {
        dir: tempfile::tempdir().unwrap(),
        catalog: cfg.vault.catalog.clone(),
        store: cfg.vault.store.clone(),
        vars: vec![],
    };
    let catalog = if let Backend::Sqlite = b {
        std::fs::read(old.dir.path().join("vault/catalog.db")).unwrap()
    } else {
        common::catalog_bytes(&env).await
    };
    if let Some(m) = old.log.iter().flatten().next() {
        assert!(!contains(&catalog, m), "the old log is sealed: {m}");
    }
    for plain in ["invoice.pdf", "photo.jpg", "attachments"] {
        assert!(!contains(&catalog, plain), "{plain:?} is no longer in the catalog in the clear");
    }

    // The next backup goes on from it: unchanged records get no new version.
    write_next_export(&old);
    let r = old.json(&["backup"]);
    let t = r["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "tasks").unwrap();
    assert_eq!((t["stats"]["changed"].as_i64(), t["stats"]["added"].as_i64()), (Some(1), Some(0)), "{r}");
    let c = r["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "comments").unwrap();
    assert_eq!(c["stats"]["unchanged"], 2, "{r}");
}

/// Schema 4 to 5 adds the column that keeps a TOTP code from being used twice: a schema-4
/// catalog opens, gains it, and its users' codes are checked as before.
async fn a_schema_4_catalog_gains_the_totp_step(b: Backend) {
    let env = common::Env::new(b).await;
    env.write_records("tasks", &[common::task(1, "alpha")]);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let o = env
        .cmd(&["user", "add", "--org", "acme", "--email", "a@acme.test"])
        .env("DAYBOOK_USER_PASSWORD", "a long enough password")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let catalog = daybook::vault::catalog::Catalog::connect(&cfg.vault.catalog, &cfg.base).await.unwrap();
    sqlx::query("ALTER TABLE users DROP COLUMN totp_step").execute(&catalog.pool).await.unwrap();
    sqlx::query("UPDATE meta SET value = '4' WHERE key = 'schema_version'").execute(&catalog.pool).await.unwrap();

    assert!(env.ok(&["user", "list"]).contains("a@acme.test"));
    let version: String = sqlx::query("SELECT value FROM meta WHERE key = 'schema_version'")
        .fetch_one(&catalog.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, daybook::vault::catalog::SCHEMA_VERSION.to_string());
    let step: Option<i64> = sqlx::query("SELECT totp_step FROM users").fetch_one(&catalog.pool).await.unwrap().get(0);
    assert_eq!(step, None, "the column is there, empty until a code is used");
}

/// Schema 3 to 4 only adds tables: a catalog of schema 3 (this vault with the tables schema 4
/// added dropped again) opens, has every table of this release, and reads as before.
async fn a_schema_3_catalog_gains_the_new_tables(b: Backend) {
    const SCHEMA_3: &[&str] = &[
        "meta",
        "orgs",
        "cycles",
        "types",
        "snapshots",
        "packs",
        "files",
        "cycle_log",
        "restores",
        "locks",
        "mirror_state",
    ];
    let env = common::Env::new(b).await;
    env.write_records("tasks", &[common::task(1, "alpha"), common::task(2, "bravo")]);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let base = cfg.base.clone();
    let catalog = daybook::vault::catalog::Catalog::connect(&cfg.vault.catalog, &base).await.unwrap();
    for t in daybook::vault::catalog::TABLES.iter().filter(|t| !SCHEMA_3.contains(t)) {
        sqlx::query(&format!("DROP TABLE {t}")).execute(&catalog.pool).await.unwrap();
    }
    sqlx::query("UPDATE meta SET value = '3' WHERE key = 'schema_version'").execute(&catalog.pool).await.unwrap();

    assert_eq!(env.json(&["show", "t2"])["content"]["data"]["title"], "bravo");
    let version: String = sqlx::query("SELECT value FROM meta WHERE key = 'schema_version'")
        .fetch_one(&catalog.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, daybook::vault::catalog::SCHEMA_VERSION.to_string());
    for t in daybook::vault::catalog::TABLES {
        let n = sqlx::query(&format!("SELECT COUNT(*) FROM {t}")).fetch_one(&catalog.pool).await;
        assert!(n.is_ok(), "table {t} exists after the upgrade");
    }
    env.ok(&["backup"]);
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
}
