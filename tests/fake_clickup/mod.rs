//! A local ClickUp that follows the public API v2 reference
//! (https://developer.clickup.com/reference, its OpenAPI file clickup-api-v2-reference.json):
//! the same paths under /api/v2, the same JSON shapes, 100 tasks a page with `last_page`,
//! 25 comments a page with `start`/`start_id`, `{"err": ..., "ECODE": ...}` error bodies
//! (https://clickup.com/api/developer-portal/general-errorhandling/), 401 for a bad token,
//! and 429 with X-RateLimit-Limit/-Remaining/-Reset (Unix seconds) when over its limit
//! (https://clickup.com/api/developer-portal/rate-limits/), on its own clock, which its Date
//! header gives (and which may differ from this machine's: `skew_ms`); "Team not
//! authorized" (OAUTH_027) for a workspace the token was not given
//! (https://developer.clickup.com/docs/common_errors). Attachments are served from a
//! second host, as ClickUp serves them from its attachment host.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "pk_8675309_SECRETSECRETSECRET";

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Req {
    pub host: &'static str,
    pub method: String,
    /// Path below /api/v2 (for the API) or the whole path (for the file host).
    pub path: String,
    pub query: HashMap<String, String>,
    pub auth: Option<String>,
    /// Wall-clock time, Unix milliseconds.
    pub at_ms: i64,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
}

#[derive(Clone)]
pub enum Answer {
    Status(u16),
    /// 200 with a JSON body cut short (its length matches what is sent).
    Truncated,
}

/// Answers the next `times` requests that match with `answer` instead.
pub struct Fault {
    pub method: &'static str,
    pub path: String,
    pub query: Option<(&'static str, &'static str)>,
    pub times: u32,
    pub answer: Answer,
}

impl Fault {
    pub fn new(
        method: &'static str,
        path: &str,
        query: Option<(&'static str, &'static str)>,
        times: u32,
        answer: Answer,
    ) -> Fault {
        Fault { method, path: path.into(), query, times, answer }
    }
}

type Hook = Box<dyn FnMut(&Req, &mut World) + Send>;

#[derive(Default)]
pub struct World {
    pub token: String,
    pub teams: Vec<Value>,
    /// (team id, space)
    pub spaces: Vec<(String, Value)>,
    /// (space id, folder)
    pub folders: Vec<(String, Value)>,
    /// (("folder" | "space"), parent id, list)
    pub lists: Vec<(String, String, Value)>,
    /// Tasks in creation order, as Get Task gives them (with `attachments`).
    pub tasks: Vec<Value>,
    /// Task id -> comments, oldest first.
    pub comments: HashMap<String, Vec<Value>>,
    /// Comment id -> replies.
    pub replies: HashMap<String, Vec<Value>>,
    /// List id -> custom fields it can use.
    pub fields: HashMap<String, Vec<Value>>,
    /// "team/ID", "space/ID", "folder/ID", "list/ID" -> views.
    pub views: HashMap<String, Vec<Value>>,
    /// Path on the file host -> bytes.
    pub files: HashMap<String, Vec<u8>>,
    pub log: Vec<Req>,
    pub faults: Vec<Fault>,
    /// Called at each request before it is answered (the lock held).
    pub hooks: Vec<Hook>,
    /// At most this many API requests a second of its clock; over it, 429.
    pub per_second: Option<u32>,
    /// How far ClickUp's clock is ahead of this machine's (its Date, X-RateLimit-Reset and
    /// the request times in `log` follow it).
    pub skew_ms: i64,
    /// Workspaces listed by GET /team whose contents the token was not given.
    pub not_authorized: Vec<String>,
    window: (i64, u32),
    /// (index in `log` of the request, X-RateLimit-Reset it was told) of each 429.
    pub limited: Vec<(usize, i64)>,
    pub created_tasks: Vec<(String, Value)>,
    pub created_comments: Vec<(String, Value)>,
    /// (task id, file name, bytes)
    pub uploads: Vec<(String, String, Vec<u8>)>,
    next_id: u64,
    pub files_base: String,
}

