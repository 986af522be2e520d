//! daybook's HTTP server, one router made of the parts' routes: archive downloads
//! (`downloads`), the daemon's `/healthz` and `/metrics` (`ops`), and the admin web
//! pages and JSON API (`web`). `daybook serve` and `daybook daemon` both serve it.
//!
//! Each part adds a module here with `pub fn routes() -> Router<Arc<HttpState>>` and one
//! `.merge(...)` line in `router`; what a part needs at request time goes in `HttpState`.

pub mod downloads;
pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;

use crate::config::Config;
use crate::vault::Vault;

/// What every handler can reach.
pub struct HttpState {
    pub config: Arc<Config>,
    pub vault: Vault,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new().merge(ops::routes()).merge(downloads::routes()).with_state(state)
}

/// Serves `router` on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another daybook serving there?)"))?;
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
