//! `/healthz` and `/metrics` (Prometheus text format), for monitoring the daemon.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

use super::HttpState;

pub fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

/// 200 when the catalog answers, 503 otherwise.
async fn healthz(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    match s.vault.catalog.job_counts().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!("healthz: the catalog does not answer: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "catalog unreachable\n")
        }
    }
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let c = &s.vault.catalog;
    let (jobs, oldest) = match (c.job_counts().await, c.oldest_ready().await) {
        (Ok(j), Ok(o)) => (j, o),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("metrics: the catalog does not answer: {e:#}");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain")], String::new());
        }
    };
    let lag = oldest
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let body = crate::daemon::metrics::global().render(&jobs, lag);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
