//! `daybook daemon` as an operator runs it: scheduled cycles through the job queue, status and
//! job logs, `backup --now` and its 5-minute rule, restore jobs and their email (a local
//! Trello, tests/fake_trello, and a real SMTP server), /healthz and /metrics, SIGHUP with a
//! bad config, SIGTERM; and the schedule's due runs across daylight-saving changes, with a
//! clock the test moves.

mod common;
mod fake_trello;

use axum::http::Method;
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use common::{Backend, Env, task};
use daybook::config::Config;
use daybook::daemon::schedule::{TestClock, Ticker};
use daybook::vault::catalog::{Catalog, NewJob};
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon process of the test's vault, its log in a file; killed if the test ends early.
pub struct Daemon {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub fn start(env: &Env, name: &str, fault: Option<&str>) -> Daemon {
        let log = env.path().join(format!("{name}.log"));
        let mut c = env.cmd(&["daemon"]);
        c.env("DAYBOOK_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        if let Some(f) = fault {
            c.env("DAYBOOK_FAULT", f);
        }
        Daemon { child: c.spawn().unwrap(), log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling a child this test started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits (bounded) for the process to end; its exit status.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not stop within {secs} s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls `done` until it holds; the bound only turns a hang into a failure.
pub fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn daemon_section(port: u16) -> String {
    format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\npoll_ms = 50\nlease_seconds = 8\nretry_seconds = 1\n\n")
}

/// acme: daily at 00:00 UTC, so its run of today is due when the daemon starts; quiet: a
/// cron schedule (29 February) that is not due for months.
fn write_two_orgs(env: &Env, port: u16) {
    std::fs::create_dir_all(env.path().join("quiet/records")).unwrap();
    std::fs::write(env.path().join("quiet/records/notes.jsonl"), "{\"id\":\"n1\",\"text\":\"hello\"}\n").unwrap();
    env.write_config(&format!(
        "{}[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"UTC\"\n[orgs.schedule]\nat = \"00:00\"\nwindow_minutes = 0\n\
         [[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n\n\
         [[orgs]]\nsid = \"quiet\"\nname = \"Quiet\"\ntimezone = \"Europe/Dublin\"\n[orgs.schedule]\ncron = \"0 3 29 2 *\"\n\
         [[orgs.sources]]\nname = \"notes\"\nkind = \"jsonl\"\npath = \"quiet\"\n",
        daemon_section(port)
    ));
}

fn org_status<'a>(st: &'a Value, org: &str) -> &'a Value {
    st["orgs"].as_array().unwrap().iter().find(|o| o["org"] == org).unwrap()
}

both_backends!(
    a_scheduled_cycle_runs_through_the_queue,
    backup_now_asks_the_daemon_and_keeps_5_minutes,
    due_runs_across_daylight_saving_changes,
    a_failing_job_retries_then_stays_failed,
    a_daemon_takes_only_jobs_of_orgs_it_has,
    a_job_whose_lease_ran_out_is_taken_by_another,
    sigterm_parks_a_running_job_for_the_next_daemon,
    a_restore_job_makes_the_copy_and_emails_the_requester,
    a_429_from_an_app_shows_in_metrics,
    drift_found_by_a_whole_read_warns_in_the_job,
    scheduled_cycles_apply_retention
);

/// What systemd hears on its notify socket (`Type=notify`); and its log as JSON lines.
#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(Backend::Sqlite));
    write_two_orgs(&env, free_port());
    env.ok(&["init"]);
    let sock_path = env.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let log = env.path().join("daemon.log");
    let mut c = env.cmd(&["daemon", "--log-json"]);
    c.env("NOTIFY_SOCKET", &sock_path).env("DAYBOOK_LOG", "info").stderr(std::fs::File::create(&log).unwrap());
    let mut d = Daemon { child: c.spawn().unwrap(), log };
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    while !heard.iter().any(|m: &String| m.contains("READY=1")) {
        let n = sock.recv(&mut buf).expect("READY=1 within 60 s");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    d.signal(libc::SIGTERM);
    while !heard.iter().any(|m: &String| m.contains("STOPPING=1")) {
        let n = sock.recv(&mut buf).expect("STOPPING=1 within 60 s");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
    let text = d.log_text();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("runs 2 workers"))),
        "{text}"
    );
    assert!(lines.iter().any(|l| l["fields"]["message"] == "stopped"), "{text}");
}

