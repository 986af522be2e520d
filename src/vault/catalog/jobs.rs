//! The daemon's job queue, its due runs and its daemons, as catalog rows.
//!
//! A job is claimed in one statement (one round trip): the oldest ready row is picked and
//! marked running under a lease in the same UPDATE. On PostgreSQL the pick is `FOR UPDATE
//! SKIP LOCKED`, so daemons claiming at once each get another row and none waits; SQLite has
//! one writer, which makes the same statement atomic. A running job's lease is renewed on a
//! timer; a job whose lease ran out (or whose holder on this host is gone) is ready again.
//!
//! Plain columns hold ids (org SID, source name, job kind), times, states and counts; what a
//! job read or why it failed goes to `job_log`, sealed by the vault.

use anyhow::Result;
use sqlx::Row;

use super::Catalog;
use super::lock::{gone_from_this_host, new_holder};

/// Job states: `queued` (waiting for `run_after`), `running` (under a lease), `done`,
/// `failed` (no retry left; stays visible).
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub org: Option<String>,
    pub source: Option<String>,
    /// JSON of ids and flags only (never an app's content).
    pub args: String,
    pub manual: bool,
    pub max_attempts: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub org: Option<String>,
    pub source: Option<String>,
    pub args: String,
    pub state: String,
    pub manual: bool,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The daemon that runs (or last ran) it: host:pid:nonce.
    pub holder: Option<String>,
    pub lease_until: Option<String>,
    /// Plain: an outcome and counts ("ok: 3 sources, 12 data types").
    pub outcome: Option<String>,
}

const COLS: &str = "id, kind, org, source, args, state, manual, attempts, max_attempts, run_after, created_at, \
                    started_at, finished_at, holder, lease_until, outcome";

fn job_row(r: &sqlx::any::AnyRow) -> JobRow {
    JobRow {
        id: r.get(0),
        kind: r.get(1),
        org: r.get(2),
        source: r.get(3),
        args: r.get(4),
        state: r.get(5),
        manual: r.get::<i64, _>(6) != 0,
        attempts: r.get(7),
        max_attempts: r.get(8),
        run_after: r.get(9),
        created_at: r.get(10),
        started_at: r.get(11),
        finished_at: r.get(12),
        holder: r.get(13),
        lease_until: r.get(14),
        outcome: r.get(15),
    }
}

/// A job log entry as stored: `summary` plain, `detail` sealed.
#[derive(Debug, Clone)]
pub struct JobLogEntry {
    pub job_id: i64,
    pub at: String,
    pub level: String,
    pub org: Option<String>,
    pub summary: String,
    pub detail: Vec<u8>,
}

/// Times are RFC 3339 in UTC with milliseconds, everywhere, so they compare as text.
pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now() -> String {
    crate::util::now_rfc3339()
}

fn claim_query<'q>(
    sql: &'q str,
    holder: &'q str,
    lease_until: &'q str,
    orgs: &[&str],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    // The orgs as one parameter, whatever their number: ",a,b-c,d_e," holds ",<org>,".
    let mine = format!(",{},", orgs.join(","));
    sqlx::query(sql).bind(holder).bind(now()).bind(lease_until).bind(mine)
}

/// Claims go over a connection of their own on PostgreSQL, taken from no pool: a pool checks
/// a connection with a round trip of its own before each use, and a claim is one round trip.
/// A claim that fails drops the connection; the next makes a new one (after a server restart,
/// the first claim fails, the next goes through).
pub(crate) struct Claims {
    opts: sqlx::any::AnyConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
}

impl Claims {
    pub(crate) fn new(opts: sqlx::any::AnyConnectOptions) -> Claims {
        Claims { opts, conn: tokio::sync::Mutex::new(None) }
    }

    async fn claim(&self, sql: &str, holder: &str, lease_until: &str, orgs: &[&str]) -> Result<Option<JobRow>> {
        use sqlx::ConnectOptions;
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.opts.connect().await?);
        }
        let conn = slot.as_mut().expect("connected above");
        match claim_query(sql, holder, lease_until, orgs).fetch_optional(&mut *conn).await {
            Ok(r) => Ok(r.as_ref().map(job_row)),
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }
}

impl Catalog {
    /// A new daemon (or worker) identity: host:pid:nonce, judged gone like a lease holder.
    pub fn new_holder(&self) -> String {
        new_holder()
    }

