//! A local Trello that follows the public REST API documentation
//! (developer.atlassian.com/cloud/trello): the same paths under /1, JSON shapes, the
//! `Authorization: OAuth oauth_consumer_key="…", oauth_token="…"` header, paging by
//! `before`/`since` ids with `limit` (default 50 on actions and labels, at most 1000 on
//! actions), where an id stands for its creation second as Trello takes it (the first 4
//! bytes of an ObjectId: api-docs issue #68, objects made in the same second are not told
//! apart), `sort=-id` on cards, comments written (`commentCard`) and copied with a card
//! (`copyCommentCard`),
//! 401 "invalid token", 429 with the documented body and x-rate-limit headers, and
//! attachment downloads that need the header. Tests script faults with `rule`.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KEY: &str = "k3y-0123456789abcdef";
pub const TOKEN: &str = "t0ken-SECRET-fedcba9876543210";

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorized: bool,
    pub status: u16,
    pub at: Instant,
}

impl Seen {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
}

pub enum Act {
    Status(u16, &'static str),
    /// An error answer with a JSON body, as Trello gives `{"error": ..., "message": ...}`.
    Json(u16, Value),
    /// A 200 whose JSON stops halfway (with a Content-Length that matches it).
    Truncated,
    /// A 200 HTML page saying "unauthorized" (what a download without the header gets).
    UnauthorizedPage,
    /// Changes the app, then answers normally.
    Mutate(Box<dyn Fn(&mut App) + Send>),
}

pub struct Rule {
    pub method: Method,
    pub path_contains: String,
    pub query_contains: Option<String>,
    /// How many more requests it applies to (None: every one).
    pub times: Option<usize>,
    /// Requests to let pass before it applies.
    pub skip: usize,
    pub act: Act,
}

#[derive(Default)]
pub struct App {
    seq: u64,
    /// The Unix second new ids are made in: each new id one second after the last, unless
    /// `frozen` (then many are made in one second, as a board copy or import makes them).
    pub clock: i64,
    pub frozen: bool,
    pub revoked: bool,
    pub member: Value,
    pub workspaces: Vec<Value>,
    pub boards: Vec<Value>,
    pub lists: Vec<Value>,
    pub cards: Vec<Value>,
    pub checklists: Vec<Value>,
    pub labels: Vec<Value>,
    pub custom_fields: Vec<Value>,
    pub actions: Vec<Value>,
    /// Attachment id -> bytes.
    pub files: HashMap<String, Vec<u8>>,
    pub seen: Vec<Seen>,
    pub rules: Vec<Rule>,
    /// (requests, window): more in the window get 429, as the rate-limits guide says.
    pub rate: Option<(usize, Duration)>,
    served: Vec<Instant>,
    pub base: String,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time an hour ago: what the app's objects were last touched at before a test begins.
pub fn earlier() -> String {
    (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

impl App {
    /// A Mongo ObjectId: its creation second (4 bytes), then 8 bytes that keep ids made in
    /// one second in order.
    pub fn new_id(&mut self) -> String {
        self.seq += 1;
        if !self.frozen {
            self.clock += 1;
        }
        format!("{:08x}{:016x}", self.clock, self.seq)
    }

    /// Makes what `f` makes in one second.
    pub fn in_one_second<T>(&mut self, f: impl FnOnce(&mut App) -> T) -> T {
        self.clock += 1;
        self.frozen = true;
        let r = f(self);
        self.frozen = false;
        r
    }

    pub fn workspace(&mut self, name: &str) -> String {
        let id = self.new_id();
        self.workspaces.push(json!({"id": id, "name": name.to_lowercase(), "displayName": name, "desc": ""}));
        id
    }

    pub fn board(&mut self, name: &str, workspace: Option<&str>) -> String {
        let id = self.new_id();
        let short = format!("sl{}", &id[18..]);
        self.boards.push(json!({"id": id, "name": name, "desc": "", "closed": false, "idOrganization": workspace,
            "shortLink": short, "url": format!("https://trello.com/b/{short}"), "dateLastActivity": earlier()}));
        let m = self.member.clone();
        self.member_on(&id, m);
        id
    }

    fn member_on(&mut self, board: &str, m: Value) {
        if let Some(b) = self.boards.iter_mut().find(|b| b["id"] == board) {
            let mut ms = b["memberships"].as_array().cloned().unwrap_or_default();
            ms.push(json!({"idMember": m["id"], "memberType": "admin"}));
            b["memberships"] = Value::Array(ms);
            let mut members = b["_members"].as_array().cloned().unwrap_or_default();
            members.push(m);
            b["_members"] = Value::Array(members);
        }
    }

    pub fn list(&mut self, board: &str, name: &str) -> String {
        let id = self.new_id();
        let pos = self.lists.len() as f64 * 1024.0;
        self.lists.push(json!({"id": id, "idBoard": board, "name": name, "closed": false, "pos": pos}));
        id
    }

    pub fn label(&mut self, board: &str, name: &str, color: &str) -> String {
        let id = self.new_id();
        self.labels.push(json!({"id": id, "idBoard": board, "name": name, "color": color}));
        id
    }

    pub fn card(&mut self, list: &str, name: &str) -> String {
        let id = self.new_id();
        let board = self.lists.iter().find(|l| l["id"] == list).map(|l| s(l, "idBoard")).unwrap();
        // Positions run against creation order, so a page's order is not the ids' order.
        let pos = 1_000_000.0 - self.seq as f64;
        self.cards.push(json!({"id": id, "idBoard": board, "idList": list, "name": name, "desc": "",
            "closed": false, "pos": pos, "due": null, "start": null, "dueComplete": false, "idLabels": [],
            "idMembers": [], "idChecklists": [], "attachments": [], "customFieldItems": [],
            "dateLastActivity": earlier(), "shortUrl": format!("https://trello.com/c/{id}")}));
        id
    }

    pub fn card_mut(&mut self, id: &str) -> &mut Value {
        self.cards.iter_mut().find(|c| c["id"] == id).expect("a card")
    }

    /// Edits a card as Trello does: the change moves its dateLastActivity.
    pub fn edit_card(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        let c = self.card_mut(id);
        f(c);
        c["dateLastActivity"] = now().into();
    }

    pub fn delete_card(&mut self, id: &str) {
        self.cards.retain(|c| c["id"] != id);
        self.checklists.retain(|c| c["idCard"] != id);
    }

    pub fn checklist(&mut self, card: &str, name: &str, items: &[(&str, bool)]) -> String {
        let id = self.new_id();
        let board = s(self.card_mut(card), "idBoard");
        let mut check_items = Vec::new();
        for (i, (n, done)) in items.iter().enumerate() {
            let iid = self.new_id();
            check_items.push(json!({"id": iid, "idChecklist": id, "name": n, "pos": (i + 1) as f64 * 100.0,
                "state": if *done { "complete" } else { "incomplete" }, "due": null}));
        }
        self.checklists.push(json!({"id": id, "idBoard": board, "idCard": card, "name": name, "pos": 1.0,
            "checkItems": check_items}));
        id
    }

    pub fn custom_field(&mut self, board: &str, name: &str, ty: &str) -> String {
        let id = self.new_id();
        self.custom_fields.push(json!({"id": id, "idModel": board, "modelType": "board", "name": name, "type": ty,
            "pos": 1.0, "display": {"cardFront": true}}));
        id
    }

    pub fn set_field(&mut self, card: &str, field: &str, value: Value) {
        let iid = self.new_id();
        let c = self.card_mut(card);
        let item = json!({"id": iid, "idCustomField": field, "idModel": card, "modelType": "card", "value": value});
        c["customFieldItems"].as_array_mut().unwrap().push(item);
    }

    /// Copies a card into a list as Trello's "Copy card" does: a new card, and each comment
    /// of the original as a `copyCommentCard` action on the copy.
    pub fn copy_card(&mut self, card: &str, list: &str) -> String {
        let from = self.card_mut(card).clone();
        let new = self.card(list, from["name"].as_str().unwrap_or_default());
        let c = self.card_mut(&new).clone();
        let originals: Vec<Value> = self
            .actions
            .iter()
            .filter(|a| a["type"] == "commentCard" && a["data"]["card"]["id"] == card)
            .cloned()
            .collect();
        for o in originals {
            let id = self.new_id();
            self.actions.push(json!({"id": id, "type": "copyCommentCard", "date": now(), "idMemberCreator": self.member["id"],
                "memberCreator": {"id": self.member["id"], "fullName": self.member["fullName"], "username": self.member["username"]},
                "data": {"text": o["data"]["text"], "idOriginalCommenter": o["idMemberCreator"],
                         "card": {"id": c["id"], "name": c["name"]}, "cardSource": {"id": card},
                         "board": {"id": c["idBoard"]}, "list": {"id": c["idList"]}}}));
        }
        self.edit_card(&new, |_| {});
        new
    }

    pub fn comment(&mut self, card: &str, text: &str) -> String {
        let id = self.new_id();
        let c = self.card_mut(card).clone();
        self.actions.push(json!({"id": id, "type": "commentCard", "date": now(), "idMemberCreator": self.member["id"],
            "memberCreator": {"id": self.member["id"], "fullName": self.member["fullName"], "username": self.member["username"]},
            "data": {"text": text, "card": {"id": c["id"], "name": c["name"]}, "board": {"id": c["idBoard"]},
                     "list": {"id": c["idList"]}}}));
        self.edit_card(card, |_| {});
        id
    }

    pub fn edit_comment(&mut self, action: &str, text: &str) {
        let a = self.actions.iter_mut().find(|a| a["id"] == action).unwrap();
        a["data"]["text"] = text.into();
        a["data"]["dateLastEdited"] = now().into();
        let (card, board) = (s(&a["data"]["card"], "id"), a["data"]["board"].clone());
        let uid = self.new_id();
        self.actions.push(json!({"id": uid, "type": "updateComment", "date": now(),
            "data": {"action": {"id": action, "text": text}, "card": {"id": card}, "board": board}}));
        self.edit_card(&card, |_| {});
    }

    pub fn attach(&mut self, card: &str, name: &str, bytes: &[u8]) -> String {
        let id = self.new_id();
        let url = format!("{}/cards/{card}/attachments/{id}/download/{name}", self.base);
        let a = json!({"id": id, "name": name, "fileName": name, "bytes": bytes.len(), "date": now(),
            "isUpload": true, "mimeType": "application/octet-stream", "url": url, "idMember": self.member["id"]});
        self.files.insert(id.clone(), bytes.to_vec());
        self.edit_card(card, |c| c["attachments"].as_array_mut().unwrap().push(a));
        id
    }

    pub fn requests(&self, method: &str, path_contains: &str) -> Vec<Seen> {
        self.seen.iter().filter(|r| r.method == method && r.path.contains(path_contains)).cloned().collect()
    }

    pub fn rule(
        &mut self,
        method: Method,
        path: &str,
        query: Option<&str>,
        skip: usize,
        times: Option<usize>,
        act: Act,
    ) {
        self.rules.push(Rule {
            method,
            path_contains: path.into(),
            query_contains: query.map(str::to_string),
            times,
            skip,
            act,
        });
    }
}

#[derive(Clone)]
pub struct Fake {
    pub app: Arc<Mutex<App>>,
    /// The API root, as base_url: http://127.0.0.1:PORT/1
    pub base: String,
}

impl Fake {
    /// Starts the server on its own thread and runtime, so tests may block on the binary.
    pub fn start() -> Fake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/1", listener.local_addr().unwrap());
        let app = Arc::new(Mutex::new(App {
            base: base.clone(),
            // Objects were made from a day ago on, one a second.
            clock: chrono::Utc::now().timestamp() - 86_400,
            member: json!({"id": "5f00000000000000000000aa", "fullName": "Ada Lovelace", "username": "ada", "initials": "AL", "memberType": "normal"}),
            ..Default::default()
        }));
        let state = app.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let router =
                    axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = state.clone();
                        async move { handle(&state, method, uri, headers, body) }
                    });
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router).await.unwrap()
            })
        });
        Fake { app, base }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut App) -> T) -> T {
        f(&mut self.app.lock().unwrap())
    }
}

