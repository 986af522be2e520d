//! The dashboard's seams, as `daybook daemon` fills them: "Back up now" and the next run
//! from the queue and the schedule (`Jobs`), and archives ordered on the page built by a
//! queued job of kind `archive` (`Archives`), never inside the request.

use anyhow::Result;
use std::sync::Arc;

use super::manual;
use super::schedule::Schedule;
use super::worker::Shared;
use crate::engine::Filter;
use crate::http::web::{Archives, JobRef, Jobs, WebState};
use crate::vault::catalog::Lease;

pub struct DaemonSeams {
    shared: Arc<Shared>,
}

/// The web's state with the daemon's seams.
pub fn web_state(shared: Arc<Shared>) -> WebState {
    let seams = Arc::new(DaemonSeams { shared });
    WebState { jobs: Some(seams.clone()), archives: Some(seams), ..Default::default() }
}

#[async_trait::async_trait]
impl Jobs for DaemonSeams {
    async fn backup_now(&self, org: &str, _actor: &str) -> Result<Result<JobRef, String>> {
        let cfg = self.shared.config();
        let filter = Filter { org: Some(org.to_string()), source: None, allow_deletions: false };
        Ok(match manual::queue_backups(&self.shared.queue.catalog, &cfg, &filter, true).await? {
            Ok(q) => {
                self.shared.wake.notify_one();
                Ok(JobRef { jobs: q.iter().map(|q| q.job).collect() })
            }
            Err(why) => Err(format!("Not queued: {}", why.join("; "))),
        })
    }

    async fn next_run(&self, org: &str) -> Result<Option<String>> {
        let cfg = self.shared.config();
        let Some(o) = cfg.orgs.iter().find(|o| o.sid.get_ref() == org) else { return Ok(None) };
        let Ok(s) = Schedule::of(o) else { return Ok(None) };
        Ok(s.next_due(chrono::Utc::now()).map(|(_, t)| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }
}

#[async_trait::async_trait]
impl Archives for DaemonSeams {
    async fn build(&self, org: &str, id: i64, at: Option<String>, lease: Lease) -> Result<Option<i64>> {
        let job = self.shared.queue.push(&crate::archive::job::new_job(org, id, at.as_deref())).await?;
        self.shared.wake.notify_one();
        // Queued first, released after: `recover_interrupted` never sees the build with
        // neither a builder nor a queued job.
        lease.release().await?;
        Ok(Some(job))
    }
}
