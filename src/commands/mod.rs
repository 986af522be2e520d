//! One file per command. Each is a thin face over engine/vault functions, so the daemon
//! and the CLI share every piece of logic.

pub mod archive;
pub mod backup;
pub mod billing;
pub mod check;
pub mod daemon;
pub mod demo;
pub mod diff;
pub mod erase;
pub mod export;
pub mod forget;
pub mod history;
pub mod init;
pub mod log;
pub mod logs;
pub mod mirror;
pub mod prune;
pub mod recover;
pub mod restore;
pub mod serve;
pub mod show;
pub mod snapshots;
pub mod status;
pub mod user;
pub mod web;

use anyhow::{Context, Result};
use std::path::Path;

use crate::config::Config;
use crate::vault::Vault;

/// The config, with every source's kind and keys checked.
pub fn load_config(config: &Path) -> Result<Config> {
    let cfg = Config::load(config)?;
    crate::connectors::check_config(&cfg).with_context(|| format!("config {}", config.display()))?;
    crate::mirror::check_config(&cfg).with_context(|| format!("config {}", config.display()))?;
    Ok(cfg)
}

pub async fn open(config: &Path) -> Result<(Config, Vault)> {
    let cfg = load_config(config)?;
    let pass = crate::vault::passphrase()?;
    let vault = Vault::open(&cfg, &pass).await?;
    Ok((cfg, vault))
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
