//! The daemon's counters, read by `/metrics` (Prometheus text format). Job counts by kind and
//! state and the queue's lag come from the catalog at scrape time (they are the queue's, not
//! this process's); the rest is counted here as jobs finish.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

#[derive(Default)]
struct Inner {
    /// Per job kind: (seconds summed, runs) of finished runs.
    durations: BTreeMap<String, (f64, u64)>,
    /// Per job kind and end state: runs.
    finished: BTreeMap<(String, String), u64>,
    records: u64,
    stored_bytes: u64,
    /// Per connector kind: API requests, and of them answered 429.
    api_requests: BTreeMap<String, u64>,
    api_429: BTreeMap<String, u64>,
    mirror_requests: u64,
    archive_bytes: u64,
}

pub struct Metrics(Mutex<Inner>);

pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics(Mutex::new(Inner::default())))
}

impl Metrics {
    pub fn job_finished(&self, kind: &str, state: &str, seconds: f64) {
        let mut m = self.0.lock().unwrap();
        let d = m.durations.entry(kind.into()).or_default();
        d.0 += seconds;
        d.1 += 1;
        *m.finished.entry((kind.into(), state.into())).or_default() += 1;
    }

    /// Records read and bytes stored by a backup.
    pub fn backed_up(&self, records: u64, bytes: u64) {
        let mut m = self.0.lock().unwrap();
        m.records += records;
        m.stored_bytes += bytes;
    }

    pub fn api_requests(&self, connector: &str, requests: u64, too_many: u64) {
        let mut m = self.0.lock().unwrap();
        *m.api_requests.entry(connector.into()).or_default() += requests;
        *m.api_429.entry(connector.into()).or_default() += too_many;
    }

    pub fn mirror_requests(&self, n: u64) {
        self.0.lock().unwrap().mirror_requests += n;
    }

    /// For the archive part, as it builds.
    pub fn archive_bytes(&self, n: u64) {
        self.0.lock().unwrap().archive_bytes += n;
    }

    /// The text of `/metrics`: this process's counters, with the queue's counts and lag.
    pub fn render(&self, jobs: &[(String, String, i64)], lag_seconds: f64) -> String {
        let m = self.0.lock().unwrap();
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut out, "daybook_jobs", "gauge", "Jobs in the queue by kind and state.");
        for (kind, state, n) in jobs {
            let _ = writeln!(out, "daybook_jobs{{kind=\"{kind}\",state=\"{state}\"}} {n}");
        }
        head(&mut out, "daybook_queue_lag_seconds", "gauge", "How long the oldest ready job has waited.");
        let _ = writeln!(out, "daybook_queue_lag_seconds {lag_seconds:.3}");
        head(&mut out, "daybook_job_runs_total", "counter", "Job runs this daemon finished, by kind and end state.");
        for ((kind, state), n) in &m.finished {
            let _ = writeln!(out, "daybook_job_runs_total{{kind=\"{kind}\",state=\"{state}\"}} {n}");
        }
        head(&mut out, "daybook_job_duration_seconds", "summary", "Durations of job runs (cycles are backup jobs).");
        for (kind, (sum, count)) in &m.durations {
            let _ = writeln!(out, "daybook_job_duration_seconds_sum{{kind=\"{kind}\"}} {sum:.3}");
            let _ = writeln!(out, "daybook_job_duration_seconds_count{{kind=\"{kind}\"}} {count}");
        }
        head(&mut out, "daybook_records_backed_up_total", "counter", "Records read by backups.");
        let _ = writeln!(out, "daybook_records_backed_up_total {}", m.records);
        head(&mut out, "daybook_bytes_backed_up_total", "counter", "Bytes stored by backups (sealed).");
        let _ = writeln!(out, "daybook_bytes_backed_up_total {}", m.stored_bytes);
        head(&mut out, "daybook_api_requests_total", "counter", "Requests to the apps' APIs, by connector.");
        for (c, n) in &m.api_requests {
            let _ = writeln!(out, "daybook_api_requests_total{{connector=\"{c}\"}} {n}");
        }
        head(&mut out, "daybook_api_429_total", "counter", "API requests answered 429 (rate limited), by connector.");
        for (c, n) in &m.api_429 {
            let _ = writeln!(out, "daybook_api_429_total{{connector=\"{c}\"}} {n}");
        }
        head(&mut out, "daybook_mirror_requests_total", "counter", "Requests made by mirrors.");
        let _ = writeln!(out, "daybook_mirror_requests_total {}", m.mirror_requests);
        head(&mut out, "daybook_archive_bytes_total", "counter", "Bytes of archives built.");
        let _ = writeln!(out, "daybook_archive_bytes_total {}", m.archive_bytes);
        out
    }
}
