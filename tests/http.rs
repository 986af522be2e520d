//! The HTTP layer every app connector uses, against a local server that scripts each
//! route's answers: retries, Retry-After, refused credentials, cut-off bodies, pacing.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use daybook::connectors::SourceError;
use daybook::connectors::http::{Http, Limits};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
