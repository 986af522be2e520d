//! The price of an archive, from the catalog and the data types' states, before anything is
//! built: how many versions and files, their bytes, the parts, and what it costs.

use anyhow::Result;
use serde::Serialize;
use std::collections::HashSet;

use super::config::{ArchiveConfig, PricingConfig};
use crate::vault::Vault;
use crate::vault::read::At;

/// Bytes of a stored version's envelope around its record's JSON (`{"data":` and `}`).
const ENVELOPE: u64 = 9;
/// Zip bytes per entry besides its name and data: local header, central directory entry.
const ENTRY_OVERHEAD: u64 = 30 + 46;
/// What deflate leaves of records' JSON, about (for the zip's size; the price does not use it).
const JSON_RATIO: f64 = 0.35;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Quote {
    pub org: String,
    pub history: bool,
    pub data_types: u64,
    pub versions: u64,
    pub files: u64,
    /// Bytes of the versions and files as extracted: what the price counts.
    pub content_bytes: u64,
    /// The zip's size, estimated.
    pub estimated_zip_bytes: u64,
    pub parts: u64,
    pub currency: String,
    /// The build's price.
    pub price: f64,
    /// What keeping it costs per month.
    pub storage_per_month: f64,
}

/// Whether a file's bytes are already compressed (by its name): stored as they are.
pub fn precompressed(name: &str) -> bool {
    const EXT: &[&str] = &[
        "jpg", "jpeg", "png", "gif", "webp", "heic", "avif", "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar",
        "pdf", "mp3", "mp4", "m4a", "m4v", "mov", "avi", "mkv", "webm", "ogg", "opus", "flac", "docx", "xlsx", "pptx",
        "odt", "ods", "odp", "epub", "jar", "apk",
    ];
    name.rsplit_once('.').is_some_and(|(_, e)| EXT.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The build's price in millionths of the currency unit.
pub fn price_micros(p: &PricingConfig, versions: u64, content_bytes: u64) -> i64 {
    let v = p.base + p.per_gb * content_bytes as f64 / 1e9 + p.per_1000_versions * versions as f64 / 1000.0;
    (v * 1e6).round() as i64
}

/// Storage cost per month of a zip of `bytes`, in millionths.
pub fn storage_micros_per_month(p: &PricingConfig, bytes: u64) -> i64 {
    (p.storage_per_gb_month * bytes as f64 / 1e9 * 1e6).round() as i64
}

/// How many parts the build makes, by its rule (an entry that would take a part past
/// `part_bytes` starts the next one): the versions, small, as one flow, then each file.
pub fn parts_for(version_bytes: u64, file_sizes: &[u64], part_bytes: u64) -> u64 {
    let pb = part_bytes.max(1);
    let (mut parts, mut cur) = (1 + version_bytes / pb, version_bytes % pb);
    for &s in file_sizes {
        if cur > 0 && cur + s > pb {
            parts += 1;
            cur = 0;
        }
        cur += s;
    }
    parts
}

pub async fn quote(
    vault: &Vault,
    acfg: &ArchiveConfig,
    pricing: &PricingConfig,
    org: &str,
    at: At,
    history: bool,
) -> Result<Quote> {
    let mut q = Quote {
        org: org.to_string(),
        history,
        data_types: 0,
        versions: 0,
        files: 0,
        content_bytes: 0,
        estimated_zip_bytes: 0,
        parts: 1,
        currency: pricing.currency.clone(),
        price: 0.0,
        storage_per_month: 0.0,
    };
    let mut seen = HashSet::new();
    let mut zip = 0.0f64;
    let mut version_bytes = 0u64;
    // File sizes in the order the build writes them (after every version).
    let mut file_sizes = Vec::new();
    // `<org>/versions/<16-character SID>_<version>`
    let version_name = (org.len() + 1 + 9 + 16 + 3) as u64;
    for t in vault.types(Some(org)).await? {
        let Some(snap) = vault.snapshot_at(t.id, at).await? else { continue };
        q.data_types += 1;
        let (n, bytes) = vault.count_at(t.id, snap.cycle, history).await?;
        let content = bytes.saturating_sub(ENVELOPE * n);
        q.versions += n;
        q.content_bytes += content;
        version_bytes += content;
        zip += content as f64 * JSON_RATIO + (n * (ENTRY_OVERHEAD + 2 * version_name)) as f64;
        for f in vault.files_at(t.id, snap.cycle, history).await? {
            if !seen.insert(f.uid.clone()) {
                continue;
            }
            q.files += 1;
            q.content_bytes += f.size;
            file_sizes.push(f.size);
            let ratio = if precompressed(&f.name) { 1.0 } else { 0.5 };
            zip += f.size as f64 * ratio
                + (ENTRY_OVERHEAD + 2 * (org.len() + f.uid.len() + f.name.len() + 3) as u64) as f64;
        }
    }
    q.estimated_zip_bytes = zip as u64;
    q.parts = parts_for(version_bytes, &file_sizes, acfg.part_bytes);
    q.price = price_micros(pricing, q.versions, q.content_bytes) as f64 / 1e6;
    q.storage_per_month = storage_micros_per_month(pricing, q.estimated_zip_bytes) as f64 / 1e6;
    Ok(q)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_follow_the_builds_rule() {
        assert_eq!(super::parts_for(0, &[], 100), 1);
        assert_eq!(super::parts_for(10, &[60, 60, 60, 60], 100), 4);
        assert_eq!(super::parts_for(250, &[10], 100), 3);
        assert_eq!(super::parts_for(0, &[500], 100), 1, "a large file has a part of its own");
    }
}
