//! `daybook serve`: archive downloads over HTTP until SIGINT or SIGTERM.

use anyhow::Result;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::http::{self, HttpState};

pub async fn run(config: &Path, listen: SocketAddr) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    crate::archive::recover_interrupted(&vault).await?;
    let state = Arc::new(HttpState { config: Arc::new(cfg), vault, web: Default::default() });
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
