use anyhow::Result;
use std::path::Path;

use crate::engine::query;
use crate::util::print_table;
use crate::vault::read::{RecordInfo, VersionInfo};

pub async fn run(config: &Path, sid: &str, json: bool) -> Result<()> {
    let (_, vault) = super::open(config).await?;
    let (info, versions) = query::history(&vault, sid).await?;
    if json {
        return super::print_json(&serde_json::json!({ "record": info, "versions": versions }));
    }
    print(&info, &versions);
    Ok(())
}

pub fn print(info: &RecordInfo, versions: &[VersionInfo]) {
    println!("record {} = {}/{}/{} id {:?}", info.sid, info.org, info.source, info.data_type, info.source_id);
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                if v.deleted { "deleted".into() } else { "content".into() },
                v.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                v.from_cycle.to_string(),
                v.to_cycle.map(|c| c.to_string()).unwrap_or_else(|| "current".into()),
                v.size.to_string(),
            ]
        })
        .collect();
    print_table(&["version", "kind", "captured at", "from cycle", "until cycle", "bytes"], &rows);
}