async fn a_failing_job_retries_then_stays_failed(b: Backend) {
    let env = Env::new(b).await;
    let port = free_port();
    // The source's folder is not there: every attempt fails the same way.
    let smtp = common::smtp::start();
    env.write_config(&format!(
        "{}{}[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"UTC\"\nadmin_email = \"it@acme.test\"\n\
         [orgs.schedule]\nat = \"00:00\"\nwindow_minutes = 0\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\n\
         path = \"nowhere\"\n",
        daemon_section(port),
        smtp.config()
    ));
    env.ok(&["init"]);
    let mut d = Daemon::start(&env, "daemon", None);
    until("the job's last attempt", 60, || !env.json(&["status"])["failed"].as_array().unwrap().is_empty());
    let st = env.json(&["status"]);
    let job = &st["failed"][0];
    assert_eq!(job["attempts"], 3, "{st}");
    assert_eq!(org_status(&st, "acme")["last"]["state"], "failed");
    assert!(env.ok(&["status"]).contains(&format!("see daybook logs --job {}", job["id"])));
    let log = env.json(&["logs", "--job", &job["id"].to_string()]);
    let lines: Vec<&str> = log.as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(lines.iter().filter(|m| m.starts_with("started on ")).count(), 3, "{lines:?}");
    // Why, each time (the failing data type's line and the attempt's end), and when the next
    // try was.
    assert_eq!(lines.iter().filter(|m| m.contains("nowhere")).count(), 6, "{lines:?}");
    assert_eq!(lines.iter().filter(|m| m.contains("; retry at ")).count(), 2, "{lines:?}");
    assert!(lines.last().unwrap().contains("after 3 attempts"), "{lines:?}");
    // The org's admin hears of it once, when it stays failed, with the reason.
    let mail = smtp.wait_for(1, 60);
    assert_eq!(mail.len(), 1, "one email for the failed cycle, none per retry: {mail:?}");
    let m = &mail[0];
    assert!(m.contains("To: it@acme.test") && m.contains("Subject: daybook: a backup failed"), "{m}");
    assert!(m.contains("3 attempts") && m.contains("nowhere"), "it says why: {m}");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success());
    // Erasing the org takes its jobs and their logs with it.
    env.ok(&["erase-org", "acme", "--confirm", "acme"]);
    assert!(env.json(&["status"])["failed"].as_array().unwrap().is_empty());
    assert!(env.json(&["logs"]).as_array().unwrap().is_empty());
}

/// A config change reaches daemons one by one: a job of an org that one daemon's config does
/// not have yet is left for a daemon that has it, not taken, failed, and retried hours later.
async fn a_daemon_takes_only_jobs_of_orgs_it_has(b: Backend) {
    use daybook::daemon::queue::Queue;
    use daybook::vault::catalog::NewJob;
    let env = Env::new(b).await;
    env.write_config("");
    env.ok(&["init"]);
    let catalog = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    let queue = Queue::new(catalog.clone(), Duration::from_secs(30));
    let job = |org: Option<&str>| NewJob {
        kind: "backup".into(),
        org: org.map(str::to_string),
        source: None,
        args: "{}".into(),
        manual: false,
        max_attempts: 3,
    };
    let acme = queue.push(&job(Some("acme"))).await.unwrap();
    assert!(queue.claim(&["globex"]).await.unwrap().is_none(), "a daemon without acme took its job");
    // An org's SID is not a pattern: `a_me` is not `acme`, nor is `acme` `acme-2`.
    let a_me = queue.push(&job(Some("a_me"))).await.unwrap();
    assert!(queue.claim(&["acme-2", "xacme"]).await.unwrap().is_none());
    assert_eq!(catalog.job(acme).await.unwrap().unwrap().attempts, 0, "no attempt counted");
    let vault_wide = queue.push(&job(None)).await.unwrap();
    assert_eq!(queue.claim(&[]).await.unwrap().map(|j| j.id), Some(vault_wide), "a job of no org is anyone's");
    let got = queue.claim(&["globex", "acme"]).await.unwrap().expect("the daemon with acme takes it");
    assert_eq!((got.id, got.attempts, got.state.as_str()), (acme, 1, "running"));
    assert!(queue.claim(&["acme"]).await.unwrap().is_none(), "a_me's job went to a daemon of acme");
    assert_eq!(queue.claim(&["acme", "a_me"]).await.unwrap().map(|j| j.id), Some(a_me));
}

