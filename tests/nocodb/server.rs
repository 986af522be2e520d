//! A real NocoDB for the tests: installed once by tests/nocodb/install.sh (cached under
//! ~/.cache/daybook/nocodb), started once per test binary on a free port of 127.0.0.1 with
//! an empty metadata database, and stopped when the test binary ends (it watches its stdin).
//! Each test works in a base of its own.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

pub struct Server {
    pub url: String,
    /// An API token (`xc-token`), as a user would create one for daybook.
    pub token: String,
    /// Its working folder: uploads are under nc/uploads.
    pub work: std::path::PathBuf,
    _child: Child,
    _stdin: ChildStdin,
}

pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    // Its own thread and runtime: each test has a runtime of its own, which ends with it.
    S.get_or_init(|| std::thread::spawn(start).join().expect("starting NocoDB"))
}

fn start() -> Server {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nocodb");
    let out = Command::new("bash")
        .arg(format!("{here}/install.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running tests/nocodb/install.sh");
    assert!(out.status.success(), "tests/nocodb/install.sh failed (it needs node, npm and the npm registry)");
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let work = std::env::temp_dir().join(format!("daybook-nocodb-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut child = Command::new("node")
        .arg(format!("{dir}/launch.js"))
        .current_dir(&work)
        .env("PORT", port.to_string())
        .env("NOCODB_EPHEMERAL", "1")
        // West of UTC: were "changed since" read in local time, changes would be missed.
        .env("TZ", "America/Los_Angeles")
        .env("NODE_PATH", format!("{dir}/node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting node");
    let stdin = child.stdin.take().unwrap();
    // Its last line says it listens; until then, its routes are not all there.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("nocodb listening") => break,
            Some(_) => {}
            None => panic!("NocoDB exited before it listened (after {:?})", started.elapsed()),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let url = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let token = rt.block_on(async {
        let c = reqwest::Client::new();
        let signup = c
            .post(format!("{url}/api/v1/auth/user/signup"))
            .json(&json!({"email": "owner@example.com", "password": "daybook-Test-pass-1"}))
            .send()
            .await
            .unwrap();
        assert!(signup.status().is_success(), "NocoDB sign-up: {}", signup.status());
        let jwt = signup.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        let t = c
            .post(format!("{url}/api/v1/tokens"))
            .header("xc-auth", jwt)
            .json(&json!({"description": "daybook tests"}))
            .send()
            .await
            .unwrap();
        t.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    });
    Server { url, token, work, _child: child, _stdin: stdin }
}

/// A test's client to the NocoDB, using the API token.
pub struct Noco {
    pub url: String,
    pub token: String,
    c: reqwest::Client,
}

impl Noco {
    pub fn new() -> Noco {
        let s = server();
        Noco { url: s.url.clone(), token: s.token.clone(), c: reqwest::Client::new() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.send(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (reqwest::StatusCode, String) {
        // NocoDB's schema calls race each other on its own metadata database: the tests,
        // which share one server, make them one at a time.
        static META: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = match path.starts_with("api/v2/meta/") && method != reqwest::Method::GET {
            true => Some(META.lock().await),
            false => None,
        };
        let mut r = self.c.request(method, format!("{}/{path}", self.url)).header("xc-token", &self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    /// A base of its own for a test, with tables (a title and its fields as {title, uidt}
    /// objects, an ID key added): the base's id, and its tables' ids in that order.
    ///
    /// NocoDB now and then fails a table creation in a new base with 400 "Cannot read
    /// properties of undefined (reading 'id')" (seen under load, one table in hundreds). The
    /// failure can come after it stored the table and before it added it to the base's cached
    /// table list (`Model.insert`): every later try is then refused as a duplicate
    /// (`DUPLICATE_ALIAS`) while the listing never shows the table, and a table it did show
    /// could be half made. Clearing NocoDB's cache would show it, but it also voided the
    /// signed attachment links other tests were reading (seen here). So a base whose table
    /// creation failed is put away and made again, tables and all.
    pub async fn create_base_with(&self, title: &str, tables: &[(&str, Value)]) -> (String, Vec<String>) {
        let mut last = String::new();
        'base: for attempt in 1..=3u64 {
            let b = self
                .call(
                    reqwest::Method::POST,
                    "api/v2/meta/bases",
                    Some(json!({"title": title, "table_name": title.to_lowercase()})),
                )
                .await;
            let base = b["id"].as_str().unwrap().to_string();
            let mut ids = Vec::new();
            for (table, fields) in tables {
                match self.create_table(&base, table, fields).await {
                    Ok(id) => ids.push(id),
                    Err(why) => {
                        last = format!("table {table}: {why}");
                        self.discard_base(&base).await;
                        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
                        continue 'base;
                    }
                }
            }
            return (base, ids);
        }
        panic!("NocoDB could not make the base {title} with its tables (3 tries), last: {last}")
    }

    async fn create_table(&self, base: &str, title: &str, fields: &Value) -> Result<String, String> {
        let mut columns = vec![json!({"column_name": "id", "title": "Id", "uidt": "ID"})];
        for f in fields.as_array().unwrap() {
            let mut f = f.clone();
            f["column_name"] = json!(f["title"].as_str().unwrap().to_lowercase());
            columns.push(f);
        }
        let path = format!("api/v2/meta/bases/{base}/tables");
        let body = json!({"table_name": title.to_lowercase(), "title": title, "columns": columns});
        let (status, text) = self.send(reqwest::Method::POST, &path, Some(body)).await;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {text}"));
        }
        let t: Value = serde_json::from_str(&text).map_err(|e| format!("POST {path}: {e}: {text}"))?;
        t["id"].as_str().map(str::to_string).ok_or_else(|| format!("POST {path}: no id in {text}"))
    }

    /// Renames a base out of the way (Update Base: `PATCH /api/v2/meta/bases/{baseId}`), so that
    /// its title is free and no test reads it, then deletes it (Delete Base). A deleted base
    /// can still be listed for a while, under its last title: hence the rename first.
    async fn discard_base(&self, base: &str) {
        let path = format!("api/v2/meta/bases/{base}");
        self.call(reqwest::Method::PATCH, &path, Some(json!({"title": format!("discarded {base}")}))).await;
        self.send(reqwest::Method::DELETE, &path, None).await;
    }

    /// Renames a table (Update Table: `PATCH /api/v2/meta/tables/{tableId}`).
    pub async fn rename_table(&self, table: &str, title: &str) {
        self.call(
            reqwest::Method::PATCH,
            &format!("api/v2/meta/tables/{table}"),
            Some(json!({"title": title, "table_name": title.to_lowercase()})),
        )
        .await;
    }

    /// Inserts rows, 100 a request (NocoDB's most); returns their ids.
    pub async fn insert(&self, table: &str, rows: &[Value]) -> Vec<i64> {
        let mut ids = Vec::new();
        for chunk in rows.chunks(100) {
            let r = self
                .call(
                    reqwest::Method::POST,
                    &format!("api/v2/tables/{table}/records"),
                    Some(Value::from(chunk.to_vec())),
                )
                .await;
            ids.extend(r.as_array().unwrap().iter().map(|x| x["Id"].as_i64().unwrap()));
        }
        ids
    }

    pub async fn update(&self, table: &str, rows: Value) {
        self.call(reqwest::Method::PATCH, &format!("api/v2/tables/{table}/records"), Some(rows)).await;
    }

    pub async fn delete(&self, table: &str, ids: &[i64]) {
        let body: Vec<Value> = ids.iter().map(|i| json!({"Id": i})).collect();
        self.call(reqwest::Method::DELETE, &format!("api/v2/tables/{table}/records"), Some(Value::from(body))).await;
    }

    pub async fn row(&self, table: &str, id: i64) -> Value {
        self.call(reqwest::Method::GET, &format!("api/v2/tables/{table}/records/{id}"), None).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        let r = self.call(reqwest::Method::GET, &format!("api/v2/tables/{table}/records/count"), None).await;
        r["count"].as_i64().unwrap()
    }

    /// Uploads a file; returns the attachment value to put in a row.
    pub async fn upload(&self, name: &str, bytes: &[u8]) -> Value {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string());
        let form = reqwest::multipart::Form::new().part("files", part);
        let r = self
            .c
            .post(format!("{}/api/v2/storage/upload?path=noco/tests", self.url))
            .header("xc-token", &self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.json::<Value>().await.unwrap()[0].clone()
    }

    /// An attachment's bytes, through the link NocoDB signs for it.
    pub async fn download(&self, attachment: &Value) -> Vec<u8> {
        let link = attachment["signedPath"].as_str().expect("a signedPath");
        let r = self.c.get(format!("{}/{link}", self.url)).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap().to_vec()
    }

    /// Where NocoDB keeps an uploaded attachment on its disk.
    pub fn server_path(&self, attachment: &Value) -> std::path::PathBuf {
        let path = attachment["path"].as_str().unwrap().strip_prefix("download/").unwrap();
        server().work.join("nc/uploads").join(path)
    }

    /// A NocoDB configuration block for daybook, scoped to the given bases or tables.
    pub fn source(&self, name: &str, include: &[&str]) -> String {
        format!(
            "[[orgs.sources]]\nname = \"{name}\"\nkind = \"nocodb\"\nbase_url = \"{}\"\ninclude = {:?}\nrequests_per_minute = 12000\n",
            self.url, include
        )
    }
}

/// A pass-through proxy in front of the NocoDB, on a free port of its own: it forwards every
/// request as it is, except that the first listing of the bases (`GET /api/v2/meta/bases`)
/// after `delete_after_listing(base)` deletes that base after NocoDB answered and before
/// daybook reads the answer: a base deleted while daybook lists, at a moment known exactly.
pub struct Proxy {
    pub url: String,
    victim: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let victim = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let v = victim.clone();
        // Its own thread and runtime: the tests wait for daybook's processes on theirs.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let noco = std::sync::Arc::new(Noco::new());
                let app = axum::Router::new()
                    .fallback(move |req: axum::extract::Request| forward(req, noco.clone(), v.clone()));
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            })
        });
        Proxy { url, victim }
    }

    pub fn delete_after_listing(&self, base: &str) {
        *self.victim.lock().unwrap() = Some(base.to_string());
    }
}

async fn forward(
    req: axum::extract::Request,
    noco: std::sync::Arc<Noco>,
    victim: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut r = noco.c.request(parts.method.clone(), format!("{}{path}", noco.url)).body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            r = r.header(name, value);
        }
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.bytes().await.unwrap();
    if parts.method == reqwest::Method::GET && parts.uri.path() == "/api/v2/meta/bases" {
        let base = victim.lock().unwrap().take();
        if let Some(base) = base {
            noco.call(reqwest::Method::DELETE, &format!("api/v2/meta/bases/{base}"), None).await;
        }
    }
    let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = status;
    for name in [axum::http::header::CONTENT_TYPE, axum::http::header::CONTENT_DISPOSITION] {
        if let Some(v) = headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
