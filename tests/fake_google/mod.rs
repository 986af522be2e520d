//! A local Google that follows the public documentation of the OAuth 2.0 token endpoint for
//! service accounts (developers.google.com/identity/protocols/oauth2/service-account: a
//! JWT bearer assertion signed RS256, `iss`, `scope`, `aud` = the token URI, `exp` within an
//! hour), Drive v3 (files.list with `q` on appProperties and `trashed`, files.get, files.update,
//! multipart and resumable uploads under /upload and /resumable/upload with 256 KiB chunks,
//! errors as `{"error": {"code", "message", "errors": [{"domain", "reason"}]}}`, 403
//! storageQuotaExceeded for a service account writing outside a shared drive) and Sheets v4
//! (spreadsheets.get, batchUpdate with updateSheetProperties, addSheet, insertDimension,
//! deleteDimension and appendDimension applied all or nothing, values.batchGet and
//! values.batchUpdate with RAW or USER_ENTERED, grid limits, 10,000,000 cells a spreadsheet,
//! 50,000 characters a cell). Writes a minute per user are limited (429). Tests can script
//! answers (429, 500) for the next requests.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const FOLDER: &str = "application/vnd.google-apps.folder";
pub const SHEET: &str = "application/vnd.google-apps.spreadsheet";
pub const SA_EMAIL: &str = "mirror@daybook-test.iam.gserviceaccount.com";

#[derive(Debug, Clone, Default)]
pub struct DFile {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub parents: Vec<String>,
    pub props: HashMap<String, String>,
    pub trashed: bool,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Tab {
    pub id: i64,
    pub title: String,
    pub frozen: i64,
    /// rows × cols; `Value::Null` is an empty cell; a formula is `{"formula": text}`.
    pub cells: Vec<Vec<Value>>,
    pub cols: usize,
}

impl Tab {
    fn new(id: i64, title: &str, rows: usize, cols: usize) -> Tab {
        Tab { id, title: title.into(), frozen: 0, cells: vec![vec![Value::Null; cols]; rows], cols }
    }
    pub fn rows(&self) -> usize {
        self.cells.len()
    }
    /// A row's cells as text ("" for empty), trailing empties kept.
    pub fn row_text(&self, r: usize) -> Vec<String> {
        self.cells[r]
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Spreadsheet {
    pub tabs: Vec<Tab>,
    next_tab: i64,
}

impl Spreadsheet {
    pub fn cells(&self) -> usize {
        self.tabs.iter().map(|t| t.rows() * t.cols).sum()
    }
    pub fn tab(&self, title: &str) -> Option<&Tab> {
        self.tabs.iter().find(|t| t.title == title)
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub at: Instant,
    /// A request that writes (create, update, batchUpdate, upload chunks).
    pub write: bool,
}

pub struct App {
    pub public_key: rsa::RsaPublicKey,
    pub token_uri: String,
    pub tokens: Vec<String>,
    pub files: Vec<DFile>,
    pub sheets: HashMap<String, Spreadsheet>,
    pub root: String,
    /// The root folder is on a shared drive (else a service account has no storage).
    pub shared_drive: bool,
    pub max_cells: usize,
    pub writes_per_minute: usize,
    /// Answers for the next write requests, in order.
    pub script: VecDeque<(u16, Option<u64>)>,
    pub seen: Vec<Seen>,
    /// Cells written by values requests, and the valueInputOptions seen.
    pub cells_written: usize,
    pub input_options: Vec<String>,
    /// The largest resumable chunk received.
    pub largest_chunk: usize,
    sessions: HashMap<String, (Option<String>, Value, Vec<u8>, u64)>,
    next: u64,
}

#[derive(Clone)]
pub struct Fake {
    pub app: Arc<Mutex<App>>,
    pub url: String,
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn error(code: u16, reason: &str, message: &str) -> Response {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": code, "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}], "status": status}});
    (StatusCode::from_u16(code).unwrap(), [("content-type", "application/json; charset=UTF-8")], body.to_string())
        .into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], v.to_string()).into_response()
}