/// The key and token from the documented header, in any order.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let h = headers.get("authorization")?.to_str().ok()?.strip_prefix("OAuth ")?;
    let mut key = None;
    let mut token = None;
    for part in h.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim_matches('"').to_string();
        match k.trim() {
            "oauth_consumer_key" => key = Some(v),
            "oauth_token" => token = Some(v),
            _ => {}
        }
    }
    Some((key?, token?))
}

fn json_response(v: &Value) -> Response {
    ([("content-type", "application/json; charset=utf-8")], v.to_string()).into_response()
}

fn text(status: u16, body: &'static str) -> Response {
    (StatusCode::from_u16(status).unwrap(), [("content-type", "text/plain; charset=utf-8")], body).into_response()
}

fn handle(state: &Arc<Mutex<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut app = state.lock().unwrap();
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x{uri}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let creds = credentials(&headers);
    let authorized = creds.as_ref().is_some_and(|(k, t)| k == KEY && t == TOKEN) && !app.revoked;
    let mut seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorized,
        status: 200,
        at: Instant::now(),
    };
    let resp = answer(&mut app, &method, &path, &query, creds.is_some(), authorized, &headers, &body);
    seen.status = resp.status().as_u16();
    app.seen.push(seen);
    resp
}

#[allow(clippy::too_many_arguments)]
fn answer(
    app: &mut App,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    has_creds: bool,
    authorized: bool,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let qs: String = query.iter().map(|(k, v)| format!("{k}={v}&")).collect();
    // Scripted faults first.
    let mut act = None;
    for (i, r) in app.rules.iter_mut().enumerate() {
        if r.method == method
            && path.contains(&r.path_contains)
            && r.query_contains.as_ref().is_none_or(|q| qs.contains(q))
        {
            if r.skip > 0 {
                r.skip -= 1;
                continue;
            }
            if r.times == Some(0) {
                continue;
            }
            if let Some(t) = r.times.as_mut() {
                *t -= 1;
            }
            act = Some(i);
            break;
        }
    }
    if let Some(i) = act {
        let resp = match &app.rules[i].act {
            Act::Status(code, body) => Some(text(*code, body)),
            Act::Json(code, v) => {
                let mut r = json_response(v);
                *r.status_mut() = StatusCode::from_u16(*code).unwrap();
                Some(r)
            }
            Act::Truncated => Some(
                (
                    [("content-type", "application/json; charset=utf-8")],
                    "[{\"id\":\"65a0000000000000000000ff\",\"name\":\"To",
                )
                    .into_response(),
            ),
            Act::UnauthorizedPage => Some(
                (
                    [("content-type", "text/html; charset=utf-8")],
                    "<!DOCTYPE html><html><body><h1>unauthorized</h1></body></html>",
                )
                    .into_response(),
            ),
            Act::Mutate(_) => None,
        };
        if let Some(r) = resp {
            return r;
        }
        let rule = std::mem::replace(&mut app.rules[i].act, Act::Status(0, ""));
        if let Act::Mutate(f) = &rule {
            f(app);
        }
        app.rules[i].act = rule;
    }
    // "If a token has been revoked, the API will respond with a 401 HTTP status and the
    // message: invalid token" (Authorizing With Trello's REST API).
    if !authorized {
        return if has_creds || !path.contains("/download/") {
            text(401, "invalid token")
        } else {
            text(401, "unauthorized permission requested")
        };
    }
    // Rate limits: the documented 429 body and headers.
    if let Some((n, window)) = app.rate {
        let now = Instant::now();
        app.served.retain(|t| now.duration_since(*t) < window);
        if app.served.len() >= n {
            let mut r = json_response(&json!({"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            let h = r.headers_mut();
            h.insert("x-rate-limit-api-token-interval-ms", (window.as_millis() as u64).into());
            h.insert("x-rate-limit-api-token-max", n.into());
            h.insert("x-rate-limit-api-token-remaining", 0.into());
            return r;
        }
        app.served.push(now);
    }
    let q = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let seg: Vec<&str> = path.trim_start_matches("/1/").split('/').collect();
    let not_found = || text(404, "The requested resource was not found.");
    let board_exists = |app: &App, id: &str| app.boards.iter().any(|b| b["id"] == id);
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["members", "me", "boards"]) => {
            let v: Vec<Value> = app.boards.iter().map(strip_private).collect();
            json_response(&Value::Array(v))
        }
        ("GET", ["members", "me", "organizations"]) => json_response(&Value::Array(app.workspaces.clone())),
        ("GET", ["boards", b, rest @ ..]) => {
            if !board_exists(app, b) {
                return not_found();
            }
            match rest {
                ["cards"] | ["cards", _] => {
                    let mut cards: Vec<Value> = app.cards.iter().filter(|c| c["idBoard"] == *b).cloned().collect();
                    if let Some(filter) = rest.get(1).copied().or(q("filter")) {
                        match filter {
                            "all" => {}
                            "open" | "visible" => cards.retain(|c| c["closed"] == false),
                            "closed" => cards.retain(|c| c["closed"] == true),
                            _ => return text(400, "invalid value for filter"),
                        }
                    } else {
                        cards.retain(|c| c["closed"] == false);
                    }
                    // Cards take a larger limit than actions (Airbyte's source-trello asked for
                    // 20000 at once).
                    let page = match paged(cards, q("before"), q("since"), q("limit"), None, 20_000, "date") {
                        Ok(p) => p,
                        Err(why) => return text(400, why),
                    };
                    let mut page: Vec<Value> = page.into_iter().map(|c| card_view(app, c, query)).collect();
                    if q("sort") == Some("-id") {
                        page.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
                    } else {
                        // Trello gives a board's cards in board order (list, then position).
                        page.sort_by(|a, b| a["pos"].as_f64().partial_cmp(&b["pos"].as_f64()).unwrap());
                    }
                    json_response(&Value::Array(page.into_iter().map(|c| fields(c, q("fields"))).collect()))
                }
                ["actions"] => {
                    let filter: Vec<&str> = q("filter").unwrap_or("all").split(',').collect();
                    let acts: Vec<Value> = app
                        .actions
                        .iter()
                        .filter(|a| a["data"]["board"]["id"] == *b)
                        .filter(|a| filter.contains(&"all") || filter.contains(&a["type"].as_str().unwrap_or_default()))
                        .cloned()
                        .collect();
                    match paged(acts, q("before"), q("since"), q("limit"), Some(50), 1000, "date") {
                        Ok(mut page) => {
                            page.reverse(); // newest first
                            json_response(&Value::Array(page.into_iter().map(|a| fields(a, q("fields"))).collect()))
                        }
                        Err(why) => text(400, why),
                    }
                }
                ["lists"] => {
                    let mut v: Vec<Value> = app.lists.iter().filter(|l| l["idBoard"] == *b).cloned().collect();
                    if q("filter") == Some("open") {
                        v.retain(|l| l["closed"] == false);
                    }
                    json_response(&Value::Array(v.into_iter().map(|x| fields(x, q("fields"))).collect()))
                }
                ["checklists"] => {
                    let v: Vec<Value> = app.checklists.iter().filter(|l| l["idBoard"] == *b).cloned().collect();
                    json_response(&Value::Array(v))
                }
                ["labels"] => {
                    let v: Vec<Value> = app.labels.iter().filter(|l| l["idBoard"] == *b).cloned().collect();
                    // "limit: 0 to 1000, default 50".
                    let limit: usize = q("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
                    if limit > 1000 {
                        return text(400, "invalid value for limit");
                    }
                    json_response(&Value::Array(v.into_iter().take(limit).map(|x| fields(x, q("fields"))).collect()))
                }
                ["members"] => {
                    let b = app.boards.iter().find(|x| x["id"] == *b).unwrap();
                    let v = b["_members"].as_array().cloned().unwrap_or_default();
                    json_response(&Value::Array(v.into_iter().map(|x| fields(x, q("fields"))).collect()))
                }
                ["customFields"] => {
                    let v: Vec<Value> = app.custom_fields.iter().filter(|f| f["idModel"] == *b).cloned().collect();
                    json_response(&Value::Array(v.into_iter().map(|x| fields(x, q("fields"))).collect()))
                }
                _ => not_found(),
            }
        }
        ("GET", ["cards", c, "attachments", a, "download", _name]) => {
            match app.cards.iter().find(|x| x["id"] == *c).and_then(|_| app.files.get(*a)) {
                Some(bytes) => ([("content-type", "application/octet-stream")], bytes.clone()).into_response(),
                None => not_found(),
            }
        }
        ("GET", ["cards", c]) => match app.cards.iter().find(|x| x["id"] == *c).cloned() {
            Some(card) => json_response(&fields(card_view(app, card, query), q("fields"))),
            None => not_found(),
        },
        ("GET", ["lists", l]) => match app.lists.iter().find(|x| x["id"] == *l) {
            Some(v) => json_response(&fields(v.clone(), q("fields"))),
            None => not_found(),
        },
        ("GET", ["actions", a]) => match app.actions.iter().find(|x| x["id"] == *a) {
            Some(v) => json_response(v),
            None => not_found(),
        },
        ("POST", _) => create(app, &seg, headers, body),
        ("PUT", ["cards", c, "customField", f, "item"]) => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (c, f) = (c.to_string(), f.to_string());
            if !app.custom_fields.iter().any(|x| x["id"] == f.as_str())
                || !app.cards.iter().any(|x| x["id"] == c.as_str())
            {
                return not_found();
            }
            let iid = app.new_id();
            let card = app.card_mut(&c);
            let mut item = json!({"id": iid, "idCustomField": f, "idModel": c, "modelType": "card"});
            if let Some(x) = v.get("value") {
                item["value"] = x.clone();
            }
            if let Some(x) = v.get("idValue") {
                item["idValue"] = x.clone();
            }
            card["customFieldItems"].as_array_mut().unwrap().push(item.clone());
            json_response(&item)
        }
        _ => not_found(),
    }
}

fn strip_private(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("_members");
    v
}

/// The creation second of an id (its first 4 bytes).
pub fn second_of(id: &str) -> i64 {
    i64::from_str_radix(&id[..8], 16).unwrap()
}

/// Trello's paging: `before`/`since` take an id (or, on actions, a date); an id is taken as
/// its creation second, so objects made in that second are all before none of it and after
/// none of it; `limit` keeps the newest that many, at most `max_limit`.
fn paged(
    mut items: Vec<Value>,
    before: Option<&str>,
    since: Option<&str>,
    limit: Option<&str>,
    default_limit: Option<usize>,
    max_limit: usize,
    date_field: &str,
) -> Result<Vec<Value>, &'static str> {
    let is_id = |s: &str| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let sec = |x: &Value| second_of(x["id"].as_str().unwrap());
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if let Some(b) = before {
        if is_id(b) {
            items.retain(|x| sec(x) < second_of(b));
        } else {
            items.retain(|x| x[date_field].as_str().unwrap_or_default() < b);
        }
    }
    if let Some(s) = since {
        if is_id(s) {
            items.retain(|x| sec(x) > second_of(s));
        } else {
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| "invalid value for since")?;
            items.retain(|x| {
                x[date_field].as_str().and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok()).is_some_and(|d| d > t)
            });
        }
    }
    let limit = match limit {
        Some(l) => Some(l.parse::<usize>().map_err(|_| "invalid value for limit")?),
        None => default_limit,
    };
    if let Some(l) = limit {
        if l > max_limit {
            return Err("invalid value for limit");
        }
        let n = items.len();
        items = items.split_off(n.saturating_sub(l));
    }
    Ok(items)
}

