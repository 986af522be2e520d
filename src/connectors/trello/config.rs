use serde::Deserialize;

use crate::connectors::http::AppDefaults;

/// Trello's defaults of the keys every app source takes. The rate: Trello allows 100
/// requests per 10 seconds per token and 300 per key
/// (developer.atlassian.com/cloud/trello/guides/rest-api/rate-limits): 600 a minute.
pub const DEFAULTS: AppDefaults = AppDefaults {
    base_url: "https://api.trello.com/1",
    token_what: "Trello token",
    token_env: "TRELLO_TOKEN",
    requests_per_minute: 600,
};

/// Trello's own keys of a `[[orgs.sources]]` table with `kind = "trello"` (besides those
/// every app source takes, connectors::http::SHARED_KEYS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrelloConfig {
    /// The API key: from this environment variable (default TRELLO_KEY) or this file.
    pub key_env: Option<String>,
    pub key_file: Option<String>,
}
