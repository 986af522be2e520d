//! When each org's cycle is due, and the tick that queues it.
//!
//! The scheduler's tick (tokio-cron-scheduler, with a plain timer behind it) only wakes the
//! daemon: the truth is the catalog's `due_runs`, one row per (org, local date). A tick
//! queues the latest run that is due and not yet recorded, so a doubled tick (or a second
//! daemon) adds nothing, and a missed tick or a daemon that was down catches up once, never
//! once per missed day. Times are computed in the org's timezone from its local date, so a
//! daylight-saving change neither skips nor doubles a day: a local time that does not exist
//! that day (spring forward) runs at the first one after it, a time that exists twice (fall
//! back) runs at the first of them.

use anyhow::Result;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::{Config, OrgConfig};
use crate::vault::catalog::{Catalog, NewJob, jobs::stamp};

/// What time it is: the system's in the daemon, a hand-set one in tests (so a month across
/// a daylight-saving change runs without waiting).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn at(t: DateTime<Utc>) -> TestClock {
        TestClock(Mutex::new(t))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, d: TimeDelta) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Daily,
    Weekly(Weekday),
    Monthly(u32),
    Cron(Box<croner::Cron>),
}

/// An org's schedule, resolved from its config.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    rule: Rule,
    at: NaiveTime,
    /// The org's stable place in the window.
    offset: TimeDelta,
}

/// A schedule that does not parse: the message, and where in the config text.
#[derive(Debug)]
pub struct ScheduleError {
    pub message: String,
    pub span: Option<usize>,
}

fn err(message: String, span: Option<usize>) -> ScheduleError {
    ScheduleError { message, span }
}

/// The org's offset in a window of `minutes`: from a hash of its SID, so it stays the same
/// across restarts and daemons, and a thousand orgs spread evenly.
fn offset_of(sid: &str, minutes: u32) -> TimeDelta {
    if minutes == 0 {
        return TimeDelta::zero();
    }
    let h = blake3::hash(sid.as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    TimeDelta::seconds((n % (minutes as u64 * 60)) as i64)
}

impl Schedule {
    pub fn of(org: &OrgConfig) -> Result<Schedule, ScheduleError> {
        let s = &org.schedule;
        let tz = org.tz();
        let at = match &s.at {
            None => NaiveTime::from_hms_opt(20, 0, 0).expect("a time"),
            Some(a) => NaiveTime::parse_from_str(a.get_ref(), "%H:%M").map_err(|_| {
                err(
                    format!("schedule.at {:?} is not a time of day (HH:MM, such as \"20:00\")", a.get_ref()),
                    Some(a.span().start),
                )
            })?,
        };
        let window = s.window_minutes.as_ref().map(|w| (*w.get_ref(), w.span().start)).unwrap_or((60, 0));
        if window.0 > 24 * 60 {
            return Err(err("schedule.window_minutes must be at most 1440 (a day)".into(), Some(window.1)));
        }
        let offset = offset_of(org.sid.get_ref(), window.0);
        if let Some(c) = &s.cron {
            if s.every.is_some() || s.at.is_some() {
                return Err(err(
                    "schedule.cron replaces every and at: give one or the other".into(),
                    Some(c.span().start),
                ));
            }
            let cron = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .build()
                .parse(c.get_ref())
                .map_err(|e| {
                    err(
                        format!(
                            "schedule.cron {:?}: {e} (five fields: minute hour day-of-month month day-of-week)",
                            c.get_ref()
                        ),
                        Some(c.span().start),
                    )
                })?;
            return Ok(Schedule { tz, rule: Rule::Cron(Box::new(cron)), at, offset: TimeDelta::zero() });
        }
        let every = s.every.as_ref().map(|e| (e.get_ref().as_str(), e.span().start)).unwrap_or(("daily", 0));
        let rule = match every.0 {
            "daily" => Rule::Daily,
            "weekly" => {
                let day = match &s.weekday {
                    None => Weekday::Sun,
                    Some(d) => d.get_ref().parse::<Weekday>().map_err(|_| {
                        err(
                            format!("schedule.weekday {:?}: expected monday ... sunday", d.get_ref()),
                            Some(d.span().start),
                        )
                    })?,
                };
                Rule::Weekly(day)
            }
            "monthly" => {
                let day = s.day_of_month.as_ref().map(|d| (*d.get_ref(), d.span().start)).unwrap_or((1, 0));
                if !(1..=28).contains(&day.0) {
                    // Every month has a 28th; a 31st would skip months.
                    return Err(err("schedule.day_of_month must be 1 to 28 (every month has it)".into(), Some(day.1)));
                }
                Rule::Monthly(day.0)
            }
            other => {
                return Err(err(
                    format!("schedule.every {other:?}: expected daily, weekly or monthly (or give schedule.cron)"),
                    Some(every.1),
                ));
            }
        };
        Ok(Schedule { tz, rule, at, offset })
    }

    /// A local time as an instant: the first of two (fall back), or the first that exists
    /// after a gap (spring forward).
    fn resolve(&self, mut local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        for _ in 0..8 {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return Some(t.with_timezone(&Utc));
            }
            local += TimeDelta::minutes(30);
        }
        None
    }

    /// The run that belongs to local date `d`, if the schedule has one that day.
    pub fn on(&self, d: NaiveDate) -> Option<DateTime<Utc>> {
        match &self.rule {
            Rule::Daily => {}
            Rule::Weekly(w) if d.weekday() == *w => {}
            Rule::Monthly(m) if d.day() == *m => {}
            Rule::Cron(c) => {
                let start = self.resolve(d.and_time(NaiveTime::MIN))?.with_timezone(&self.tz);
                let t = c.find_next_occurrence(&start, true).ok()?;
                return (t.date_naive() == d).then(|| t.with_timezone(&Utc));
            }
            _ => return None,
        }
        self.resolve(d.and_time(self.at) + self.offset)
    }

    /// The latest run due at `now`: (its local date, when).
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<(NaiveDate, DateTime<Utc>)> {
        let today = now.with_timezone(&self.tz).date_naive();
        // A window may carry a run past midnight: tomorrow's date cannot be due yet, but
        // today's may still lie ahead while yesterday's has passed.
        (0..64).map(|back| today - TimeDelta::days(back)).find_map(|d| self.on(d).filter(|t| *t <= now).map(|t| (d, t)))
    }

    /// The next run after `now`: (its local date, when).
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<(NaiveDate, DateTime<Utc>)> {
        let today = now.with_timezone(&self.tz).date_naive();
        (-1..64).map(|fwd| today + TimeDelta::days(fwd)).find_map(|d| self.on(d).filter(|t| *t > now).map(|t| (d, t)))
    }
}

