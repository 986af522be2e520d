use anyhow::Result;
use std::path::Path;

use crate::util::print_table;

pub async fn run(config: &Path, org: Option<&str>, cycle: Option<i64>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let mut lines = Vec::new();
    for o in cfg.orgs.iter().map(|o| o.sid.get_ref().as_str()).filter(|o| org.is_none_or(|want| want == *o)) {
        lines.extend(vault.read_log(o, cycle).await?);
    }
    if json {
        return super::print_json(&lines);
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.cycle.to_string(),
                l.at.clone(),
                l.level.clone(),
                l.org.clone(),
                l.source.clone(),
                l.data_type.clone(),
                l.message.clone(),
            ]
        })
        .collect();
    print_table(&["cycle", "at", "level", "org", "source", "type", "message"], &rows);
    Ok(())
}
