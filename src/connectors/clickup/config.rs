use serde::Deserialize;

use crate::connectors::scope::Scope;

/// `[[orgs.sources]] kind = "clickup"`: one ClickUp account, reached with a personal token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickUpConfig {
    /// The API's root, up to and including `/api/v2`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable that holds the personal token (`pk_...`); default CLICKUP_TOKEN.
    pub token_env: Option<String>,
    /// Or a file that holds it.
    pub token_file: Option<String>,
    /// Workspaces, spaces, folders or lists to back up (by id, name or path of names); all
    /// that the token sees when empty.
    #[serde(default)]
    pub include: Vec<String>,
    /// Workspaces, spaces, folders or lists to leave out; wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Requests a minute. ClickUp allows 100 a minute per token on the Free Forever,
    /// Unlimited and Business plans, 1,000 on Business Plus, 10,000 on Enterprise
    /// (https://clickup.com/api/developer-portal/rate-limits/).
    #[serde(default = "default_rate_limit")]
    pub requests_per_minute: u32,
    /// A request still failing after this long (retries and rate-limit waits included)
    /// fails its data type for this cycle.
    #[serde(default = "default_give_up")]
    pub give_up_after_seconds: u64,
    /// Changes are asked for from this long before the last cycle's start, for clock skew
    /// between this machine and ClickUp.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u64,
    /// Download task attachments into the vault (one extra request per changed task).
    #[serde(default = "default_true")]
    pub attachments: bool,
    /// Back up task comments (and their threaded replies). ClickUp cannot list comments
    /// changed since a time, so they are read whole every cycle: one request per task.
    #[serde(default = "default_true")]
    pub comments: bool,
}

fn default_base_url() -> String {
    "https://api.clickup.com/api/v2".into()
}

fn default_rate_limit() -> u32 {
    100
}

fn default_give_up() -> u64 {
    900
}

fn default_overlap() -> u64 {
    300
}

fn default_true() -> bool {
    true
}

impl ClickUpConfig {
    pub fn scope(&self) -> Scope {
        Scope { include: self.include.clone(), exclude: self.exclude.clone() }
    }
}
