//! The dashboard and its API, served in-process on 127.0.0.1 over a vault made by the real
//! binary (two orgs, two days of backups): sign-in with its cookie and CSRF, every API route,
//! org isolation (another org's snapshots, records and types answer 404), the limiter,
//! identity verification before a restore, a restore that succeeds (a card of a local Trello,
//! tests/fake_trello, back as a copy, its completion emailed through a real SMTP server),
//! sign-out, and no secret in a page, an answer or the catalog.

mod common;
mod fake_trello;

use common::{Backend, Env, PASS, task};
use daybook::http::{HttpState, web};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::sync::Arc;

const ADMIN_PW: &str = "acme admin pass 1";
const OTHER_PW: &str = "globex admin pass 2";

struct Site {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn orgs_config(env: &Env) -> String {
    std::fs::create_dir_all(env.path().join("globex/records")).unwrap();
    "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\ntimezone = \"Europe/Dublin\"\n\n[[orgs.sources]]\nname = \"export\"\n\
     kind = \"jsonl\"\npath = \"export\"\n\n[[orgs]]\nsid = \"globex\"\nname = \"Globex\"\n\n[[orgs.sources]]\n\
     name = \"files\"\nkind = \"jsonl\"\npath = \"globex\"\n"
        .into()
}

/// Two days of acme (t2 deleted and t1 changed on day 2) and one of globex; an admin of each
/// org and an acme API token.
async fn setup(b: Backend) -> (Env, String) {
    let env = Env::new(b).await;
    env.write_config(&orgs_config(&env));
    env.ok(&["init"]);
    env.write_records("tasks", &[task(1, "Alpha launch"), task(2, "Beta secret plan"), task(3, "Gamma")]);
    std::fs::write(env.path().join("globex/records/deals.jsonl"), format!("{}\n", task(9, "Globex deal"))).unwrap();
    env.ok(&["backup"]);
    env.write_records("tasks", &[task(1, "Alpha launch v2"), task(3, "Gamma")]);
    env.ok(&["backup"]);
    for (org, email, pw) in [("acme", "admin@acme.test", ADMIN_PW), ("globex", "admin@globex.test", OTHER_PW)] {
        let o = env
            .cmd(&["user", "add", "--org", org, "--email", email])
            .env("DAYBOOK_USER_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let token = env.ok(&["token", "create", "--org", "acme", "--name", "ci"]).trim().to_string();
    assert!(token.starts_with("dbk_"), "{token}");
    (env, token)
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// The env's config, its download links pointing at this server.
fn load(env: &Env, base: &str) -> Arc<daybook::config::Config> {
    let mut cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    cfg.archive.public_url = base.to_string();
    Arc::new(cfg)
}

/// The dashboard as `daybook serve` serves it: archives built by a task of the process.
async fn serve(env: &Env) -> Site {
    let (listener, base) = bind().await;
    let cfg = load(env, &base);
    let builds = Arc::new(daybook::vault::Vault::open(&cfg, PASS).await.unwrap());
    let web = web::WebState {
        archives: Some(Arc::new(web::archives::InProcess { vault: builds, config: cfg.clone() })),
        ..Default::default()
    };
    start(listener, base, cfg, web).await
}

async fn start(
    listener: tokio::net::TcpListener,
    base: String,
    cfg: Arc<daybook::config::Config>,
    web: web::WebState,
) -> Site {
    let vault = daybook::vault::Vault::open(&cfg, PASS).await.unwrap();
    let state = Arc::new(HttpState { config: cfg, vault, web });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(daybook::http::serve_on(listener, daybook::http::router(state), async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Site { base, http, _stop: tx }
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set: &str) -> String {
    set.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

impl Site {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    /// Signs in through the form; returns the session cookie ("daybook_session=...").
    async fn sign_in(&self, email: &str, pw: &str) -> reqwest::Response {
        self.sign_in_via(email, pw, None).await
    }

    /// Signs in through a proxy that sent this X-Forwarded-For.
    async fn sign_in_via(&self, email: &str, pw: &str, forwarded_for: Option<&str>) -> reqwest::Response {
        let r = self.http.get(self.url("/login")).send().await.unwrap();
        let pre = cookie_value(&set_cookie(&r, "daybook_pre").expect("the sign-in page sets its cookie"));
        let csrf = csrf_in(&r.text().await.unwrap());
        let mut rq = self.http.post(self.url("/login")).header(COOKIE, format!("daybook_pre={pre}"));
        if let Some(f) = forwarded_for {
            rq = rq.header("x-forwarded-for", f);
        }
        rq.form(&[("email", email), ("password", pw), ("csrf", &csrf)]).send().await.unwrap()
    }

    async fn session(&self, email: &str, pw: &str) -> String {
        let r = self.sign_in(email, pw).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed in");
        let c = set_cookie(&r, "daybook_session").expect("a session cookie");
        format!("daybook_session={}", cookie_value(&c))
    }

    async fn get(&self, p: &str, auth: &Auth<'_>) -> (StatusCode, String) {
        let r = auth.apply(self.http.get(self.url(p))).send().await.unwrap();
        let (s, body) = (r.status(), r.text().await.unwrap());
        answers_as_documented("get", p, s, &body);
        (s, body)
    }

    async fn json(&self, p: &str, auth: &Auth<'_>) -> Value {
        let (s, body) = self.get(p, auth).await;
        assert_eq!(s, StatusCode::OK, "GET {p}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post_json(&self, p: &str, auth: &Auth<'_>, csrf: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut rq = auth.apply(self.http.post(self.url(p))).json(&body);
        if let Some(c) = csrf {
            rq = rq.header("x-csrf-token", c);
        }
        let r = rq.send().await.unwrap();
        let (s, body) = (r.status(), r.text().await.unwrap());
        answers_as_documented("post", p, s, &body);
        (s, serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST {p} answered {s} with no JSON ({e}): {body}")))
    }
}

/// schemas/openapi.json, and a validator per body schema of schemas/api.schema.json.
struct Spec {
    paths: serde_json::Map<String, Value>,
    bodies: Value,
    validators: std::sync::Mutex<std::collections::HashMap<String, Arc<jsonschema::Validator>>>,
}

fn spec() -> &'static Spec {
    static SPEC: std::sync::OnceLock<Spec> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let open: Value = serde_json::from_str(include_str!("../schemas/openapi.json")).unwrap();
        Spec {
            paths: open["paths"].as_object().unwrap().clone(),
            // Read when first needed (not built in), so that DAYBOOK_BLESS can write it first.
            bodies: serde_json::from_str(
                &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/api.schema.json")).unwrap(),
            )
            .unwrap(),
            validators: Default::default(),
        }
    })
}

impl Spec {
    /// The documented route a request path falls under: its literal segments equal, any
    /// segment for a `{param}`; the most literal one wins (`archives/quote` over `{id}`).
    fn route(&self, path: &str) -> Option<&serde_json::Map<String, Value>> {
        let segs: Vec<&str> = path.split('/').collect();
        let literal = |t: &str| !t.starts_with('{');
        self.paths
            .iter()
            .filter(|(t, _)| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segs.len() && ts.iter().zip(&segs).all(|(t, s)| !literal(t) || t == s)
            })
            .max_by_key(|(t, _)| t.split('/').filter(|t| literal(t)).count())
            .map(|(_, ops)| ops.as_object().unwrap())
    }

    fn validator(&self, name: &str) -> Arc<jsonschema::Validator> {
        let mut v = self.validators.lock().unwrap();
        v.entry(name.to_string())
            .or_insert_with(|| {
                let schema = json!({"$ref": format!("#/$defs/{name}"), "$defs": self.bodies["$defs"]});
                Arc::new(jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema {name}: {e}")))
            })
            .clone()
    }
}

/// Every answer under /api/ the tests get is checked against what schemas/openapi.json
/// documents for its route, method and status (or its `default`), so the file cannot say
/// less or other than the server does.
fn answers_as_documented(method: &str, url_path: &str, status: StatusCode, body: &str) {
    let path = url_path.split('?').next().unwrap();
    if !path.starts_with("/api/") {
        return;
    }
    let spec = spec();
    let Some(ops) = spec.route(path) else {
        // An address the API does not have answers the documented error body.
        return answers_as(spec, "Error", method, url_path, status, body);
    };
    let Some(op) = ops.get(method) else {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url_path}: not documented, answered {status}");
        return answers_as(spec, "Error", method, url_path, status, body);
    };
    let responses = &op["responses"];
    let r = responses.get(status.as_str()).or_else(|| responses.get("default")).unwrap();
    let r#ref = r["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {url_path}: the documented {status} answer names no body schema"));
    let name = r#ref.strip_prefix("api.schema.json#/$defs/").expect("refs into api.schema.json");
    answers_as(spec, name, method, url_path, status, body)
}

fn answers_as(spec: &Spec, name: &str, method: &str, url_path: &str, status: StatusCode, body: &str) {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {url_path} answered {status} with no JSON ({e}): {body}"));
    let errors: Vec<String> =
        spec.validator(name).iter_errors(&v).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{method} {url_path} answered {status} unlike its schema {name}: {errors:?}\n{body}");
}

enum Auth<'a> {
    Cookie(&'a str),
    Token(&'a str),
    None,
}

impl Auth<'_> {
    fn apply(&self, rq: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Cookie(c) => rq.header(COOKIE, *c),
            Auth::Token(t) => rq.bearer_auth(t),
            Auth::None => rq,
        }
    }
}

fn acme_tasks(snaps: &Value) -> &Value {
    snaps["types"].as_array().unwrap().iter().find(|t| t["name"] == "tasks").expect("the tasks data type")
}

async fn api_pages_and_restore(b: Backend) {
    let (env, token) = setup(b).await;
    let site = serve(&env).await;
    let tok = Auth::Token(&token);

    // Snapshots: a row per day, newest first, with its counts.
    let snaps = site.json("/api/v1/orgs/acme/snapshots", &tok).await;
    let tasks = acme_tasks(&snaps);
    let days = tasks["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "both backups ran today: one row for the day, its last snapshot");
    let (ty, cycle) = (tasks["id"].as_i64().unwrap(), days[0]["cycle"].as_i64().unwrap());
    assert_eq!(
        (days[0]["live"].as_i64(), days[0]["changed"].as_i64(), days[0]["deleted"].as_i64()),
        (Some(2), Some(1), Some(1))
    );
    let all = site.json(&format!("/api/v1/orgs/acme/snapshots?type={ty}"), &tok).await;
    assert_eq!(all["types"].as_array().unwrap().len(), 1);

    // The first cycle's records, as they were then: all three, paged two at a time.
    let first = cycle - 1;
    let p1 = site.json(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{first}/records?limit=2"), &tok).await;
    let ids: Vec<&str> = p1["records"].as_array().unwrap().iter().map(|r| r["source_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["t1", "t2"]);
    let cur = p1["next_cursor"].as_str().expect("a second page");
    let p2 =
        site.json(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{first}/records?limit=2&cursor={cur}"), &tok).await;
    assert_eq!(p2["records"][0]["source_id"], "t3");
    assert!(p2["next_cursor"].is_null(), "the last page has no cursor");
    let found = site.json(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{first}/records?q=BETA"), &tok).await;
    assert_eq!(found["matched"], 1);
    assert_eq!(found["records"][0]["label"], "Beta secret plan");
    let bad = site.get(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{first}/records?cursor=zz"), &tok).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&bad.1).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("cursor"), "{err}");

    // A record's history, and what changed field by field.
    let t1 = p1["records"][0]["sid"].as_str().unwrap().to_string();
    let h = site.json(&format!("/api/v1/orgs/acme/types/{ty}/records/{t1}"), &tok).await;
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        h["diff"]["fields"],
        json!([{"field": "title", "before": "\"Alpha launch\"", "after": "\"Alpha launch v2\""}])
    );
    let v1 = site.json(&format!("/api/v1/orgs/acme/types/{ty}/records/{t1}?v=1"), &tok).await;
    assert_eq!(v1["content"]["title"], "Alpha launch");

    // Recovery: the deleted record, by text and date range.
    let d = site.json("/api/v1/orgs/acme/deleted?q=secret", &tok).await;
    let gone = &d["records"].as_array().unwrap()[0];
    assert_eq!(gone["source_id"], "t2");
    assert_eq!(gone["content"]["data"]["title"], "Beta secret plan");
    let none = site.json("/api/v1/orgs/acme/deleted?until=2000-01-01", &tok).await;
    assert!(none["records"].as_array().unwrap().is_empty());
    let bad_date = site.get("/api/v1/orgs/acme/deleted?since=yesterday", &tok).await;
    assert_eq!(bad_date.0, StatusCode::BAD_REQUEST, "{}", bad_date.1);
    let t2 = gone["sid"].as_str().unwrap();

    // Logs and overview.
    let logs = site.json("/api/v1/orgs/acme/logs", &tok).await;
    assert_eq!(logs["cycles"].as_array().unwrap().len(), 2);
    assert!(site.json("/api/v1/orgs/acme/logs?result=error", &tok).await["cycles"].as_array().unwrap().is_empty());
    let o = site.json("/api/v1/orgs/acme/overview", &tok).await;
    assert_eq!(o["sources"][0]["name"], "export");
    assert_eq!(o["sources"][0]["last_backup"]["result"], "ok");
    assert_eq!(o["sources"][0]["types"][0]["live"], 2);

    // A restore: a token cannot; a session must carry CSRF and prove it is the user.
    let restore = format!("/api/v1/orgs/acme/types/{ty}/records/{t2}/restore");
    let (s, e) = site.post_json(&restore, &tok, None, json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("API tokens cannot restore"));
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let me = site.json("/api/v1/me", &Auth::Cookie(&cookie)).await;
    let csrf = me["csrf_token"].as_str().unwrap().to_string();
    let (s, _) = site.post_json(&restore, &Auth::Cookie(&cookie), None, json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token: refused");
    let (s, _) =
        site.post_json(&restore, &Auth::Cookie(&cookie), Some("0badc0de"), json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a wrong CSRF token: refused");
    let (s, e) =
        site.post_json(&restore, &Auth::Cookie(&cookie), Some(&csrf), json!({"password": "not it at all"})).await;
    assert_eq!((s, e["error"]["message"].as_str()), (StatusCode::FORBIDDEN, Some("wrong password")));
    let (s, e) = site.post_json(&restore, &Auth::Cookie(&cookie), Some(&csrf), json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Verified: the engine's restore runs, and says plainly why this source cannot take it.
    let (s, e) = site.post_json(&restore, &Auth::Cookie(&cookie), Some(&csrf), json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("cannot create records"), "{e}");

    // The audit log has the sign-in and the refused restore.
    let a = site.json("/api/v1/orgs/acme/audit", &tok).await;
    let actions: Vec<&str> = a["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in ["sign-in", "restore-failed", "token-create"] {
        assert!(actions.contains(&want), "{actions:?}");
    }

    // Every page renders for the admin, with the day's data.
    let c = Auth::Cookie(&cookie);
    for (p, want) in [
        ("/orgs/acme".to_string(), "Last backup"),
        ("/orgs/acme/snapshots".into(), "tasks"),
        (format!("/orgs/acme/types/{ty}/cycles/{first}?q=beta"), "Beta secret plan"),
        (format!("/orgs/acme/types/{ty}/records/{t1}"), "Alpha launch v2"),
        ("/orgs/acme/recovery?q=secret".into(), "Restore as a copy"),
        ("/orgs/acme/logs".into(), "Cycle"),
        ("/orgs/acme/audit".into(), "sign-in"),
        ("/orgs/acme/archives".into(), "Archives"),
        ("/account".into(), "<svg"),
    ] {
        let (s, html) = site.get(&p, &c).await;
        assert_eq!(s, StatusCode::OK, "GET {p}");
        assert!(html.contains(want), "GET {p} lacks {want:?}");
        for secret in [ADMIN_PW, PASS, token.as_str(), cookie_value(&cookie).as_str()] {
            assert!(!html.contains(secret), "GET {p} shows a secret");
        }
    }
    // The page's form, with its CSRF token and the password, runs the same restore.
    let (_, html) = site.get("/orgs/acme/recovery?q=secret", &c).await;
    let form_csrf = csrf_in(&html);
    let r = site
        .http
        .post(site.url(&format!("/orgs/acme/types/{ty}/records/{t2}/restore")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", form_csrf.as_str()), ("version", "1"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Not restored: cannot restore"));

    // Sign-out ends the session in the catalog: the cookie no longer works.
    let r =
        site.http.post(site.url("/logout")).header(COOKIE, &cookie).form(&[("csrf", "wrong")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "sign-out needs the CSRF token too");
    let r = site
        .http
        .post(site.url("/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", form_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/login");
    let (s, _) = site.get("/api/v1/me", &c).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = site.http.get(site.url("/orgs/acme")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.headers()[LOCATION], "/login", "a page sends a signed-out visitor to sign in");

    // Secrets never reach the catalog in the clear.
    let bytes = common::catalog_bytes(&env).await;
    for secret in [ADMIN_PW, OTHER_PW, token.as_str(), cookie_value(&cookie).as_str()] {
        assert!(!common::contains(&bytes, secret), "the catalog holds a secret in the clear");
    }
}

async fn orgs_are_isolated(b: Backend) {
    let (env, token) = setup(b).await;
    let site = serve(&env).await;
    let acme = site.json("/api/v1/orgs/acme/snapshots", &Auth::Token(&token)).await;
    let tasks = acme_tasks(&acme);
    let (ty, cycle) = (tasks["id"].as_i64().unwrap(), tasks["days"][0]["cycle"].as_i64().unwrap());
    let recs = site.json(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records"), &Auth::Token(&token)).await;
    let sid = recs["records"][0]["sid"].as_str().unwrap().to_string();

    let other = site.session("admin@globex.test", OTHER_PW).await;
    let g = Auth::Cookie(&other);
    let gsnaps = site.json("/api/v1/orgs/globex/snapshots", &g).await;
    let gty = gsnaps["types"][0]["id"].as_i64().unwrap();
    // Acme's things, by acme's URLs or with acme's ids put into globex's URLs: all 404.
    for p in [
        "/api/v1/orgs/acme/overview".to_string(),
        "/api/v1/orgs/acme/snapshots".into(),
        format!("/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records"),
        format!("/api/v1/orgs/acme/types/{ty}/records/{sid}"),
        format!("/api/v1/orgs/globex/types/{ty}/cycles/{cycle}/records"),
        format!("/api/v1/orgs/globex/types/{ty}/records/{sid}"),
        format!("/api/v1/orgs/globex/types/{gty}/records/{sid}"),
        format!("/api/v1/orgs/globex/snapshots?type={ty}"),
        "/api/v1/orgs/acme/deleted".into(),
        "/api/v1/orgs/acme/logs".into(),
        "/api/v1/orgs/acme/audit".into(),
        "/api/v1/orgs/nosuch/overview".into(),
        "/orgs/acme".into(),
        format!("/orgs/acme/types/{ty}/records/{sid}"),
        format!("/orgs/globex/types/{ty}/cycles/{cycle}"),
    ] {
        let (s, body) = site.get(&p, &g).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "GET {p} as globex's admin: {body}");
        assert!(!body.contains("Alpha"), "GET {p} shows acme's content");
    }
    let (s, _) = site
        .post_json(
            &format!("/api/v1/orgs/acme/types/{ty}/records/{sid}/restore"),
            &g,
            None,
            json!({"password": OTHER_PW}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Acme's token is acme's only; globex's admin sees only globex.
    let (s, _) = site.get("/api/v1/orgs/globex/overview", &Auth::Token(&token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let orgs = site.json("/api/v1/orgs", &g).await;
    assert_eq!(orgs["orgs"], json!([{"sid": "globex", "name": "Globex", "timezone": "UTC"}]));
    // No credential, or a made-up one: 401 in JSON.
    for a in [Auth::None, Auth::Token("dbk_madeup"), Auth::Cookie("daybook_session=madeup")] {
        let (s, body) = site.get("/api/v1/orgs/acme/overview", &a).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["status"], 401);
    }
}

async fn sign_in_is_guarded(b: Backend) {
    let (env, _) = setup(b).await;
    let site = serve(&env).await;
    // The cookie: HttpOnly, SameSite; not Secure unless behind TLS.
    let r = site.sign_in("admin@acme.test", ADMIN_PW).await;
    let c = set_cookie(&r, "daybook_session").unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && !c.contains("Secure"), "{c}");
    // A sign-in form without its cookie's CSRF token is refused.
    let r = site
        .http
        .post(site.url("/login"))
        .form(&[("email", "admin@acme.test"), ("password", ADMIN_PW), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Five wrong passwords: the account is held, even with the right one, with Retry-After.
    for _ in 0..5 {
        assert_eq!(site.sign_in("admin@acme.test", "wrong password!").await.status(), StatusCode::FORBIDDEN);
    }
    let r = site.sign_in("admin@acme.test", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let minutes: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&minutes));
    assert!(set_cookie(&r, "daybook_session").is_none());
    assert!(r.text().await.unwrap().contains("too many failed attempts"));
    // The other account, from the same address, still signs in (the address's limit is higher).
    assert_eq!(site.sign_in("admin@globex.test", OTHER_PW).await.status(), StatusCode::SEE_OTHER);
    // A user that does not exist is told the same as a wrong password.
    let r = site.sign_in("nobody@acme.test", "whatever it is").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("wrong email or password"));
}

/// The overview shows each mirror's state and links a Drive target's folder; its times are
/// the org's.
async fn the_overview_links_the_drive_folder(b: Backend) {
    let (env, token) = setup(b).await;
    let cfg = env.path().join("daybook.toml");
    let drive = "\n[[orgs.mirrors]]\nname = \"drive\"\nkind = \"google\"\ncredentials = \"sa.json\"\nfolder_id = \"1AbC_d-9\"\n";
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "\n[[orgs]]\nsid = \"globex\"",
        &format!("{drive}\n[[orgs]]\nsid = \"globex\""),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let site = serve(&env).await;
    let o = site.json("/api/v1/orgs/acme/overview", &Auth::Token(&token)).await;
    let m = &o["mirrors"][0];
    assert_eq!(m["link"], "https://drive.google.com/drive/folders/1AbC_d-9", "{o}");
    assert!(m["mirrored_at"].is_null(), "never mirrored: {m}");
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    // Every answer says what it cost the server (what bench/web.sh measures).
    let r = Auth::Cookie(&cookie).apply(site.http.get(site.url("/orgs/acme"))).send().await.unwrap();
    let timing = r.headers()["server-timing"].to_str().unwrap().to_string();
    let ms: f64 = timing.strip_prefix("app;dur=").and_then(|v| v.parse().ok()).unwrap_or(-1.0);
    assert!(ms >= 0.0, "{timing}");
    let (s, html) = (r.status(), r.text().await.unwrap());
    assert_eq!(s, StatusCode::OK);
    // (The page escapes `/` in attributes as `&#x2f;`, which a browser reads as `/`.)
    let html = html.replace("&#x2f;", "/");
    assert!(html.contains("<a href=\"https://drive.google.com/drive/folders/1AbC_d-9\">drive</a>"), "{html}");
    assert!(html.contains("<td>never</td><td>not yet</td>"), "never mirrored, and not said to be ok: {html}");
}

/// Behind a proxy, the address limit counts the address the proxy saw (the last
/// X-Forwarded-For entry): a client writing its own entries before it is still held.
async fn the_address_limit_holds_behind_a_proxy(b: Backend) {
    let (env, _) = setup(b).await;
    let (listener, base) = bind().await;
    let mut cfg = (*load(&env, &base)).clone();
    cfg.web.trust_forwarded_for = true;
    cfg.web.failures_per_address = 3;
    let site = start(listener, base, Arc::new(cfg), web::WebState::default()).await;
    let from = |spoof: u32, real: &str| format!("10.0.0.{spoof}, {real}");
    for i in 0..3 {
        let r =
            site.sign_in_via(&format!("nobody{i}@acme.test"), "wrong password!", Some(&from(i, "203.0.113.7"))).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // A fourth try from the same client, whatever it writes first, and with the right password.
    let r = site.sign_in_via("admin@acme.test", ADMIN_PW, Some(&from(99, "203.0.113.7"))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "held by its address");
    assert!(r.text().await.unwrap().contains("too many failed attempts"));
    // Another client behind the same proxy is not.
    let r = site.sign_in_via("admin@acme.test", ADMIN_PW, Some("203.0.113.7, 198.51.100.20")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "another address signs in");
}

async fn totp_enrollment_and_restore_code(b: Backend) {
    let (env, _) = setup(b).await;
    let site = serve(&env).await;
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let c = Auth::Cookie(&cookie);
    let (_, html) = site.get("/account", &c).await;
    assert!(html.contains("<svg"), "a QR code to scan: {html}");
    let at = html.find("id=\"totp-secret\">").unwrap() + 17;
    let secret = html[at..at + html[at..].find('<').unwrap()].to_string();
    let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(bytes.to_vec()).with_account_name("x").build().unwrap();
    let csrf = csrf_in(&html);
    let enrolled_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let r = site
        .http
        .post(site.url("/account/totp"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("code", totp.generate(enrolled_at).to_string().as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("second factor is enrolled"));
    // Now a restore asks for the code, not the password.
    let me = site.json("/api/v1/me", &c).await;
    assert_eq!(me["second_factor"], true);
    let csrf = me["csrf_token"].as_str().unwrap();
    let d = site.json("/api/v1/orgs/acme/deleted", &c).await;
    let (ty, sid) = (d["records"][0]["type_id"].as_i64().unwrap(), d["records"][0]["sid"].as_str().unwrap());
    let url = format!("/api/v1/orgs/acme/types/{ty}/records/{sid}/restore");
    let (s, e) = site.post_json(&url, &c, Some(csrf), json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = site.post_json(&url, &c, Some(csrf), json!({"code": "000000"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The enrollment used the current code: it is not good again. The next step's code (one
    // step of clock skew is allowed) is, once.
    let (s, e) = site.post_json(&url, &c, Some(csrf), json!({"code": totp.generate(enrolled_at).to_string()})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let next = totp.generate(totp.next_step(enrolled_at)).to_string();
    let (s, e) = site.post_json(&url, &c, Some(csrf), json!({"code": next.as_str()})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "verified; the jsonl source refuses: {e}");
    let (s, e) = site.post_json(&url, &c, Some(csrf), json!({"code": next.as_str()})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a code accepted once is refused after: {e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("used already"), "{e}");
    // The secret is sealed in the catalog.
    assert!(!common::contains(&common::catalog_bytes(&env).await, &secret));
}

/// schemas/openapi.json documents exactly the API's routes, and each answers.
async fn openapi_is_true(b: Backend) {
    let (env, token) = setup(b).await;
    let site = serve(&env).await;
    let spec: Value = serde_json::from_str(include_str!("../schemas/openapi.json")).unwrap();
    let mut documented: Vec<String> = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", m.to_uppercase()));
        }
    }
    documented.sort();
    let mut served: Vec<String> = web::api::ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect();
    served.sort();
    assert_eq!(documented, served);
    // The bodies' schemas are those of the types the handlers use.
    let generated = web::openapi::document();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/api.schema.json");
    if std::env::var_os("DAYBOOK_BLESS").is_some() {
        std::fs::write(&file, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        committed == generated,
        "schemas/api.schema.json is not what the API's types give: rerun with DAYBOOK_BLESS=1 to rewrite it, \
         and look at the diff"
    );
    for name in spec["paths"].to_string().split("api.schema.json#/$defs/").skip(1) {
        let name = name.split('"').next().unwrap();
        assert!(generated["$defs"].get(name).is_some(), "openapi.json names {name}, which api.schema.json lacks");
    }
    // Each GET answers 200 with the ids of a real record.
    let snaps = site.json("/api/v1/orgs/acme/snapshots", &Auth::Token(&token)).await;
    let t = acme_tasks(&snaps);
    let (ty, cycle) = (t["id"].to_string(), t["days"][0]["cycle"].to_string());
    let recs = site.json(&format!("/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records"), &Auth::Token(&token)).await;
    let sid = recs["records"][0]["sid"].as_str().unwrap().to_string();
    // (The routes of one archive are answered in archives_api_and_isolation.)
    for (m, p) in web::api::ROUTES {
        let p = p.replace("{org}", "acme").replace("{ty}", &ty).replace("{cycle}", &cycle).replace("{sid}", &sid);
        if *m == "GET" && !p.contains("{id}") {
            let (s, body) = site.get(&p, &Auth::Token(&token)).await;
            assert_eq!(s, StatusCode::OK, "GET {p}: {body}");
        }
    }
}

impl Site {
    /// The archive once its build has ended (ready or failed), polled with a bounded deadline.
    async fn built(&self, id: i64, auth: &Auth<'_>) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let a = self.json(&format!("/api/v1/orgs/acme/archives/{id}"), auth).await;
            if a["status"] != "in_progress" {
                return a;
            }
            assert!(std::time::Instant::now() < deadline, "archive {id} still in progress after 60 s: {a}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn audit_actions(&self, auth: &Auth<'_>) -> Vec<String> {
        let a = self.json("/api/v1/orgs/acme/audit?limit=500", auth).await;
        a["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
    }
}

/// The Archives API: the price before the order, a build outside the request, the list's
/// columns, rename, download through a fresh link, delete after identity verification, the
/// audit log; and another org's admin gets 404 for each of them.
async fn archives_api_and_isolation(b: Backend) {
    let (env, token) = setup(b).await;
    let site = serve(&env).await;
    let tok = Auth::Token(&token);
    let q = site.json("/api/v1/orgs/acme/archives/quote", &tok).await;
    assert_eq!((q["versions"].as_u64(), q["history"].as_bool()), (Some(2), Some(false)), "two live tasks: {q}");
    let price = q["price"].as_f64().unwrap();
    assert!(price > 0.0 && q["price_text"].as_str().unwrap().ends_with(q["currency"].as_str().unwrap()));
    let h = site.json("/api/v1/orgs/acme/archives/quote?history=true", &tok).await;
    assert!(h["versions"].as_u64() > q["versions"].as_u64(), "with history, more versions: {h}");
    let (s, e) = site.get("/api/v1/orgs/acme/archives/quote?day=yesterday-ish", &tok).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // An order at a price below today's is refused, and nothing is recorded.
    let (s, e) = site
        .post_json("/api/v1/orgs/acme/archives", &tok, None, json!({"name": "Cheap", "accept_price": price / 2.0}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("the price is now"), "{e}");
    let (s, e) = site.post_json("/api/v1/orgs/acme/archives", &tok, None, json!({"name": "  "})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(site.json("/api/v1/orgs/acme/archives", &tok).await["archives"], json!([]));

    // Ordered by a person: they are the requester (emailed when it is ready).
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let c = Auth::Cookie(&cookie);
    let csrf = site.json("/api/v1/me", &c).await["csrf_token"].as_str().unwrap().to_string();
    let order = json!({"name": "Year end", "description": "for the auditors", "accept_price": price});
    let (s, _) = site.post_json("/api/v1/orgs/acme/archives", &c, None, order.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a session's order needs the CSRF header");
    let (s, o) = site.post_json("/api/v1/orgs/acme/archives", &c, Some(&csrf), order).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{o}");
    assert_eq!(o["job"], Value::Null, "built by this process, not a daemon's job");
    let id = o["archive"]["id"].as_i64().unwrap();
    let a = site.built(id, &c).await;
    assert_eq!(a["status"], "ready", "{a}");
    assert_eq!(a["requested_by"], "admin@acme.test");
    assert_eq!((a["versions"].as_i64(), a["name"].as_str()), (Some(2), Some("Year end")));

    let list = site.json("/api/v1/orgs/acme/archives", &tok).await;
    let row = &list["archives"][0];
    for col in ["name", "description", "status", "versions", "files", "file_size", "file_path", "date_created", "price"]
    {
        assert!(!row[col].is_null(), "the list's {col} column: {row}");
    }
    assert_eq!(row["file_path"], format!("/orgs/acme/archives/{id}/download?part=1"));
    let (_, page) = site.get("/orgs/acme/archives", &c).await;
    for col in ["Name", "Description", "Status", "Versions", "Files", "File Size", "File Path", "Date Created", "Price"]
    {
        assert!(page.contains(&format!(">{col}</th>")), "the page's {col} column");
    }
    assert!(
        page.contains("Year end")
            && page.contains("for the auditors")
            && page.contains(row["price_text"].as_str().unwrap())
    );

    let (s, r) = site
        .post_json(&format!("/api/v1/orgs/acme/archives/{id}/rename"), &tok, None, json!({"name": "FY close"}))
        .await;
    assert_eq!(
        (s, r["name"].as_str(), r["description"].as_str()),
        (StatusCode::OK, Some("FY close"), Some("for the auditors"))
    );

    // Download: a fresh signed link, which serves the zip.
    let download = format!("/api/v1/orgs/acme/archives/{id}/download");
    let r = tok.apply(site.http.get(site.url(&download))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let link = r.headers()[LOCATION].to_str().unwrap().to_string();
    answers_as_documented("get", &download, StatusCode::SEE_OTHER, &r.text().await.unwrap());
    assert!(link.starts_with(&site.url("/downloads/")), "{link}");
    let zip = site.http.get(&link).send().await.unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    let bytes = zip.bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, a["file_size"].as_i64().unwrap());
    assert!(bytes.starts_with(b"PK\x03\x04"), "a zip");
    assert_eq!(site.http.head(&link).send().await.unwrap().status(), StatusCode::OK);
    let rest = site.http.get(&link).header("range", "bytes=100-").send().await.unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    let (s, _) = site.get(&format!("/api/v1/orgs/acme/archives/{id}/download?part=2"), &tok).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "one part only");

    // Isolation: globex's admin, by acme's URLs or with acme's id in globex's, gets 404.
    let other = site.session("admin@globex.test", OTHER_PW).await;
    let g = Auth::Cookie(&other);
    let gcsrf = site.json("/api/v1/me", &g).await["csrf_token"].as_str().unwrap().to_string();
    for org in ["acme", "globex"] {
        for p in [
            format!("/api/v1/orgs/{org}/archives/{id}"),
            format!("/api/v1/orgs/{org}/archives/{id}/download"),
            format!("/orgs/{org}/archives/{id}"),
            format!("/orgs/{org}/archives/{id}/download"),
        ] {
            let (s, body) = site.get(&p, &g).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "GET {p} as globex's admin: {body}");
            assert!(!body.contains("FY close"));
        }
        for (p, body) in [
            (format!("/api/v1/orgs/{org}/archives/{id}/rename"), json!({"name": "mine"})),
            (format!("/api/v1/orgs/{org}/archives/{id}/delete"), json!({"password": OTHER_PW})),
        ] {
            let (s, e) = site.post_json(&p, &g, Some(&gcsrf), body).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "POST {p} as globex's admin: {e}");
        }
    }
    for p in ["/api/v1/orgs/acme/archives", "/api/v1/orgs/acme/archives/quote", "/orgs/acme/archives"] {
        assert_eq!(site.get(p, &g).await.0, StatusCode::NOT_FOUND, "{p}");
    }
    assert!(site.json("/api/v1/orgs/globex/archives", &g).await["archives"].as_array().unwrap().is_empty());

    // Delete: a token cannot (it is no person); a person re-enters the password.
    let del = format!("/api/v1/orgs/acme/archives/{id}/delete");
    let (s, e) = site.post_json(&del, &tok, None, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, e) = site.post_json(&del, &c, Some(&csrf), json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = site.post_json(&del, &c, Some(&csrf), json!({"password": "not my password"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(site.json(&format!("/api/v1/orgs/acme/archives/{id}"), &tok).await["status"], "ready");
    let (s, e) = site.post_json(&del, &c, Some(&csrf), json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(site.get(&format!("/api/v1/orgs/acme/archives/{id}"), &tok).await.0, StatusCode::NOT_FOUND);
    assert_eq!(site.http.get(&link).send().await.unwrap().status(), StatusCode::NOT_FOUND, "its link stops");

    let actions = site.audit_actions(&tok).await;
    // The link asked for, then the zip fetched through it (its HEAD and resumptions are not
    // counted again).
    for act in ["archive-create", "archive-download", "archive-link-used", "archive-delete"] {
        assert_eq!(actions.iter().filter(|a| *a == act).count(), 1, "{act} once in the audit log: {actions:?}");
    }
}

/// Under the daemon: an order is a queued `archive` job, built by a worker that takes the
/// build lease itself; a queued build is not taken for interrupted, a claimed one whose
/// builder died is. "Back up now" is refused within 5 minutes of the last backup, with the
/// reason, and queues a job otherwise; the overview shows the next scheduled run.
async fn daemon_builds_archives_and_backs_up_now(b: Backend) {
    use daybook::daemon::{queue::Queue, worker};
    let (env, token) = setup(b).await;
    let tok = Auth::Token(&token);
    let (listener, base) = bind().await;
    let cfg = load(&env, &base);
    let vault = Arc::new(daybook::vault::Vault::open(&cfg, PASS).await.unwrap());
    let catalog = daybook::vault::catalog::Catalog::connect(&cfg.vault.catalog, &cfg.base).await.unwrap();
    let mut handlers = worker::Handlers::standard();
    daybook::archive::job::register(&mut handlers);
    let shared = Arc::new(worker::Shared {
        queue: Queue::new(catalog.clone(), std::time::Duration::from_secs(30)),
        vault: vault.clone(),
        config: std::sync::RwLock::new(cfg.clone()),
        handlers,
        wake: Default::default(),
        reschedule: Default::default(),
        running: Default::default(),
    });
    let site = start(listener, base, cfg.clone(), daybook::daemon::web::web_state(shared.clone())).await;

    let price = site.json("/api/v1/orgs/acme/archives/quote", &tok).await["price"].clone();
    let (s, o) = site
        .post_json("/api/v1/orgs/acme/archives", &tok, None, json!({"name": "Queued", "accept_price": price}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{o}");
    let (id, job) = (o["archive"]["id"].as_i64().unwrap(), o["job"].as_i64().expect("a queued job"));
    assert_eq!(o["archive"]["status"], "in_progress");
    assert_eq!(catalog.job(job).await.unwrap().unwrap().state, "queued", "nothing ran inside the request");
    assert_eq!(daybook::archive::recover_interrupted(&vault).await.unwrap(), 0, "a queued build is not interrupted");
    let (stop, stop_rx) = tokio::sync::watch::channel(worker::Stop::Run);
    let w = tokio::spawn(worker::run(shared.clone(), stop_rx));
    let a = site.built(id, &tok).await;
    assert_eq!(a["status"], "ready", "{a}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while catalog.job(job).await.unwrap().unwrap().state != "done" {
        assert!(std::time::Instant::now() < deadline, "job {job} never ended");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(worker::Stop::Drain).unwrap();
    w.await.unwrap();
    // The daemon's /metrics counts the zip's bytes (its counters are the process's: at least).
    let (_, metrics) = site.get("/metrics", &Auth::None).await;
    let built: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("daybook_archive_bytes_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no archive bytes in /metrics: {metrics}"));
    assert!(built >= a["file_size"].as_u64().unwrap() && built > 0, "{built} bytes counted for {a}");

    // A daemon claims the next build's job and dies before building: no lease, not queued.
    let (_, o) = site.post_json("/api/v1/orgs/acme/archives", &tok, None, json!({"name": "Orphan"})).await;
    let id2 = o["archive"]["id"].as_i64().unwrap();
    let other = Queue::new(catalog.clone(), std::time::Duration::from_secs(30));
    assert_eq!(other.claim(&["acme"]).await.unwrap().map(|j| j.kind), Some("archive".to_string()));
    assert_eq!(daybook::archive::recover_interrupted(&vault).await.unwrap(), 1);
    let a = site.json(&format!("/api/v1/orgs/acme/archives/{id2}"), &tok).await;
    assert_eq!(a["status"], "failed");
    assert!(a["error"].as_str().unwrap().contains("interrupted"), "{a}");
    // The list pages by cursor, newest first.
    let first = site.json("/api/v1/orgs/acme/archives?limit=1", &tok).await;
    assert_eq!(first["archives"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["archives"][0]["id"], id2);
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let second = site.json(&format!("/api/v1/orgs/acme/archives?limit=1&cursor={cursor}"), &tok).await;
    assert_eq!((second["archives"][0]["id"].as_i64(), &second["next_cursor"]), (Some(id), &Value::Null), "{second}");
    let (s, e) = site.get("/api/v1/orgs/acme/archives?cursor=zz", &tok).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // Back up now: refused within 5 minutes of the last backup, with the reason.
    let ov = site.json("/api/v1/orgs/acme/overview", &tok).await;
    assert_eq!(ov["can_back_up_now"], true);
    let next = chrono::DateTime::parse_from_rfc3339(ov["next_run"]["utc"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now(), "the next run lies ahead: {ov}");
    let (s, e) = site.post_json("/api/v1/orgs/acme/backup-now", &tok, None, json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("less than 5 minutes ago"), "{e}");
    // Ten minutes later it is queued, once.
    sqlx::any::install_default_drivers();
    let url = if env.catalog.starts_with("sqlite:") {
        format!("sqlite://{}", env.path().join("vault/catalog.db").display())
    } else {
        env.catalog.clone()
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let earlier =
        (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query("UPDATE snapshots SET taken_at = $1").bind(&earlier).execute(&pool).await.unwrap();
    pool.close().await;
    let (s, q) = site.post_json("/api/v1/orgs/acme/backup-now", &tok, None, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    let bj = q["jobs"][0].as_i64().unwrap();
    let j = catalog.job(bj).await.unwrap().unwrap();
    assert_eq!((j.kind.as_str(), j.org.as_deref(), j.state.as_str()), ("backup", Some("acme"), "queued"));
    let (s, e) = site.post_json("/api/v1/orgs/acme/backup-now", &tok, None, json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e["error"]["message"].as_str().unwrap().contains("already queued"), "{e}");
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let (_, html) = site.get("/orgs/acme", &Auth::Cookie(&cookie)).await;
    assert!(html.contains("Next scheduled backup") && html.contains("Back up now"));
    // The page's button, refused: the overview again, the reason beside the button.
    let r = site
        .http
        .post(site.url("/orgs/acme/backup-now"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf_in(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>") && html.contains("Not backed up now:"), "{html}");
    assert!(html.contains("already queued"), "{html}");

    // Logs: the daemon's jobs, filtered by result and paged, each with its readable log.
    let jobs = site.json("/api/v1/orgs/acme/jobs", &tok).await;
    let listed: Vec<i64> = jobs["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, vec![bj, job + 1, job], "newest first: {jobs}");
    assert_eq!((jobs["jobs"][2]["kind"].as_str(), jobs["jobs"][2]["result"].as_str()), (Some("archive"), Some("ok")));
    assert!(jobs["jobs"][2]["seconds"].as_i64().is_some(), "{jobs}");
    let queued = site.json("/api/v1/orgs/acme/jobs?result=queued", &tok).await;
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 1, "{queued}");
    assert_eq!(queued["jobs"][0]["id"], bj);
    let first = site.json("/api/v1/orgs/acme/jobs?limit=2", &tok).await;
    let cursor = first["next_cursor"].as_str().expect("a next page").to_string();
    let rest = site.json(&format!("/api/v1/orgs/acme/jobs?limit=2&cursor={cursor}"), &tok).await;
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!((rest["jobs"][0]["id"].as_i64(), &rest["next_cursor"]), (Some(job), &Value::Null));
    let one = site.json(&format!("/api/v1/orgs/acme/jobs/{job}"), &tok).await;
    let lines: Vec<&str> = one["lines"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert!(lines.len() >= 2 && lines[0].starts_with("started on "), "{one}");
    let (_, html) = site.get("/orgs/acme/logs", &Auth::Cookie(&cookie)).await;
    assert!(html.replace("&#x2f;", "/").contains(&format!("<a href=\"/orgs/acme/jobs/{job}\">{job}</a>")), "{html}");
    let (s, html) = site.get(&format!("/orgs/acme/jobs/{job}"), &Auth::Cookie(&cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&format!("Job {job}: archive")) && html.contains(lines[0]), "{html}");
    // Another org's admin finds none of them, by acme's URLs or its own.
    let other = site.session("admin@globex.test", OTHER_PW).await;
    for p in [
        format!("/api/v1/orgs/acme/jobs/{job}"),
        format!("/api/v1/orgs/globex/jobs/{job}"),
        format!("/orgs/globex/jobs/{job}"),
        "/api/v1/orgs/acme/jobs".into(),
    ] {
        let (s, body) = site.get(&p, &Auth::Cookie(&other)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "GET {p} as globex's admin: {body}");
    }
    assert_eq!(site.json("/api/v1/orgs/globex/jobs", &Auth::Cookie(&other)).await["jobs"], json!([]));
}

/// Accounts as an operator manages them from the CLI: an operator sees every org; a new
/// password or a removal ends the user's sessions; a session ends after its idle time; behind
/// TLS the session cookie is `Secure`.
async fn accounts_are_managed_from_the_cli(b: Backend) {
    let (env, _) = setup(b).await;
    let with_password = |args: &[&str], pw: &str| {
        let o = env.cmd(args).env("DAYBOOK_USER_PASSWORD", pw).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (ok, e) = with_password(&["user", "add", "--email", "ops@host.test", "--role", "operator"], "operator pass 3");
    assert!(ok, "{e}");
    let (ok, e) = with_password(
        &["user", "add", "--org", "acme", "--email", "o2@host.test", "--role", "operator"],
        "x pass 5555",
    );
    assert!(!ok && e.contains("leave out --org"), "{e}");
    let users: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    let ops = users.as_array().unwrap().iter().find(|u| u["email"] == "ops@host.test").cloned().unwrap();
    assert_eq!((ops["role"].as_str(), &ops["org"]), (Some("operator"), &Value::Null), "{users}");

    let site = serve(&env).await;
    let op = site.session("ops@host.test", "operator pass 3").await;
    let orgs = site.json("/api/v1/orgs", &Auth::Cookie(&op)).await;
    let sids: Vec<&str> = orgs["orgs"].as_array().unwrap().iter().map(|o| o["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, ["acme", "globex"]);
    for org in ["acme", "globex"] {
        site.json(&format!("/api/v1/orgs/{org}/snapshots"), &Auth::Cookie(&op)).await;
    }

    // A new password ends the user's sessions; the old one no longer signs in.
    let admin = site.session("admin@acme.test", ADMIN_PW).await;
    site.json("/api/v1/me", &Auth::Cookie(&admin)).await;
    let (ok, e) = with_password(&["user", "reset-password", "--email", "admin@acme.test"], "a new acme pass 4");
    assert!(ok, "{e}");
    assert_eq!(site.get("/api/v1/me", &Auth::Cookie(&admin)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(site.sign_in("admin@acme.test", ADMIN_PW).await.status(), StatusCode::FORBIDDEN);
    let admin = site.session("admin@acme.test", "a new acme pass 4").await;
    site.json("/api/v1/me", &Auth::Cookie(&admin)).await;

    // A session last seen longer ago than web.idle_minutes (60) has ended, and is gone.
    let cfg = load(&env, &site.base);
    let catalog = daybook::vault::catalog::Catalog::connect(&cfg.vault.catalog, &cfg.base).await.unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(admin.strip_prefix("daybook_session=").unwrap()));
    let idle =
        (chrono::Utc::now() - chrono::Duration::minutes(61)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    catalog.touch_session(&hash, &idle).await.unwrap();
    let (s, e) = site.get("/api/v1/me", &Auth::Cookie(&admin)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    assert!(catalog.session(&hash).await.unwrap().is_none(), "an ended session is deleted");

    // A removed user's sessions end, and they cannot sign in.
    let g = site.session("admin@globex.test", OTHER_PW).await;
    env.ok(&["user", "remove", "--email", "admin@globex.test"]);
    assert_eq!(site.get("/api/v1/orgs/globex/overview", &Auth::Cookie(&g)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(site.sign_in("admin@globex.test", OTHER_PW).await.status(), StatusCode::FORBIDDEN);
    let users: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert!(!users.to_string().contains("admin@globex.test"), "{users}");

    // Behind TLS (web.behind_tls), the cookie is Secure.
    let (listener, base) = bind().await;
    let mut tls = (*load(&env, &base)).clone();
    tls.web.behind_tls = true;
    let site = start(listener, base, Arc::new(tls), web::WebState::default()).await;
    let r = site.sign_in("ops@host.test", "operator pass 3").await;
    let c = set_cookie(&r, "daybook_session").expect("signed in");
    assert!(c.ends_with("; Secure") && c.contains("HttpOnly"), "{c}");
}

/// What axum refuses by itself (a method a route does not take, an id that is not a number,
/// an address that names nothing, a query that does not parse) is answered like the rest:
/// JSON under /api/, a page elsewhere, saying what to fix.
async fn refusals_are_json_or_a_page(b: Backend) {
    let (env, token) = setup(b).await;
    let site = serve(&env).await;
    let tok = Auth::Token(&token);
    let r = tok.apply(site.http.get(site.url("/api/v1/orgs/acme/backup-now"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["status"], 405);
    assert_eq!(e["error"]["message"], "GET /api/v1/orgs/acme/backup-now: this address takes POST");
    for (p, status, says) in [
        ("/api/v1/orgs/acme/archives/first", StatusCode::BAD_REQUEST, "first"),
        ("/api/v1/orgs/acme/types/x/cycles/1/records", StatusCode::BAD_REQUEST, "x"),
        ("/api/v1/orgs/acme/nothing-here", StatusCode::NOT_FOUND, "not found"),
        ("/api/v2/orgs", StatusCode::NOT_FOUND, "not found"),
    ] {
        let (s, body) = site.get(p, &tok).await;
        assert_eq!(s, status, "GET {p}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("GET {p}: not JSON: {body}"));
        assert_eq!(e["error"]["status"], status.as_u16());
        assert!(e["error"]["message"].as_str().unwrap().contains(says), "GET {p}: {e}");
    }
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let c = Auth::Cookie(&cookie);
    for (p, status) in [
        ("/orgs/acme/archives/first", StatusCode::BAD_REQUEST),
        ("/orgs/acme/logs?jobs_cursor=1&source=a&source=b", StatusCode::BAD_REQUEST),
        ("/orgs/acme/nothing-here", StatusCode::NOT_FOUND),
    ] {
        let r = c.apply(site.http.get(site.url(p))).send().await.unwrap();
        assert_eq!(r.status(), status, "GET {p}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "GET {p}");
        let html = r.text().await.unwrap();
        assert!(html.contains("<h1>") && html.contains("Back to the start"), "GET {p}: the error page: {html}");
    }
}

/// A Trello card deleted at the app comes back through the API, as a copy with the same
/// content; the answer carries the new id, and the admin is emailed it.
/// An org whose Trello card "Launch the rocket" (with a description, a due date and a label)
/// was backed up, then deleted at the app and found gone by a second backup; an admin of it.
/// Returns the env, the local Trello, the card's id and its content, and the SMTP server.
async fn a_deleted_card(b: Backend) -> (Env, fake_trello::Fake, String, Value, common::smtp::Smtp) {
    let f = fake_trello::Fake::start();
    let (card, old) = f.with(|a| {
        let ws = a.workspace("Product");
        let board = a.board("Roadmap", Some(&ws));
        let list = a.list(&board, "To do");
        let urgent = a.label(&board, "urgent", "red");
        let card = a.card(&list, "Launch the rocket");
        a.edit_card(&card, |c| {
            c["desc"] = "Count down from **ten**".into();
            c["due"] = "2026-03-01T12:00:00.000Z".into();
            c["idLabels"] = json!([urgent]);
        });
        (card.clone(), a.cards.iter().find(|c| c["id"] == card.as_str()).unwrap().clone())
    });
    let smtp = common::smtp::start();
    let env = Env::new(b).await;
    for (name, value) in [("key", fake_trello::KEY), ("token", fake_trello::TOKEN)] {
        std::fs::write(env.path().join(name), value).unwrap();
    }
    env.write_config(&format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\n\n[[orgs.sources]]\nname = \"trello\"\nkind = \"trello\"\n\
         base_url = \"{}\"\nkey_file = \"{}\"\ntoken_file = \"{}\"\nrequests_per_minute = 30000\n\n{}",
        f.base,
        env.path().join("key").display(),
        env.path().join("token").display(),
        smtp.config()
    ));
    env.ok(&["init"]);
    env.ok(&["backup"]);
    f.with(|a| a.delete_card(&card));
    env.ok(&["backup"]);
    let o = env
        .cmd(&["user", "add", "--org", "acme", "--email", "admin@acme.test"])
        .env("DAYBOOK_USER_PASSWORD", ADMIN_PW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (env, f, card, old, smtp)
}

async fn a_deleted_card_comes_back_through_the_api(b: Backend) {
    let (env, f, card, old, smtp) = a_deleted_card(b).await;
    let site = serve(&env).await;
    let cookie = site.session("admin@acme.test", ADMIN_PW).await;
    let c = Auth::Cookie(&cookie);
    let csrf = site.json("/api/v1/me", &c).await["csrf_token"].as_str().unwrap().to_string();
    let d = site.json("/api/v1/orgs/acme/deleted?q=rocket", &c).await;
    let gone = &d["records"][0];
    assert_eq!(gone["source_id"], card.as_str(), "{d}");
    let (ty, sid) = (gone["type_id"].as_i64().unwrap(), gone["sid"].as_str().unwrap().to_string());
    let url = format!("/api/v1/orgs/acme/types/{ty}/records/{sid}/restore");
    let (s, done) = site.post_json(&url, &c, Some(&csrf), json!({"password": ADMIN_PW})).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let new_id = done["new_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, card);
    f.with(|a| {
        let new = a.cards.iter().find(|c| c["id"] == new_id.as_str()).expect("the copy exists at the app");
        for k in ["name", "desc", "due", "idList", "idLabels"] {
            assert_eq!(new[k], old[k], "{k}");
        }
    });
    assert_eq!(done["emailed"], "admin@acme.test", "{done}");
    let mail = smtp.wait_for(1, 30);
    assert!(mail[0].contains("To: admin@acme.test") && mail[0].contains(&new_id), "{}", mail[0]);
    // Recovery shows the copy made, and the audit log who made it.
    let d = site.json("/api/v1/orgs/acme/deleted?q=rocket", &c).await;
    assert_eq!(d["records"][0]["restored_as"], json!([new_id]), "{d}");
    let audit = site.json("/api/v1/orgs/acme/audit?limit=500", &c).await;
    let entry = audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "restore").cloned();
    let entry = entry.unwrap_or_else(|| panic!("the restore is in the audit log: {audit}"));
    assert_eq!(entry["actor"], "admin@acme.test");
    assert!(entry["detail"].as_str().unwrap().contains(&new_id), "{entry}");
}

both_backends!(
    api_pages_and_restore,
    orgs_are_isolated,
    sign_in_is_guarded,
    the_address_limit_holds_behind_a_proxy,
    the_overview_links_the_drive_folder,
    totp_enrollment_and_restore_code,
    openapi_is_true,
    archives_api_and_isolation,
    daemon_builds_archives_and_backs_up_now,
    refusals_are_json_or_a_page,
    accounts_are_managed_from_the_cli,
    a_deleted_card_comes_back_through_the_api
);

/// chromedriver on a free port, and a WebDriver session of headless Chromium.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: std::path::PathBuf,
    /// Where Chromium saves downloads.
    downloads: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        // Ready when /status says so; a bound on failure, not a timing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "chromedriver did not start within 30 s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let downloads = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,1300"],
            "prefs": {"download.default_directory": downloads.path(), "download.prompt_for_download": false}
        }}}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        println!("screenshots in {}", shots.display());
        Browser { driver, base, session, http, shots, downloads }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rq = self.http.request(method, url);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let v: Value = rq.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, using: &str, value: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({"using": using, "value": value}))).await;
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {value:?}: {v}"))
            .to_string()
    }

    async fn css(&self, sel: &str) -> String {
        self.find("css selector", sel).await
    }

    async fn type_in(&self, sel: &str, text: &str) {
        let e = self.css(sel).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, e: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
    }

    async fn text(&self, sel: &str) -> String {
        let e = self.css(sel).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None).await.as_str().unwrap().to_string()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap().to_string()
    }

    /// The page's source once it holds `text` (a form's answer arrives after the click returns).
    async fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let s = self.source().await;
            if s.contains(text) {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "the page never showed {text:?}: {s}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap().to_string()
    }

    /// A downloaded file once Chromium has finished writing it (no `.crdownload` left).
    async fn downloaded(&self, suffix: &str) -> std::path::PathBuf {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let names: Vec<std::path::PathBuf> =
                std::fs::read_dir(self.downloads.path()).unwrap().flatten().map(|e| e.path()).collect();
            let partial = names.iter().any(|p| p.to_string_lossy().ends_with(".crdownload"));
            if let Some(p) = names.iter().find(|p| p.to_string_lossy().ends_with(suffix)).filter(|_| !partial) {
                return p.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no {suffix} downloaded within 30 s: {names:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn shot(&self, name: &str) {
        use base64::Engine;
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session is what makes chromedriver quit Chromium: killed, it would leave
        // the browser running after the tests. (Drop cannot await: plain HTTP/1.1 by hand.)
        use std::io::{Read, Write};
        if let Ok(mut c) = std::net::TcpStream::connect(self.base.trim_start_matches("http://")) {
            let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.session,
                self.base.trim_start_matches("http://")
            );
            if c.write_all(req.as_bytes()).is_ok() {
                let _ = c.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Signs in as acme's admin and enrols a second factor (with screenshots 1 to 3 if `shots`);
/// returns it and when it was enrolled: a code is good once, so the next to use is the next
/// step's.
async fn sign_in_with_a_second_factor(b: &Browser, site: &Site, shots: bool) -> (totp_rs::Totp, u64) {
    b.go(&site.url("/login")).await;
    if shots {
        b.shot("1-sign-in").await;
    }
    b.type_in("#email", "admin@acme.test").await;
    b.type_in("#password", ADMIN_PW).await;
    b.click(&b.css("#signin").await).await;
    b.wait_for("Last backup").await;
    assert!(b.url().await.ends_with("/orgs/acme"), "signed in, on the overview");
    if shots {
        b.shot("2-overview").await;
    }
    b.go(&site.url("/account")).await;
    let secret = b.text("#totp-secret").await;
    if shots {
        b.shot("3-account-enroll").await;
    }
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap().to_vec())
        .with_account_name("x")
        .build()
        .unwrap();
    let enrolled_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    b.type_in("#code", &totp.generate(enrolled_at).to_string()).await;
    b.click(&b.css("form[action='/account/totp'] button").await).await;
    b.wait_for("second factor is enrolled").await;
    (totp, enrolled_at)
}

/// In the browser, a card deleted at the app is found in Recovery and restored as a copy
/// after the second factor: the page says the copy's id, and the copy is at the app with the
/// card's content.
#[tokio::test(flavor = "multi_thread")]
async fn browser_restores_a_deleted_card_after_the_second_factor() {
    let (env, f, card, old, _smtp) = a_deleted_card(Backend::Sqlite).await;
    let site = serve(&env).await;
    let b = Browser::start().await;
    let (totp, enrolled_at) = sign_in_with_a_second_factor(&b, &site, false).await;
    b.go(&site.url("/orgs/acme/recovery")).await;
    b.type_in("#q", "rocket").await;
    b.click(&b.css("#search").await).await;
    b.wait_for("Launch the rocket").await;
    b.shot("13-recovery-card").await;
    b.type_in("article.deleted input[name=code]", &totp.generate(totp.next_step(enrolled_at)).to_string()).await;
    b.click(&b.css("article.deleted button").await).await;
    b.wait_for("as a new record").await;
    b.shot("14-restored").await;
    let new_id = b.text("#new-id").await;
    assert_ne!(new_id, card);
    f.with(|a| {
        let new = a.cards.iter().find(|c| c["id"] == new_id.as_str()).expect("the copy exists at the app");
        for k in ["name", "desc", "due", "idList", "idLabels"] {
            assert_eq!(new[k], old[k], "{k}");
        }
    });
    // Recovery now says it was restored, and as what.
    b.go(&site.url("/orgs/acme/recovery?q=rocket")).await;
    let page = b.wait_for("Restored before").await;
    assert!(page.contains(&new_id), "the copy's id in Recovery");
}

/// Moves the first backup to yesterday (local time of the org), so the dashboard has two days.
async fn first_cycle_yesterday(env: &Env) {
    let y = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", env.path().join("vault/catalog.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for q in [
        "UPDATE cycles SET started_at = $1, finished_at = $1 WHERE id = 1",
        "UPDATE snapshots SET taken_at = $1 WHERE cycle_id = 1",
        "UPDATE cycle_log SET at = $1 WHERE cycle_id = 1",
    ] {
        sqlx::query(q).bind(&y).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// In headless Chromium: sign in, enroll the second factor, open yesterday's snapshot and find
/// a record there, find the deleted record, restore it with the code, order an archive of
/// yesterday after seeing its price and download it, sign out; a screenshot of each page.
#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_snapshot_recovery_restore_sign_out() {
    let (env, _) = setup(Backend::Sqlite).await;
    first_cycle_yesterday(&env).await;
    let site = serve(&env).await;
    let b = Browser::start().await;
    let (totp, enrolled_at) = sign_in_with_a_second_factor(&b, &site, true).await;

    let tz: chrono_tz::Tz = "Europe/Dublin".parse().unwrap();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).with_timezone(&tz).format("%Y-%m-%d").to_string();
    b.go(&site.url("/orgs/acme/snapshots")).await;
    b.shot("4-snapshots").await;
    b.click(&b.find("link text", &yesterday).await).await;
    // Yesterday's snapshot still has the record deleted today.
    let page = b.wait_for("Beta secret plan").await;
    assert!(page.contains("3 records"));
    b.shot("5-snapshot-yesterday").await;
    b.click(&b.find("link text", "t1").await).await;
    b.wait_for("Alpha launch").await;
    b.shot("6-record-history").await;

    b.go(&site.url("/orgs/acme/recovery")).await;
    b.type_in("#q", "secret").await;
    b.click(&b.css("#search").await).await;
    b.wait_for("Beta secret plan").await;
    b.shot("7-recovery").await;
    // The enrollment used the current code; a code is good once, so the next step's.
    b.type_in("article.deleted input[name=code]", &totp.generate(totp.next_step(enrolled_at)).to_string()).await;
    b.click(&b.css("article.deleted button").await).await;
    // Verified by the code; the engine's restore answers (a jsonl source cannot create records).
    b.wait_for("Not restored: cannot restore").await;
    b.shot("8-restore").await;

    // Order an archive after seeing its price, and download it.
    b.go(&site.url("/orgs/acme/archives")).await;
    b.type_in("#name", "Board copy").await;
    b.type_in("#description", "yesterday, for the board").await;
    b.click(&b.find("css selector", &format!("#day option[value='{yesterday}']")).await).await;
    b.click(&b.css("#see-price").await).await;
    let quote = b.wait_for("Building it costs").await;
    let price = b.text("#price").await;
    assert!(quote.contains("3 versions"), "yesterday's three tasks");
    b.shot("9-archive-price").await;
    b.click(&b.css("#order").await).await;
    // The detail page reloads itself until the build is done.
    b.wait_for("id=\"status\">ready").await;
    assert!(b.source().await.contains(&price), "charged what was shown");
    b.shot("10-archive-ready").await;
    b.click(&b.css("a.download").await).await;
    let zip = b.downloaded(".zip").await;
    let bytes = std::fs::read(&zip).unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "{} is a zip", zip.display());
    let name = zip.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("Archive_Acme"), "the Content-Disposition name: {name}");
    b.go(&site.url("/orgs/acme/archives")).await;
    let list = b.wait_for("Board copy").await;
    assert!(list.contains("yesterday, for the board") && list.contains(&name));
    b.shot("11-archives").await;
    b.go(&site.url("/orgs/acme/audit")).await;
    let audit = b.wait_for("archive-download").await;
    assert!(audit.contains("archive-create"));

    b.go(&site.url("/orgs/acme/logs")).await;
    b.shot("12-logs").await;
    b.click(&b.css("header form button").await).await;
    b.wait_for("id=\"signin\"").await;
    assert!(b.url().await.ends_with("/login"), "signed out");
    b.go(&site.url("/orgs/acme")).await;
    assert!(b.url().await.ends_with("/login"), "the old session is gone");
}
