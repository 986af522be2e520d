//! A test vault in a temporary folder, driven through the real `daybook` binary, with its
//! catalog in SQLite or in a fresh schema of the local PostgreSQL, and its blobs in a folder
//! or (`Backend::S3`, with the PostgreSQL catalog: the several-machines setup) under a
//! prefix of its own in a bucket of a real S3-compatible server (tests/s3).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASS: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
    S3,
}

#[path = "../s3/server.rs"]
pub mod s3;
pub mod smtp;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub catalog: String,
    /// `vault.store`: a folder relative to the config, or an s3:// URL.
    pub store: String,
    /// Environment variables every command gets (an app's token, say).
    pub vars: Vec<(String, String)>,
}

fn pg_base() -> String {
    std::env::var("DAYBOOK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn pg_schema() -> String {
    sqlx::any::install_default_drivers();
    let schema = format!("t_{}_{}", std::process::id(), rand_suffix());
    let pool = sqlx::AnyPool::connect(&pg_base())
        .await
        .expect("PostgreSQL at DAYBOOK_TEST_POSTGRES (default 127.0.0.1:5432/test) must run; .ci/run starts it");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.unwrap();
    pool.close().await;
    format!("{}?options=-c%20search_path%3D{schema}", pg_base())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}_{}", t, N.fetch_add(1, Ordering::SeqCst))
}

impl Env {
    pub async fn new(b: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let catalog = match b {
            Backend::Sqlite => "sqlite://vault/catalog.db".to_string(),
            Backend::Postgres | Backend::S3 => pg_schema().await,
        };
        let store = match b {
            Backend::S3 => format!("s3://{}/t{}", s3::server().bucket, rand_suffix()),
            _ => "vault/blobs".to_string(),
        };
        let env = Env { dir, catalog, store, vars: Vec::new() };
        std::fs::create_dir_all(env.export().join("records")).unwrap();
        env.write_config(
            "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\ntimezone = \"Europe/Dublin\"\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n",
        );
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn export(&self) -> PathBuf {
        self.path().join("export")
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("vault/blobs")
    }

    pub fn write_config(&self, orgs: &str) {
        let text = format!("[vault]\ncatalog = \"{}\"\nstore = \"{}\"\n\n{orgs}", self.catalog, self.store);
        std::fs::write(self.path().join("daybook.toml"), text).unwrap();
    }

    pub fn write_records(&self, ty: &str, records: &[Value]) {
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(self.export().join("records").join(format!("{ty}.jsonl")), text).unwrap();
    }

    pub fn write_raw(&self, ty: &str, text: &str) {
        std::fs::write(self.export().join("records").join(format!("{ty}.jsonl")), text).unwrap();
    }

    pub fn write_attachment(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(self.export().join("attachments")).unwrap();
        std::fs::write(self.export().join("attachments").join(name), bytes).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_daybook"));
        c.args(args)
            .current_dir(self.path())
            .env("DAYBOOK_CONFIG", self.path().join("daybook.toml"))
            .env("DAYBOOK_PASSPHRASE", PASS)
            .env_remove("DAYBOOK_FAULT")
            .env_remove("DAYBOOK_LOG")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "daybook {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Latest snapshot per data type: type -> (cycle, live, added, changed, deleted).
    pub fn latest(&self) -> std::collections::BTreeMap<String, (i64, i64, i64, i64, i64)> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.json(&["snapshots"]).as_array().unwrap() {
            let g = |k: &str| s[k].as_i64().unwrap();
            out.insert(
                s["data_type"].as_str().unwrap().to_string(),
                (g("cycle"), g("live"), g("added"), g("changed"), g("deleted")),
            );
        }
        out
    }

    /// SID of a record by its id at the source.
    pub fn sid(&self, ty: &str, id: &str) -> String {
        let h = self.json(&["history", id]);
        assert_eq!(h["record"]["data_type"], ty);
        h["record"]["sid"].as_str().unwrap().to_string()
    }

    /// Every object in the vault's blob store, by its name under the store's root.
    pub fn store_objects(&self) -> Vec<(String, Vec<u8>)> {
        match self.store.strip_prefix("s3://") {
            Some(rest) => s3::objects(rest),
            None => {
                let root = self.store();
                self.store_files()
                    .into_iter()
                    .map(|f| {
                        let name = f.strip_prefix(&root).unwrap().to_string_lossy().to_string();
                        (name, std::fs::read(&f).unwrap())
                    })
                    .collect()
            }
        }
    }

    /// Overwrites an object of the blob store (to damage it).
    pub fn put_object(&self, name: &str, bytes: Vec<u8>) {
        match self.store.strip_prefix("s3://") {
            Some(rest) => s3::put(rest, name, bytes),
            None => std::fs::write(self.store().join(name), bytes).unwrap(),
        }
    }

    pub fn store_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() { walk(&e.path(), out) } else { out.push(e.path()) }
            }
        }
        let mut v = Vec::new();
        walk(&self.store(), &mut v);
        v
    }
}

/// Bytes that do not compress, the same for the same seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn task(n: u32, title: &str) -> Value {
    serde_json::json!({"id": format!("t{n}"), "title": title, "status": "open", "n": n})
}

/// Declares a test for each backend: SQLite, PostgreSQL, and PostgreSQL with S3.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(super::common::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(super::common::Backend::Postgres).await } )* }
        mod s3 { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(super::common::Backend::S3).await } )* }
    };
}

/// Declares a test for each catalog backend only, for tests whose blob store is a folder they
/// bring (a fixture written by an earlier release).
#[macro_export]
macro_rules! catalog_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(super::common::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(super::common::Backend::Postgres).await } )* }
    };
}

/// Runs a command that must end within `secs` (a bound on failure, not a timing): a hang
/// fails the test instead of stalling the suite. The process is killed if it overruns.
pub fn bounded(mut cmd: Command, secs: u64) -> Output {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            // SAFETY: signalling a child we started; no memory is involved.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not end within {secs} s: it hangs");
        }
    }
}

/// Every byte of the catalog, for searching it: the SQLite files, or each PostgreSQL table's
/// rows as text.
pub async fn catalog_bytes(env: &Env) -> Vec<u8> {
    if env.catalog.starts_with("sqlite:") {
        let mut out = Vec::new();
        for e in std::fs::read_dir(env.path().join("vault")).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("catalog.db") {
                out.extend(std::fs::read(e.path()).unwrap());
            }
        }
        return out;
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.catalog).await.unwrap();
    let tables: Vec<String> =
        sqlx::query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get(r, 0))
            .collect();
    let mut out = Vec::new();
    for t in tables {
        for r in sqlx::query(&format!("SELECT t::text FROM {t} t")).fetch_all(&pool).await.unwrap() {
            out.extend(sqlx::Row::get::<String, _>(&r, 0).into_bytes());
            out.push(b'\n');
        }
    }
    pool.close().await;
    out
}

/// Whether the bytes hold `needle`, as it is or hex-encoded (PostgreSQL shows bytea as hex).
pub fn contains(hay: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    [needle.as_bytes(), hex.as_bytes()].iter().any(|n| hay.windows(n.len()).any(|w| w == *n))
}

/// A stored file's bytes, read back through the vault's read API.
pub async fn read_file(vault: &daybook::vault::Vault, org: &str, uid: &str) -> Vec<u8> {
    let (size, mut r) = vault.open_file(org, uid).await.unwrap();
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut back).await.unwrap();
    assert_eq!(back.len() as u64, size, "the file is as long as the vault says");
    back
}