#[derive(Clone)]
pub struct Fake {
    pub base: String,
    pub files_base: String,
    pub world: Arc<Mutex<World>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn err(status: u16, msg: &str, code: &str) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"err": msg, "ECODE": code}))).into_response();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true")
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl World {
    pub fn list(&self, id: &str) -> Option<&Value> {
        self.lists.iter().map(|(_, _, l)| l).find(|l| l["id"] == id)
    }

    pub fn task_mut(&mut self, id: &str) -> &mut Value {
        self.tasks.iter_mut().find(|t| t["id"] == id).expect("a task of the fake")
    }

    /// Changes a task as a user would: its fields, and `date_updated` to now.
    pub fn edit(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        let t = self.task_mut(id);
        f(t);
        t["date_updated"] = json!(now_ms().to_string());
    }

    pub fn remove_task(&mut self, id: &str) {
        self.tasks.retain(|t| t["id"] != id);
    }

    pub fn remove_list(&mut self, id: &str) {
        self.lists.retain(|(_, _, l)| l["id"] != id);
        self.tasks.retain(|t| t["list"]["id"] != id);
    }

    pub fn requests(&self, method: &str, prefix: &str) -> Vec<Req> {
        self.log.iter().filter(|r| r.method == method && r.path.starts_with(prefix)).cloned().collect()
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// Adds a workspace; returns its id.
    pub fn team(&mut self, id: &str, name: &str) -> String {
        self.teams.push(json!({
            "id": id, "name": name, "color": "#536cfe", "avatar": null,
            "members": [{"user": {"id": 183, "username": "Ada Admin", "email": "ada@example.com", "color": "#827718", "profilePicture": null, "initials": "AA", "role": 1}}]
        }));
        id.into()
    }

    pub fn space(&mut self, team: &str, id: &str, name: &str) -> String {
        self.spaces.push((team.into(), json!({
            "id": id, "name": name, "private": false, "color": null, "avatar": null, "admin_can_manage": true,
            "archived": false, "members": [],
            "statuses": [
                {"status": "to do", "type": "open", "orderindex": 0, "color": "#d3d3d3"},
                {"status": "in progress", "type": "custom", "orderindex": 1, "color": "#4194f6"},
                {"status": "complete", "type": "closed", "orderindex": 2, "color": "#6bc950"}
            ],
            "multiple_assignees": true,
            "features": {"due_dates": {"enabled": true, "start_date": true, "remap_due_dates": false, "remap_closed_due_date": false}, "time_tracking": {"enabled": true}, "tags": {"enabled": true}, "time_estimates": {"enabled": true}, "checklists": {"enabled": true}, "custom_fields": {"enabled": true}}
        })));
        id.into()
    }

    pub fn folder(&mut self, space: &str, id: &str, name: &str) -> String {
        self.folders.push((space.into(), json!({
            "id": id, "name": name, "orderindex": 0, "override_statuses": false, "hidden": false,
            "space": {"id": space, "name": "", "access": true}, "task_count": "0", "archived": false, "statuses": [], "lists": [], "permission_level": "create"
        })));
        id.into()
    }

    /// A list in a folder (`parent = "folder"`) or folderless in a space (`"space"`).
    pub fn list_in(&mut self, parent: &str, parent_id: &str, id: &str, name: &str) -> String {
        let space = match parent {
            "space" => parent_id.to_string(),
            _ => self.folders.iter().find(|(_, f)| f["id"] == parent_id).map(|(s, _)| s.clone()).unwrap(),
        };
        let folder = if parent == "folder" {
            json!({"id": parent_id, "name": "", "hidden": false, "access": true})
        } else {
            json!({"id": "0", "name": "hidden", "hidden": true, "access": true})
        };
        self.lists.push((parent.into(), parent_id.into(), json!({
            "id": id, "name": name, "orderindex": 0, "content": format!("About {name}"), "status": null, "priority": null,
            "assignee": null, "task_count": null, "due_date": null, "start_date": null, "folder": folder,
            "space": {"id": space, "name": "", "access": true}, "archived": false, "override_statuses": false, "permission_level": "create"
        })));
        id.into()
    }

    /// A task (created now, last changed `updated_ms`) in a list; returns its id.
    pub fn task(&mut self, list: &str, id: &str, name: &str, updated_ms: i64) -> String {
        let l = self.list(list).cloned().expect("the task's list");
        let team =
            self.spaces.iter().find(|(_, sp)| sp["id"] == l["space"]["id"]).map(|(t, _)| t.clone()).unwrap_or_default();
        self.tasks.push(json!({
            "id": id, "custom_id": null, "custom_item_id": 0, "name": name,
            "text_content": format!("{name}: details"), "description": format!("{name}: details"),
            "markdown_description": format!("**{name}**: details"),
            "status": {"id": "p1_todo", "status": "to do", "color": "#d3d3d3", "orderindex": 0, "type": "open"},
            "orderindex": "1.00000000000000000000000000000000",
            "date_created": "1704067200000", "date_updated": updated_ms.to_string(), "date_closed": null, "date_done": null,
            "archived": false,
            "creator": {"id": 183, "username": "Ada Admin", "color": "#827718", "email": "ada@example.com", "profilePicture": null},
            "assignees": [], "group_assignees": [], "watchers": [], "checklists": [], "tags": [],
            "parent": null, "top_level_parent": null, "priority": null, "due_date": null, "start_date": null, "points": null,
            "time_estimate": null, "custom_fields": [], "dependencies": [], "linked_tasks": [], "locations": [],
            "team_id": team, "url": format!("https://app.clickup.com/t/{id}"), "sharing": {"public": false, "public_share_expires_on": null, "public_fields": [], "token": null, "seo_optimized": false},
            "permission_level": "create",
            "list": {"id": list, "name": l["name"], "access": true},
            "project": {"id": l["folder"]["id"], "name": l["folder"]["name"], "hidden": false, "access": true},
            "folder": {"id": l["folder"]["id"], "name": l["folder"]["name"], "hidden": false, "access": true},
            "space": {"id": l["space"]["id"]},
            "attachments": []
        }));
        id.into()
    }

    /// Attaches a file to a task, served by the file host.
    pub fn attach(&mut self, task: &str, id: &str, title: &str, bytes: &[u8]) {
        let path = format!("/{id}/{title}");
        self.files.insert(path.clone(), bytes.to_vec());
        let url = format!("{}{path}", self.files_base);
        let ext = title.rsplit('.').next().unwrap_or_default().to_string();
        let t = self.task_mut(task);
        t["attachments"].as_array_mut().unwrap().push(json!({
            "id": id, "version": "0", "date": 1704067200000_i64, "title": title, "type": 1, "source": 1,
            "extension": ext, "thumbnail_small": null, "thumbnail_large": null, "is_folder": false, "mimetype": "application/octet-stream",
            "hidden": false, "parent_id": task, "size": bytes.len(), "total_comments": 0, "resolved_comments": 0,
            "user": {"id": 183, "username": "Ada Admin", "email": "ada@example.com", "initials": "AA", "color": "#827718", "profilePicture": null},
            "deleted": false, "orientation": null, "url": url, "email_data": null, "url_w_query": url, "url_w_host": url
        }));
    }

    pub fn comment(&mut self, task: &str, id: &str, text: &str, date_ms: i64) {
        self.comments.entry(task.into()).or_default().push(json!({
            "id": id, "comment": [{"text": text}], "comment_text": text,
            "user": {"id": 183, "username": "Ada Admin", "initials": "AA", "email": "ada@example.com", "color": "#827718", "profilePicture": null},
            "resolved": false, "assignee": null, "assigned_by": null, "reactions": [], "date": date_ms.to_string(), "reply_count": "0"
        }));
    }

    fn tasks_page(&self, list: &str, q: &HashMap<String, String>) -> Value {
        let archived = truthy(q, "archived");
        let closed = truthy(q, "include_closed");
        let subtasks = truthy(q, "subtasks");
        let after: Option<i64> = q.get("date_updated_gt").and_then(|v| v.parse().ok());
        let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(0);
        let hits: Vec<Value> = self
            .tasks
            .iter()
            .filter(|t| t["list"]["id"] == list)
            .filter(|t| t["archived"].as_bool() == Some(archived))
            .filter(|t| closed || t["status"]["type"] != "closed")
            .filter(|t| subtasks || t["parent"].is_null())
            .filter(|t| after.is_none_or(|a| s(&t["date_updated"]).parse::<i64>().unwrap() > a))
            .map(|t| {
                let mut t = t.clone();
                // Get Tasks does not list attachments; Get Task does.
                t.as_object_mut().unwrap().remove("attachments");
                t
            })
            .collect();
        let chunk: Vec<Value> = hits.iter().skip(page * 100).take(100).cloned().collect();
        json!({"tasks": chunk, "last_page": (page + 1) * 100 >= hits.len()})
    }

    fn comments_page(&self, task: &str, q: &HashMap<String, String>) -> Value {
        let mut all: Vec<Value> = self.comments.get(task).cloned().unwrap_or_default();
        all.reverse(); // newest first
        if let (Some(start), Some(start_id)) = (q.get("start"), q.get("start_id")) {
            let start: i64 = start.parse().unwrap();
            let at = all.iter().position(|c| c["id"] == start_id.as_str());
            all = match at {
                Some(i) => all.split_off(i + 1),
                None => all.into_iter().filter(|c| s(&c["date"]).parse::<i64>().unwrap() < start).collect(),
            };
        }
        all.truncate(25);
        json!({"comments": all})
    }

    fn api(&mut self, method: &Method, path: &str, q: &HashMap<String, String>, body: &[u8], ctype: &str) -> Response {
        let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
        let archived = truthy(q, "archived");
        let arch = |v: &Value| v["archived"].as_bool().unwrap_or(false) == archived;
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["team"]) => ok(json!({"teams": self.teams})),
            ("GET", ["team", id, "space"]) => {
                if !self.teams.iter().any(|t| t["id"] == *id) || self.not_authorized.iter().any(|t| t == id) {
                    return err(401, "Team not authorized", "OAUTH_027");
                }
                let v: Vec<&Value> =
                    self.spaces.iter().filter(|(t, sp)| t == id && arch(sp)).map(|(_, sp)| sp).collect();
                ok(json!({"spaces": v}))
            }
            ("GET", ["space", id, "folder"]) => {
                let v: Vec<&Value> =
                    self.folders.iter().filter(|(sp, f)| sp == id && arch(f)).map(|(_, f)| f).collect();
                ok(json!({"folders": v}))
            }
            ("GET", [parent @ ("folder" | "space"), id, "list"]) => {
                let v: Vec<&Value> = self
                    .lists
                    .iter()
                    .filter(|(p, pid, l)| p == parent && pid == id && arch(l))
                    .map(|(_, _, l)| l)
                    .collect();
                ok(json!({"lists": v}))
            }
            ("GET", ["list", id, "task"]) => match self.list(id) {
                None => err(404, "List not found", "ITEM_013"),
                Some(_) => ok(self.tasks_page(id, q)),
            },
            ("GET", ["task", id]) => match self.tasks.iter().find(|t| t["id"] == *id) {
                Some(t) => ok(t.clone()),
                None => err(404, "Task not found, deleted", "ITEM_013"),
            },
            ("GET", ["task", id, "comment"]) => match self.tasks.iter().any(|t| t["id"] == *id) {
                true => ok(self.comments_page(id, q)),
                false => err(404, "Task not found, deleted", "ITEM_013"),
            },
            ("GET", ["comment", id, "reply"]) => {
                ok(json!({"comments": self.replies.get(*id).cloned().unwrap_or_default()}))
            }
            ("GET", ["list", id, "field"]) => match self.list(id) {
                None => err(404, "List not found", "ITEM_013"),
                Some(_) => ok(json!({"fields": self.fields.get(*id).cloned().unwrap_or_default()})),
            },
            ("GET", ["list", id, "view"]) if self.list(id).is_none() => err(404, "List not found", "ITEM_013"),
            ("GET", [kind @ ("team" | "space" | "folder" | "list"), id, "view"]) => {
                ok(json!({"views": self.views.get(&format!("{kind}/{id}")).cloned().unwrap_or_default()}))
            }
            ("POST", ["list", id, "task"]) => {
                if self.list(id).is_none() {
                    return err(404, "List not found", "ITEM_013");
                }
                let b: Value = match serde_json::from_slice(body) {
                    Ok(b) => b,
                    Err(_) => return err(400, "Body must be JSON", "INPUT_001"),
                };
                if b["name"].as_str().is_none_or(str::is_empty) {
                    return err(400, "Task name invalid", "INPUT_005");
                }
                let new_id = self.id("new");
                self.created_tasks.push((id.to_string(), b.clone()));
                self.task(id, &new_id, b["name"].as_str().unwrap(), now_ms());
                let t = self.tasks.last().unwrap().clone();
                ok(t)
            }
            ("POST", ["task", id, "comment"]) if !self.tasks.iter().any(|t| t["id"] == *id) => {
                err(404, "Task not found, deleted", "ITEM_013")
            }
            ("POST", ["task", id, "comment"]) => {
                let b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let cid = self.id("9000");
                self.created_comments.push((id.to_string(), b));
                ok(json!({"id": cid, "hist_id": "26508", "date": now_ms()}))
            }
            ("POST", ["task", id, "attachment"]) => match multipart_file(ctype, body, "attachment") {
                Some((name, bytes)) => {
                    self.uploads.push((id.to_string(), name.clone(), bytes));
                    ok(
                        json!({"id": format!("{}.bin", self.id("att")), "version": "0", "date": now_ms(), "title": name, "extension": "bin", "thumbnail_small": null, "thumbnail_large": null, "url": "https://attachments.example/x"}),
                    )
                }
                None => err(400, "No attachment", "INPUT_003"),
            },
            _ => err(404, "Route not found", "APP_001"),
        }
    }
}