/// What the scheduler remembers between ticks: the last local date queued per org (the
/// catalog stays the truth; this only saves asking it every tick).
#[derive(Default)]
pub struct Ticker {
    queued: HashMap<String, NaiveDate>,
    loaded: bool,
}

impl Ticker {
    /// Queues every org's latest due run not yet recorded. Returns the jobs queued.
    pub async fn tick(&mut self, catalog: &Catalog, cfg: &Config, clock: &dyn Clock) -> Result<Vec<i64>> {
        if !self.loaded {
            for (org, date) in catalog.last_due_dates().await? {
                if let Ok(d) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
                    self.queued.insert(org, d);
                }
            }
            self.loaded = true;
        }
        let now = clock.now();
        let mut queued = Vec::new();
        for org in &cfg.orgs {
            let sid = org.sid.get_ref();
            // Checked when the config was loaded.
            let Ok(s) = Schedule::of(org) else { continue };
            let Some((date, at)) = s.latest_due(now) else { continue };
            if self.queued.get(sid).is_some_and(|d| *d >= date) {
                continue;
            }
            let job = NewJob {
                kind: super::queue::Kind::Backup.as_str().into(),
                org: Some(sid.clone()),
                source: None,
                args: serde_json::json!({ "scheduled": date.to_string() }).to_string(),
                manual: false,
                max_attempts: cfg.daemon.max_attempts,
            };
            if let Some(id) = catalog.add_due_run(sid, &date.to_string(), &stamp(at), &job).await? {
                tracing::info!("org {sid}: the run of {date} (due {}) is queued as job {id}", stamp(at));
                queued.push(id);
            }
            self.queued.insert(sid.clone(), date);
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(toml: &str) -> OrgConfig {
        let cfg = Config::parse(
            &format!(
                "[vault]\ncatalog = \"sqlite://c.db\"\nstore = \"s\"\n[[orgs]]\nsid = \"acme\"\nname = \"A\"\n{toml}"
            ),
            ".".into(),
        )
        .unwrap();
        cfg.orgs[0].clone()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekly_monthly_and_cron_pick_their_days() {
        let w = Schedule::of(&org("[orgs.schedule]\nevery = \"weekly\"\nweekday = \"monday\"\nwindow_minutes = 0\n"))
            .unwrap();
        // 2026-12-07 is a Monday.
        assert_eq!(w.next_due(utc("2026-12-01T00:00:00Z")).unwrap().1, utc("2026-12-07T20:00:00Z"));
        let m = Schedule::of(&org(
            "[orgs.schedule]\nevery = \"monthly\"\nday_of_month = 3\nat = \"06:15\"\nwindow_minutes = 0\n",
        ))
        .unwrap();
        assert_eq!(m.latest_due(utc("2026-12-01T00:00:00Z")).unwrap().1, utc("2026-11-03T06:15:00Z"));
        let c =
            Schedule::of(&org("timezone = \"America/New_York\"\n[orgs.schedule]\ncron = \"30 4 * * 1-5\"\n")).unwrap();
        // Saturday 2026-12-05: the next weekday run is Monday 04:30 New York (09:30 UTC).
        assert_eq!(c.next_due(utc("2026-12-05T12:00:00Z")).unwrap().1, utc("2026-12-07T09:30:00Z"));
    }

    /// The runs from `from`, each found by `next_due` after the one before: (local date, UTC).
    fn runs(s: &Schedule, from: &str, n: usize) -> Vec<(String, DateTime<Utc>)> {
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                let (d, at) = s.next_due(t).unwrap();
                t = at;
                (d.to_string(), at)
            })
            .collect()
    }

