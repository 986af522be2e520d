use anyhow::Result;
use std::path::Path;

use crate::engine::restore::{self, RecoverFilter};
use crate::util::print_table;

pub async fn run(config: &Path, filter: &RecoverFilter, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let found = restore::recover(&vault, &cfg, filter).await?;
    if json {
        return super::print_json(&found);
    }
    if found.is_empty() {
        println!("no deleted records match");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|d| {
            let mut preview = d.content.get("data").map(|v| v.to_string()).unwrap_or_default();
            if preview.chars().count() > 60 {
                preview = preview.chars().take(59).collect::<String>() + "…";
            }
            vec![
                d.sid.clone(),
                format!("{}/{}", d.source, d.data_type),
                d.source_id.clone(),
                d.last_seen.clone().unwrap_or_default(),
                d.deletion_noticed.clone(),
                if d.restored_as.is_empty() { "-".into() } else { d.restored_as.join(", ") },
                preview,
            ]
        })
        .collect();
    print_table(&["sid", "source/type", "id", "last seen", "deletion noticed", "restored as", "last content"], &rows);
    println!("restore one as a new record with: daybook restore <sid> [--dry-run]");
    Ok(())
}
