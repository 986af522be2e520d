//! Retention, forget and prune end to end: what is kept reads exactly as before, what is
//! forgotten is gone from history, prune frees space, and a prune killed at any point leaves a
//! vault that checks clean and reads whole.

mod common;

use common::{Backend, Env, noise, task};
use serde_json::{Value, json};
use std::collections::BTreeMap;

both_backends!(forget_then_prune_keeps_what_retention_keeps, work_that_reads_versions_holds_forget_and_prune_back);

const ORG: &str = "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\ntimezone = \"Europe/Dublin\"\n\n\
[orgs.retention]\nkeep_last = 2\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n";

/// Four days: every other task changes on days 2 and 3, the photo changes each day, a task is
/// deleted on day 3, one task changes on day 4. Returns the cycles.
fn four_days(env: &Env) -> Vec<i64> {
    env.write_config(ORG);
    let mut cycles = Vec::new();
    let tasks = |day: u32| -> Vec<Value> {
        (1..=300)
            .filter(|n| !(day >= 3 && *n == 300))
            .map(|n| {
                let v = match day {
                    1 => 1,
                    2 | 3 if n <= 150 => day,
                    2 => 1,
                    _ if n == 2 => 4,
                    _ if n <= 150 => 3,
                    _ => 1,
                };
                task(n, &format!("task {n} as of version {v}"))
            })
            .collect()
    };
    env.ok(&["init"]);
    for day in 1..=4u32 {
        env.write_records("tasks", &tasks(day));
        env.write_attachment("photo.jpg", &noise(day.min(3) as u64, 400_000));
        env.ok(&["backup"]);
        cycles.push(env.latest()["tasks"].0);
    }
    cycles
}

/// Every record and file of the org at a cycle, as `daybook export` writes them.
fn export(env: &Env, cycle: i64, tag: &str) -> BTreeMap<String, Vec<u8>> {
    let to = env.path().join(format!("export-{cycle}-{tag}"));
    env.ok(&["export", "--org", "acme", "--at", &format!("cycle:{cycle}"), "--to", to.to_str().unwrap()]);
    let mut out = BTreeMap::new();
    fn walk(root: &std::path::Path, p: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out)
            } else {
                out.insert(
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    walk(&to, &to, &mut out);
    out
}

fn store_bytes(env: &Env) -> usize {
    env.store_objects().iter().map(|(_, b)| b.len()).sum()
}

fn snapshot_count(env: &Env) -> usize {
    env.json(&["snapshots"]).as_array().unwrap().iter().filter(|s| s["data_type"] == "tasks").count()
}

async fn forget_then_prune_keeps_what_retention_keeps(b: Backend) {
    let env = Env::new(b).await;
    let cycles = four_days(&env);
    let kept = [cycles[2], cycles[3]];
    let before: Vec<_> = kept.iter().map(|c| export(&env, *c, "before")).collect();
    assert_eq!(snapshot_count(&env), 4);

    // The plan, without changing anything.
    let plan = env.json(&["forget", "--dry-run"]);
    let decisions = plan[0]["sources"][0]["cycles"].as_array().unwrap();
    let keep: Vec<(i64, bool, Value)> = decisions
        .iter()
        .map(|d| (d["cycle"].as_i64().unwrap(), d["keep"].as_bool().unwrap(), d["reasons"].clone()))
        .collect();
    assert_eq!(
        keep,
        vec![
            (cycles[3], true, json!(["last 1"])),
            (cycles[2], true, json!(["last 2"])),
            (cycles[1], false, json!([])),
            (cycles[0], false, json!([])),
        ]
    );
    assert_eq!(snapshot_count(&env), 4, "a dry run forgets nothing");

    env.ok(&["forget"]);
    assert_eq!(snapshot_count(&env), 2);
    // What was seen only on forgotten days is gone from the history; what is kept is whole.
    let h1 = env.json(&["history", "t1"]);
    let v1: Vec<_> = h1["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(v1, vec![3], "t1's versions 1 and 2 were seen only on forgotten days");
    assert_eq!(env.json(&["history", "t2"])["versions"].as_array().unwrap().len(), 2);
    for (c, b) in kept.iter().zip(&before) {
        assert_eq!(&export(&env, *c, "forgotten"), b, "cycle {c} reads as before the forget");
    }
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));

    let size = store_bytes(&env);
    let dry = env.json(&["prune", "--dry-run"]);
    assert!(dry[0]["files_removed"].as_u64().unwrap() == 2, "photos 1 and 2 are no longer needed: {dry}");
    assert_eq!(store_bytes(&env), size, "a dry run removes nothing");
    let done = env.json(&["prune"]);
    assert_eq!(done[0]["files_removed"], 2, "{done}");
    assert!(store_bytes(&env) < size - 700_000, "two 400 kB photos are freed: {size} -> {}", store_bytes(&env));
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
    for (c, b) in kept.iter().zip(&before) {
        assert_eq!(&export(&env, *c, "pruned"), b, "cycle {c} reads as before the prune");
    }
    // The task deleted on day 3 can still be recovered: its last content is kept.
    let deleted = env.json(&["recover"]);
    assert!(
        deleted.as_array().unwrap().iter().any(|d| d["source_id"] == "t300"),
        "t300 is still recoverable: {deleted}"
    );

    // A file prune removed comes back at the source: it is stored again, not taken as stored.
    env.write_attachment("photo.jpg", &noise(1, 400_000));
    env.ok(&["backup"]);
    let now = export(&env, env.latest()["tasks"].0, "after");
    let photo = now.iter().find(|(k, _)| k.contains("photo.jpg")).expect("the photo is exported");
    assert!(*photo.1 == noise(1, 400_000), "the photo reads back byte for byte");
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
}

