//! `daybook demo`: the main job end to end on the embedded defaults (SQLite catalog, local
//! folder store, a jsonl export as the source), in a folder of its own, offline.

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::engine::{self, Filter, query};
use crate::util::human_bytes;
use crate::vault::{Vault, check};

const MARKER: &str = ".daybook-demo";
const STATUSES: [&str; 4] = ["todo", "doing", "review", "done"];
const PEOPLE: [&str; 6] = ["ana", "bo", "chen", "dara", "eli", "fatima"];

const CONFIG: &str = r#"# written by `daybook demo`
[vault]
catalog = "sqlite://vault/catalog.db"
store = "vault/blobs"

[[orgs]]
sid = "demo"
name = "Demo Org"
timezone = "UTC"

[[orgs.sources]]
name = "tracker"
kind = "jsonl"
path = "export"

[[orgs.mirrors]]
name = "local"
kind = "folder"
path = "mirror"
"#;

fn task(rng: &mut StdRng, n: u32) -> serde_json::Value {
    json!({
        "id": format!("task-{n:04}"),
        "title": format!("Task {n}: {}", ["fix login", "ship report", "call vendor", "plan sprint", "review invoice"][rng.gen_range(0..5)]),
        "status": STATUSES[rng.gen_range(0..4)],
        "assignee": PEOPLE[rng.gen_range(0..6)],
        "project_id": format!("proj-{:02}", rng.gen_range(1..=12)),
        "estimate_hours": rng.gen_range(1..20),
    })
}

fn write_jsonl(path: &Path, rows: &[serde_json::Value]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rows {
        serde_json::to_writer(&mut f, r)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Blocking file work: `run` calls it on a blocking thread.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        if !dir.join(MARKER).exists() {
            bail!("{} is not empty and was not made by `daybook demo`; choose an empty or new folder", dir.display());
        }
        for sub in ["vault", "export", "mirror"] {
            let p = dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p)?;
            }
        }
    }
    std::fs::create_dir_all(dir.join("export/records"))?;
    std::fs::create_dir_all(dir.join("export/attachments"))?;
    std::fs::write(dir.join(MARKER), "made by daybook demo; safe to delete\n")?;
    std::fs::write(dir.join("daybook.toml"), CONFIG)?;
    Ok(())
}

pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => tempfile::Builder::new().prefix("daybook-demo-").tempdir()?.keep(),
    };
    let d = dir.clone();
    tokio::task::spawn_blocking(move || prepare(&d)).await??;
    let pass = match std::env::var("DAYBOOK_PASSPHRASE") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            println!("(DAYBOOK_PASSPHRASE is not set: the demo vault uses the passphrase \"demo\")");
            "demo".to_string()
        }
    };
    let export = dir.join("export");
    let mut rng = StdRng::seed_from_u64(7);
    let mut tasks: Vec<serde_json::Value> = (1..=400).map(|n| task(&mut rng, n)).collect();
    let mut projects: Vec<serde_json::Value> = (1..=12)
        .map(|n| json!({"id": format!("proj-{n:02}"), "name": format!("Project {n}"), "owner": PEOPLE[n % 6]}))
        .collect();
    let mut comments: Vec<serde_json::Value> = (1..=600)
        .map(|n| json!({"id": n, "task_id": format!("task-{:04}", rng.gen_range(1..=400)), "author": PEOPLE[rng.gen_range(0..6)], "text": format!("comment {n}: looks good, see the attached file")}))
        .collect();
    for i in 1..=8 {
        let bytes: Vec<u8> = (0..(20_000 + i * 3000)).map(|_| rng.r#gen::<u8>()).collect();
        std::fs::write(export.join(format!("attachments/scan-{i}.pdf")), bytes)?;
    }
    let write_all = |t: &[serde_json::Value], p: &[serde_json::Value], c: &[serde_json::Value]| -> Result<()> {
        write_jsonl(&export.join("records/tasks.jsonl"), t)?;
        write_jsonl(&export.join("records/projects.jsonl"), p)?;
        write_jsonl(&export.join("records/comments.jsonl"), c)
    };
    write_all(&tasks, &projects, &comments)?;

    println!("demo folder: {}", dir.display());
    println!("source: {} (400 tasks, 12 projects, 600 comments, 8 attachments)\n", export.display());
    let cfg = Config::load(&dir.join("daybook.toml"))?;
    let vault = Vault::init(&cfg, &pass).await.context("creating the demo vault")?;

    println!("== day 1: first backup");
    let r1 = engine::run_cycle(&vault, &cfg, &Filter::default()).await?;
    super::backup::print(&r1);

    // A day of changes at the source.
    let edited = tasks[41]["id"].as_str().unwrap_or_default().to_string();
    let mut edits = 1;
    for t in tasks.iter_mut().step_by(33) {
        if t["status"] != json!("done") {
            t["status"] = json!("done");
            edits += 1;
        }
    }
    tasks[41]["title"] = json!("Task 42: renamed on day 2");
    let gone = tasks.remove(100);
    for k in 0..3 {
        tasks.remove(200 + k * 50);
    }
    for n in 401..=405 {
        tasks.push(task(&mut rng, n));
    }
    projects[3]["owner"] = json!("new-owner");
    comments.retain(|c| c["id"] != json!(77));
    write_all(&tasks, &projects, &comments)?;
    std::fs::write(export.join("attachments/contract-signed.pdf"), b"%PDF-1.4 signed contract, day 2\n".repeat(500))?;
    println!(
        "\n== at the source: {edits} tasks edited, 5 added, 4 deleted; 1 project edited; 1 comment deleted; 1 file added"
    );

    let m1 = crate::mirror::run(&vault, &cfg, &crate::mirror::Options::default()).await?;
    if m1.failed() > 0 {
        super::mirror::print(&m1);
        bail!("the demo mirror failed");
    }

    println!("\n== day 2: second backup");
    let r2 = engine::run_cycle(&vault, &cfg, &Filter::default()).await?;
    super::backup::print(&r2);

    println!("\n== mirror (after each backup, as `daybook backup` does)");
    let m = crate::mirror::run(&vault, &cfg, &crate::mirror::Options::default()).await?;
    super::mirror::print(&m);
    if m.failed() > 0 {
        bail!("the demo mirror failed");
    }
    println!("the latest snapshots, as CSV files and attachments: {}", dir.join("mirror").display());

    println!("\n== snapshots");
    super::snapshots::print(&query::snapshots(&vault).await?);

    let vault_dir = dir.join("vault");
    println!(
        "\n== vault size: {} (export of day 2: {})",
        human_bytes(dir_size(&vault_dir)),
        human_bytes(dir_size(&export))
    );

    println!("\n== diff tasks, cycle 1 -> cycle 2");
    let d = query::diff(&vault, &cfg, "tasks", &format!("cycle:{}", r1.cycle), &format!("cycle:{}", r2.cycle)).await?;
    super::diff::print(&d);

    let sid_of = |id: &str| d.changed.iter().chain(&d.deleted).find(|e| e.id == id).map(|e| e.sid.clone());
    if let Some(sid) = sid_of(&edited) {
        println!("\n== history of {edited} ({sid})");
        let (info, versions) = query::history(&vault, &sid).await?;
        super::history::print(&info, &versions);
        let then = query::show(&vault, &cfg, &sid, Some(&format!("cycle:{}", r1.cycle))).await?;
        let now = query::show(&vault, &cfg, &sid, None).await?;
        println!("title on day 1: {}", then.content.as_ref().map(|c| c.data["title"].to_string()).unwrap_or_default());
        println!("title on day 2: {}", now.content.as_ref().map(|c| c.data["title"].to_string()).unwrap_or_default());
    }
    if let Some(sid) = sid_of(gone["id"].as_str().unwrap_or_default()) {
        let s = query::show(&vault, &cfg, &sid, None).await?;
        println!(
            "\n== deleted record {} ({sid}): last content kept in the vault:",
            gone["id"].as_str().unwrap_or_default()
        );
        println!("{}", s.content.map(|c| c.data.to_string()).unwrap_or_default());
    }

    println!("\n== check --read-data");
    let rep = check::check(&vault, true).await?;
    println!(
        "{} packs, {} blobs, {} read: {}",
        rep.packs,
        rep.blobs,
        human_bytes(rep.bytes_read),
        if rep.ok() { "no problems" } else { "PROBLEMS" }
    );
    for p in &rep.problems {
        println!("PROBLEM: {p}");
    }
    println!("\nTry: DAYBOOK_PASSPHRASE={pass} daybook --config {} snapshots", dir.join("daybook.toml").display());
    if !rep.ok() {
        bail!("the demo vault failed its check");
    }
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => n += dir_size(&e.path()),
                Ok(m) => n += m.len(),
                _ => {}
            }
        }
    }
    n
}
