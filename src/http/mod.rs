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
    /// What the web pages need besides: the connectors restores go through, and the seams to
    /// the daemon's jobs and the archives.
    pub web: web::WebState,
}

pub mod web;

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(downloads::routes())
        .merge(web::routes())
        .fallback(web::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(server_timing))
}

/// Each answer says how long the server took to make it (W3C Server-Timing, `app;dur=` in
/// milliseconds): what a page costs the server, apart from the network and the client. A
/// download's is the time to its first byte.
async fn server_timing(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let t0 = std::time::Instant::now();
    let mut r = next.run(req).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        r.headers_mut().insert("server-timing", v);
    }
    r
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
    serve_on(listener, router, shutdown).await
}

/// Serves `router` on a bound listener (a test binds 127.0.0.1:0 and reads its port).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // The peer's address is what the sign-in limiter counts per address.
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
