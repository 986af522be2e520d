//! daybook: daily, encrypted, versioned backups of the data organizations keep in cloud apps.
//!
//! connectors -> engine (delta, snapshot) -> vault (blobs + catalog); the CLI and the daemon
//! call the same functions.

pub mod archive;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod daemon;
pub mod email;
pub mod engine;
pub mod fault;
pub mod http;
pub mod mirror;
pub mod util;
pub mod vault;
