//! Several daemons on one PostgreSQL catalog and one blob store split a day's work: three
//! daemons, thirty orgs due at once, one daemon killed in the middle of a backup. Every job is
//! done exactly once, the killed one's by another daemon, and every snapshot reads whole.

mod common;

use common::{Backend, Env, task};
use daybook::vault::catalog::Catalog;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::Duration;

const ORGS: usize = 30;
const TASKS: u32 = 200;
const NOTES: u32 = 5;

struct Daemon(Child, std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(env: &Env, name: &str, fault: Option<&str>) -> Daemon {
    let log = env.path().join(format!("{name}.log"));
    let config = env.path().join(format!("{name}.toml"));
    let mut c = env.cmd(&["--config", config.to_str().unwrap(), "daemon"]);
    c.env("DAYBOOK_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    if let Some(f) = fault {
        c.env("DAYBOOK_FAULT", f);
    }
    Daemon(c.spawn().unwrap(), log)
}

fn until(what: &str, secs: u64, done: impl FnMut() -> bool) {
    until_or(what, secs, done, String::new);
}

/// `until`, saying on a timeout what `why` finds (the daemons' logs, what they report).
fn until_or(what: &str, secs: u64, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {secs} s\n{}", why());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_split_a_day_of_thirty_orgs() {
    let env = Env::new(Backend::Postgres).await;
    let ports: BTreeMap<&str, u16> = [("a", port()), ("b", port()), ("c", port())].into();
    let mut orgs = String::new();
    for i in 0..ORGS {
        let dir = env.path().join(format!("src-{i:02}/records"));
        std::fs::create_dir_all(&dir).unwrap();
        let tasks: String = (0..TASKS).map(|n| format!("{}\n", task(n, &format!("org {i} task {n}")))).collect();
        std::fs::write(dir.join("tasks.jsonl"), tasks).unwrap();
        let notes: String = (0..NOTES).map(|n| format!("{{\"id\":\"n{n}\",\"text\":\"note {n} of {i}\"}}\n")).collect();
        std::fs::write(dir.join("notes.jsonl"), notes).unwrap();
        orgs += &format!(
            "[[orgs]]\nsid = \"org-{i:02}\"\nname = \"Org {i}\"\ntimezone = \"UTC\"\n[orgs.schedule]\nat = \"00:00\"\n\
             window_minutes = 0\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"src-{i:02}\"\n\n"
        );
    }
    env.ok(&["init"]);
    // Three daemons, each with its own config file (its own port), start with no org; once
    // all three run, their configs gain the thirty orgs and a SIGHUP has each look at once.
    let config = |name: &str, with_orgs: bool| {
        let text = format!(
            "[vault]\ncatalog = \"{}\"\nstore = \"vault/blobs\"\n[daemon]\nlisten = \"127.0.0.1:{}\"\nworkers = 2\n\
             poll_ms = 50\nlease_seconds = 8\n\n{}",
            env.catalog,
            ports[name],
            if with_orgs { orgs.as_str() } else { "" }
        );
        std::fs::write(env.path().join(format!("{name}.toml")), text).unwrap();
    };
    for name in ["a", "b", "c"] {
        config(name, false);
    }
    let mut doomed = start(&env, "a", Some("pack-written:3"));
    let b = start(&env, "b", None);
    let c = start(&env, "c", None);
    until("three daemons", 60, || env.json(&["status"])["daemons"].as_array().unwrap().len() == 3);
    for (name, d) in [("a", &doomed), ("b", &b), ("c", &c)] {
        config(name, true);
        // SAFETY: signalling a child this test started.
        unsafe { libc::kill(d.0.id() as i32, libc::SIGHUP) };
    }
    std::fs::write(env.path().join("daybook.toml"), std::fs::read_to_string(env.path().join("b.toml")).unwrap())
        .unwrap();

    // The first daemon dies in a backup (killed as kill -9 would, between writing a pack
    // and committing it).
    let status = {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = doomed.0.try_wait().unwrap() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "daemon a was never killed at its fault point");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "daemon a died at its fault point: {}",
        std::fs::read_to_string(&doomed.1).unwrap_or_default()
    );

    let catalog = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    let all_done = || {
        let st: Value = env.json(&["status"]);
        st["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["last"]["state"] == "done" && o["running"] == Value::Array(vec![]))
    };
    let logs = [doomed.1.clone(), b.1.clone(), c.1.clone()];
    let why = || {
        let mut s = format!("status: {:#}\nlogs: {:#}\n", env.json(&["status"]), env.json(&["logs"]));
        for l in &logs {
            s += &format!("---- {}:\n{}\n", l.display(), std::fs::read_to_string(l).unwrap_or_default());
        }
        s
    };
    until_or("every org's run", 180, all_done, why);

    let jobs = catalog.jobs(None, 1000).await.unwrap();
    assert_eq!(jobs.len(), ORGS, "one job per org and day");
    assert!(jobs.iter().all(|j| j.kind == "backup" && j.state == "done"), "{jobs:#?}");
    let by_org: BTreeSet<_> = jobs.iter().map(|j| j.org.clone().unwrap()).collect();
    assert_eq!(by_org.len(), ORGS);
    assert_eq!(catalog.due_runs().await.unwrap().len(), ORGS);

    // Each job's log: started once per attempt, done once; the one the killed daemon held was
    // started by two daemons and finished by the second.
    let log = env.json(&["logs"]);
    let mut per_job: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for l in log.as_array().unwrap() {
        per_job.entry(l["job"].as_i64().unwrap()).or_default().push(l["message"].as_str().unwrap().to_string());
    }
    let mut taken_up = 0;
    let mut holders = BTreeSet::new();
    for j in &jobs {
        let lines = &per_job[&j.id];
        let starts: Vec<&String> = lines.iter().filter(|m| m.starts_with("started on ")).collect();
        let dones = lines.iter().filter(|m| m.starts_with("done in ")).count();
        assert_eq!(dones, 1, "job {} finished {dones} times: {lines:?}", j.id);
        // An attempt claimed by the killed daemon's other worker in the moment before it died
        // has no line yet: at most one attempt is silent, and only when another followed.
        let silent = j.attempts - starts.len() as i64;
        assert!(silent == 0 || (silent == 1 && j.attempts > 1), "job {} ({} attempts): {lines:?}", j.id, j.attempts);
        if j.attempts > 1 {
            let who: BTreeSet<_> = starts.iter().map(|s| s.split(',').next().unwrap().to_string()).collect();
            assert_eq!(who.len(), starts.len(), "job {} was taken up by another daemon: {lines:?}", j.id);
            taken_up += 1;
        }
        holders.insert(j.holder.clone().unwrap());
    }
    assert!(taken_up >= 1, "the killed daemon's job was taken up by another: {per_job:?}");
    assert!(holders.len() >= 2, "the work was split: {holders:?}");

    // Every snapshot whole: the store checks out, and each org's data types hold every record.
    env.ok(&["check", "--read-data"]);
    let snaps = env.json(&["snapshots"]);
    let mut latest: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for s in snaps.as_array().unwrap() {
        let key = (s["org"].as_str().unwrap().to_string(), s["data_type"].as_str().unwrap().to_string());
        let v = (s["cycle"].as_i64().unwrap(), s["live"].as_i64().unwrap());
        let e = latest.entry(key).or_insert(v);
        if v.0 > e.0 {
            *e = v;
        }
    }
    assert_eq!(latest.len(), ORGS * 2, "{latest:?}");
    for ((org, ty), (_, live)) in &latest {
        let want = if ty == "tasks" { TASKS } else { NOTES } as i64;
        assert_eq!(*live, want, "{org}/{ty}");
    }
    drop((b, c));
}