    pub async fn enqueue(&self, j: &NewJob) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        insert_job(&mut conn, j, &now()).await
    }

    /// Claims the oldest ready job (queued and due, or running under a lease that ran out)
    /// for `holder`, leased until `lease_until`: of the orgs in `orgs`, or of none. A daemon
    /// takes only what its own config can run: during a config change that reaches daemons
    /// one by one, a job of an org only some know waits for one of them, not a failure and a
    /// retry hours later. One statement.
    pub async fn claim(&self, holder: &str, lease_until: &str, orgs: &[&str]) -> Result<Option<JobRow>> {
        if let Some(claims) = &self.claims {
            return claims.claim(&self.claim_sql(), holder, lease_until, orgs).await;
        }
        let r = claim_query(&self.claim_sql(), holder, lease_until, orgs).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(job_row))
    }

    fn claim_sql(&self) -> String {
        let lock = if self.postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        // $4 is the orgs as one string (`claim_query`). SIDs have no comma; `_` would match
        // any character in LIKE, so it is escaped.
        format!(
            "UPDATE jobs SET state = 'running', holder = $1, started_at = $2, lease_until = $3, \
             attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE ((state = 'queued' AND run_after <= $2) \
                 OR (state = 'running' AND lease_until < $2)) \
                 AND (org IS NULL OR $4 LIKE ('%,' || REPLACE(org, '_', '\\_') || ',%') ESCAPE '\\') \
                 ORDER BY run_after, id LIMIT 1{lock}) \
             RETURNING {COLS}"
        )
    }

    /// Running jobs whose holder was a process of this host that no longer runs are made
    /// ready at once (their lease would otherwise have to run out). Returns how many.
    pub async fn free_jobs_of_gone_holders(&self) -> Result<u64> {
        let rows = sqlx::query("SELECT id, holder FROM jobs WHERE state = 'running'").fetch_all(&self.pool).await?;
        let mut n = 0;
        for r in rows {
            let (id, holder): (i64, Option<String>) = (r.get(0), r.get(1));
            let Some(holder) = holder.filter(|h| gone_from_this_host(h)) else { continue };
            n += sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND holder = $3 AND state = 'running'")
                .bind("0000")
                .bind(id)
                .bind(&holder)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// Renews a running job's lease. False: the job is no longer this holder's (its lease
    /// ran out and another daemon took it).
    pub async fn renew_job(&self, id: i64, holder: &str, lease_until: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND holder = $3 AND state = 'running'")
            .bind(lease_until)
            .bind(id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a run of a job: `done`, `failed`, or `queued` again (a retry at `run_after`).
    /// False if the job was no longer this holder's.
    pub async fn finish_job(
        &self,
        id: i64,
        holder: &str,
        state: &str,
        run_after: Option<&str>,
        outcome: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, finished_at = $2, outcome = $3, lease_until = NULL, \
             run_after = COALESCE($4, run_after) WHERE id = $5 AND holder = $6 AND state = 'running'",
        )
        .bind(state)
        .bind(now())
        .bind(outcome)
        .bind(run_after)
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Puts a running job back in the queue, ready now, its attempt not counted (a daemon
    /// stopping before the job could finish).
    pub async fn park_job(&self, id: i64, holder: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_after = $1, attempts = attempts - 1, lease_until = NULL \
             WHERE id = $2 AND holder = $3 AND state = 'running'",
        )
        .bind(now())
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let r =
            sqlx::query(&format!("SELECT {COLS} FROM jobs WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(job_row))
    }

    /// Jobs, newest first: of one org (or all), at most `limit`.
    pub async fn jobs(&self, org: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {COLS} FROM jobs WHERE ($1 = '' OR org = $1) ORDER BY id DESC LIMIT $2"))
                .bind(org.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(job_row).collect())
    }

    /// An org's jobs of these kinds that are queued or running: work still to read the vault.
    pub async fn open_jobs_of(&self, org: &str, kinds: &[&str]) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM jobs WHERE org = $1 AND state IN ('queued', 'running') ORDER BY id"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_row).filter(|j| kinds.contains(&j.kind.as_str())).collect())
    }

    /// Jobs in a state (all of them: queued and running ones are few).
    pub async fn jobs_in(&self, state: &str) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!("SELECT {COLS} FROM jobs WHERE state = $1 ORDER BY id"))
            .bind(state)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(job_row).collect())
    }

    /// The latest finished job of a kind per org, for "last result".
    pub async fn last_finished(&self, kind: &str) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM jobs WHERE id IN (SELECT MAX(id) FROM jobs WHERE kind = $1 \
             AND state IN ('done', 'failed') GROUP BY org)"
        ))
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_row).collect())
    }

    /// How many jobs per (kind, state).
    pub async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows =
            sqlx::query("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// When the oldest job that is ready and waits became ready (queue lag).
    pub async fn oldest_ready(&self) -> Result<Option<String>> {
        let r = sqlx::query("SELECT MIN(run_after) FROM jobs WHERE state = 'queued' AND run_after <= $1")
            .bind(now())
            .fetch_one(&self.pool)
            .await?;
        Ok(r.get(0))
    }

    /// When a source was last backed up (its latest snapshot, or a backup job of it that
    /// started), and a backup job of it that is queued or running, if any.
    pub async fn last_backup(&self, org: &str, source: &str) -> Result<(Option<String>, Option<JobRow>)> {
        let snap: Option<String> = sqlx::query(
            "SELECT MAX(s.taken_at) FROM snapshots s JOIN types t ON t.id = s.type_id JOIN orgs o ON o.id = t.org_id \
             WHERE o.sid = $1 AND t.source = $2",
        )
        .bind(org)
        .bind(source)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let started: Option<String> = sqlx::query(
            "SELECT MAX(started_at) FROM jobs WHERE kind = 'backup' AND org = $1 AND (source IS NULL OR source = $2)",
        )
        .bind(org)
        .bind(source)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let pending = sqlx::query(&format!(
            "SELECT {COLS} FROM jobs WHERE kind = 'backup' AND org = $1 AND (source IS NULL OR source = $2) \
             AND state IN ('queued', 'running') ORDER BY id LIMIT 1"
        ))
        .bind(org)
        .bind(source)
        .fetch_optional(&self.pool)
        .await?;
        Ok((snap.max(started), pending.as_ref().map(job_row)))
    }

    pub async fn add_job_log(&self, e: &JobLogEntry) -> Result<()> {
        sqlx::query("INSERT INTO job_log (job_id, at, level, org, summary, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(e.job_id)
            .bind(&e.at)
            .bind(&e.level)
            .bind(&e.org)
            .bind(&e.summary)
            .bind(&e.detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Job log entries, oldest first: of one job and/or one org, or all.
    pub async fn job_log(&self, job: Option<i64>, org: Option<&str>) -> Result<Vec<JobLogEntry>> {
        let rows = sqlx::query(
            "SELECT job_id, at, level, org, summary, detail FROM job_log \
             WHERE ($1 < 0 OR job_id = $1) AND ($2 = '' OR org = $2) ORDER BY id",
        )
        .bind(job.unwrap_or(-1))
        .bind(org.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| JobLogEntry {
                job_id: r.get(0),
                at: r.get(1),
                level: r.get(2),
                org: r.get(3),
                summary: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    /// The jobs of `org` whose logs hold a warning or an error, with that level (one row per
    /// job and level): what the dashboard's Logs filter by result, without opening the logs.
    pub async fn job_log_levels(&self, org: &str) -> Result<Vec<(i64, String)>> {
        let rows =
            sqlx::query("SELECT DISTINCT job_id, level FROM job_log WHERE org = $1 AND level IN ('warn', 'error')")
                .bind(org)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records the due run of `org` on `local_date` and queues its job, in one transaction,
    /// unless that run is already recorded (a doubled tick, another daemon): then nothing.
    /// Returns the new job's id.
    pub async fn add_due_run(&self, org: &str, local_date: &str, due_at: &str, job: &NewJob) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO due_runs (org, local_date, due_at) VALUES ($1, $2, $3) ON CONFLICT (org, local_date) DO NOTHING",
        )
        .bind(org)
        .bind(local_date)
        .bind(due_at)
        .execute(&mut *tx)
        .await?;
        if added.rows_affected() == 0 {
            return Ok(None);
        }
        let at = now();
        let id = insert_job(&mut tx, job, &at).await?;
        sqlx::query("UPDATE due_runs SET job_id = $1 WHERE org = $2 AND local_date = $3")
            .bind(id)
            .bind(org)
            .bind(local_date)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The latest local date with a due run recorded, per org.
    pub async fn last_due_dates(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT org, MAX(local_date) FROM due_runs GROUP BY org").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every due run: (org, local date, due at, job id), by org and date.
    pub async fn due_runs(&self) -> Result<Vec<(String, String, String, Option<i64>)>> {
        let rows = sqlx::query("SELECT org, local_date, due_at, job_id FROM due_runs ORDER BY org, local_date")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }

    /// A daemon says it is alive (and registers the first time).
    pub async fn daemon_beat(&self, holder: &str, started_at: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO daemons (holder, started_at, heartbeat) VALUES ($1, $2, $3) \
             ON CONFLICT (holder) DO UPDATE SET heartbeat = excluded.heartbeat",
        )
        .bind(holder)
        .bind(started_at)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn daemon_gone(&self, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM daemons WHERE holder = $1").bind(holder).execute(&self.pool).await?;
        Ok(())
    }

    /// Daemons whose heartbeat is newer than `since` and whose process (on this host) runs:
    /// (holder, started at, heartbeat).
    pub async fn live_daemons(&self, since: &str) -> Result<Vec<(String, String, String)>> {
        let rows =
            sqlx::query("SELECT holder, started_at, heartbeat FROM daemons WHERE heartbeat >= $1 ORDER BY holder")
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<String, _>(2)))
            .filter(|(h, _, _)| !gone_from_this_host(h))
            .collect())
    }
}

async fn insert_job(conn: &mut sqlx::AnyConnection, j: &NewJob, at: &str) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO jobs (kind, org, source, args, state, manual, attempts, max_attempts, run_after, created_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7, $7) RETURNING id",
    )
    .bind(&j.kind)
    .bind(&j.org)
    .bind(&j.source)
    .bind(&j.args)
    .bind(j.manual as i64)
    .bind(j.max_attempts)
    .bind(at)
    .fetch_one(conn)
    .await?;
    Ok(r.get(0))
}
