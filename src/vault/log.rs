//! The backup log through the vault: each entry's message is sealed with its org's key, so
//! the catalog holds no board names, ids or error text in the clear; only the org's key
//! reads it back.

use anyhow::{Context, Result};
use serde::Serialize;

use super::catalog::LogEntry;
use super::{Org, Vault};

const LOG_AAD: &[u8] = b"daybook log v1";

/// A log entry as a person reads it.
#[derive(Debug, Serialize)]
pub struct LogLine {
    pub cycle: i64,
    pub at: String,
    pub level: String,
    pub org: String,
    pub source: String,
    /// The data type's current name, or "*" for the whole source.
    pub data_type: String,
    pub message: String,
}

impl Vault {
    /// Adds an entry: `summary` (plain) is an outcome and counts only; `message` is sealed.
    #[allow(clippy::too_many_arguments)]
    pub async fn log(
        &self,
        org: &Org,
        cycle: i64,
        level: &str,
        source: &str,
        type_id: Option<i64>,
        summary: &str,
        message: &str,
    ) -> Result<()> {
        let e = LogEntry {
            cycle,
            at: crate::util::now_rfc3339(),
            level: level.into(),
            org: org.sid.clone(),
            source: source.into(),
            type_id,
            summary: summary.into(),
            detail: org.keys.seal.seal(LOG_AAD, message.as_bytes()),
        };
        self.catalog.add_log(&e).await
    }

    /// An org's log, oldest first (of one cycle, or all), opened with its key.
    pub async fn read_log(&self, org_sid: &str, cycle: Option<i64>) -> Result<Vec<LogLine>> {
        let Some(org) = self.existing_org(org_sid).await? else { return Ok(Vec::new()) };
        let mut names = std::collections::HashMap::new();
        let mut out = Vec::new();
        for e in self.catalog.log_entries(org_sid, cycle).await? {
            let data_type = match e.type_id {
                None => "*".to_string(),
                Some(id) => match names.get(&id) {
                    Some(n) => String::clone(n),
                    None => {
                        let n = self
                            .type_info(super::read::TypeId(id))
                            .await
                            .map(|t| t.name)
                            .unwrap_or_else(|_| format!("#{id}"));
                        names.insert(id, n.clone());
                        n
                    }
                },
            };
            let plain = org.keys.seal.open(LOG_AAD, &e.detail).with_context(|| {
                format!("log entry of cycle {} at {} does not open with the org's key (altered?)", e.cycle, e.at)
            })?;
            out.push(LogLine {
                cycle: e.cycle,
                at: e.at,
                level: e.level,
                org: e.org,
                source: e.source,
                data_type,
                message: String::from_utf8_lossy(&plain).into_owned(),
            });
        }
        Ok(out)
    }

    /// A catalog upgraded from schema 1 keeps its old, plain log aside until here, where the
    /// keys are at hand: each entry is sealed into the new log, then the old one is dropped
    /// and its pages wiped.
    pub(crate) async fn seal_v1_log(&self) -> Result<()> {
        let mut orgs = std::collections::HashMap::new();
        for sid in self.catalog.org_sids().await? {
            if let Some(o) = self.existing_org(&sid).await? {
                orgs.insert(sid, o);
            }
        }
        self.catalog
            .upgrade_v1_log(|org, message| Some(orgs.get(org)?.keys.seal.seal(LOG_AAD, message.as_bytes())))
            .await
    }
}