/// A card as GET gives it: nested resources only when asked for.
fn card_view(app: &App, mut c: Value, query: &[(String, String)]) -> Value {
    let q = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let o = c.as_object_mut().unwrap();
    if q("attachments") != Some("true") {
        o.remove("attachments");
    }
    if q("customFieldItems") != Some("true") {
        o.remove("customFieldItems");
    }
    if q("checklists") == Some("all") {
        let id = o["id"].clone();
        let cls: Vec<Value> = app.checklists.iter().filter(|x| x["idCard"] == id).cloned().collect();
        o.insert("checklists".into(), Value::Array(cls));
    }
    c
}

/// `fields=a,b` keeps those (and id); absent or `all` keeps everything.
fn fields(v: Value, f: Option<&str>) -> Value {
    match f {
        None | Some("all") => v,
        Some(list) => {
            let keep: Vec<&str> = list.split(',').collect();
            let mut m = Map::new();
            for (k, x) in v.as_object().unwrap() {
                if k == "id"
                    || keep.contains(&k.as_str())
                    || ["attachments", "checklists", "customFieldItems"].contains(&k.as_str())
                {
                    m.insert(k.clone(), x.clone());
                }
            }
            Value::Object(m)
        }
    }
}

fn create(app: &mut App, seg: &[&str], headers: &HeaderMap, body: &Bytes) -> Response {
    let is_multipart =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("multipart/form-data"));
    let v: Value = if is_multipart { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    match seg {
        ["cards"] => {
            let list = g("idList");
            let Some(l) = app.lists.iter().find(|l| l["id"] == list).cloned() else {
                return text(400, "invalid value for idList");
            };
            let id = app.card(l["id"].as_str().unwrap(), v["name"].as_str().unwrap_or_default());
            let c = app.card_mut(&id);
            for k in ["desc", "due", "start", "dueComplete", "idLabels", "idMembers"] {
                if !g(k).is_null() {
                    c[k] = g(k);
                }
            }
            c["dateLastActivity"] = now().into();
            let c = c.clone();
            json_response(&c)
        }
        ["lists"] => {
            let id = app.list(v["idBoard"].as_str().unwrap_or_default(), v["name"].as_str().unwrap_or_default());
            json_response(&json!({"id": id}))
        }
        ["labels"] => {
            let id = app.label(
                v["idBoard"].as_str().unwrap_or_default(),
                v["name"].as_str().unwrap_or_default(),
                v["color"].as_str().unwrap_or_default(),
            );
            json_response(&json!({"id": id}))
        }
        ["checklists"] => {
            let card = v["idCard"].as_str().unwrap_or_default().to_string();
            if !app.cards.iter().any(|c| c["id"] == card.as_str()) {
                return text(400, "invalid value for idCard");
            }
            let id = app.checklist(&card, v["name"].as_str().unwrap_or_default(), &[]);
            json_response(&json!({"id": id}))
        }
        ["checklists", cl, "checkItems"] => {
            let iid = app.new_id();
            let Some(c) = app.checklists.iter_mut().find(|c| c["id"] == *cl) else { return text(404, "not found") };
            let state = if v["checked"] == true { "complete" } else { "incomplete" };
            let item = json!({"id": iid, "idChecklist": cl, "name": v["name"], "state": state, "pos": 1.0});
            c["checkItems"].as_array_mut().unwrap().push(item.clone());
            json_response(&item)
        }
        ["cards", c, "actions", "comments"] => {
            if !app.cards.iter().any(|x| x["id"] == *c) {
                return text(404, "not found");
            }
            let id = app.comment(c, v["text"].as_str().unwrap_or_default());
            json_response(&json!({"id": id, "type": "commentCard"}))
        }
        ["cards", c, "attachments"] => {
            if !app.cards.iter().any(|x| x["id"] == *c) {
                return text(404, "not found");
            }
            if is_multipart {
                let ct = headers.get("content-type").unwrap().to_str().unwrap();
                let boundary = ct.split("boundary=").nth(1).unwrap_or_default().trim_matches('"').to_string();
                let (name, bytes) = multipart_file(body, &boundary).unwrap_or_default();
                let id = app.attach(c, &name, &bytes);
                json_response(&json!({"id": id}))
            } else {
                let id = app.new_id();
                let a = json!({"id": id, "name": v["name"], "url": v["url"], "isUpload": false, "bytes": null, "date": now()});
                app.edit_card(c, |card| card["attachments"].as_array_mut().unwrap().push(a));
                json_response(&json!({"id": id}))
            }
        }
        _ => text(404, "not found"),
    }
}

/// The file part of a multipart body: (file name, bytes).
fn multipart_file(body: &[u8], boundary: &str) -> Option<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let start = find(body, delim.as_bytes(), 0)?;
    let head_end = find(body, b"\r\n\r\n", start)?;
    let head = String::from_utf8_lossy(&body[start..head_end]).to_string();
    let name = head.split("filename=\"").nth(1)?.split('"').next()?.to_string();
    let data_start = head_end + 4;
    let end = find(body, format!("\r\n{delim}").as_bytes(), data_start)?;
    Some((name, body[data_start..end].to_vec()))
}