/// A job whose daemon went quiet on another machine is taken up once its lease runs out, and
/// not before; the daemon that lost it can no longer end it.
async fn a_job_whose_lease_ran_out_is_taken_by_another(b: Backend) {
    use daybook::daemon::queue::Queue;
    use daybook::vault::catalog::NewJob;
    let env = Env::new(b).await;
    env.write_config("");
    env.ok(&["init"]);
    let catalog = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    let here = Queue::new(catalog.clone(), Duration::from_secs(30));
    let job = NewJob {
        kind: "backup".into(),
        org: Some("acme".into()),
        source: None,
        args: "{}".into(),
        manual: false,
        max_attempts: 3,
    };
    let (live, dead) = (here.push(&job).await.unwrap(), here.push(&job).await.unwrap());
    // Two daemons on another host took them: one still renews its lease, the other went
    // quiet and its lease ran out.
    let far = "2999-01-01T00:00:00.000Z";
    let (a, b) = ("elsewhere:4242:alive", "elsewhere:4343:gone");
    assert_eq!(catalog.claim(a, far, &["acme"]).await.unwrap().map(|j| j.id), Some(live));
    assert_eq!(catalog.claim(b, "2000-01-01T00:00:00.000Z", &["acme"]).await.unwrap().map(|j| j.id), Some(dead));
    assert_eq!(catalog.free_jobs_of_gone_holders().await.unwrap(), 0, "another host's processes are not judged here");
    let got = here.claim(&["acme"]).await.unwrap().expect("the job whose lease ran out is taken up");
    assert_eq!((got.id, got.attempts), (dead, 2));
    assert!(here.claim(&["acme"]).await.unwrap().is_none(), "a job under a live lease is not");
    assert!(!catalog.finish_job(dead, b, "done", None, "late").await.unwrap(), "the quiet daemon cannot end it");
    assert!(!catalog.renew_job(dead, b, far).await.unwrap(), "nor renew its lease");
    assert!(here.renew(dead).await.unwrap(), "its new holder renews");
}

/// On PostgreSQL claims go over a connection of their own: when the server drops it (a
/// restart, an operator's pg_terminate_backend), the next claim connects again.
#[tokio::test(flavor = "multi_thread")]
async fn claims_go_on_after_the_server_drops_their_connection() {
    use daybook::daemon::queue::Queue;
    use daybook::vault::catalog::NewJob;
    let env = Env::new(Backend::Postgres).await;
    env.write_config("");
    env.ok(&["init"]);
    // Named, so that the connection dropped is this test's and no other's.
    let name = format!("daybook_claims_{}", std::process::id());
    let url = format!("{}{}application_name={name}", env.catalog, if env.catalog.contains('?') { "&" } else { "?" });
    let catalog = Catalog::connect(&url, env.path()).await.unwrap();
    let queue = Queue::new(catalog.clone(), Duration::from_secs(30));
    let job =
        NewJob { kind: "check".into(), org: None, source: None, args: "{}".into(), manual: true, max_attempts: 1 };
    let ids = [queue.push(&job).await.unwrap(), queue.push(&job).await.unwrap()];
    assert_eq!(queue.claim(&[]).await.unwrap().map(|j| j.id), Some(ids[0]));
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&env.catalog).await.unwrap();
    let dropped: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND query LIKE 'UPDATE jobs SET state = ''running''%') t",
    )
    .bind(&name)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(dropped, 1, "the claims' connection was found and dropped");
    let mut next = None;
    for _ in 0..2 {
        if let Ok(j) = queue.claim(&[]).await {
            next = j;
            break;
        }
    }
    assert_eq!(next.map(|j| j.id), Some(ids[1]), "a claim after the drop goes through");
}

