use anyhow::Result;
use serde_json::json;
use std::path::Path;

use crate::engine::forget;

pub async fn run(config: &Path, org: Option<&str>, dry_run: bool, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let plans = forget::plan(&vault, &cfg, org).await?;
    let mut results = Vec::new();
    for p in &plans {
        let stats = if p.forgotten_snapshots > 0 { Some(vault.forget(&p.org, &p.keep, dry_run).await?) } else { None };
        results.push(json!({"org": p.org, "sources": p.sources, "forgotten_snapshots": p.forgotten_snapshots, "dry_run": dry_run, "result": stats}));
        if json {
            continue;
        }
        for s in &p.sources {
            let policy = match &s.retention {
                Some(r) => serde_json::to_string(r)?
                    .replace([',', '{', '}', '"'], " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                None => "none (every snapshot is kept)".into(),
            };
            println!("{}/{}: retention {policy}", s.org, s.source);
            for d in &s.cycles {
                let what = if d.keep { format!("keep    {}", d.reasons.join(", ")) } else { "forget".to_string() };
                println!("  cycle {:>5}  {}  {what}", d.cycle, d.taken_at.format("%Y-%m-%d %H:%M UTC"));
            }
        }
        let verb = if dry_run { "would forget" } else { "forgot" };
        println!(
            "{}: {verb} {} snapshots (data type x cycle); `daybook prune` frees their space",
            p.org, p.forgotten_snapshots
        );
    }
    if json {
        super::print_json(&results)?;
    }
    Ok(())
}
