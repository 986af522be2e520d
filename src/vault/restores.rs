//! Copies `restore` made: which version became which new record. The new id and the notes
//! are the app's words, sealed with the org's key.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Vault;
use super::catalog::RestoreRecord;
use super::read::RecordInfo;

const AAD: &[u8] = b"daybook restore v1";

#[derive(Serialize, Deserialize)]
struct Sealed {
    new_id: String,
    notes: Vec<String>,
}

/// A copy made of a record.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RestoreInfo {
    pub at: String,
    pub version: u32,
    pub new_id: String,
    pub files: u64,
    pub notes: Vec<String>,
}

impl Vault {
    /// The SIDs of records restored at least once (one query for a whole list).
    pub async fn restored_sids(&self) -> Result<std::collections::HashSet<String>> {
        self.catalog.restored_sids().await
    }

    pub async fn restores_of(&self, r: &RecordInfo) -> Result<Vec<RestoreInfo>> {
        let org = self.existing_org(&r.org).await?.context("the record's org is gone")?;
        self.catalog
            .restore_records(&r.sid)
            .await?
            .into_iter()
            .map(|x| {
                let plain = org.keys.seal.open(AAD, &x.sealed).context("a restore record does not open (altered?)")?;
                let s: Sealed = serde_json::from_slice(&plain)?;
                Ok(RestoreInfo {
                    at: x.at,
                    version: x.version as u32,
                    new_id: s.new_id,
                    files: x.files as u64,
                    notes: s.notes,
                })
            })
            .collect()
    }

    pub async fn add_restore(
        &self,
        r: &RecordInfo,
        version: u32,
        new_id: &str,
        files: u64,
        notes: &[String],
    ) -> Result<()> {
        let org = self.existing_org(&r.org).await?.context("the record's org is gone")?;
        let sealed =
            org.keys.seal.seal(AAD, &serde_json::to_vec(&Sealed { new_id: new_id.into(), notes: notes.to_vec() })?);
        let rec =
            RestoreRecord { at: crate::util::now_rfc3339(), version: version as i64, files: files as i64, sealed };
        self.catalog.add_restore(r.type_id.0, &r.sid, &rec).await
    }
}
