//! What the web keeps sealed in the catalog: users' TOTP secrets (with the master key, as an
//! operator belongs to no org) and the audit log's details (with the org's key, so erasing
//! an org leaves nothing of them readable).

use anyhow::{Context, Result};
use serde::Serialize;

use super::Vault;

const TOTP_AAD: &str = "daybook totp v1";
const AUDIT_AAD: &[u8] = b"daybook audit v1";

/// An audit entry as an org's admins read it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// Who: a user's email, "token NAME", or "a signed link" (a download link used).
    pub actor: String,
    /// "sign-in", "restore", "archive-create", "archive-download" (a link asked for),
    /// "archive-link-used" (a zip fetched through one), "archive-delete", ...
    pub action: String,
    pub detail: String,
}

impl Vault {
    /// A user's secret, bound to the user (a sealed secret moved to another row does not open).
    pub(crate) fn seal_user_secret(&self, user_id: i64, plain: &[u8]) -> Vec<u8> {
        self.master.seal(format!("{TOTP_AAD} {user_id}").as_bytes(), plain)
    }

    pub(crate) fn open_user_secret(&self, user_id: i64, sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let plain = self
            .master
            .open(format!("{TOTP_AAD} {user_id}").as_bytes(), sealed)
            .context("a user's second-factor secret does not open with the vault's key (altered?)")?;
        Ok(zeroize::Zeroizing::new(plain))
    }

    /// Adds an audit entry for an org (None: an operator's act outside any org).
    pub async fn add_audit(&self, org: Option<&str>, actor: &str, action: &str, detail: &str) -> Result<()> {
        let (org_id, sealed) = match org {
            Some(sid) => {
                let o = self.existing_org(sid).await?.with_context(|| format!("no org {sid:?} in the vault"))?;
                (Some(o.id), o.keys.seal.seal(AUDIT_AAD, detail.as_bytes()))
            }
            None => (None, self.master.seal(AUDIT_AAD, detail.as_bytes())),
        };
        self.catalog.add_audit(org_id, actor, action, &sealed).await
    }

    /// An org's audit log, newest first, `limit` entries before the entry `before`.
    pub async fn audit_entries(&self, org: &str, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        let Some(o) = self.existing_org(org).await? else { return Ok(Vec::new()) };
        self.catalog
            .audit(o.id, before, limit)
            .await?
            .into_iter()
            .map(|r| {
                let plain =
                    o.keys.seal.open(AUDIT_AAD, &r.detail).context("an audit entry does not open (altered?)")?;
                Ok(AuditEntry {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    detail: String::from_utf8_lossy(&plain).into_owned(),
                })
            })
            .collect()
    }
}