/// The file of a multipart/form-data body's field: (file name, bytes).
fn multipart_file(ctype: &str, body: &[u8], field: &str) -> Option<(String, Vec<u8>)> {
    let boundary = ctype.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&text[i..], delim.as_bytes()) {
        parts.push(i + p);
        i += p + delim.len();
    }
    for w in parts.windows(2) {
        let part = &text[w[0] + delim.len()..w[1]];
        let head_end = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..head_end]);
        if !head.contains(&format!("name=\"{field}\"")) {
            continue;
        }
        let name = head.split("filename=\"").nth(1)?.split('"').next()?.to_string();
        let data = &part[head_end + 4..part.len() - 2]; // the CRLF before the delimiter
        return Some((name, data.to_vec()));
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn handle(
    State((world, host)): State<(Arc<Mutex<World>>, &'static str)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    let path = match host {
        "api" => uri.path().strip_prefix("/api/v2").unwrap_or(uri.path()).to_string(),
        _ => uri.path().to_string(),
    };
    let mut w = world.lock().unwrap();
    let req = Req {
        host,
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        auth: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        at_ms: now_ms() + w.skew_ms,
    };
    w.log.push(req.clone());
    let mut hooks = std::mem::take(&mut w.hooks);
    for h in hooks.iter_mut() {
        h(&req, &mut w);
    }
    hooks.append(&mut w.hooks);
    w.hooks = hooks;
    if let Some(f) = w.faults.iter_mut().find(|f| {
        f.times > 0 && f.method == req.method && f.path == req.path && f.query.is_none_or(|(k, v)| req.q(k) == Some(v))
    }) {
        f.times -= 1;
        return match f.answer.clone() {
            Answer::Status(code) => err(code, "Internal server error", "APP_500"),
            Answer::Truncated => {
                ([("content-type", "application/json")], "{\"tasks\":[{\"id\":\"t1\",\"name\":\"Fi").into_response()
            }
        };
    }
    if host == "files" {
        return match w.files.get(&path) {
            Some(b) => ([("content-type", "application/octet-stream")], b.clone()).into_response(),
            None => (StatusCode::NOT_FOUND, "<html>Not found</html>").into_response(),
        };
    }
    if req.auth.as_deref() != Some(w.token.as_str()) {
        return err(401, "Token invalid", "OAUTH_025");
    }
    let sec = req.at_ms / 1000;
    if w.window.0 != sec {
        w.window = (sec, 0);
    }
    w.window.1 += 1;
    let limit = w.per_second.unwrap_or(100);
    let remaining = limit.saturating_sub(w.window.1);
    let reset = sec + 1;
    let mut resp = if w.per_second.is_some() && w.window.1 > limit {
        let at = w.log.len() - 1;
        w.limited.push((at, reset));
        err(429, "Rate limit reached", "APP_002")
    } else {
        let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        w.api(&method, &path, &query, &body, &ctype)
    };
    let h = resp.headers_mut();
    let date = chrono::DateTime::from_timestamp_millis(req.at_ms).unwrap().format("%a, %d %b %Y %H:%M:%S GMT");
    h.insert("date", date.to_string().parse().unwrap());
    h.insert("x-ratelimit-limit", limit.to_string().parse().unwrap());
    h.insert("x-ratelimit-remaining", remaining.to_string().parse().unwrap());
    h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
    resp
}

fn url_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
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
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn listen(world: Arc<Mutex<World>>, host: &'static str) -> String {
    let app = Router::new().fallback(handle).with_state((world, host));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

impl Fake {
    pub async fn start() -> Fake {
        let world = Arc::new(Mutex::new(World { token: TOKEN.into(), ..World::default() }));
        let api = listen(world.clone(), "api").await;
        let files = listen(world.clone(), "files").await;
        world.lock().unwrap().files_base = files.clone();
        Fake { base: format!("{api}/api/v2"), files_base: files, world }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }

    pub fn clear_log(&self) {
        self.with(|w| w.log.clear());
    }
}
