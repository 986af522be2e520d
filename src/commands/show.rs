use anyhow::Result;
use std::path::Path;

use crate::engine::query;

pub async fn run(config: &Path, sid: &str, at: Option<&str>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let shown = query::show(&vault, &cfg, sid, at).await?;
    if json {
        return super::print_json(&shown);
    }
    let r = &shown.record;
    println!("record {} = {}/{}/{} id {:?}", r.sid, r.org, r.source, r.data_type, r.source_id);
    println!("version {} captured {}", shown.version.version, shown.version.captured_at);
    if let Some(when) = &shown.deleted_since {
        println!("DELETED at the source (noticed {when}); last content before the deletion:");
    }
    match &shown.content {
        Some(c) => println!("{}", serde_json::to_string_pretty(c)?),
        None => println!("(no content)"),
    }
    Ok(())
}
