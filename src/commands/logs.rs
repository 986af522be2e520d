use anyhow::{Result, bail};
use std::path::Path;

use crate::util::print_table;

pub async fn run(config: &Path, org: Option<&str>, job: Option<i64>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    if let Some(o) = org.filter(|o| !cfg.orgs.iter().any(|c| c.sid.get_ref() == o)) {
        bail!("no org {o:?} in the config");
    }
    if let Some(id) = job
        && vault.catalog.job(id).await?.is_none()
    {
        bail!("no job {id} in the catalog (daybook status lists the recent ones)");
    }
    let lines = vault.read_job_log(job, org).await?;
    if json {
        return super::print_json(&lines);
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.job.to_string(),
                l.at.clone(),
                l.level.clone(),
                l.org.clone().unwrap_or_else(|| "-".into()),
                l.message.clone(),
            ]
        })
        .collect();
    print_table(&["job", "at", "level", "org", "message"], &rows);
    Ok(())
}