impl Fake {
    /// Starts the server on its own thread; `public_key` checks the service account's JWTs.
    pub fn start(public_key: rsa::RsaPublicKey) -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let root =
            DFile { id: "root-folder-1AbC".into(), name: "Backups".into(), mime: FOLDER.into(), ..Default::default() };
        let app = Arc::new(Mutex::new(App {
            public_key,
            token_uri: format!("{url}token"),
            tokens: Vec::new(),
            files: vec![root],
            sheets: HashMap::new(),
            root: "root-folder-1AbC".into(),
            shared_drive: true,
            max_cells: 10_000_000,
            writes_per_minute: 60,
            script: VecDeque::new(),
            seen: Vec::new(),
            cells_written: 0,
            input_options: Vec::new(),
            largest_chunk: 0,
            sessions: HashMap::new(),
            next: 1,
        }));
        let state = app.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let router = axum::Router::new()
                    .fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = state.clone();
                        async move { handle(&state, method, uri, headers, body) }
                    })
                    .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router).await.unwrap()
            })
        });
        Fake { app, url }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut App) -> T) -> T {
        f(&mut self.app.lock().unwrap())
    }
}

impl App {
    pub fn live(&self) -> impl Iterator<Item = &DFile> {
        self.files.iter().filter(|f| !f.trashed)
    }
    /// A live file by name under a parent.
    pub fn child(&self, parent: &str, name: &str) -> Option<&DFile> {
        self.live().find(|f| f.name == name && f.parents.iter().any(|p| p == parent))
    }
    /// Follows names from the root folder.
    pub fn at(&self, path: &[&str]) -> Option<&DFile> {
        let mut cur = self.root.clone();
        let mut found = None;
        for p in path {
            let f = self.child(&cur, p)?;
            cur = f.id.clone();
            found = Some(f);
        }
        found
    }
    pub fn sheet_at(&self, path: &[&str]) -> Option<&Spreadsheet> {
        self.sheets.get(&self.at(path)?.id)
    }
    pub fn writes(&self) -> usize {
        self.seen.iter().filter(|s| s.write && s.status < 300).count()
    }
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:06}", self.next)
    }
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    url_pairs(q)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() + 1 && i + 3 <= b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(state: &Arc<Mutex<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut app = state.lock().unwrap();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let write = method != Method::GET && path != "/token";
    let r = serve(&mut app, &method, &path, &query, &headers, &body, write);
    let status = r.status().as_u16();
    app.seen.push(Seen { method: method.to_string(), path, query, status, at: Instant::now(), write });
    r
}

