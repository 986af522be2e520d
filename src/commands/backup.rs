use anyhow::Result;
use std::path::Path;

use crate::engine::{self, CycleReport, Filter};
use crate::util::{human_bytes, print_table};

pub async fn run(config: &Path, filter: Filter, json: bool) -> Result<bool> {
    let (cfg, vault) = super::open(config).await?;
    let report = engine::run_cycle(&vault, &cfg, &filter).await?;
    if json {
        super::print_json(&report)?
    } else {
        print(&report)
    }
    Ok(report.failed() == 0)
}

pub fn print(r: &CycleReport) {
    println!("cycle {}", r.cycle);
    let rows: Vec<Vec<String>> = r
        .types
        .iter()
        .map(|t| {
            let s = &t.stats;
            let status = match &t.error {
                Some(_) => "FAILED".to_string(),
                None => "ok".to_string(),
            };
            vec![
                t.org.clone(),
                t.source.clone(),
                t.data_type.clone(),
                status,
                s.live.to_string(),
                s.added.to_string(),
                s.changed.to_string(),
                s.deleted.to_string(),
                s.files_fetched.to_string(),
                human_bytes(s.stored_bytes),
            ]
        })
        .collect();
    print_table(&["org", "source", "type", "status", "live", "added", "changed", "deleted", "files", "stored"], &rows);
    for s in &r.sources {
        // A board or table missing here is one the credentials no longer see.
        if !s.visible.is_empty() {
            println!("{}/{}: visible: {}", s.org, s.source, s.visible.join(", "));
        }
        if !s.skipped.is_empty() {
            println!("{}/{}: left out by scope: {}", s.org, s.source, s.skipped.join(", "));
        }
        if let Some(n) = s.requests {
            println!("{}/{}: {n} API requests", s.org, s.source);
        }
        if !s.missing.is_empty() {
            eprintln!(
                "warning: {}/{}: gone from the source (deleted, renamed, no longer visible, or out of scope), kept at \
                 their last snapshot: {}",
                s.org,
                s.source,
                s.missing.join(", ")
            );
        }
    }
    for t in r.types.iter().filter(|t| t.error.is_some()) {
        eprintln!(
            "error: {}/{}/{}: {} (its last snapshot is kept)",
            t.org,
            t.source,
            t.data_type,
            t.error.as_deref().unwrap_or_default()
        );
    }
}
