use serde::Deserialize;

/// The keys of a `[[orgs.sources]]` table with `kind = "trello"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrelloConfig {
    /// The REST API root; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The API key: from this environment variable (default TRELLO_KEY) or this file.
    pub key_env: Option<String>,
    pub key_file: Option<String>,
    /// The user token: from this environment variable (default TRELLO_TOKEN) or this file.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// Workspaces or boards to back up (by id, short link or name; "Workspace/Board" too).
    /// Empty: every board the token can see.
    #[serde(default)]
    pub include: Vec<String>,
    /// Workspaces or boards to leave out; wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Requests per 10 seconds. Trello allows 100 per token and 300 per key
    /// (developer.atlassian.com/cloud/trello/guides/rest-api/rate-limits): lower it when
    /// other programs share the token.
    #[serde(default = "default_requests_per_10s")]
    pub requests_per_10s: u32,
    /// A data type whose requests still fail after this many seconds (retries included)
    /// is given up for this cycle.
    #[serde(default = "default_give_up")]
    pub give_up_after_seconds: u64,
    /// One request's timeout (an attachment download is one request).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Changes are asked for from this long before the last cycle's cursor, for clock skew
    /// between this machine and Trello.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u64,
}

fn default_base_url() -> String {
    "https://api.trello.com/1".into()
}

fn default_requests_per_10s() -> u32 {
    100
}

fn default_give_up() -> u64 {
    600
}

fn default_timeout() -> u64 {
    300
}

fn default_overlap() -> u64 {
    600
}