async fn sigterm_parks_a_running_job_for_the_next_daemon(b: Backend) {
    let env = Env::new(b).await;
    let port = free_port();
    env.write_config(&format!(
        "{}\nstop_seconds = 1\n\n[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"UTC\"\n[orgs.schedule]\n\
         at = \"00:00\"\nwindow_minutes = 0\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n",
        daemon_section(port).trim_end()
    ));
    env.ok(&["init"]);
    // A source that never answers: its export is a pipe nobody writes.
    let fifo = env.export().join("records/tasks.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a C string that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Under systemd, with a watchdog of 0.4 s: its pings every 0.2 s.
    let sock_path = env.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let log = env.path().join("daemon.log");
    let mut c = env.cmd(&["daemon"]);
    c.env("DAYBOOK_LOG", "info").env("NOTIFY_SOCKET", &sock_path).env("WATCHDOG_USEC", "400000");
    c.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let mut d = Daemon { child: c.spawn().unwrap(), log };
    until("the job's start", 60, || {
        !org_status(&env.json(&["status"]), "acme")["running"].as_array().unwrap().is_empty()
    });
    d.signal(libc::SIGTERM);
    // While the job drains (stop_seconds = 1), the daemon still pets the watchdog and says
    // it is stopping.
    let (mut stopping, mut after) = (false, Vec::<String>::new());
    let mut buf = [0u8; 512];
    while !(after.iter().any(|m| m.contains("WATCHDOG=1")) && after.iter().any(|m| m.contains("STATUS=stopping"))) {
        let n = sock.recv(&mut buf).expect("systemd hears from the draining daemon");
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        match stopping {
            true => after.push(m),
            false => stopping = m.contains("STOPPING=1"),
        }
    }
    assert!(after.iter().any(|m| m.contains("STATUS=stopping: 1 jobs finishing")), "{after:?}");
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
    assert!(d.log_text().contains("parked"), "{}", d.log_text());
    let st = env.json(&["status"]);
    let acme = org_status(&st, "acme");
    assert_eq!(acme["queued"], 1, "parked, not lost: {st}");
    assert!(acme["last"].is_null(), "{st}");

    // The source answers again; the next daemon runs the same job, its parked run not counted.
    std::fs::remove_file(&fifo).unwrap();
    env.write_records("tasks", &[task(1, "a"), task(2, "b")]);
    let mut d2 = Daemon::start(&env, "daemon2", None);
    until("the parked job's run", 60, || {
        org_status(&env.json(&["status"]), "acme")["last"]["state"].as_str() == Some("done")
    });
    let st = env.json(&["status"]);
    let last = &org_status(&st, "acme")["last"];
    assert_eq!(last["attempts"], 1, "{last}");
    assert_eq!(env.latest()["tasks"].1, 2);
    d2.signal(libc::SIGTERM);
    assert!(d2.wait_exit(30).success());
}

async fn a_scheduled_cycle_runs_through_the_queue(b: Backend) {
    let env = Env::new(b).await;
    let port = free_port();
    write_two_orgs(&env, port);
    env.write_records("tasks", &[task(1, "write the report"), task(2, "send it")]);
    env.ok(&["init"]);
    let mut d = Daemon::start(&env, "daemon", None);
    until("acme's scheduled run", 60, || {
        org_status(&env.json(&["status"]), "acme")["last"]["state"].as_str() == Some("done")
    });
    let st = env.json(&["status"]);
    let acme = org_status(&st, "acme");
    assert_eq!(st["daemons"].as_array().unwrap().len(), 1, "{st}");
    let tomorrow = (Utc::now() + TimeDelta::days(1)).format("%Y-%m-%dT00:00:00.000Z").to_string();
    assert_eq!(acme["next_run"], tomorrow.as_str(), "the next run is tomorrow at 00:00 UTC");
    assert!(org_status(&st, "quiet")["last"].is_null(), "quiet's schedule was not due: {st}");
    assert_eq!(env.latest()["tasks"].1, 2, "the cycle backed up both tasks");

    let job = acme["last"]["id"].as_i64().unwrap();
    let log = env.json(&["logs", "--job", &job.to_string()]);
    let messages: Vec<&str> = log.as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.starts_with("export/tasks: 2 live, 2 added")), "{messages:?}");
    assert!(messages.last().unwrap().starts_with("done in "), "{messages:?}");
    let text = env.ok(&["logs", "--org", "acme"]);
    assert!(text.contains("export/tasks: 2 live"), "{text}");

    // The operator's monitoring.
    let base = format!("http://127.0.0.1:{port}");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("daybook_jobs{kind=\"backup\",state=\"done\"} 1"), "{metrics}");
    assert!(metrics.contains("daybook_records_backed_up_total 2"), "{metrics}");
    assert!(metrics.contains("daybook_job_duration_seconds_count{kind=\"backup\"} 1"), "{metrics}");

    // A bad config on SIGHUP is refused; the daemon goes on with the old one.
    let good = std::fs::read_to_string(env.path().join("daybook.toml")).unwrap();
    std::fs::write(env.path().join("daybook.toml"), good.replace("at = \"00:00\"", "at = \"25:99\"")).unwrap();
    d.signal(libc::SIGHUP);
    until("the refusal of the bad config", 20, || d.log_text().contains("config reload refused"));
    assert!(d.log_text().contains("schedule.at \"25:99\" is not a time of day"), "{}", d.log_text());
    std::fs::write(env.path().join("daybook.toml"), &good).unwrap();
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200, "still serving");

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
    let st = env.json(&["status"]);
    assert!(st["daemons"].as_array().unwrap().is_empty(), "a stopped daemon is not listed: {st}");
    assert!(env.ok(&["status"]).contains("no daemon is running"));
    // Its run of today is recorded: a new daemon does not run it again.
    let mut d2 = Daemon::start(&env, "daemon2", None);
    until("the second daemon's start", 30, || !env.json(&["status"])["daemons"].as_array().unwrap().is_empty());
    d2.signal(libc::SIGTERM);
    assert!(d2.wait_exit(30).success());
    let jobs = env.json(&["status"]);
    assert_eq!(org_status(&jobs, "acme")["last"]["id"], job, "no second run of the same day");
    let all = env.json(&["logs", "--org", "acme"]);
    assert!(all.as_array().unwrap().iter().all(|l| l["job"] == job), "{all}");
}

