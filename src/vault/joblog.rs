//! The daemon's job logs through the vault: as with the backup log, each message is sealed
//! (with its org's key, or the vault's master key for vault-wide jobs such as `check`), so
//! the catalog holds no names or error text in the clear.

use anyhow::{Context, Result};
use serde::Serialize;

use super::Vault;
use super::catalog::JobLogEntry;

const JOB_LOG_AAD: &[u8] = b"daybook job log v1";

/// A job log entry as a person reads it.
#[derive(Debug, Serialize)]
pub struct JobLogLine {
    pub job: i64,
    pub at: String,
    pub level: String,
    pub org: Option<String>,
    pub message: String,
}

impl Vault {
    /// Adds an entry to a job's log: `summary` (plain) is an outcome and counts only;
    /// `message` is sealed.
    pub async fn job_log(&self, job: i64, org: Option<&str>, level: &str, summary: &str, message: &str) -> Result<()> {
        let detail = match org {
            Some(sid) => match self.existing_org(sid).await? {
                Some(o) => o.keys.seal.seal(JOB_LOG_AAD, message.as_bytes()),
                None => self.master.seal(JOB_LOG_AAD, message.as_bytes()),
            },
            None => self.master.seal(JOB_LOG_AAD, message.as_bytes()),
        };
        let e = JobLogEntry {
            job_id: job,
            at: crate::util::now_rfc3339(),
            level: level.into(),
            org: org.map(str::to_string),
            summary: summary.into(),
            detail,
        };
        self.catalog.add_job_log(&e).await
    }

    /// Job log entries (of one job and/or org, or all), oldest first, opened.
    pub async fn read_job_log(&self, job: Option<i64>, org: Option<&str>) -> Result<Vec<JobLogLine>> {
        let mut out = Vec::new();
        for e in self.catalog.job_log(job, org).await? {
            let key = match &e.org {
                Some(sid) => self.existing_org(sid).await?,
                None => None,
            };
            // An org's entry written before the org had keys was sealed with the master key.
            let plain = key
                .as_ref()
                .and_then(|o| o.keys.seal.open(JOB_LOG_AAD, &e.detail).ok())
                .or_else(|| self.master.open(JOB_LOG_AAD, &e.detail).ok())
                .with_context(|| {
                    format!("log entry of job {} at {} does not open with the vault's keys (altered?)", e.job_id, e.at)
                })?;
            out.push(JobLogLine {
                job: e.job_id,
                at: e.at,
                level: e.level,
                org: e.org,
                message: String::from_utf8_lossy(&plain).into_owned(),
            });
        }
        Ok(out)
    }
}
