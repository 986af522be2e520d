use anyhow::{Result, bail};
use std::path::Path;

use crate::vault::erase;

pub async fn run(config: &Path, org: &str, confirm: Option<&str>) -> Result<()> {
    if confirm != Some(org) {
        bail!(
            "erasing org {org:?} destroys its key and every backup of it, for good; to go ahead, add --confirm {org}"
        );
    }
    let (_, vault) = super::open(config).await?;
    let e = erase::erase_org(&vault, org).await?;
    println!("erased org {org}: its key, {} records and {} stored objects are gone", e.records, e.objects);
    println!("remove it from the config, or the next backup starts it afresh under a new key");
    Ok(())
}
