use anyhow::Result;
use std::path::Path;

use crate::engine::query::{self, Diff};

pub async fn run(config: &Path, ty: &str, from: &str, to: &str, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let d = query::diff(&vault, &cfg, ty, from, to).await?;
    if json {
        super::print_json(&d)
    } else {
        print(&d);
        Ok(())
    }
}

pub fn print(d: &Diff) {
    let c = |x: Option<crate::vault::read::CycleId>| x.map(|c| c.to_string()).unwrap_or_else(|| "none".into());
    println!(
        "{}: snapshot of cycle {} -> cycle {}: {} added, {} changed, {} deleted",
        d.data_type,
        c(d.from_cycle),
        c(d.to_cycle),
        d.added.len(),
        d.changed.len(),
        d.deleted.len()
    );
    for (mark, list) in [("+", &d.added), ("~", &d.changed), ("-", &d.deleted)] {
        for e in list {
            let v = |x: Option<u32>| x.map(|v| format!("v{v}")).unwrap_or_default();
            println!(
                "{mark} {} {:?} {}{}{}",
                e.sid,
                e.id,
                v(e.from_version),
                if e.from_version.is_some() && e.to_version.is_some() { " -> " } else { "" },
                v(e.to_version)
            );
        }
    }
}
