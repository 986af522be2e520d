//! ClickUp (API v2, personal token). What the token sees, walked as Workspace > Space >
//! Folder > List > Task, backed up as data types per workspace:
//!
//! | data type              | records                                   | read                     |
//! | ---                    | ---                                       | ---                      |
//! | `workspaces`           | workspaces (teams), with their members    | whole, from the walk     |
//! | `<ws>-spaces`          | spaces (active and archived)              | whole, from the walk     |
//! | `<ws>-folders`         | folders (active and archived)             | whole, from the walk     |
//! | `<ws>-lists`           | lists, in folders or not (and archived)   | whole, from the walk     |
//! | `<ws>-fields`          | custom field definitions                  | whole: 1 request a list  |
//! | `<ws>-views`           | views of the workspace, spaces, folders, lists | whole: 1 request each |
//! | `<ws>-tasks`           | tasks and subtasks, open, closed and archived, with custom field values; attachments as files | changes since the cursor |
//! | `<ws>-comments`        | task comments and threaded replies        | whole: 1+ request a task |
//!
//! `<ws>` is the workspace's id (names change, ids do not); each type is shown as
//! "<workspace name>/<kind>", in the hierarchy [workspace name]. Tasks are one data type per workspace, not per list: a list that
//! is deleted then takes its tasks with it as deletions (which `recover` finds), where a
//! per-list data type would simply stop being read.

mod client;
mod config;
mod restore;
mod tree;

use async_trait::async_trait;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::mpsc;

use super::http::{Expect, HttpSourceOptions, LazyHttp};
use super::sink::Sink;
use super::{Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, RestoreFile, Restored, SourceError};
use crate::config::SourceConfig;
use client::{Api, id_str, ms_to_rfc3339, rfc3339_ms, str_of};
use tree::{Judge, Node, Workspace};

pub use config::ClickUpConfig;

pub const WORKSPACES: &str = "workspaces";
/// The data types of each workspace, in the order they are backed up.
const KINDS: &[&str] = &["spaces", "folders", "lists", "fields", "views", "tasks", "comments"];
const BATCH: usize = 100;

pub struct ClickUp {
    opts: HttpSourceOptions,
    cfg: ClickUpConfig,
    http: LazyHttp,
    /// The hierarchy as the last `discover` saw it.
    tree: Mutex<Vec<Workspace>>,
    /// Attachment id -> its download link, from the tasks read this cycle.
    links: Mutex<HashMap<String, String>>,
    /// The tasks whose comments the last comment read fetched.
    comment_tasks: Mutex<std::collections::HashSet<String>>,
}

pub fn build(src: &SourceConfig) -> anyhow::Result<Box<dyn Connector>> {
    let (opts, cfg): (_, ClickUpConfig) = HttpSourceOptions::parse(src, &config::DEFAULTS)?;
    Ok(Box::new(ClickUp::new(opts, cfg)))
}

/// A data type's name part for a workspace: its id, kept to the characters data type
/// names allow.
fn prefix(ws: &Node) -> String {
    ws.id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Pages through one list's tasks: active ones, then archived ones (`archived=true`), each
/// until `last_page` or an empty page.
struct Pager<'a> {
    api: &'a Api<'a>,
    list: &'a Node,
    since_ms: Option<i64>,
    archived: bool,
    page: u32,
    done: bool,
}

