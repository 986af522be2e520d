use serde::Deserialize;

use crate::connectors::http::AppDefaults;

/// NocoDB's defaults of the keys every app source takes. The rate: NocoDB allows 5 requests
/// a second per user by default (NC_RATE_LIMITER_* on self-hosted servers change it): 300 a
/// minute.
pub const DEFAULTS: AppDefaults = AppDefaults {
    base_url: "https://app.nocodb.com",
    token_what: "NocoDB API token",
    token_env: "NOCODB_TOKEN",
    requests_per_minute: 300,
};

/// NocoDB's own keys of `[[orgs.sources]] kind = "nocodb"` (besides those every app source
/// takes, connectors::http::SHARED_KEYS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NocoConfig {
    /// Rows per page; NocoDB caps it at 1000 unless NC_DB_QUERY_LIMIT_MAX says otherwise.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_page_size() -> u32 {
    1000
}
