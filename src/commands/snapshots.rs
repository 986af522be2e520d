use anyhow::Result;
use std::path::Path;

use crate::engine::query::{self, SnapshotRow};
use crate::util::{human_bytes, print_table};

pub async fn run(config: &Path, json: bool) -> Result<()> {
    let (_, vault) = super::open(config).await?;
    let rows = query::snapshots(&vault).await?;
    if json {
        super::print_json(&rows)
    } else {
        print(&rows);
        Ok(())
    }
}

pub fn print(rows: &[SnapshotRow]) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.org.clone(),
                s.source.clone(),
                s.data_type.clone(),
                s.cycle.to_string(),
                s.taken_at.clone(),
                s.live.to_string(),
                s.added.to_string(),
                s.changed.to_string(),
                s.deleted.to_string(),
                if s.full_read { "whole".into() } else { "changes".into() },
                s.drift.to_string(),
                human_bytes(s.stored_bytes),
            ]
        })
        .collect();
    print_table(
        &[
            "org", "source", "type", "cycle", "taken at", "live", "added", "changed", "deleted", "read", "drift",
            "stored",
        ],
        &table,
    );
}
