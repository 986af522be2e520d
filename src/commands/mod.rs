//! One file per command. Each is a thin face over engine/vault functions, so the daemon
//! and the CLI share every piece of logic.

pub mod backup;
pub mod check;
pub mod demo;
pub mod diff;
pub mod erase;
pub mod history;
pub mod init;
pub mod recover;
pub mod restore;
pub mod show;
pub mod snapshots;

use anyhow::Result;
use std::path::Path;

use crate::config::Config;
use crate::vault::Vault;

pub async fn open(config: &Path) -> Result<(Config, Vault)> {
    let cfg = Config::load(config)?;
    let pass = crate::vault::passphrase()?;
    let vault = Vault::open(&cfg, &pass).await?;
    Ok((cfg, vault))
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
