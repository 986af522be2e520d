//! `daybook billing`: archive charges and accrued storage of an org.

use anyhow::Result;
use std::path::Path;

use crate::util::print_table;

pub async fn run(config: &Path, org: &str, month: Option<&str>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    crate::archive::recover_interrupted(&vault).await?;
    let b = crate::archive::billing::bill(&vault, &cfg, org, month).await?;
    if json {
        return super::print_json(&b);
    }
    let c = &b.currency;
    let rows: Vec<Vec<String>> = b
        .archives
        .iter()
        .map(|a| {
            vec![
                a.archive.to_string(),
                a.name.clone(),
                a.status.clone(),
                format!("{:.2}", a.build),
                a.storage_days.to_string(),
                format!("{:.2}", a.storage),
                format!("{:.2}", a.total),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "Name",
            "Status",
            &format!("Build ({c})"),
            "Storage days",
            &format!("Storage ({c})"),
            &format!("Total ({c})"),
        ],
        &rows,
    );
    println!(
        "{}{}: build {:.2} + storage {:.2} = {:.2} {c}",
        b.org,
        b.month.as_deref().map(|m| format!(" in {m}")).unwrap_or_default(),
        b.build,
        b.storage,
        b.total
    );
    Ok(())
}