async fn backup_now_asks_the_daemon_and_keeps_5_minutes(b: Backend) {
    let env = Env::new(b).await;
    let port = free_port();
    write_two_orgs(&env, port);
    env.write_records("tasks", &[task(1, "a")]);
    env.ok(&["init"]);
    // No daemon: refused, nothing queued.
    let o = env.run(&["backup", "--now", "--org", "quiet"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no daemon is running"), "{o:?}");

    let mut d = Daemon::start(&env, "daemon", None);
    until("the daemon's start", 30, || !env.json(&["status"])["daemons"].as_array().unwrap().is_empty());
    let queued = env.json(&["backup", "--now", "--org", "quiet"]);
    let job = queued[0]["job"].as_i64().unwrap();
    until("the manual backup", 60, || {
        org_status(&env.json(&["status"]), "quiet")["last"]["state"].as_str() == Some("done")
    });
    assert_eq!(org_status(&env.json(&["status"]), "quiet")["last"]["id"], job);

    // Again at once: refused, saying from when it can run.
    let o = env.run(&["backup", "--now", "--org", "quiet"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("quiet/notes: last backed up at") && err.contains("it can run again from"), "{err}");
    let last = env.json(&["snapshots"]);
    let taken = last.as_array().unwrap().iter().find(|s| s["org"] == "quiet").unwrap()["taken_at"]
        .as_str()
        .unwrap()
        .to_string();
    let from = DateTime::parse_from_rfc3339(&taken).unwrap() + TimeDelta::minutes(5);
    assert!(err.contains(&from.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)[..16]), "{err} vs {from}");
    // The operator's own backup is never refused.
    env.ok(&["backup", "--org", "quiet"]);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
}

/// An org per schedule worth watching through a daylight-saving change.
fn dst_config() -> Config {
    let orgs = [
        ("dublin-evening", "Europe/Dublin", "20:00", 60),
        ("dublin-gap", "Europe/Dublin", "01:30", 0),
        ("dublin-fold", "Europe/Dublin", "01:30", 0),
        ("ny-evening", "America/New_York", "20:00", 60),
        ("ny-gap", "America/New_York", "02:30", 0),
        ("ny-fold", "America/New_York", "01:30", 0),
    ];
    let mut text = "[vault]\ncatalog = \"sqlite://c.db\"\nstore = \"s\"\n".to_string();
    for (sid, tz, at, window) in orgs {
        text += &format!(
            "[[orgs]]\nsid = \"{sid}\"\nname = \"{sid}\"\ntimezone = \"{tz}\"\n[orgs.schedule]\nat = \"{at}\"\nwindow_minutes = {window}\n"
        );
    }
    Config::parse(&text, ".".into()).unwrap()
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

async fn due_runs_across_daylight_saving_changes(b: Backend) {
    let env = Env::new(b).await;
    let catalog = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    catalog.migrate().await.unwrap();
    let cfg = dst_config();
    // Spring: New York on 8 March, Dublin on 29 March; autumn: Dublin on 25 October, New
    // York on 1 November. Ticks every 7 minutes, each one doubled.
    let clock = TestClock::at(utc(2026, 3, 1));
    let mut ticker = Ticker::default();
    let run = async |from: DateTime<Utc>, to: DateTime<Utc>, ticker: &mut Ticker| {
        clock.set(from);
        while clock_now(&clock) < to {
            ticker.tick(&catalog, &cfg, &clock).await.unwrap();
            ticker.tick(&catalog, &cfg, &clock).await.unwrap();
            clock.advance(TimeDelta::minutes(7));
        }
    };
    run(utc(2026, 3, 1), utc(2026, 4, 5), &mut ticker).await;
    // A second daemon (its own ticker) at the same moments adds nothing.
    run(utc(2026, 3, 20), utc(2026, 4, 5), &mut Ticker::default()).await;
    run(utc(2026, 10, 15), utc(2026, 11, 10), &mut ticker).await;

    let runs = catalog.due_runs().await.unwrap();
    for org in &cfg.orgs {
        let sid = org.sid.get_ref();
        let tz = org.tz();
        let mine: Vec<(NaiveDate, DateTime<chrono_tz::Tz>)> = runs
            .iter()
            .filter(|r| r.0 == *sid)
            .map(|r| {
                let at = DateTime::parse_from_rfc3339(&r.2).unwrap().with_timezone(&tz);
                (NaiveDate::parse_from_str(&r.1, "%Y-%m-%d").unwrap(), at)
            })
            .collect();
        // Each stretch is one run a local day, none skipped: from its first day to its last,
        // every date once (the key makes a second impossible; the count shows none missing).
        for (from, to) in [
            (NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), NaiveDate::from_ymd_opt(2026, 4, 3).unwrap()),
            (NaiveDate::from_ymd_opt(2026, 10, 15).unwrap(), NaiveDate::from_ymd_opt(2026, 11, 8).unwrap()),
        ] {
            let days: Vec<&(NaiveDate, _)> = mine.iter().filter(|(d, _)| *d >= from && *d <= to).collect();
            let want: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
            let got: Vec<NaiveDate> = days.iter().map(|(d, _)| *d).collect();
            assert_eq!(got, want, "{sid}: one run a local day from {from} to {to}");
        }
        let at = org.schedule.at.as_ref().unwrap().get_ref().clone();
        for (d, t) in &mine {
            let local = t.format("%H:%M").to_string();
            // 01:00-02:00 in Dublin on 29 March, 02:00-03:00 in New York on 8 March.
            let gap_day = (sid.starts_with("dublin") && at == "01:30" && d.to_string() == "2026-03-29")
                || (*sid == "ny-gap" && d.to_string() == "2026-03-08");
            if gap_day {
                // That local time does not exist that day: the first one after it.
                assert!(local.as_str() > at.as_str() && local.as_str() <= "03:30", "{sid} {d}: {local}");
            } else if sid.ends_with("evening") {
                assert!(
                    local.as_str() >= "20:00" && local.as_str() < "21:00",
                    "{sid} {d}: {local} (window 20:00-21:00)"
                );
            } else {
                assert_eq!(local, at, "{sid} on {d}: at its local time, whatever the UTC offset");
            }
            assert_eq!(t.date_naive(), *d, "{sid}: the run of {d} is on that local day");
        }
        // The fold days ran once, at the first 01:30.
        if *sid == "dublin-fold" {
            let t = mine.iter().find(|(d, _)| d.to_string() == "2026-10-25").unwrap().1;
            assert_eq!(t.to_utc(), Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(), "the first 01:30 (IST)");
        }
        if *sid == "ny-fold" {
            let t = mine.iter().find(|(d, _)| d.to_string() == "2026-11-01").unwrap().1;
            assert_eq!(t.to_utc(), Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap(), "the first 01:30 (EDT)");
        }
    }
    // Between the stretches the daemon was down for six months: caught up once (the latest
    // run due when it came back), not once per missed day.
    for org in &cfg.orgs {
        let sid = org.sid.get_ref();
        let dates = |from: &str, to: &str| {
            runs.iter().filter(|r| r.0 == *sid && r.1.as_str() >= from && r.1.as_str() <= to).count()
        };
        assert_eq!(dates("2026-04-06", "2026-10-12"), 0, "{sid}: runs for days the daemon was down");
        assert!(dates("2026-10-13", "2026-10-14") >= 1, "{sid}: the missed run was not caught up");
    }
    let jobs = catalog.jobs(None, 100_000).await.unwrap();
    assert_eq!(jobs.len(), runs.len(), "one job per due run");
}

fn clock_now(c: &TestClock) -> DateTime<Utc> {
    daybook::daemon::schedule::Clock::now(c)
}

/// acme with one Trello source on the fake (a board, a list, a card) and a schedule that is
/// not due for months, so only the jobs a test asks for run; `extra` goes into the config.
fn trello_org(env: &mut Env, f: &fake_trello::Fake, port: u16, extra: &str) {
    env.vars = vec![("TRELLO_KEY".into(), fake_trello::KEY.into()), ("TRELLO_TOKEN".into(), fake_trello::TOKEN.into())];
    env.write_config(&format!(
        "{}[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"UTC\"\nadmin_email = \"it@acme.test\"\n\
         [orgs.schedule]\ncron = \"0 3 29 2 *\"\n[[orgs.sources]]\nname = \"trello\"\nkind = \"trello\"\n\
         base_url = \"{}\"\nrequests_per_minute = 30000\ntimeout_seconds = 10\ngive_up_after_seconds = 20\n\n{extra}",
        daemon_section(port),
        f.base
    ));
}

fn job_messages(env: &Env, job: i64) -> Vec<String> {
    let log = env.json(&["logs", "--job", &job.to_string()]);
    log.as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_string()).collect()
}

async fn a_restore_job_makes_the_copy_and_emails_the_requester(b: Backend) {
    let f = fake_trello::Fake::start();
    let (card, list) = f.with(|a| {
        let ws = a.workspace("Product");
        let board = a.board("Roadmap", Some(&ws));
        let list = a.list(&board, "To do");
        let card = a.card(&list, "Launch the rocket");
        a.edit_card(&card, |c| c["desc"] = "Count down from ten".into());
        (card, list)
    });
    let smtp = common::smtp::start();
    let mut env = Env::new(b).await;
    let port = free_port();
    trello_org(&mut env, &f, port, &smtp.config());
    env.ok(&["init"]);
    env.ok(&["backup"]);
    f.with(|a| a.delete_card(&card));
    env.ok(&["backup"]);

    // Without a daemon: refused, nothing queued.
    let o = env.run(&["restore", &card, "--queue"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no daemon is running"), "{o:?}");
    let mut d = Daemon::start(&env, "daemon", None);
    until("the daemon's start", 30, || !env.json(&["status"])["daemons"].as_array().unwrap().is_empty());
    let queued = env.json(&["restore", &card, "--queue", "--email", "ada@acme.test"]);
    let job = queued["job"].as_i64().unwrap();
    let mail = smtp.wait_for(1, 60);
    until("the restore job's end", 30, || job_messages(&env, job).iter().any(|m| m.starts_with("done in ")));

    // The copy is at the app, with the card's content.
    let new_id = f.with(|a| {
        let new = a.cards.iter().find(|c| c["name"] == "Launch the rocket").expect("the copy exists").clone();
        assert_ne!(new["id"], card.as_str());
        assert_eq!((new["desc"].as_str(), new["idList"].as_str()), (Some("Count down from ten"), Some(list.as_str())));
        new["id"].as_str().unwrap().to_string()
    });
    let m = &mail[0];
    assert!(m.contains("To: ada@acme.test"), "{m}");
    assert!(m.contains("was restored") && m.contains(&new_id), "the email says the new id: {m}");
    assert!(!m.contains("Launch the rocket"), "the email carries ids, not the record's content: {m}");
    let lines = job_messages(&env, job);
    assert!(lines.iter().any(|l| l.contains(&format!("as new id {new_id}"))), "{lines:?}");
    let summaries: Vec<String> =
        env.json(&["logs", "--job", &job.to_string()]).as_array().unwrap().iter().map(|l| l.to_string()).collect();
    assert!(!summaries.concat().contains("Launch the rocket"), "no content in the job's log: {summaries:?}");

    // Again: refused by the engine (already restored); the org's admin is told why.
    let again = env.json(&["restore", &card, "--queue"])["job"].as_i64().unwrap();
    let mail = smtp.wait_for(2, 60);
    let m = mail.iter().find(|m| m.contains("To: it@acme.test")).expect("the admin's email");
    assert!(m.contains("could not be restored") && m.contains("already restored"), "{m}");
    until("the second job's end", 30, || {
        env.json(&["status"])["failed"].as_array().unwrap().iter().any(|j| j["id"] == again)
    });
    assert_eq!(f.with(|a| a.cards.iter().filter(|c| c["name"] == "Launch the rocket").count()), 1, "no second copy");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
}

/// A change the app's change feed missed, found by the whole read, makes the backup job a
/// warning (its log says what), as it is in the cycle's backup log, not a plain success.
async fn drift_found_by_a_whole_read_warns_in_the_job(b: Backend) {
    let f = fake_trello::Fake::start();
    let card = f.with(|a| {
        let board = a.board("Roadmap", None);
        let list = a.list(&board, "To do");
        a.card(&list, "Launch")
    });
    let mut env = Env::new(b).await;
    let port = free_port();
    trello_org(&mut env, &f, port, "[engine]\nfull_every_days = 0\n");
    env.ok(&["init"]);
    env.ok(&["backup"]);
    // Changed without Trello moving its dateLastActivity: only a whole read sees it.
    f.with(|a| a.card_mut(&card)["desc"] = "changed quietly".into());
    let catalog = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    let backup = NewJob {
        kind: "backup".into(),
        org: Some("acme".into()),
        source: None,
        args: "{}".into(),
        manual: false,
        max_attempts: 1,
    };
    let job = catalog.enqueue(&backup).await.unwrap();
    let mut d = Daemon::start(&env, "daemon", None);
    until("the backup job's end", 60, || job_messages(&env, job).iter().any(|m| m.starts_with("done in ")));
    let log = env.json(&["logs", "--job", &job.to_string()]);
    let lines = log.as_array().unwrap();
    let warned: Vec<&Value> = lines.iter().filter(|l| l["level"] == "warn").collect();
    assert_eq!(warned.len(), 1, "one warning, the cards' drift: {lines:?}");
    let m = warned[0]["message"].as_str().unwrap();
    assert!(m.contains("trello/") && m.contains("drift: 1 changes"), "{m}");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
}

async fn a_429_from_an_app_shows_in_metrics(b: Backend) {
    let f = fake_trello::Fake::start();
    f.with(|a| {
        let board = a.board("Roadmap", None);
        let list = a.list(&board, "To do");
        a.card(&list, "Launch");
        let limited = json!({"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"});
        a.rule(Method::GET, "/lists", None, 0, Some(1), fake_trello::Act::Json(429, limited));
    });
    let mut env = Env::new(b).await;
    let port = free_port();
    trello_org(&mut env, &f, port, "");
    env.ok(&["init"]);
    let mut d = Daemon::start(&env, "daemon", None);
    until("the daemon's start", 30, || !env.json(&["status"])["daemons"].as_array().unwrap().is_empty());
    let job = env.json(&["backup", "--now", "--org", "acme"])[0]["job"].as_i64().unwrap();
    until("the backup", 60, || {
        let st = env.json(&["status"]);
        org_status(&st, "acme")["last"]["id"] == job && org_status(&st, "acme")["last"]["state"] == "done"
    });
    let (sent, limited) = f.with(|a| (a.seen.len(), a.seen.iter().filter(|r| r.status == 429).count()));
    assert_eq!(limited, 1, "the app answered 429 once");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("daybook_api_429_total{connector=\"trello\"} 1\n"), "{metrics}");
    assert!(metrics.contains(&format!("daybook_api_requests_total{{connector=\"trello\"}} {sent}\n")), "{metrics}");
    assert_eq!(env.latest()["Roadmap/cards"].1, 1, "the 429 was waited out");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).success(), "{}", d.log_text());
}

