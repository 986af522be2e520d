use anyhow::{Result, bail};
use std::path::Path;

use crate::engine::{export, query};
use crate::vault::read::At;

pub async fn run(config: &Path, org: &str, at: Option<&str>, to: &Path, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    if !cfg.orgs.iter().any(|o| o.sid.get_ref() == org) {
        bail!("no org {org:?} in the config");
    }
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!("{} is not empty: export into a new or empty folder", to.display());
    }
    let when = match at {
        Some(a) => At::parse(a, query::org_tz(&cfg, org))?,
        None => At::Latest,
    };
    let done = export::export_org(&vault, org, when, to).await?;
    if json {
        return super::print_json(&done);
    }
    println!(
        "exported {} data types of {org}: {} records and {} files ({}) into {}",
        done.data_types,
        done.records,
        done.files,
        crate::util::human_bytes(done.bytes),
        to.display()
    );
    Ok(())
}
