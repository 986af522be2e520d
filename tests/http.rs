//! The HTTP layer every app connector uses, against a local server that scripts each
//! route's answers: retries, Retry-After, refused credentials, cut-off bodies, pacing,
//! streamed and resumed downloads; and through the binary, against a scripted NocoDB, a
//! 429 that asks for more than the give-up bound, and Retry-After nonsense.

mod common;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use daybook::connectors::SourceError;
use daybook::connectors::http::{Expect, Http, Limits};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A request the server saw: route, when, and its Authorization header.
type Seen = (String, Instant, Option<String>);

/// Each route answers from its script, one answer a request; the last one repeats.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Clone)]
enum Answer {
    Json(&'static str),
    Status(u16, Vec<(&'static str, String)>),
    /// Promises more bytes than it sends, then closes.
    Cut,
}

async fn answer(State(s): State<Script>, Path(route): Path<String>, headers: HeaderMap) -> Response {
    let auth =
        headers.get("authorization").or(headers.get("xc-token")).and_then(|v| v.to_str().ok()).map(str::to_string);
    s.seen.lock().unwrap().push((route.clone(), Instant::now(), auth));
    let a = {
        let mut all = s.answers.lock().unwrap();
        let list = all.get_mut(&route).expect("a scripted route");
        if list.len() > 1 { list.remove(0) } else { list[0].clone() }
    };
    match a {
        Answer::Json(j) => ([("content-type", "application/json")], j).into_response(),
        Answer::Status(code, hs) => {
            let mut r = StatusCode::from_u16(code).unwrap().into_response();
            for (k, v) in hs {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Answer::Cut => Response::builder()
            .header("content-type", "application/json")
            .header("content-length", "1000")
            .body(axum::body::Body::from("{\"items\":[1,2"))
            .unwrap(),
    }
}

async fn serve(script: Script) -> String {
    let app = Router::new().route("/{route}", get(answer).post(answer)).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

fn limits(requests: u32, per_ms: u64, give_up_ms: u64) -> Limits {
    Limits {
        requests,
        per: Duration::from_millis(per_ms),
        give_up_after: Duration::from_millis(give_up_ms),
        timeout: Duration::from_secs(5),
    }
}

async fn setup(routes: &[(&str, Vec<Answer>)], l: Limits) -> (Http, Script) {
    let script = Script::default();
    for (r, a) in routes {
        script.answers.lock().unwrap().insert(r.to_string(), a.clone());
    }
    let base = serve(script.clone()).await;
    let http = Http::new(&base, &[("Authorization", "OAuth oauth_token=\"SECRET-TOKEN\"")], "TRELLO_TOKEN", l).unwrap();
    (http, script)
}

fn calls(s: &Script, route: &str) -> Vec<Instant> {
    s.seen.lock().unwrap().iter().filter(|(r, _, _)| r == route).map(|(_, t, _)| *t).collect()
}

#[tokio::test]
async fn server_errors_and_cut_bodies_are_retried_until_they_pass() {
    let (http, s) = setup(
        &[
            ("flaky", vec![Answer::Status(500, vec![]), Answer::Status(503, vec![]), Answer::Json("{\"ok\":1}")]),
            ("cut", vec![Answer::Cut, Answer::Json("{\"items\":[1,2,3]}")]),
        ],
        limits(100, 1000, 20_000),
    )
    .await;
    let v: serde_json::Value = http.get_json("flaky", &[]).await.unwrap();
    assert_eq!(v["ok"], 1);
    assert_eq!(calls(&s, "flaky").len(), 3);
    let v: serde_json::Value = http.get_json("cut", &[]).await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "a cut-off body is never taken as whole");
    assert_eq!(http.requests(), 5);
    let seen = s.seen.lock().unwrap();
    assert!(
        seen.iter().all(|(_, _, a)| a.as_deref() == Some("OAuth oauth_token=\"SECRET-TOKEN\"")),
        "credentials on every request"
    );
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says() {
    let (http, s) = setup(
        &[
            ("limited", vec![Answer::Status(429, vec![("retry-after", "1".into())]), Answer::Json("[]")]),
            (
                "reset",
                vec![
                    // At least 1 s after the "limited" call below, which takes 1 s.
                    Answer::Status(429, vec![("x-ratelimit-reset", (chrono::Utc::now().timestamp() + 3).to_string())]),
                    Answer::Json("[]"),
                ],
            ),
        ],
        limits(100, 1000, 20_000),
    )
    .await;
    let _: serde_json::Value = http.get_json("limited", &[]).await.unwrap();
    let t = calls(&s, "limited");
    assert!(t[1] - t[0] >= Duration::from_secs(1), "retried after {:?}", t[1] - t[0]);
    let _: serde_json::Value = http.get_json("reset", &[]).await.unwrap();
    let t = calls(&s, "reset");
    assert!(t[1] - t[0] >= Duration::from_millis(900), "X-RateLimit-Reset honoured: {:?}", t[1] - t[0]);
}

#[tokio::test]
async fn refused_credentials_fail_at_once_and_say_where_to_look() {
    let (http, s) = setup(&[("auth", vec![Answer::Status(401, vec![])])], limits(100, 1000, 20_000)).await;
    let e = http.get_json::<serde_json::Value>("auth", &[]).await.unwrap_err();
    assert!(matches!(e, SourceError::Refused { status: 401, .. }));
    let msg = e.to_string();
    assert!(msg.contains("TRELLO_TOKEN") && !msg.contains("SECRET-TOKEN"), "{msg}");
    assert_eq!(calls(&s, "auth").len(), 1, "refused credentials are not retried");
}

#[tokio::test]
async fn a_source_that_keeps_failing_is_given_up_within_the_bound() {
    let (http, s) = setup(&[("down", vec![Answer::Status(502, vec![])])], limits(100, 1000, 3_000)).await;
    let t = Instant::now();
    let e = http.get_json::<serde_json::Value>("down", &[]).await.unwrap_err();
    assert!(matches!(e, SourceError::GaveUp { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "gave up after {:?}", t.elapsed());
    assert!(calls(&s, "down").len() >= 2);
}

#[tokio::test]
async fn requests_are_paced_under_the_limit_before_any_429() {
    // 5 requests per 500 ms: no window of 500 ms may hold more than 5.
    let (http, s) = setup(&[("page", vec![Answer::Json("[]")])], limits(5, 500, 20_000)).await;
    for _ in 0..12 {
        let _: serde_json::Value = http.get_json("page", &[]).await.unwrap();
    }
    let t = calls(&s, "page");
    for i in 5..t.len() {
        assert!(
            t[i] - t[i - 5] >= Duration::from_millis(495),
            "requests {} and {i} only {:?} apart",
            i - 5,
            t[i] - t[i - 5]
        );
    }
}

#[tokio::test]
async fn a_post_that_may_have_reached_the_app_is_not_sent_twice() {
    // A restore's POST that times out or meets a 5xx may have created the copy already.
    let (http, s) =
        setup(&[("create", vec![Answer::Status(502, vec![]), Answer::Json("{\"id\":1}")])], limits(100, 1000, 20_000))
            .await;
    let e =
        http.send(reqwest::Method::POST, "create", &[], Some(&serde_json::json!({"name": "copy"}))).await.unwrap_err();
    assert!(e.to_string().contains("not sent again"), "{e}");
    assert_eq!(calls(&s, "create").len(), 1, "one POST, not a retry");
    // A 429 says the app did nothing: that one is sent again.
    let (http, s) = setup(
        &[("create", vec![Answer::Status(429, vec![("retry-after", "0".into())]), Answer::Json("{\"id\":1}")])],
        limits(100, 1000, 20_000),
    )
    .await;
    http.send(reqwest::Method::POST, "create", &[], Some(&serde_json::json!({}))).await.unwrap();
    assert_eq!(calls(&s, "create").len(), 2);
}

#[tokio::test]
async fn a_redirect_to_another_host_carries_no_credentials() {
    let other = Script::default();
    other.answers.lock().unwrap().insert("landing".into(), vec![Answer::Json("{\"ok\":1}")]);
    let elsewhere = serve(other.clone()).await;
    let script = Script::default();
    script
        .answers
        .lock()
        .unwrap()
        .insert("moved".into(), vec![Answer::Status(302, vec![("location", format!("{elsewhere}landing"))])]);
    let base = serve(script.clone()).await;
    // A custom credential header, as NocoDB's xc-token: reqwest itself strips only Authorization.
    let http = Http::new(&base, &[("xc-token", "SECRET-TOKEN")], "NOCODB_TOKEN", limits(100, 1000, 20_000)).unwrap();
    let v: serde_json::Value = http.get_json("moved", &[]).await.unwrap();
    assert_eq!(v["ok"], 1, "the redirect is followed");
    let here = script.seen.lock().unwrap().clone();
    let there = other.seen.lock().unwrap().clone();
    assert_eq!(here[0].2.as_deref(), Some("SECRET-TOKEN"), "the app's own host gets the credential");
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].2, None, "the other host does not");
}

// ---- Downloads: streamed, resumed, checked ----------------------------------------------

const MIB: usize = 1 << 20;

async fn serve_router(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

fn file_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A failure bound, never a synchronisation: the step must end long before it.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("{what} did not end"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_reaches_the_reader_before_the_app_has_sent_it_all() {
    let body = file_bytes(3 * MIB);
    let go = Arc::new(tokio::sync::Notify::new());
    let (b, g) = (body.clone(), go.clone());
    let app = Router::new().route(
        "/big",
        get(move || {
            let (b, g) = (b.clone(), g.clone());
            async move {
                // The first 1.5 MiB, then nothing until the test has read its first MiB.
                let first = Bytes::copy_from_slice(&b[..MIB + MIB / 2]);
                let rest = Bytes::copy_from_slice(&b[MIB + MIB / 2..]);
                let parts =
                    futures::stream::iter([Ok::<_, std::io::Error>(first)]).chain(futures::stream::once(async move {
                        g.notified().await;
                        Ok(rest)
                    }));
                Response::builder().header("content-length", b.len()).body(Body::from_stream(parts)).unwrap()
            }
        }),
    );
    let base = serve_router(app).await;
    let http = Http::new(&base, &[], "", limits(100, 1000, 20_000)).unwrap();
    let expect = Expect { name: "big.bin", size: Some(body.len() as u64), sniff: None };
    let mut r = bounded("the download's start", http.download("big", "the big file", expect)).await.unwrap();
    let mut first = vec![0u8; MIB];
    // Were the whole body read before handing any of it on, this would wait for ever.
    bounded("reading the first MiB while the app holds the rest", r.read_exact(&mut first)).await.unwrap();
    assert!(first == body[..MIB]);
    go.notify_one();
    let mut rest = Vec::new();
    bounded("reading the rest", r.read_to_end(&mut rest)).await.unwrap();
    assert!(rest == body[MIB..], "{} bytes after the first MiB", rest.len());
}

/// A file that the app cuts off after `cut` bytes on the first request, and answers a
/// `Range` request with 206 (or, if `ignores_range`, with the whole file and 200).
async fn cutting_server(body: Vec<u8>, cut: usize, ignores_range: bool) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let ranges: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let r = ranges.clone();
    let app = Router::new().route(
        "/file",
        get(move |headers: HeaderMap| {
            let (body, r) = (body.clone(), r.clone());
            async move {
                let range = headers.get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
                let first = r.lock().unwrap().is_empty();
                r.lock().unwrap().push(range.clone());
                if first {
                    let part = Bytes::copy_from_slice(&body[..cut]);
                    let parts = futures::stream::iter([
                        Ok::<_, std::io::Error>(part),
                        Err(std::io::Error::other("the connection drops")),
                    ]);
                    return Response::builder()
                        .header("content-length", body.len())
                        .body(Body::from_stream(parts))
                        .unwrap();
                }
                let from: usize = range
                    .as_deref()
                    .and_then(|v| v.strip_prefix("bytes="))
                    .and_then(|v| v.strip_suffix('-'))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if ignores_range || from == 0 {
                    return Response::builder().body(Body::from(body)).unwrap();
                }
                Response::builder()
                    .status(206)
                    .header("content-range", format!("bytes {from}-{}/{}", body.len() - 1, body.len()))
                    .body(Body::from(body[from..].to_vec()))
                    .unwrap()
            }
        }),
    );
    (serve_router(app).await, ranges)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_cut_off_midway_resumes_where_it_stopped() {
    for ignores_range in [false, true] {
        let body = file_bytes(2 * MIB + 123);
        let (base, ranges) = cutting_server(body.clone(), MIB + 7, ignores_range).await;
        let http = Http::new(&base, &[], "", limits(100, 1000, 20_000)).unwrap();
        let expect = Expect { name: "f.bin", size: Some(body.len() as u64), sniff: None };
        let mut r = http.download("file", "the file", expect).await.unwrap();
        let mut got = Vec::new();
        bounded("the resumed download", r.read_to_end(&mut got)).await.unwrap();
        assert!(
            got == body,
            "{} bytes, the file has {} (server ignores Range: {ignores_range})",
            got.len(),
            body.len()
        );
        let ranges = ranges.lock().unwrap().clone();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[0], None);
        let from: usize =
            ranges[1].as_deref().unwrap().trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
        assert!(from > 0 && from <= MIB + 7, "asked again from byte {from}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_longer_or_shorter_than_listed_is_an_error() {
    let app = Router::new()
        .route("/long", get(|| async { Body::from(vec![b'x'; 6000]) }))
        .route("/short", get(|| async { Body::from(vec![b'x'; 90]) }));
    let base = serve_router(app).await;
    let http = Http::new(&base, &[], "", limits(100, 1000, 20_000)).unwrap();
    for (path, listed, says) in [("long", 5000, "longer than the 5000 bytes"), ("short", 100, "gave 90 bytes")] {
        let expect = Expect { name: "f.bin", size: Some(listed), sniff: None };
        let e = match http.download(path, "the file", expect).await {
            Err(e) => e.to_string(),
            Ok(mut r) => r.read_to_end(&mut Vec::new()).await.unwrap_err().to_string(),
        };
        assert!(e.contains(says) && e.contains("not stored"), "{path}: {e}");
    }
}

// ---- Through the binary: a NocoDB-shaped app that answers 429 ---------------------------

/// What the scripted NocoDB's records route answers, one a request (the last repeats).
#[derive(Clone)]
enum Rows {
    Ok(Value),
    TooMany(&'static str),
}

#[derive(Clone, Default)]
struct Noco {
    rows: Arc<Mutex<Vec<Rows>>>,
    record_requests: Arc<Mutex<u32>>,
}

impl Noco {
    fn answer_rows(&self, answers: Vec<Rows>) {
        *self.rows.lock().unwrap() = answers;
    }
}

/// The few routes of NocoDB's API v2 a backup of one table uses, in its shapes: a base
/// "Sales" with a table "Leads" (an ID key, one text field), its views, its rows.
async fn scripted_nocodb(noco: Noco) -> String {
    let list = |v: Value| axum::Json(json!({ "list": v }));
    let app = Router::new()
        .route("/api/v2/meta/bases", get(move || async move { list(json!([{"id": "p1", "title": "Sales"}])) }))
        .route(
            "/api/v2/meta/bases/p1/tables",
            get(move || async move { list(json!([{"id": "t1", "title": "Leads", "type": "table"}])) }),
        )
        .route(
            "/api/v2/meta/tables/t1",
            get(|| async {
                axum::Json(json!({"id": "t1", "title": "Leads", "columns": [
                    {"title": "Id", "uidt": "ID", "pk": true, "system": false},
                    {"title": "Name", "uidt": "SingleLineText", "pk": false, "system": false}]}))
            }),
        )
        .route("/api/v2/meta/tables/t1/views", get(move || async move { list(json!([])) }))
        .route(
            "/api/v2/tables/t1/records",
            get(move || {
                let noco = noco.clone();
                async move {
                    *noco.record_requests.lock().unwrap() += 1;
                    let a = {
                        let mut all = noco.rows.lock().unwrap();
                        if all.len() > 1 { all.remove(0) } else { all[0].clone() }
                    };
                    match a {
                        Rows::Ok(rows) => {
                            axum::Json(json!({"list": rows, "pageInfo": {"isLastPage": true}})).into_response()
                        }
                        Rows::TooMany(wait) => {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", wait)], "Too many requests")
                                .into_response()
                        }
                    }
                }
            }),
        );
    serve_router(app).await
}

fn leads() -> Value {
    json!([{"Id": 1, "Name": "Globex"}, {"Id": 2, "Name": "Initech"}])
}

async fn noco_env(base: &str, give_up: u64) -> common::Env {
    let mut env = common::Env::new(common::Backend::Sqlite).await;
    env.vars.push(("NOCODB_TOKEN".into(), "nc-token".into()));
    env.write_config(&format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"crm\"\nkind = \"nocodb\"\n\
         base_url = \"{base}\"\nrequests_per_minute = 60000\ngive_up_after_seconds = {give_up}\n"
    ));
    run(&env, &["init"]).await;
    env
}

/// Runs the binary off the test's runtime (the scripted app answers on it), ending it if
/// it outlives a generous bound: a failure bound, never a synchronisation.
async fn run(env: &common::Env, args: &[&str]) -> std::process::Output {
    let mut cmd = env.cmd(args);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let waited = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await;
    match waited {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("daybook {args:?} did not end within 120 s");
        }
    }
}

async fn json_of(env: &common::Env, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = run(env, &a).await;
    assert!(out.status.success(), "daybook {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn outcome<'r>(report: &'r Value, ty: &str) -> &'r Value {
    report["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["data_type"] == ty)
        .unwrap_or_else(|| panic!("{ty}: {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_told_to_wait_past_the_bound_gives_up_at_the_bound() {
    let noco = Noco::default();
    noco.answer_rows(vec![Rows::Ok(leads())]);
    let base = scripted_nocodb(noco.clone()).await;
    let env = noco_env(&base, 5).await;
    let day1 = json_of(&env, &["backup"]).await;
    assert_eq!(outcome(&day1, "Sales/Leads")["stats"]["live"], 2, "{day1}");

    noco.answer_rows(vec![Rows::TooMany("100000")]);
    let started = Instant::now();
    let out = run(&env, &["backup", "--json"]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // Given up at once (the wait alone passes the bound), never after the wait.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = outcome(&report, "Sales/Leads")["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("HTTP 429: told to wait 100000 s, more than give_up_after_seconds = 5"), "{err}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("told to wait 100000 s"), "the reason is logged");

    let snaps = json_of(&env, &["snapshots"]).await;
    let leads_snaps: Vec<&Value> =
        snaps.as_array().unwrap().iter().filter(|s| s["data_type"] == "Sales/Leads").collect();
    assert_eq!(leads_snaps.len(), 1, "the last snapshot is kept, no new one: {snaps}");
    assert_eq!(leads_snaps[0]["live"], 2);
    assert!(json_of(&env, &["recover"]).await.as_array().unwrap().is_empty(), "nothing is marked deleted");
    let h = json_of(&env, &["history", "1"]).await;
    assert!(h["versions"].as_array().unwrap().iter().all(|v| v["deleted"] == false), "{h}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nonsense_in_retry_after_is_waited_out_never_a_panic() {
    let noco = Noco::default();
    // Told nonsense: a bounded backoff each time, then the rows.
    let nonsense = ["nan", "-3", "soon", "1e400x", "0x10"];
    noco.answer_rows(nonsense.iter().map(|w| Rows::TooMany(w)).chain([Rows::Ok(leads())]).collect());
    let base = scripted_nocodb(noco.clone()).await;
    let env = noco_env(&base, 120).await;
    let day1 = json_of(&env, &["backup"]).await;
    assert_eq!(outcome(&day1, "Sales/Leads")["stats"]["live"], 2, "{day1}");
    assert!(*noco.record_requests.lock().unwrap() > nonsense.len() as u32);

    // Told to wait for ever: a bounded wait, here more than the bound, so given up.
    for wait in ["inf", "Infinity", "1e300", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        noco.answer_rows(vec![Rows::TooMany(wait)]);
        let out = run(&env, &["backup", "--json"]).await;
        assert_eq!(out.status.code(), Some(1), "Retry-After: {wait}: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let err = outcome(&report, "Sales/Leads")["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains("more than give_up_after_seconds = 120"), "Retry-After: {wait}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_read_shows_no_field_value() {
    let noco = Noco::default();
    let secret = "SECRET-FIELD-VALUE-5f3a9c";
    noco.answer_rows(vec![Rows::Ok(json!([{"Id": {"note": secret}, "Name": secret}]))]);
    let base = scripted_nocodb(noco.clone()).await;
    let env = noco_env(&base, 5).await;
    let out = run(&env, &["backup", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let err = outcome(&report, "Sales/Leads")["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("an object of 1 fields as its Id"), "the error says what is wrong: {err}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "a field value in the output:\n{stdout}\n{stderr}");
}

// ---- The keys every app source shares ----------------------------------------------------

fn check(source: &str) -> Result<(), String> {
    let text = format!(
        "[vault]\ncatalog = \"sqlite://x.db\"\nstore = \"blobs\"\n\n[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n\
         [[orgs.sources]]\nname = \"app\"\n{source}"
    );
    let cfg = daybook::config::Config::parse(&text, std::path::PathBuf::from("/tmp")).map_err(|e| format!("{e:#}"))?;
    daybook::connectors::check_config(&cfg).map_err(|e| format!("{e:#}"))
}

#[test]
fn every_app_takes_the_same_keys_with_one_meaning() {
    let shared = "base_url = \"http://127.0.0.1:9/api\"\ntoken_env = \"APP_TOKEN\"\ntoken_file = \"token.txt\"\n\
                  include = [\"a\"]\nexclude = [\"b\"]\nrequests_per_minute = 60\ngive_up_after_seconds = 30\n\
                  timeout_seconds = 10\noverlap_seconds = 60\n";
    for kind in ["trello", "nocodb", "clickup"] {
        check(&format!("kind = \"{kind}\"\n{shared}")).unwrap_or_else(|e| panic!("{kind}: {e}"));
        // An unknown key names its line, the app's own keys and the shared ones.
        let e = check(&format!("kind = \"{kind}\"\nfrobnicate = 1\n")).unwrap_err();
        assert!(e.contains("config line 11") && e.contains("unknown field `frobnicate`"), "{kind}: {e}");
        assert!(e.contains("requests_per_minute") && e.contains("give_up_after_seconds"), "{kind}: {e}");
        for bad in ["requests_per_minute = 0", "timeout_seconds = 0", "base_url = \"not a url\""] {
            let e = check(&format!("kind = \"{kind}\"\n{bad}\n")).unwrap_err();
            assert!(e.contains("config line 11"), "{kind} {bad}: {e}");
        }
    }
    // ClickUp's timeout is configurable like the others'; their own keys stay theirs.
    check("kind = \"clickup\"\ntimeout_seconds = 30\nattachments = false\ncomments = false\n").unwrap();
    check("kind = \"nocodb\"\npage_size = 200\n").unwrap();
    check("kind = \"trello\"\nkey_env = \"MY_TRELLO_KEY\"\nkey_file = \"key.txt\"\n").unwrap();
}

#[test]
fn a_rate_key_of_an_earlier_release_says_what_to_write() {
    let e = check("kind = \"trello\"\nrequests_per_10s = 100\n").unwrap_err();
    assert!(e.contains("config line 11") && e.contains("write requests_per_minute = 600"), "{e}");
    let e = check("kind = \"nocodb\"\nrequests_per_second = 5\n").unwrap_err();
    assert!(e.contains("write requests_per_minute = 300"), "{e}");
}

#[test]
fn the_example_configs_sources_pass_their_connectors_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let cfg = daybook::config::Config::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    daybook::connectors::check_config(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
}
