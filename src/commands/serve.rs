//! `daybook serve`: archive downloads, the dashboard and its API over HTTP until SIGINT or
//! SIGTERM. Without a daemon, an archive ordered on the dashboard is built by a task of this
//! process.

use anyhow::Result;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::http::{self, HttpState, web};
use crate::vault::Vault;

pub async fn run(config: &Path, listen: SocketAddr) -> Result<()> {
    let cfg = Arc::new(super::load_config(config)?);
    let pass = crate::vault::passphrase()?;
    let vault = Vault::open(&cfg, &pass).await?;
    crate::archive::recover_interrupted(&vault).await?;
    // Builds have a vault of their own: a long one never holds the pages' connections.
    let builder = web::archives::InProcess { vault: Arc::new(Vault::open(&cfg, &pass).await?), config: cfg.clone() };
    drop(pass);
    let web = web::WebState { archives: Some(Arc::new(builder)), ..Default::default() };
    let state = Arc::new(HttpState { config: cfg, vault, web });
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    eprintln!("serving downloads on http://{listen}/downloads/");
    http::serve(listen, http::router(state), shutdown).await
}