fn refused(env: &Env, args: &[&str], why: &str) {
    let o = env.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(why), "{args:?} is refused naming {why:?}: {err}");
}

/// A restore waiting in the queue and an archive being built read versions that a forget or
/// prune could take away: those wait for them (refused, naming what they wait for), and work
/// that reads versions does not start while a forget or prune runs.
async fn work_that_reads_versions_holds_forget_and_prune_back(b: Backend) {
    use daybook::vault::catalog::NewJob;
    let env = Env::new(b).await;
    four_days(&env);
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap();
    let catalog = daybook::vault::catalog::Catalog::connect(&env.catalog, env.path()).await.unwrap();
    let versions = |env: &Env| env.json(&["history", "t1"])["versions"].as_array().unwrap().len();
    assert_eq!(versions(&env), 3);

    // t1's version 1, seen only on forgotten days, is what the queued restore wants.
    let args = json!({ "sid": env.sid("tasks", "t1"), "version": 1, "again": false }).to_string();
    let restore = NewJob {
        kind: "restore".into(),
        org: Some("acme".into()),
        source: Some("export".into()),
        args,
        manual: true,
        max_attempts: 1,
    };
    let job = catalog.enqueue(&restore).await.unwrap();
    for cmd in [&["forget"][..], &["prune"]] {
        refused(&env, cmd, &format!("while the restore job {job} of org acme runs (queued)"));
    }
    let holder = catalog.new_holder();
    let claimed = catalog.claim(&holder, "9999-01-01T00:00:00Z", &["acme"]).await.unwrap().unwrap();
    assert_eq!(claimed.id, job);
    refused(&env, &["forget"], &format!("the restore job {job} of org acme runs ({holder})"));
    assert!(catalog.finish_job(job, &holder, "done", None, "restored").await.unwrap());
    assert_eq!((snapshot_count(&env), versions(&env)), (4, 3), "nothing was forgotten meanwhile");

    // An archive being built (its builder holds the build lease).
    let req = daybook::archive::Request {
        org: "acme".into(),
        name: "copy".into(),
        description: None,
        at: daybook::vault::read::At::Latest,
        at_text: None,
        history: true,
        windows_safe: false,
        email: None,
    };
    let (id, build) = daybook::archive::start(&vault, &cfg, &req).await.unwrap();
    refused(&env, &["forget"], &format!("while the build of archive {id} runs"));
    build.release().await.unwrap();

    // Nothing reads any more: the forget goes ahead.
    env.ok(&["forget"]);
    assert_eq!((snapshot_count(&env), versions(&env)), (2, 1));

    // While a forget or prune holds the org, neither a restore nor an archive build starts.
    let rewrite = catalog.acquire("org:acme", "a test's prune").await.unwrap();
    let busy = "while an erasure, forget or prune of org acme runs";
    refused(&env, &["restore", &env.sid("tasks", "t300"), "--dry-run"], busy);
    refused(&env, &["archive", "create", "--org", "acme", "--name", "n", "--yes"], busy);
    rewrite.release().await.unwrap();
    env.ok(&["archive", "create", "--org", "acme", "--name", "n", "--yes"]);
}

/// A prune killed at each of its steps: the vault checks clean, every kept snapshot reads as
/// before, and the next prune finishes the job.
#[tokio::test(flavor = "multi_thread")]
async fn a_prune_killed_at_any_point_loses_nothing() {
    for fault in ["prune-packs-written", "prune-committed", "prune-first-pack-deleted"] {
        let env = Env::new(Backend::Sqlite).await;
        let cycles = four_days(&env);
        env.ok(&["forget"]);
        let kept = [cycles[2], cycles[3]];
        let before: Vec<_> = kept.iter().map(|c| export(&env, *c, "before")).collect();
        let o = env.cmd(&["prune"]).env("DAYBOOK_FAULT", fault).output().unwrap();
        assert!(o.status.code().is_none(), "{fault}: prune was killed: {}", String::from_utf8_lossy(&o.stderr));
        let check = env.json(&["check", "--read-data"]);
        assert_eq!(check["problems"], json!([]), "{fault}: {check}");
        for (c, b) in kept.iter().zip(&before) {
            assert_eq!(&export(&env, *c, fault), b, "{fault}: cycle {c} reads whole after the kill");
        }
        let size = store_bytes(&env);
        env.ok(&["prune"]);
        let check = env.json(&["check", "--read-data"]);
        assert_eq!((check["problems"].clone(), check["notes"].clone()), (json!([]), json!([])), "{fault}: {check}");
        assert!(
            store_bytes(&env) < size || fault != "prune-packs-written",
            "{fault}: the second prune frees the space"
        );
        for (c, b) in kept.iter().zip(&before) {
            assert_eq!(&export(&env, *c, &format!("{fault}-again")), b, "{fault}: cycle {c} after the second prune");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retention_that_keeps_nothing_is_refused() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_config(&ORG.replace("keep_last = 2", "keep_daily = 0"));
    let o = env.run(&["forget", "--dry-run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("keeps no snapshot"), "{err}");
}