fn serve(
    app: &mut App,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    write: bool,
) -> Response {
    if path == "/token" {
        return token(app, body);
    }
    // Resumable sessions are their own authorization (the session URI), as Drive documents.
    if let Some(sid) = path.strip_prefix("/upload-session/") {
        return chunk(app, sid, headers, body);
    }
    let bearer = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| app.tokens.iter().any(|x| x == t)) {
        return error(401, "authError", "Request had invalid authentication credentials.");
    }
    if write {
        if let Some((code, retry)) = app.script.pop_front() {
            let mut r = error(code, if code == 429 { "rateLimitExceeded" } else { "backendError" }, "scripted");
            if let Some(s) = retry {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            return r;
        }
        let now = Instant::now();
        let recent =
            app.seen.iter().filter(|s| s.write && s.status < 300 && now.duration_since(s.at).as_secs() < 60).count();
        if recent >= app.writes_per_minute {
            return error(
                429,
                "rateLimitExceeded",
                "Quota exceeded for quota metric 'Write requests' per minute per user.",
            );
        }
    }
    let q = query_pairs(query);
    let param = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    match (method.as_str(), path) {
        ("GET", "/drive/v3/files") => list(app, &param("q").unwrap_or_default(), param("pageToken"), param("pageSize")),
        ("GET", p) if p.starts_with("/drive/v3/files/") => match app.files.iter().find(|f| f.id == p[16..]) {
            Some(f) => ok(file_json(f)),
            None => error(404, "notFound", &format!("File not found: {}.", &p[16..])),
        },
        ("PATCH", p) if p.starts_with("/drive/v3/files/") => {
            let meta: Value = serde_json::from_slice(body).unwrap_or(json!({}));
            update(app, &p[16..], &meta, None)
        }
        ("POST", "/upload/drive/v3/files") | ("PATCH", _) if path.starts_with("/upload/drive/v3/files") => {
            let Some((meta, media)) = multipart(headers, body) else {
                return error(400, "badContent", "Multipart body expected.");
            };
            match path.strip_prefix("/upload/drive/v3/files/") {
                Some(id) => update(app, id, &meta, Some(media)),
                None => create(app, &meta, media),
            }
        }
        (_, p) if p.starts_with("/resumable/upload/drive/v3/files") => {
            let meta: Value = serde_json::from_slice(body).unwrap_or(json!({}));
            if !query.contains("uploadType=resumable") {
                return error(400, "badRequest", "uploadType=resumable expected.");
            }
            let target = p.strip_prefix("/resumable/upload/drive/v3/files/").map(str::to_string);
            let sid = app.id("session");
            app.sessions.insert(sid.clone(), (target, meta, Vec::new(), 0));
            let loc = format!("{}upload-session/{sid}", app.token_uri.trim_end_matches("token"));
            (StatusCode::OK, [("location", loc)], "").into_response()
        }
        ("GET", p) if p.starts_with("/v4/spreadsheets/") => {
            let rest = &p[17..];
            if let Some(id) = rest.strip_suffix("/values:batchGet") {
                return batch_get(app, id, &q);
            }
            match app.sheets.get(rest) {
                Some(s) => ok(json!({"spreadsheetId": rest, "sheets": s.tabs.iter().map(|t| json!({"properties": {
                    "sheetId": t.id, "title": t.title, "gridProperties": {"rowCount": t.rows(), "columnCount": t.cols, "frozenRowCount": t.frozen}}})).collect::<Vec<_>>()})),
                None => error(404, "notFound", &format!("Requested entity was not found: {rest}")),
            }
        }
        ("POST", p) if p.starts_with("/v4/spreadsheets/") => {
            let rest = &p[17..];
            let v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return error(400, "parseError", "Invalid JSON payload received."),
            };
            if let Some(id) = rest.strip_suffix("/values:batchUpdate") {
                values_update(app, id, &v)
            } else if let Some(id) = rest.strip_suffix(":batchUpdate") {
                batch_update(app, id, &v)
            } else {
                error(404, "notFound", "no such method")
            }
        }
        _ => error(404, "notFound", &format!("no route {method} {path}")),
    }
}

fn token(app: &mut App, body: &[u8]) -> Response {
    let form = url_pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return (StatusCode::BAD_REQUEST, json!({"error": "unsupported_grant_type"}).to_string()).into_response();
    }
    let jwt = get("assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    let bad = |d: &str| {
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant", "error_description": d}).to_string()).into_response()
    };
    if parts.len() != 3 {
        return bad("Invalid JWT");
    }
    let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok();
    let (Some(h), Some(c), Some(sig)) = (dec(parts[0]), dec(parts[1]), dec(parts[2])) else {
        return bad("Invalid JWT");
    };
    let h: Value = serde_json::from_slice(&h).unwrap_or_default();
    let c: Value = serde_json::from_slice(&c).unwrap_or_default();
    if h["alg"] != "RS256" {
        return bad("Invalid JWT: alg must be RS256");
    }
    let key = VerifyingKey::<Sha256>::new(app.public_key.clone());
    let Ok(sig) = Signature::try_from(sig.as_slice()) else { return bad("Invalid JWT Signature.") };
    if key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).is_err() {
        return bad("Invalid JWT Signature.");
    }
    let now = chrono::Utc::now().timestamp();
    if c["iss"] != SA_EMAIL || c["aud"] != app.token_uri.as_str() {
        return bad("Invalid JWT: iss or aud");
    }
    if !c["exp"].as_i64().is_some_and(|e| e > now && e <= now + 3700) {
        return bad("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    let scopes = c["scope"].as_str().unwrap_or("");
    if !scopes.split(' ').any(|s| s == "https://www.googleapis.com/auth/drive") {
        return bad("Invalid JWT: scope does not reach Drive and Sheets");
    }
    let t = format!("ya29.test-{}", app.tokens.len() + 1);
    app.tokens.push(t.clone());
    ok(json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}))
}

