use anyhow::Result;
use std::path::Path;

use crate::util::human_bytes;

pub async fn run(config: &Path, org: Option<&str>, dry_run: bool, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let mut all = Vec::new();
    for o in &cfg.orgs {
        let sid = o.sid.get_ref();
        if org.is_some_and(|w| w != sid) || vault.existing_org(sid).await?.is_none() {
            continue;
        }
        let s = vault.prune(sid, dry_run).await?;
        if !json {
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "{sid}: {verb} {} packs and {} files, repacked {} packs into {} ({} -> {})",
                s.packs_removed,
                s.files_removed,
                s.packs_repacked,
                s.packs_written,
                human_bytes(s.bytes_before),
                human_bytes(s.bytes_after)
            );
        }
        all.push(s);
    }
    if json {
        super::print_json(&all)?;
    }
    Ok(())
}