/// The daemon's scheduler and a worker, in-process, over four days of a clock the test moves:
/// each day's scheduled cycle ends by applying `keep_last = 2` (forget, then prune), so only
/// the last two snapshots remain, whole, and the vault checks clean.
async fn scheduled_cycles_apply_retention(b: Backend) {
    use daybook::daemon::queue::Queue;
    use daybook::daemon::worker::{self, Handlers, Shared, Stop};
    let env = Env::new(b).await;
    env.write_config(
        "[daemon]\npoll_ms = 50\nlease_seconds = 8\n\n[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"UTC\"\n\
         [orgs.schedule]\nat = \"06:00\"\nwindow_minutes = 0\n[orgs.retention]\nkeep_last = 2\n\
         [[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n",
    );
    env.ok(&["init"]);
    let cfg = std::sync::Arc::new(Config::load(&env.path().join("daybook.toml")).unwrap());
    let vault = std::sync::Arc::new(daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap());
    let catalog = Catalog::connect(&cfg.vault.catalog, &cfg.base).await.unwrap();
    let shared = std::sync::Arc::new(Shared {
        queue: Queue::new(catalog.clone(), Duration::from_secs(8)),
        vault,
        config: std::sync::RwLock::new(cfg.clone()),
        handlers: Handlers::standard(),
        wake: Default::default(),
        reschedule: Default::default(),
        running: Default::default(),
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let w = tokio::spawn(worker::run(shared.clone(), stop_rx));
    let clock = TestClock::at(utc(2026, 5, 1) + TimeDelta::hours(7));
    let mut ticker = Ticker::default();
    let mut jobs = Vec::new();
    for day in 1..=4u64 {
        env.write_records("tasks", &[task(1, &format!("as of day {day}")), task(2, "the same every day")]);
        env.write_attachment("photo.jpg", &common::noise(day, 200_000));
        let queued = ticker.tick(&catalog, &cfg, &clock).await.unwrap();
        assert_eq!(queued.len(), 1, "day {day}: its scheduled run");
        shared.wake.notify_waiters();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let j = catalog.jobs(Some("acme"), 10).await.unwrap().into_iter().find(|j| j.id == queued[0]).unwrap();
            if j.state == "done" {
                break;
            }
            assert!(j.state != "failed" && std::time::Instant::now() < deadline, "day {day}: {j:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        jobs.push(queued[0]);
        clock.advance(TimeDelta::days(1));
    }
    stop.send(Stop::Drain).unwrap();
    w.await.unwrap();

    let snaps = env.json(&["snapshots"]);
    let cycles = |ty: &str| -> Vec<i64> {
        snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["data_type"] == ty)
            .map(|s| s["cycle"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(cycles("tasks"), [3, 4], "only the last two cycles are kept: {snaps}");
    assert_eq!(cycles("attachments"), [3, 4], "{snaps}");
    for (i, job) in jobs.iter().enumerate() {
        let lines = job_messages(&env, *job);
        assert!(lines.iter().any(|l| l.contains("snapshots forgotten")), "day {}: retention ran: {lines:?}", i + 1);
    }
    let last = job_messages(&env, jobs[3]);
    assert!(last.iter().any(|l| l.starts_with("2 snapshots forgotten")), "{last:?}");
    // Pruned: nothing is left for a prune to remove, and what is kept reads whole.
    let dry = env.json(&["prune", "--dry-run"]);
    let dry = dry.as_array().map_or(&dry, |a| &a[0]);
    assert_eq!((dry["packs_removed"].as_i64(), dry["files_removed"].as_i64()), (Some(0), Some(0)), "{dry}");
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
    assert_eq!(env.json(&["show", "t1"])["content"]["data"]["title"], "as of day 4");
    let photo = env.json(&["show", "photo.jpg"]);
    let uid = photo["content"]["files"][0]["uid"].as_str().unwrap().to_string();
    let vault = daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap();
    assert_eq!(common::read_file(&vault, "acme", &uid).await, common::noise(4, 200_000));
    assert_eq!(env.json(&["history", "t1"])["versions"].as_array().unwrap().len(), 2, "days 3 and 4");
}