fn file_json(f: &DFile) -> Value {
    let mut v = json!({"kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime, "parents": f.parents,
        "appProperties": f.props, "trashed": f.trashed});
    if f.mime != FOLDER && f.mime != SHEET {
        v["md5Checksum"] = json!(format!("{:x}", md5_of(&f.content)));
        v["size"] = json!(f.content.len().to_string());
    }
    v
}

fn md5_of(b: &[u8]) -> u128 {
    // Not MD5: a stable checksum of the content is all the tests compare.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for &x in b {
        h = (h ^ x as u128).wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// The `q` this client and the docs use: `appProperties has { key='K' and value='V' }` terms,
/// `trashed = false`, `'ID' in parents`, joined by `and`.
fn list(app: &App, q: &str, page: Option<String>, size: Option<String>) -> Response {
    let mut props = Vec::new();
    let mut rest = q;
    while let Some(i) = rest.find("appProperties has {") {
        let after = &rest[i..];
        let end = after.find('}').unwrap_or(after.len());
        let term = &after[..end];
        let k = term.split("key='").nth(1).and_then(|s| s.split('\'').next()).unwrap_or("");
        let v = term.split("value='").nth(1).and_then(|s| s.split('\'').next()).unwrap_or("");
        props.push((k.to_string(), v.to_string()));
        rest = &after[end..];
    }
    let not_trashed = q.contains("trashed = false") || q.contains("trashed=false");
    let all: Vec<&DFile> = app
        .files
        .iter()
        .filter(|f| !(not_trashed && f.trashed))
        .filter(|f| props.iter().all(|(k, v)| f.props.get(k) == Some(v)))
        .collect();
    let size: usize = size.and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, 1000);
    let start: usize = page.and_then(|p| p.parse().ok()).unwrap_or(0);
    let end = (start + size).min(all.len());
    let mut v = json!({"kind": "drive#fileList", "files": all[start.min(end)..end].iter().map(|f| file_json(f)).collect::<Vec<_>>()});
    if end < all.len() {
        v["nextPageToken"] = json!(end.to_string());
    }
    ok(v)
}

fn multipart(headers: &HeaderMap, body: &[u8]) -> Option<(Value, Vec<u8>)> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"').to_string();
    let sep = format!("--{boundary}");
    let text = body;
    let find = |hay: &[u8], n: &[u8], from: usize| hay[from..].windows(n.len()).position(|w| w == n).map(|p| p + from);
    let mut parts = Vec::new();
    let mut pos = find(text, sep.as_bytes(), 0)? + sep.len();
    while let Some(next) = find(text, sep.as_bytes(), pos) {
        let part = &text[pos..next];
        let hdr_end = find(part, b"\r\n\r\n", 0)?;
        let mut content = &part[hdr_end + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        parts.push(content.to_vec());
        pos = next + sep.len();
    }
    let meta = serde_json::from_slice(parts.first()?).ok()?;
    Some((meta, parts.get(1).cloned().unwrap_or_default()))
}

fn quota_ok(app: &App, mime: &str) -> bool {
    mime == FOLDER || app.shared_drive
}

