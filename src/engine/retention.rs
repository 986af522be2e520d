//! Retention: which snapshots to keep, with restic's and Kopia's meaning. The rules are ORed;
//! `keep_daily = 7` keeps the newest snapshot of each of the 7 newest days that have one (a
//! day without a snapshot does not count), and likewise by ISO week, month and year, in the
//! org's timezone; `keep_last = n` keeps the n newest. A policy that would keep nothing is
//! refused.

use anyhow::{Result, bail};
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
}

impl Retention {
    /// Refuses a policy that keeps nothing (every count missing or 0).
    pub fn check(&self) -> Result<()> {
        let counts = [self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly, self.keep_yearly];
        if counts.iter().all(|c| c.unwrap_or(0) == 0) {
            bail!(
                "this retention keeps no snapshot: set at least one of keep_last, keep_daily, keep_weekly, \
                 keep_monthly, keep_yearly above 0 (or remove it to keep every snapshot)"
            );
        }
        Ok(())
    }
}

/// One snapshot's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub cycle: i64,
    pub taken_at: DateTime<Utc>,
    pub keep: bool,
    /// Why it is kept: `last 1`, `daily 3`, `weekly 1`... (the rule and the rank of the
    /// period, newest first).
    pub reasons: Vec<String>,
}

/// Decides for each snapshot (cycle, when it was taken), newest first in the answer.
pub fn plan(snapshots: &[(i64, DateTime<Utc>)], tz: Tz, r: &Retention) -> Result<Vec<Decision>> {
    r.check()?;
    let mut snaps = snapshots.to_vec();
    snaps.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    type Period = (i64, i64, i64);
    type Bucket = fn(DateTime<Tz>, i64) -> Period;
    let rules: [(&str, Option<u32>, Bucket); 5] = [
        ("last", r.keep_last, |_, cycle| (cycle, 0, 0)),
        ("daily", r.keep_daily, |t, _| (t.year() as i64, t.ordinal() as i64, 0)),
        ("weekly", r.keep_weekly, |t, _| {
            let w = t.iso_week();
            (w.year() as i64, w.week() as i64, 0)
        }),
        ("monthly", r.keep_monthly, |t, _| (t.year() as i64, t.month() as i64, 0)),
        ("yearly", r.keep_yearly, |t, _| (t.year() as i64, 0, 0)),
    ];
    // Per rule: how many more it keeps, the period it kept last, how many it kept.
    let mut state: Vec<(u32, Option<Period>, u32)> = rules.iter().map(|(_, n, _)| (n.unwrap_or(0), None, 0)).collect();
    let mut out = Vec::with_capacity(snaps.len());
    for (cycle, at) in snaps {
        let local = at.with_timezone(&tz);
        let mut reasons = Vec::new();
        for (i, (name, _, bucket)) in rules.iter().enumerate() {
            let (left, last, used) = &mut state[i];
            let b = bucket(local, cycle);
            if *left > 0 && *last != Some(b) {
                *left -= 1;
                *used += 1;
                *last = Some(b);
                reasons.push(format!("{name} {used}"));
            }
        }
        out.push(Decision { cycle, taken_at: at, keep: !reasons.is_empty(), reasons });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn kept(d: &[Decision]) -> Vec<(i64, Vec<String>)> {
        d.iter().filter(|d| d.keep).map(|d| (d.cycle, d.reasons.clone())).collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_that_has_one() {
        // Two snapshots on 3 March, none on the 2nd, one on the 1st and on 28 February.
        let snaps =
            [(1, at(2026, 2, 28, 20)), (2, at(2026, 3, 1, 20)), (3, at(2026, 3, 3, 9)), (4, at(2026, 3, 3, 20))];
        let r = Retention { keep_daily: Some(2), ..Default::default() };
        let d = plan(&snaps, Tz::UTC, &r).unwrap();
        assert_eq!(kept(&d), vec![(4, vec!["daily 1".into()]), (2, vec!["daily 2".into()])]);
        assert_eq!(d.iter().filter(|d| !d.keep).map(|d| d.cycle).collect::<Vec<_>>(), vec![3, 1]);
    }

    #[test]
    fn the_day_is_the_orgs_local_day() {
        // 03:00 UTC on 2 March is 22:00 on 1 March in New York.
        let snaps = [(1, at(2026, 3, 1, 20)), (2, at(2026, 3, 2, 3))];
        let r = Retention { keep_daily: Some(5), ..Default::default() };
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(kept(&plan(&snaps, ny, &r).unwrap()).len(), 1, "one local day in New York");
        assert_eq!(kept(&plan(&snaps, Tz::UTC, &r).unwrap()).len(), 2, "two days in UTC");
    }

    #[test]
    fn rules_are_ored_and_weeks_are_iso_weeks() {
        // 29 Dec 2025 (Monday) is in ISO week 1 of 2026, with 1 January 2026, but in the
        // calendar year 2025: the newest of 2025 is kept by yearly, the one before by weekly.
        let snaps =
            [(1, at(2025, 12, 28, 12)), (2, at(2025, 12, 29, 12)), (3, at(2026, 1, 1, 12)), (4, at(2026, 1, 2, 12))];
        let r = Retention { keep_last: Some(1), keep_weekly: Some(2), keep_yearly: Some(2), ..Default::default() };
        let d = plan(&snaps, Tz::UTC, &r).unwrap();
        assert_eq!(
            kept(&d),
            vec![
                (4, vec!["last 1".into(), "weekly 1".into(), "yearly 1".into()]),
                (2, vec!["yearly 2".into()]),
                (1, vec!["weekly 2".into()]),
            ]
        );
    }

    #[test]
    fn a_policy_that_keeps_nothing_is_refused() {
        let r = Retention { keep_daily: Some(0), ..Default::default() };
        let e = plan(&[(1, at(2026, 1, 1, 0))], Tz::UTC, &r).unwrap_err().to_string();
        assert!(e.contains("keeps no snapshot"), "{e}");
        assert!(Retention::default().check().is_err());
    }

    #[test]
    fn monthly_counts_only_months_with_a_snapshot() {
        let snaps = [(1, at(2025, 10, 5, 0)), (2, at(2026, 1, 5, 0)), (3, at(2026, 1, 20, 0))];
        let r = Retention { keep_monthly: Some(2), ..Default::default() };
        assert_eq!(
            kept(&plan(&snaps, Tz::UTC, &r).unwrap()),
            vec![(3, vec!["monthly 1".into()]), (1, vec!["monthly 2".into()])]
        );
    }
}
