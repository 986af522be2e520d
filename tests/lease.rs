//! Leases, as a daemon running many jobs needs them: never shared within a process, released
//! when dropped (a panic, a cancelled job), kept alive by a timer rather than by progress, taken
//! over only when their holder is gone, and a lease taken over stops its holder's commits.

mod common;

use common::{Backend, Env};
use daybook::vault::catalog::{Catalog, LockError};
use std::time::Duration;

async fn catalog(b: Backend) -> (Env, Catalog) {
    let env = Env::new(b).await;
    let c = Catalog::connect(&env.catalog, env.path()).await.unwrap();
    c.migrate().await.unwrap();
    (env, c)
}

async fn holder_and_beat(c: &Catalog, name: &str) -> Option<(String, String)> {
    sqlx::query("SELECT holder, heartbeat FROM locks WHERE name = $1")
        .bind(name)
        .fetch_optional(&c.pool)
        .await
        .unwrap()
        .map(|r| (sqlx::Row::get(&r, 0), sqlx::Row::get(&r, 1)))
}

/// Waits (bounded) until `done` holds; the bound only turns a hang into a failure.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both_backends!(one_holder_even_in_one_process, a_dropped_lease_is_released, a_dead_holder_is_taken_over);

async fn one_holder_even_in_one_process(b: Backend) {
    let (_env, c) = catalog(b).await;
    let first = c.acquire("source:acme/export", "the backup of acme/export").await.unwrap();
    match c.acquire("source:acme/export", "the backup of acme/export").await {
        Err(LockError::Held { what, .. }) => assert_eq!(what, "the backup of acme/export"),
        other => panic!("a second job of the same process got the lease: {:?}", other.map(|l| l.holder().to_string())),
    }
    let other = c.acquire("source:acme/other", "the backup of acme/other").await.unwrap();
    first.release().await.unwrap();
    assert!(holder_and_beat(&c, "source:acme/other").await.is_some(), "releasing one frees only that one");
    c.acquire("source:acme/export", "again").await.unwrap().release().await.unwrap();
    other.release().await.unwrap();
}

async fn a_dropped_lease_is_released(b: Backend) {
    let (_env, c) = catalog(b).await;
    let job = {
        let c = c.clone();
        tokio::spawn(async move {
            let _lease = c.acquire("source:acme/export", "a job").await.unwrap();
            panic!("the job fails with its lease held");
        })
    };
    assert!(job.await.is_err());
    until("the lease's release", async || holder_and_beat(&c, "source:acme/export").await.is_none()).await;
    c.acquire("source:acme/export", "the next job").await.unwrap().release().await.unwrap();
}

async fn a_dead_holder_is_taken_over(b: Backend) {
    let (_env, c) = catalog(b).await;
    let now = chrono::Utc::now();
    let insert = |name: &'static str, holder: &'static str, beat: chrono::DateTime<chrono::Utc>| {
        let c = c.clone();
        async move {
            sqlx::query("INSERT INTO locks (name, holder, heartbeat) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(holder)
                .bind(beat.to_rfc3339())
                .execute(&c.pool)
                .await
                .unwrap();
        }
    };
    // Another host, beating: held. Another host, silent for 10 minutes: gone.
    insert("a", "elsewhere:1:00", now).await;
    insert("b", "elsewhere:1:00", now - chrono::Duration::minutes(10)).await;
    assert!(matches!(c.acquire("a", "a").await, Err(LockError::Held { .. })));
    c.acquire("b", "b").await.unwrap().release().await.unwrap();
    // This host, a process that no longer exists (pid far beyond pid_max): gone, however
    // fresh its heartbeat.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let dead: &'static str = Box::leak(format!("{host}:2147483646:00").into_boxed_str());
    insert("c", dead, now).await;
    c.acquire("c", "c").await.unwrap().release().await.unwrap();
}

/// A lease beats on a timer, not when work progresses: a job waiting out a long rate limit
/// keeps its lease. Once another host takes it over, the holder's next commit is refused.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_heartbeat_on_a_timer_and_a_lost_lease_commits_nothing() {
    let (_env, c) = catalog(Backend::Postgres).await;
    let lease = c.acquire_beating("source:acme/export", "the backup", Duration::from_millis(50)).await.unwrap();
    let (_, first) = holder_and_beat(&c, "source:acme/export").await.unwrap();
    until("a heartbeat", async || holder_and_beat(&c, "source:acme/export").await.unwrap().1 != first).await;
    // Another host decides this one is gone and takes the lease.
    sqlx::query("UPDATE locks SET holder = 'elsewhere:1:00' WHERE name = 'source:acme/export'")
        .execute(&c.pool)
        .await
        .unwrap();
    let mut tx = c.begin().await.unwrap();
    let err = lease.confirm(&mut tx).await.unwrap_err();
    assert!(err.to_string().contains("taken over by another host"), "{err}");
}