fn create(app: &mut App, meta: &Value, media: Vec<u8>) -> Response {
    let mime = meta["mimeType"].as_str().unwrap_or("application/octet-stream").to_string();
    if !quota_ok(app, &mime) {
        return error(
            403,
            "storageQuotaExceeded",
            "Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.",
        );
    }
    let parents: Vec<String> = meta["parents"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if parents.iter().any(|p| !app.files.iter().any(|f| f.id == *p && f.mime == FOLDER && !f.trashed)) {
        return error(404, "notFound", "File not found: parent.");
    }
    let props: HashMap<String, String> = meta["appProperties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    if props.iter().any(|(k, v)| k.len() + v.len() > 124) {
        return error(400, "invalid", "The size of a property key and value may not exceed 124 bytes.");
    }
    let id = app.id(if mime == SHEET { "sheet" } else { "file" });
    if mime == SHEET {
        let mut s = Spreadsheet { tabs: vec![Tab::new(0, "Sheet1", 1000, 26)], next_tab: 1 };
        s.tabs[0].frozen = 0;
        app.sheets.insert(id.clone(), s);
    }
    let f = DFile {
        id,
        name: meta["name"].as_str().unwrap_or("Untitled").into(),
        mime,
        parents,
        props,
        trashed: false,
        content: if meta["mimeType"] == SHEET { Vec::new() } else { media },
    };
    let v = file_json(&f);
    app.files.push(f);
    ok(v)
}

fn update(app: &mut App, id: &str, meta: &Value, media: Option<Vec<u8>>) -> Response {
    let Some(f) = app.files.iter_mut().find(|f| f.id == id) else {
        return error(404, "notFound", &format!("File not found: {id}."));
    };
    if let Some(n) = meta["name"].as_str() {
        f.name = n.into();
    }
    if let Some(t) = meta["trashed"].as_bool() {
        f.trashed = t;
    }
    if let Some(m) = media {
        f.content = m;
    }
    ok(file_json(f))
}

fn chunk(app: &mut App, sid: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(s) = app.sessions.get_mut(sid) else { return error(404, "notFound", "No such upload session.") };
    let range = headers.get("content-range").and_then(|h| h.to_str().ok()).unwrap_or("");
    // "bytes A-B/TOTAL"
    let Some((ab, total)) = range.strip_prefix("bytes ").and_then(|r| r.split_once('/')) else {
        return error(400, "badRequest", "Content-Range expected.");
    };
    let total: u64 = total.parse().unwrap_or(0);
    let Some((a, b)) = ab.split_once('-') else { return error(400, "badRequest", "bad Content-Range") };
    let (a, b): (u64, u64) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
    if a != s.2.len() as u64 || b + 1 - a != body.len() as u64 {
        return error(400, "badRequest", "Content-Range does not follow what was received.");
    }
    if b + 1 < total && !body.len().is_multiple_of(256 * 1024) {
        return error(400, "badRequest", "Chunks must be multiples of 256 KiB.");
    }
    s.2.extend_from_slice(body);
    s.3 = s.3.max(body.len() as u64);
    let largest = s.3 as usize;
    app.largest_chunk = app.largest_chunk.max(largest);
    let s = app.sessions.get_mut(sid).unwrap();
    if (s.2.len() as u64) < total {
        return (StatusCode::PERMANENT_REDIRECT, [("range", format!("bytes=0-{b}"))], "").into_response();
    }
    let (target, meta, data, _) = app.sessions.remove(sid).unwrap();
    match target {
        Some(id) => update(app, &id, &meta, Some(data)),
        None => create(app, &meta, data),
    }
}

/// 'Title'!A1:C3, 'Title'!1:1, 'Title'!C2:C (rows and columns 0-based, end exclusive; None: open).
/// A tab's title, first row, end row, first column, end column.
type Range = (String, usize, Option<usize>, usize, Option<usize>);

fn parse_range(r: &str) -> Option<Range> {
    let (title, cells) = r.rsplit_once('!')?;
    let title = title.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
    let (a, b) = cells.split_once(':').unwrap_or((cells, cells));
    let split = |s: &str| -> (Option<usize>, Option<usize>) {
        let letters: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let digits = &s[letters.len()..];
        let col =
            (!letters.is_empty()).then(|| letters.bytes().fold(0usize, |n, c| n * 26 + (c - b'A' + 1) as usize) - 1);
        (col, digits.parse::<usize>().ok().map(|d| d - 1))
    };
    let (c1, r1) = split(a);
    let (c2, r2) = split(b);
    Some((title, r1.unwrap_or(0), r2.map(|r| r + 1), c1.unwrap_or(0), c2.map(|c| c + 1)))
}

fn batch_get(app: &App, id: &str, q: &[(String, String)]) -> Response {
    let Some(s) = app.sheets.get(id) else { return error(404, "notFound", "Requested entity was not found.") };
    let mut out = Vec::new();
    for (_, r) in q.iter().filter(|(k, _)| k == "ranges") {
        let Some((title, r1, r2, c1, c2)) = parse_range(r) else {
            return error(400, "badRequest", &format!("Unable to parse range: {r}"));
        };
        let Some(t) = s.tab(&title) else { return error(400, "badRequest", &format!("Unable to parse range: {r}")) };
        let r2 = r2.unwrap_or(t.rows()).min(t.rows());
        let c2 = c2.unwrap_or(t.cols).min(t.cols);
        let mut rows: Vec<Vec<Value>> = (r1..r2)
            .map(|i| {
                let mut row: Vec<Value> = t.cells[i][c1.min(c2)..c2].to_vec();
                while row.last().is_some_and(|v| v.is_null()) {
                    row.pop();
                }
                row.into_iter().map(|v| if v.is_null() { json!("") } else { v }).collect()
            })
            .collect();
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        out.push(json!({"range": r, "majorDimension": "ROWS", "values": rows}));
    }
    ok(json!({"spreadsheetId": id, "valueRanges": out}))
}

fn limit(app: &App, s: &Spreadsheet) -> Option<Response> {
    if s.cells() > app.max_cells {
        return Some(error(
            400,
            "badRequest",
            &format!(
                "This action would increase the number of cells in the workbook above the limit of {} cells.",
                app.max_cells
            ),
        ));
    }
    if s.tabs.len() > 200 {
        return Some(error(400, "badRequest", "A spreadsheet can have at most 200 sheets."));
    }
    None
}

fn values_update(app: &mut App, id: &str, v: &Value) -> Response {
    let opt = v["valueInputOption"].as_str().unwrap_or("").to_string();
    if opt != "RAW" && opt != "USER_ENTERED" {
        return error(400, "badRequest", "Invalid valueInputOption");
    }
    app.input_options.push(opt.clone());
    let Some(mut s) = app.sheets.get(id).cloned() else {
        return error(404, "notFound", "Requested entity was not found.");
    };
    let mut cells = 0;
    for d in v["data"].as_array().cloned().unwrap_or_default() {
        let r = d["range"].as_str().unwrap_or("");
        let Some((title, r1, _, c1, _)) = parse_range(r) else {
            return error(400, "badRequest", &format!("Unable to parse range: {r}"));
        };
        let Some(t) = s.tabs.iter_mut().find(|t| t.title == title) else {
            return error(400, "badRequest", &format!("Unable to parse range: {r}"));
        };
        for (i, row) in d["values"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            let row = row.as_array().cloned().unwrap_or_default();
            if r1 + i >= t.rows() || c1 + row.len() > t.cols {
                return error(
                    400,
                    "badRequest",
                    &format!("Range ({r}) exceeds grid limits. Max rows: {}, max columns: {}", t.rows(), t.cols),
                );
            }
            for (j, cell) in row.into_iter().enumerate() {
                if cell.as_str().is_some_and(|s| s.chars().count() > 50_000) {
                    return error(
                        400,
                        "badRequest",
                        "Your input contains more than the maximum of 50000 characters in a single cell.",
                    );
                }
                let stored = match (&cell, opt.as_str()) {
                    (Value::String(x), "USER_ENTERED") if x.starts_with('=') => json!({"formula": x}),
                    (Value::String(x), _) if x.is_empty() => Value::Null,
                    _ => cell,
                };
                t.cells[r1 + i][c1 + j] = stored;
                cells += 1;
            }
        }
    }
    if let Some(e) = limit(app, &s) {
        return e;
    }
    app.sheets.insert(id.into(), s);
    app.cells_written += cells;
    ok(json!({"spreadsheetId": id, "totalUpdatedCells": cells}))
}

fn batch_update(app: &mut App, id: &str, v: &Value) -> Response {
    let Some(mut s) = app.sheets.get(id).cloned() else {
        return error(404, "notFound", "Requested entity was not found.");
    };
    let bad = |m: String| error(400, "badRequest", &format!("Invalid requests: {m}"));
    for (n, r) in v["requests"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let tab_of = |s: &mut Spreadsheet, id: &Value| s.tabs.iter().position(|t| Some(t.id) == id.as_i64());
        if let Some(u) = r.get("updateSheetProperties") {
            let p = &u["properties"];
            let Some(i) = tab_of(&mut s, &p["sheetId"]) else { return bad(format!("[{n}]: No grid with id")) };
            let fields = u["fields"].as_str().unwrap_or("");
            let t = &mut s.tabs[i];
            if fields.contains("title") {
                t.title = p["title"].as_str().unwrap_or("").into();
            }
            let g = &p["gridProperties"];
            if fields.contains("rowCount") {
                let rows = g["rowCount"].as_u64().unwrap_or(0) as usize;
                let cols = t.cols;
                t.cells.resize(rows, vec![Value::Null; cols]);
            }
            if fields.contains("columnCount") {
                let cols = g["columnCount"].as_u64().unwrap_or(0) as usize;
                t.cols = cols;
                for row in &mut t.cells {
                    row.resize(cols, Value::Null);
                }
            }
            if fields.contains("frozenRowCount") {
                t.frozen = g["frozenRowCount"].as_i64().unwrap_or(0);
            }
            if t.frozen as usize >= t.rows() && t.frozen > 0 {
                return bad(format!("[{n}]: You can't freeze all visible rows on the sheet."));
            }
        } else if let Some(a) = r.get("addSheet") {
            let p = &a["properties"];
            let title = p["title"].as_str().unwrap_or("Sheet").to_string();
            if s.tabs.iter().any(|t| t.title == title) {
                return bad(format!("[{n}]: A sheet with the name \"{title}\" already exists."));
            }
            let g = &p["gridProperties"];
            let mut t = Tab::new(
                s.next_tab,
                &title,
                g["rowCount"].as_u64().unwrap_or(1000) as usize,
                g["columnCount"].as_u64().unwrap_or(26) as usize,
            );
            t.frozen = g["frozenRowCount"].as_i64().unwrap_or(0);
            s.next_tab += 1;
            s.tabs.push(t);
        } else if let Some(d) = r.get("deleteDimension").or(r.get("insertDimension")).or(r.get("appendDimension")) {
            let range = if r.get("appendDimension").is_some() { d } else { &d["range"] };
            let Some(i) = tab_of(&mut s, &range["sheetId"]) else { return bad(format!("[{n}]: No grid with id")) };
            let t = &mut s.tabs[i];
            let rows = range["dimension"] == "ROWS";
            let (a, b) = if r.get("appendDimension").is_some() {
                let len = d["length"].as_u64().unwrap_or(0) as usize;
                let at = if rows { t.rows() } else { t.cols };
                (at, at + len)
            } else {
                (range["startIndex"].as_u64().unwrap_or(0) as usize, range["endIndex"].as_u64().unwrap_or(0) as usize)
            };
            let size = if rows { t.rows() } else { t.cols };
            if r.get("deleteDimension").is_some() {
                if b > size || a >= b {
                    return bad(format!("[{n}]: range out of the grid"));
                }
                if rows && size - (b - a) <= t.frozen as usize {
                    return bad(format!("[{n}]: Sorry, it is not possible to delete all non-frozen rows."));
                }
                if rows {
                    t.cells.drain(a..b);
                } else {
                    for row in &mut t.cells {
                        row.drain(a..b);
                    }
                    t.cols -= b - a;
                }
            } else {
                if a > size {
                    return bad(format!("[{n}]: range out of the grid"));
                }
                if rows {
                    let cols = t.cols;
                    for _ in a..b {
                        t.cells.insert(a, vec![Value::Null; cols]);
                    }
                } else {
                    for row in &mut t.cells {
                        for _ in a..b {
                            row.insert(a, Value::Null);
                        }
                    }
                    t.cols += b - a;
                }
            }
        } else {
            return bad(format!("[{n}]: a request kind this server does not know: {r}"));
        }
    }
    if let Some(e) = limit(app, &s) {
        return e;
    }
    app.sheets.insert(id.into(), s);
    ok(json!({"spreadsheetId": id, "replies": []}))
}