impl<'a> Pager<'a> {
    fn new(api: &'a Api<'a>, list: &'a Node, since_ms: Option<i64>) -> Pager<'a> {
        Pager { api, list, since_ms, archived: false, page: 0, done: false }
    }

    fn next_phase(&mut self) {
        self.page = 0;
        if self.archived { self.done = true } else { self.archived = true }
    }

    async fn next(&mut self) -> Result<Option<Vec<Value>>, SourceError> {
        while !self.done {
            let p = self.api.task_page(&self.list.id, self.archived, self.page, self.since_ms).await.map_err(|e| {
                let gone = if e.is_not_found() { " (deleted or moved while the backup ran?)" } else { "" };
                e.about(format!("list {:?} ({}){gone}", self.list.path, self.list.id))
            })?;
            if p.tasks.is_empty() {
                self.next_phase();
                continue;
            }
            if p.last_page == Some(true) {
                self.next_phase()
            } else {
                self.page += 1
            }
            return Ok(Some(p.tasks));
        }
        Ok(None)
    }
}

impl ClickUp {
    pub fn new(opts: HttpSourceOptions, cfg: ClickUpConfig) -> ClickUp {
        // A personal token goes as it is: `Authorization: pk_...`
        // (https://developer.clickup.com/docs/authentication).
        let http = LazyHttp::with_token(&opts, "Authorization").judge(config::credentials_refused);
        ClickUp {
            opts,
            cfg,
            http,
            tree: Mutex::new(Vec::new()),
            links: Mutex::new(HashMap::new()),
            comment_tasks: Mutex::new(Default::default()),
        }
    }

    /// The API, its client made at the first request (only then is the token read).
    async fn api(&self) -> Result<Api<'_>, SourceError> {
        Ok(Api { http: self.http.get().await? })
    }

    /// The workspace a data type belongs to, and its kind.
    fn target(&self, data_type: &str) -> Result<(Option<Workspace>, &'static str), SourceError> {
        if data_type == WORKSPACES {
            return Ok((None, WORKSPACES));
        }
        let unknown = |why: String| SourceError::NoSuchType { key: data_type.into(), why };
        let (ws, kind) =
            data_type.rsplit_once('-').ok_or_else(|| unknown("not a ClickUp data type of this source".into()))?;
        let kind = KINDS.iter().find(|k| **k == kind).ok_or_else(|| unknown("not a kind of ClickUp data".into()))?;
        let tree = self.tree.lock().unwrap();
        let ws = tree
            .iter()
            .find(|w| prefix(&w.node) == ws)
            .cloned()
            .ok_or_else(|| unknown(format!("workspace {ws} is not among those the token sees now")))?;
        Ok((Some(ws), kind))
    }

    fn since_ms(&self, mode: &ReadMode) -> Result<Option<i64>, SourceError> {
        match mode {
            ReadMode::Full => Ok(None),
            ReadMode::Since(c) => {
                let t = chrono::DateTime::parse_from_rfc3339(c)
                    .map_err(|e| SourceError::bad_data("the tasks' cursor", format!("{c:?} is not a time: {e}")))?;
                Ok(Some(t.timestamp_millis() - 1000 * self.opts.overlap_secs()))
            }
        }
    }

    /// A task as a record: the task as Get Task gives it, its attachments as files.
    fn task_record(&self, v: &Value) -> Vec<FileRef> {
        let mut files = Vec::new();
        let mut links = self.links.lock().unwrap();
        for a in v["attachments"].as_array().into_iter().flatten() {
            let (Some(id), Some(url)) = (id_str(a), a["url"].as_str()) else { continue };
            if a["is_folder"].as_bool() == Some(true) {
                continue;
            }
            let name = Some(str_of(&a["title"])).filter(|t| !t.is_empty()).unwrap_or_else(|| id.clone());
            // A new upload gets a new id; a new version of one bumps `version`.
            let fingerprint = format!("{id}:{}:{}", str_of(&a["version"]), str_of(&a["size"]));
            links.insert(id.clone(), url.to_string());
            files.push(FileRef { key: id, name, fingerprint: Some(fingerprint) });
        }
        files
    }

    async fn read_tasks(
        &self,
        api: &Api<'_>,
        ws: &Workspace,
        since_ms: Option<i64>,
        sink: &mut Sink,
    ) -> Result<(), SourceError> {
        for list in ws.kept_lists() {
            let mut pager = Pager::new(api, list, since_ms);
            while let Some(tasks) = pager.next().await? {
                for t in tasks {
                    let id = id_str(&t).ok_or_else(|| {
                        SourceError::bad_data(format!("list {:?} ({})", list.path, list.id), "a task without an id")
                    })?;
                    if sink.has(&id) {
                        continue;
                    }
                    let task = match self.cfg.attachments {
                        // Only Get Task lists a task's attachments.
                        true => match api.task(&id).await? {
                            Some(full) => full,
                            None => continue, // deleted since its page was read
                        },
                        false => t,
                    };
                    let files = if self.cfg.attachments { self.task_record(&task) } else { Vec::new() };
                    let modified = ms_to_rfc3339(&task["date_updated"]);
                    sink.push_value(id, &task, files, modified).await?;
                }
            }
        }
        Ok(())
    }

