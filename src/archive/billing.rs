//! What archives cost an org: each build's charge (made when it became ready) and the
//! storage accrued per whole day from then until it was deleted (or now).

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::vault::Vault;

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveBill {
    pub archive: i64,
    pub name: String,
    pub status: String,
    pub file_size: i64,
    pub build: f64,
    /// Whole days of storage counted (in the month asked, or in all).
    pub storage_days: i64,
    pub storage: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bill {
    pub org: String,
    pub month: Option<String>,
    pub currency: String,
    pub archives: Vec<ArchiveBill>,
    pub build: f64,
    pub storage: f64,
    pub total: f64,
}

/// Whole days of storage between `from` and `to` that fall within `[lo, hi)` (None: no bound).
pub fn storage_days(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lo: Option<DateTime<Utc>>,
    hi: Option<DateTime<Utc>>,
) -> i64 {
    let a = lo.map_or(from, |l| from.max(l));
    let b = hi.map_or(to, |h| to.min(h));
    if b <= a { 0 } else { (b - a).num_days() }
}

/// Storage cost in millionths: a GB-month is 30 days.
pub fn storage_micros(price_per_gb_month: f64, bytes: i64, days: i64) -> i64 {
    (price_per_gb_month * bytes as f64 / 1e9 * days as f64 / 30.0 * 1e6).round() as i64
}

fn month_bounds(m: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let Ok(start) = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d") else {
        bail!("--month {m:?}: use YYYY-MM (2026-11)");
    };
    let next = start.checked_add_months(chrono::Months::new(1)).expect("a month after a valid one");
    let t = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    Ok((t(start), t(next)))
}

fn ts(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)?.to_utc())
}

pub async fn bill(vault: &Vault, cfg: &Config, org: &str, month: Option<&str>) -> Result<Bill> {
    let Some(o) = vault.existing_org(org).await? else { bail!("no org {org:?} in the vault") };
    let bounds = month.map(month_bounds).transpose()?;
    let (lo, hi) = (bounds.map(|b| b.0), bounds.map(|b| b.1));
    let charges = vault.catalog.archive_charges(o.id).await?;
    let now = Utc::now();
    let mut out = Bill {
        org: org.to_string(),
        month: month.map(str::to_string),
        currency: cfg.pricing.currency.clone(),
        archives: Vec::new(),
        build: 0.0,
        storage: 0.0,
        total: 0.0,
    };
    for r in vault.catalog.archive_rows(Some(o.id)).await? {
        let mut build = 0;
        for c in charges.iter().filter(|c| c.archive_id == r.id) {
            let at = ts(&c.at)?;
            if lo.is_none_or(|l| at >= l) && hi.is_none_or(|h| at < h) {
                build += c.amount_micros;
            }
        }
        // Storage runs from when it became ready; a failed build stored nothing.
        let days = match (&r.finished_at, build > 0 || charges.iter().any(|c| c.archive_id == r.id)) {
            (Some(f), true) => {
                let until = r.deleted_at.as_deref().map(ts).transpose()?.unwrap_or(now);
                storage_days(ts(f)?, until, lo, hi)
            }
            _ => 0,
        };
        if build == 0 && days == 0 && month.is_some() {
            continue;
        }
        let storage = storage_micros(cfg.pricing.storage_per_gb_month, r.stored_bytes, days);
        let name = super::show(vault, cfg, r.id).await.map(|a| a.name).unwrap_or_default();
        out.archives.push(ArchiveBill {
            archive: r.id,
            name,
            status: r.status.clone(),
            file_size: r.stored_bytes,
            build: build as f64 / 1e6,
            storage_days: days,
            storage: storage as f64 / 1e6,
            total: (build + storage) as f64 / 1e6,
        });
    }
    out.build = out.archives.iter().map(|a| a.build).sum();
    out.storage = out.archives.iter().map(|a| a.storage).sum();
    out.total = out.build + out.storage;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn storage_accrues_per_whole_day_within_the_month() {
        let (lo, hi) = month_bounds("2026-11").unwrap();
        assert_eq!(hi, t("2026-12-01T00:00:00Z"));
        // Ready on the 20th at noon, deleted on 3 December: 10 whole days in November.
        let (from, to) = (t("2026-11-20T12:00:00Z"), t("2026-12-03T00:00:00Z"));
        assert_eq!(storage_days(from, to, Some(lo), Some(hi)), 10);
        assert_eq!(storage_days(from, to, None, None), 12);
        assert_eq!(storage_days(from, t("2026-11-21T11:00:00Z"), None, None), 0, "less than a day is not charged");
        // 2 GB for 15 days at 0.10 per GB-month: 0.10.
        assert_eq!(storage_micros(0.10, 2_000_000_000, 15), 100_000);
        assert!(month_bounds("2026-13").is_err());
    }
}
