use anyhow::Result;
use std::path::Path;

use crate::vault::Vault;

pub async fn run(config: &Path) -> Result<()> {
    let cfg = super::load_config(config)?;
    let pass = crate::vault::passphrase()?;
    let vault = Vault::init(&cfg, &pass).await?;
    println!("created vault {} (store {}, catalog {})", vault.id, vault.store_display, vault.catalog.display);
    println!("keep the passphrase safe: without it the vault cannot be read");
    Ok(())
}