    /// tests/daemon.rs follows every/at through both changes with a ticking clock; this is
    /// cron's side, whose days come from croner. New York, 2027: 02:00 becomes 03:00 on 14
    /// March, and 02:00 goes back to 01:00 on 7 November.
    #[test]
    fn cron_runs_once_a_local_day_across_daylight_saving_changes() {
        let cron = |c: &str| {
            Schedule::of(&org(&format!("timezone = \"America/New_York\"\n[orgs.schedule]\ncron = \"{c}\"\n"))).unwrap()
        };
        let days = |v: Vec<(String, DateTime<Utc>)>| v.into_iter().map(|(d, _)| d).collect::<Vec<_>>();
        assert_eq!(
            days(runs(&cron("30 2 * * *"), "2027-03-12T12:00:00Z", 4)),
            ["2027-03-13", "2027-03-14", "2027-03-15", "2027-03-16"]
        );
        let fall = runs(&cron("30 1 * * *"), "2027-11-05T12:00:00Z", 3);
        assert_eq!(days(fall.clone()), ["2027-11-06", "2027-11-07", "2027-11-08"]);
        assert_eq!(fall[1].1 - fall[0].1, TimeDelta::hours(24), "the first 01:30 of 7 November: {fall:?}");
        // Dublin: 01:00 becomes 02:00 on 28 March 2027.
        let dublin =
            Schedule::of(&org("timezone = \"Europe/Dublin\"\n[orgs.schedule]\ncron = \"30 1 * * *\"\n")).unwrap();
        assert_eq!(days(runs(&dublin, "2027-03-26T12:00:00Z", 3)), ["2027-03-27", "2027-03-28", "2027-03-29"]);
    }

    #[test]
    fn the_window_spreads_orgs_and_keeps_each_in_place() {
        let mut per_minute = [0u32; 60];
        for i in 0..1000 {
            let s = offset_of(&format!("org-{i}"), 60).num_seconds();
            assert!((0..3600).contains(&s));
            per_minute[(s / 60) as usize] += 1;
        }
        // 1000 orgs over an hour: about 17 a minute, none crowded, none empty.
        let (most, least) = (per_minute.iter().max().unwrap(), per_minute.iter().min().unwrap());
        assert!(*most <= 35 && *least >= 5, "starts per minute range from {least} to {most}");
        assert_eq!(offset_of("acme", 60), offset_of("acme", 60));
    }

    #[test]
    fn bad_schedules_name_the_problem() {
        for (toml, want) in [
            ("every = \"hourly\"", "expected daily, weekly or monthly"),
            ("at = \"8pm\"", "not a time of day"),
            ("day_of_month = 31\nevery = \"monthly\"", "1 to 28"),
            ("cron = \"61 * * * *\"", "five fields"),
            ("cron = \"0 1 * * *\"\nat = \"01:00\"", "replaces every and at"),
        ] {
            let text = format!(
                "[vault]\ncatalog = \"sqlite://c.db\"\nstore = \"s\"\n[[orgs]]\nsid = \"acme\"\nname = \"A\"\n[orgs.schedule]\n{toml}\n"
            );
            let e = format!("{:#}", Config::parse(&text, ".".into()).unwrap_err());
            assert!(e.contains(want) && e.contains("config line 8"), "{toml}: {e}");
        }
    }
}