    async fn task_ids(&self, api: &Api<'_>, ws: &Workspace) -> Result<Vec<String>, SourceError> {
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for list in ws.kept_lists() {
            let mut pager = Pager::new(api, list, None);
            while let Some(tasks) = pager.next().await? {
                for t in tasks {
                    let id = id_str(&t).ok_or_else(|| {
                        SourceError::bad_data(format!("list {:?} ({})", list.path, list.id), "a task without an id")
                    })?;
                    if seen.insert(id.clone()) {
                        ids.push(id);
                    }
                }
            }
        }
        Ok(ids)
    }

    async fn read_comments(&self, api: &Api<'_>, ws: &Workspace, sink: &mut Sink) -> Result<(), SourceError> {
        let tasks = self.task_ids(api, ws).await?;
        *self.comment_tasks.lock().unwrap() = tasks.iter().cloned().collect();
        for task in tasks {
            let comments = match api.comments(&task).await {
                Ok(c) => c,
                // Deleted since its list was read: its comments went with it.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.about(format!("comments of task {task}"))),
            };
            for mut c in comments {
                let Some(id) = id_str(&c) else { continue };
                let replies = str_of(&c["reply_count"]).parse::<u64>().unwrap_or(0);
                // The comment as ClickUp gives it, and the task it is on (which its JSON
                // does not say).
                c["task_id"] = Value::String(task.clone());
                sink.push_value(id.clone(), &c, Vec::new(), None).await?;
                if replies > 0 {
                    for mut r in api.replies(&id).await? {
                        let Some(rid) = id_str(&r) else { continue };
                        r["task_id"] = Value::String(task.clone());
                        r["parent_comment_id"] = Value::String(id.clone());
                        sink.push_value(rid, &r, Vec::new(), None).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn read_views(&self, api: &Api<'_>, ws: &Workspace, sink: &mut Sink) -> Result<(), SourceError> {
        let mut parents = vec![("team", ws.node.id.clone(), ws.node.path.clone())];
        for s in ws.spaces.iter().filter(|s| s.keeps_any()) {
            parents.push(("space", s.node.id.clone(), s.node.path.clone()));
            for f in s.folders.iter().filter(|f| f.keeps_any()) {
                parents.push(("folder", f.node.id.clone(), f.node.path.clone()));
            }
        }
        for l in ws.kept_lists() {
            parents.push(("list", l.id.clone(), l.path.clone()));
        }
        for (kind, id, path) in parents {
            let views = api.views(kind, &id).await.map_err(|e| e.about(format!("views of {kind} {path:?} ({id})")))?;
            for v in views {
                if let Some(vid) = id_str(&v) {
                    sink.push_value(vid, &v, Vec::new(), None).await?;
                }
            }
        }
        Ok(())
    }

    async fn read_whole(&self, api: &Api<'_>, ws: &Workspace, kind: &str, sink: &mut Sink) -> Result<(), SourceError> {
        match kind {
            "spaces" => {
                for s in ws.spaces.iter().filter(|s| s.keeps_any()) {
                    sink.push_value(s.node.id.clone(), &s.node.raw, Vec::new(), None).await?;
                }
            }
            "folders" => {
                for f in ws.spaces.iter().flat_map(|s| s.folders.iter()).filter(|f| f.keeps_any()) {
                    sink.push_value(f.node.id.clone(), &f.node.raw, Vec::new(), None).await?;
                }
            }
            "lists" => {
                for l in ws.kept_lists() {
                    sink.push_value(l.id.clone(), &l.raw, Vec::new(), None).await?;
                }
            }
            "fields" => {
                for l in ws.kept_lists() {
                    let fields = api
                        .fields(&l.id)
                        .await
                        .map_err(|e| e.about(format!("custom fields of list {:?} ({})", l.path, l.id)))?;
                    for f in fields {
                        if let Some(id) = id_str(&f) {
                            sink.push_value(id, &f, Vec::new(), None).await?;
                        }
                    }
                }
            }
            "views" => self.read_views(api, ws, sink).await?,
            "comments" => self.read_comments(api, ws, sink).await?,
            other => return Err(SourceError::unsupported(other, "not read whole")),
        }
        Ok(())
    }
}

fn describe(judge: Judge, what: &str, n: &Node) -> (bool, String) {
    (judge != Judge::Excluded, format!("{what} {} ({})", n.path, n.id))
}

#[async_trait]
impl Connector for ClickUp {
    fn incremental(&self) -> bool {
        true
    }

    fn location(&self, data_type: &str) -> String {
        format!("ClickUp {data_type}")
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        let api = self.api().await?;
        let tree = tree::walk(&api, &self.opts.scope).await?;
        let mut types = vec![DataType::named(WORKSPACES)];
        for ws in &tree {
            if ws.node.judge == Judge::Excluded || (ws.error.is_none() && !ws.keeps_any()) {
                continue;
            }
            for kind in KINDS {
                if *kind == "comments" && !self.cfg.comments {
                    continue;
                }
                types.push(DataType {
                    key: format!("{}-{kind}", prefix(&ws.node)),
                    name: format!("{}/{kind}", ws.node.name),
                    path: vec![ws.node.name.clone()],
                    former: Vec::new(),
                });
            }
        }
        *self.tree.lock().unwrap() = tree;
        Ok(types)
    }

    async fn read(
        &self,
        data_type: &str,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let api = self.api().await?;
        // Everything changed after this is asked for again next cycle: ClickUp's own clock
        // at its last answer (its Date header, whole seconds, so never late), else ours.
        let start = api.http.server_time().map(|t| t.timestamp_millis()).unwrap_or_else(now_ms);
        let cursor = Some(rfc3339_ms(start));
        let (ws, kind) = self.target(data_type)?;
        let mut sink = Sink::new(out, BATCH);
        match ws {
            None => {
                let tree = self.tree.lock().unwrap().clone();
                for w in tree.iter().filter(|w| w.node.judge != Judge::Excluded && (w.keeps_any() || w.error.is_some()))
                {
                    sink.push_value(w.node.id.clone(), &w.node.raw, Vec::new(), None).await?;
                }
            }
            Some(ws) => {
                if let Some(e) = &ws.error {
                    return Err(e.clone());
                }
                match kind {
                    "tasks" => self.read_tasks(&api, &ws, self.since_ms(&mode)?, &mut sink).await?,
                    // ClickUp cannot say which of these changed: they are read whole.
                    _ => self.read_whole(&api, &ws, kind, &mut sink).await?,
                }
            }
        }
        sink.finish().await?;
        // Without a cursor the engine reads a type whole every cycle, the read being its listing.
        Ok(ReadSummary { cursor: cursor.filter(|_| kind == "tasks") })
    }

    async fn list_ids(&self, data_type: &str) -> Result<Vec<String>, SourceError> {
        let (ws, kind) = self.target(data_type)?;
        if kind == "tasks" {
            let ws = ws.expect("tasks belong to a workspace");
            if let Some(e) = &ws.error {
                return Err(e.clone());
            }
            return self.task_ids(&self.api().await?, &ws).await;
        }
        // The other types have no cursor: always read whole, never listed.
        Err(SourceError::unsupported(data_type, "read whole, not listed"))
    }

    fn confirms_deletions(&self, data_type: &str) -> bool {
        data_type.ends_with("-tasks") || data_type.ends_with("-comments")
    }

    /// Tasks are listed by page number, so a task deleted from an earlier page while later
    /// ones are read shifts another one past the listing (and its comments past the comment
    /// read). So a task the listing no longer shows is asked for by id, and counts as
    /// deleted only if ClickUp says it is gone, or it now lives in a list the scope leaves
    /// out; a comment counts as deleted only if its task's comments were read, or its task
    /// is gone.
    async fn confirm_deleted(
        &self,
        data_type: &str,
        vanished: Vec<super::Vanished>,
    ) -> Result<Vec<String>, SourceError> {
        let (ws, kind) = self.target(data_type)?;
        let Some(ws) = ws else { return Ok(vanished.into_iter().map(|v| v.id).collect()) };
        let api = self.api().await?;
        let read = self.comment_tasks.lock().unwrap().clone();
        let mut gone = Vec::new();
        for v in vanished {
            let task = match kind {
                "tasks" => v.id.clone(),
                "comments" => match v.last["task_id"].as_str() {
                    Some(t) if !read.contains(t) => t.to_string(),
                    _ => {
                        gone.push(v.id);
                        continue;
                    }
                },
                _ => {
                    gone.push(v.id);
                    continue;
                }
            };
            match api.task(&task).await? {
                None => gone.push(v.id),
                Some(t) => {
                    let list =
                        t["list"]["id"].as_str().map(str::to_string).unwrap_or_else(|| t["list"]["id"].to_string());
                    if kind == "tasks" && !ws.kept_lists().any(|l| l.id == list) {
                        gone.push(v.id);
                    }
                }
            }
        }
        Ok(gone)
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let label = format!("attachment {:?}", file.name);
        let link = self
            .links
            .lock()
            .unwrap()
            .get(&file.key)
            .cloned()
            .ok_or_else(|| SourceError::unsupported(&label, "no download link was read for it this cycle"))?;
        // The fingerprint is "id:version:size".
        let size = file.fingerprint.as_deref().and_then(|f| f.rsplit(':').next()?.parse().ok());
        // The link is absolute, on ClickUp's attachment host: the HTTP layer sends the token
        // only to the API's own host.
        self.http.get().await?.download(&link, &label, Expect { name: &file.name, size, sniff: None }).await
    }

    fn visible(&self) -> super::Visibility {
        let tree = self.tree.lock().unwrap();
        let mut vis = super::Visibility::default();
        let mut put = |keep: bool, s: String| if keep { vis.kept.push(s) } else { vis.skipped.push(s) };
        for ws in tree.iter() {
            let (walked, label) = describe(ws.node.judge, "workspace", &ws.node);
            put(walked && (ws.keeps_any() || ws.error.is_some()), label);
            if !walked {
                continue;
            }
            for s in &ws.spaces {
                let (walked, label) = describe(s.node.judge, "space", &s.node);
                put(walked && s.keeps_any(), label);
                if !walked {
                    continue;
                }
                for f in &s.folders {
                    if !f.keeps_any() {
                        put(false, describe(f.node.judge, "folder", &f.node).1);
                        continue;
                    }
                    for l in f.lists.iter().filter(|l| l.judge != Judge::Included) {
                        put(false, describe(l.judge, "list", l).1);
                    }
                }
                for l in s.lists.iter().filter(|l| l.judge != Judge::Included) {
                    put(false, describe(l.judge, "list", l).1);
                }
            }
        }
        vis
    }

    fn requests(&self) -> Option<u64> {
        Some(self.http.requests())
    }

    fn rate_limited(&self) -> Option<u64> {
        Some(self.http.rate_limited())
    }

    fn restorable(&self, data_type: &str) -> Result<(), String> {
        restore::restorable(data_type.rsplit_once('-').map(|(_, k)| k).unwrap_or(data_type))
    }

    async fn restore(&self, data_type: &str, record: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
        let kind = data_type.rsplit_once('-').map(|(_, k)| k).unwrap_or(data_type);
        restore::restorable(kind).map_err(|why| SourceError::unsupported(data_type, why))?;
        // The stored form is {"data": <the record>, "files": [...]}; take either.
        let data = match record.get("data") {
            Some(d) if d.is_object() && record.get("id").is_none() => d,
            _ => record,
        };
        let api = self.api().await?;
        match kind {
            "tasks" => restore::task(&api, data, files).await,
            _ => restore::comment(&api, data).await,
        }
    }
}
