//! `[archive]` and `[pricing]` in the config.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// An archive whose content passes this many bytes is split into parts, each a whole zip.
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// Names Windows' Explorer can extract (`:` as `：`, no `<>"|?*`, no reserved names).
    #[serde(default)]
    pub windows_safe_names: bool,
    /// Where `daybook serve` is reached from outside (links point there).
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// How long a download link works, in days.
    #[serde(default = "default_link_days")]
    pub link_days: u32,
    /// Where the zip is written while it is built (default: the system's temporary folder);
    /// deleted as soon as it is sealed into the store.
    #[serde(default)]
    pub temp_dir: Option<String>,
}

fn default_part_bytes() -> u64 {
    1 << 30
}

fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}

fn default_link_days() -> u32 {
    7
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            part_bytes: default_part_bytes(),
            windows_safe_names: false,
            public_url: default_public_url(),
            link_days: default_link_days(),
            temp_dir: None,
        }
    }
}

/// Prices of archives. A build costs `base + per_gb x content GB + per_1000_versions x
/// versions / 1000` (content: the versions' and files' bytes as extracted, so the quote,
/// made from the catalog before the build, is the price); keeping one costs
/// `storage_per_gb_month` per GB of its zip, accrued per whole day until it is deleted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_base")]
    pub base: f64,
    #[serde(default = "default_per_gb")]
    pub per_gb: f64,
    #[serde(default = "default_per_1000_versions")]
    pub per_1000_versions: f64,
    #[serde(default = "default_storage_per_gb_month")]
    pub storage_per_gb_month: f64,
}

fn default_currency() -> String {
    "EUR".into()
}
fn default_base() -> f64 {
    0.50
}
fn default_per_gb() -> f64 {
    2.00
}
fn default_per_1000_versions() -> f64 {
    0.01
}
fn default_storage_per_gb_month() -> f64 {
    0.10
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            currency: default_currency(),
            base: default_base(),
            per_gb: default_per_gb(),
            per_1000_versions: default_per_1000_versions(),
            storage_per_gb_month: default_storage_per_gb_month(),
        }
    }
}

impl PricingConfig {
    /// Prices must be finite and not negative.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (k, v) in [
            ("base", self.base),
            ("per_gb", self.per_gb),
            ("per_1000_versions", self.per_1000_versions),
            ("storage_per_gb_month", self.storage_per_gb_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                anyhow::bail!("config: pricing.{k} must be a price of 0 or more (it is {v})");
            }
        }
        Ok(())
    }
}
