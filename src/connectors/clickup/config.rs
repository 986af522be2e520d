use serde::Deserialize;

use crate::connectors::http::AppDefaults;

/// ClickUp's defaults of the keys every app source takes. The rate: ClickUp allows 100
/// requests a minute per token on the Free Forever, Unlimited and Business plans, 1,000 on
/// Business Plus, 10,000 on Enterprise (https://clickup.com/api/developer-portal/rate-limits/).
pub const DEFAULTS: AppDefaults = AppDefaults {
    base_url: "https://api.clickup.com/api/v2",
    token_what: "ClickUp token",
    token_env: "CLICKUP_TOKEN",
    requests_per_minute: 100,
};

/// ClickUp's own keys of `[[orgs.sources]] kind = "clickup"` (besides those every app source
/// takes, connectors::http::SHARED_KEYS): one ClickUp account, reached with a personal token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickUpConfig {
    /// Download task attachments into the vault (one extra request per changed task).
    #[serde(default = "default_true")]
    pub attachments: bool,
    /// Back up task comments (and their threaded replies). ClickUp cannot list comments
    /// changed since a time, so they are read whole every cycle: one request per task.
    #[serde(default = "default_true")]
    pub comments: bool,
}

fn default_true() -> bool {
    true
}

/// What ClickUp's error codes say of the credentials (developer.clickup.com/docs/common_errors):
/// "Token not found" (OAUTH_019, 021, 025, 077: revoked) and a missing Authorization header
/// (OAUTH_017) are the credentials; "Team not authorized" (OAUTH_023, 026, 027, 029 to 045)
/// is one workspace the token was not given, whatever the status.
pub fn credentials_refused(_status: u16, code: Option<&str>) -> Option<bool> {
    let n: u32 = code?.strip_prefix("OAUTH_")?.parse().ok()?;
    match n {
        17 | 19 | 21 | 25 | 77 => Some(true),
        23 | 26 | 27 | 29..=45 => Some(false),
        _ => None,
    }
}
