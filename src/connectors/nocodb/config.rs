use serde::Deserialize;

/// `[[orgs.sources]] kind = "nocodb"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NocoConfig {
    /// NocoDB's address: NocoDB Cloud, or a self-hosted server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable holding the API token (`xc-token`); default NOCODB_TOKEN.
    pub token_env: Option<String>,
    /// Or a file holding it (relative to the config file).
    pub token_file: Option<String>,
    /// Bases or tables to back up, by id, title, or "Base/Table"; empty means all visible.
    #[serde(default)]
    pub include: Vec<String>,
    /// Bases or tables to leave out (wins over include).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// NocoDB allows 5 requests a second per user by default (NC_RATE_LIMITER_* on
    /// self-hosted servers change it).
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
    /// Rows per page; NocoDB caps it at 1000 unless NC_DB_QUERY_LIMIT_MAX says otherwise.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How far before the last change seen the next "changed since" query starts: covers
    /// clock skew, one-second timestamps and writes still in flight during the last read.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u64,
    /// Give up on a request that still fails after this long (retries included).
    #[serde(default = "default_give_up")]
    pub give_up_after_seconds: u64,
    /// One attempt's timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_base_url() -> String {
    "https://app.nocodb.com".into()
}
fn default_rps() -> u32 {
    5
}
fn default_page_size() -> u32 {
    1000
}
fn default_overlap() -> u64 {
    300
}
fn default_give_up() -> u64 {
    600
}
fn default_timeout() -> u64 {
    60
}
