//! `daybook web --listen ADDR` (hidden): serves the dashboard and API alone, without the
//! daemon's schedule or the archives; for benchmarks and trying the pages. `daybook serve` and
//! `daybook daemon` serve the same router with their parts wired.

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

use crate::http::{self, HttpState, web};

pub async fn run(config: &Path, listen: std::net::SocketAddr) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let state = Arc::new(HttpState { config: Arc::new(cfg), vault, web: web::WebState::default() });
    eprintln!("serving the dashboard on http://{listen}");
    http::serve(listen, http::router(state), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
