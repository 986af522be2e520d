//! ClickUp API v2 on the wire: paths, query parameters and the shapes of the answers, as
//! the public reference gives them (https://developer.clickup.com/reference, OpenAPI file
//! https://developer.clickup.com/openapi/clickup-api-v2-reference.json). Every request goes
//! through `connectors::http` (pacer, retries, 429 waits, bounded give-up).

use reqwest::Method;
use serde_json::Value;

use crate::connectors::SourceError;
use crate::connectors::error::json_why;
use crate::connectors::http::Http;

/// Get Task Comments answers the 25 most recent comments; older ones are asked for with
/// `start` (the `date` of the oldest comment so far) and `start_id` (its `id`).
pub const COMMENTS_PER_PAGE: usize = 25;

pub struct Api<'a> {
    pub http: &'a Http,
}

/// A page of Get Tasks (`GET /list/{list_id}/task`).
pub struct TaskPage {
    pub tasks: Vec<Value>,
    /// `last_page` as ClickUp says it; None when the answer has no such field (then only
    /// an empty page ends the listing).
    pub last_page: Option<bool>,
}

impl Api<'_> {
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, SourceError> {
        self.http.get_json::<Value>(path, query).await
    }

    /// The array under `key` of a JSON answer; its absence means the answer is not what the
    /// reference describes, and is an error (never read as "none").
    async fn array(&self, path: &str, query: &[(&str, String)], key: &str) -> Result<Vec<Value>, SourceError> {
        let v = self.get(path, query).await?;
        take_array(v, key, path)
    }

    /// Get Authorized Workspaces: `GET /team` -> `{"teams": [...]}`.
    pub async fn teams(&self) -> Result<Vec<Value>, SourceError> {
        self.array("team", &[], "teams").await
    }

    /// Get Spaces: `GET /team/{team_id}/space?archived=` -> `{"spaces": [...]}`.
    pub async fn spaces(&self, team: &str, archived: bool) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("team/{team}/space"), &[("archived", archived.to_string())], "spaces").await
    }

    /// Get Folders: `GET /space/{space_id}/folder?archived=` -> `{"folders": [...]}`.
    pub async fn folders(&self, space: &str, archived: bool) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("space/{space}/folder"), &[("archived", archived.to_string())], "folders").await
    }

    /// Get Lists (`GET /folder/{folder_id}/list`) and Get Folderless Lists
    /// (`GET /space/{space_id}/list`), each `?archived=` -> `{"lists": [...]}`.
    pub async fn lists(&self, parent: &str, id: &str, archived: bool) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("{parent}/{id}/list"), &[("archived", archived.to_string())], "lists").await
    }

    /// One page of Get Tasks: at most 100 tasks ("Responses are limited to 100 tasks per
    /// page"), `last_page` saying whether more follow. `include_closed=true` (closed tasks are left out by default),
    /// `subtasks=true` (likewise), `archived` (archived tasks are listed only when asked
    /// for), `order_by=created` so that a task edited while the pages are read keeps its
    /// place (ordered by `updated` it would move between pages), and `date_updated_gt`
    /// (Unix milliseconds) for changes only.
    pub async fn task_page(
        &self,
        list: &str,
        archived: bool,
        page: u32,
        updated_after_ms: Option<i64>,
    ) -> Result<TaskPage, SourceError> {
        let mut q = vec![
            ("archived", archived.to_string()),
            ("include_closed", "true".to_string()),
            ("subtasks", "true".to_string()),
            ("order_by", "created".to_string()),
            ("page", page.to_string()),
        ];
        if let Some(ms) = updated_after_ms {
            q.push(("date_updated_gt", ms.to_string()));
        }
        let path = format!("list/{list}/task");
        let mut v = self.get(&path, &q).await?;
        let last_page = v.get("last_page").and_then(Value::as_bool);
        let tasks = take_array(v.take(), "tasks", &path)?;
        Ok(TaskPage { tasks, last_page })
    }

    /// Get Task: `GET /task/{task_id}`, the one answer that carries `attachments`. None when
    /// the task is gone (deleted since its page was read).
    pub async fn task(&self, id: &str) -> Result<Option<Value>, SourceError> {
        let q = [("include_markdown_description", "true".to_string())];
        match self.http.get_json::<Value>(&format!("task/{id}"), &q).await {
            Ok(v) if v.is_object() => Ok(Some(v)),
            Ok(_) => Err(SourceError::bad_data(format!("GET /task/{id}"), "the answer is not a task object")),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every comment of a task, newest first, following `start`/`start_id` while full pages
    /// come back.
    pub async fn comments(&self, task: &str) -> Result<Vec<Value>, SourceError> {
        let path = format!("task/{task}/comment");
        let mut all: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut q: Vec<(&str, String)> = Vec::new();
        loop {
            let page = self.array(&path, &q, "comments").await?;
            let full = page.len() >= COMMENTS_PER_PAGE;
            let mut new = 0;
            for c in page {
                if seen.insert(id_str(&c).unwrap_or_default()) {
                    new += 1;
                    all.push(c);
                }
            }
            let Some(oldest) = all.last() else { break };
            if !full {
                break;
            }
            if new == 0 {
                // A full page of comments already read: paging did not move on. Stopping
                // here would drop the older ones (and mark them deleted).
                return Err(SourceError::bad_data(
                    format!("comments of task {task}"),
                    "the next page repeats the last one; not taken as the end",
                ));
            }
            let (date, id) = (str_of(&oldest["date"]), id_str(oldest).unwrap_or_default());
            q = vec![("start", date), ("start_id", id)];
        }
        Ok(all)
    }

    /// Threaded replies of a comment: `GET /comment/{comment_id}/reply` -> `{"comments": [...]}`.
    pub async fn replies(&self, comment: &str) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("comment/{comment}/reply"), &[], "comments").await
    }

    /// Get Accessible Custom Fields: `GET /list/{list_id}/field` -> `{"fields": [...]}`
    /// (the fields a list's tasks can have, wherever in the hierarchy they were made).
    pub async fn fields(&self, list: &str) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("list/{list}/field"), &[], "fields").await
    }

    /// Get Workspace/Space/Folder/List Views: `GET /{team|space|folder|list}/{id}/view` ->
    /// `{"views": [...]}`.
    pub async fn views(&self, parent: &str, id: &str) -> Result<Vec<Value>, SourceError> {
        self.array(&format!("{parent}/{id}/view"), &[], "views").await
    }

    /// Create Task: `POST /list/{list_id}/task` -> the new task.
    pub async fn create_task(&self, list: &str, body: &Value) -> Result<Value, SourceError> {
        self.post(&format!("list/{list}/task"), body).await
    }

    /// Create Task Comment: `POST /task/{task_id}/comment` -> `{"id": ..., "hist_id": ..., "date": ...}`.
    pub async fn create_comment(&self, task: &str, body: &Value) -> Result<Value, SourceError> {
        self.post(&format!("task/{task}/comment"), body).await
    }

    /// Create Task Attachment: `POST /task/{task_id}/attachment`, multipart/form-data with
    /// the file in the field `attachment`.
    pub async fn upload(&self, task: &str, name: &str, bytes: &[u8]) -> Result<Value, SourceError> {
        let path = format!("task/{task}/attachment");
        let body = self.http.upload(&path, &[], "attachment", name, bytes).await?;
        serde_json::from_slice(&body).map_err(|e| SourceError::bad_data(format!("POST /{path}"), json_why(&e)))
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, SourceError> {
        let bytes = self.http.send(Method::POST, path, &[], Some(body)).await?;
        serde_json::from_slice(&bytes).map_err(|e| SourceError::bad_data(format!("POST /{path}"), json_why(&e)))
    }
}

fn take_array(mut v: Value, key: &str, path: &str) -> Result<Vec<Value>, SourceError> {
    match v.get_mut(key).map(Value::take) {
        Some(Value::Array(a)) => Ok(a),
        _ => Err(SourceError::bad_data(format!("GET /{path}"), format!("the answer has no {key:?} array"))),
    }
}

/// A JSON string or number as text (ClickUp gives ids and times as either).
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub fn id_str(v: &Value) -> Option<String> {
    Some(str_of(v.get("id")?)).filter(|s| !s.is_empty())
}

/// Unix milliseconds (as ClickUp gives them, a string or a number) to RFC 3339 UTC with
/// milliseconds, the form cursors take.
pub fn ms_to_rfc3339(v: &Value) -> Option<String> {
    let ms: i64 = str_of(v).parse().ok()?;
    Some(rfc3339_ms(ms))
}

pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
