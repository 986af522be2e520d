//! Trello, through its REST API (key and token in the OAuth header). Data types: the
//! token's `workspaces` and `boards`, and per board `<board>/cards` (with attachments,
//! checklists, custom field values and comments), `<board>/lists`, `<board>/checklists`,
//! `<board>/comments`, `<board>/labels`, `<board>/members`, `<board>/custom-fields`.
//! Cards and comments are read incrementally; the rest are small and read whole.

mod client;
mod config;
mod restore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{OnceCell, mpsc};

use super::http::{Http, Limits};
use super::scope::Scope;
use super::secret::SecretRef;
use super::{Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, RestoreFile, Restored, SourceError};
use crate::config::SourceConfig;
use client::{CARD_QUERY, Pager, get_list, id, str_of};

pub use config::TrelloConfig;

/// The per-board data types, each `<board>/<kind>`.
const KINDS: &[&str] = &["cards", "lists", "checklists", "comments", "labels", "members", "custom-fields"];
const BATCH: usize = 500;

pub struct Trello {
    base: reqwest::Url,
    key: SecretRef,
    token: SecretRef,
    scope: Scope,
    limits: Limits,
    overlap: chrono::Duration,
    http: OnceCell<Http>,
    seen: Mutex<Seen>,
    /// Ids a read of this cycle saw in a complete listing, for `list_ids` to reuse.
    listed: Mutex<HashMap<String, Vec<String>>>,
    /// Where each attachment of the cards read downloads from, and its size as Trello says.
    files: Mutex<HashMap<String, Attachment>>,
}

#[derive(Default)]
struct Seen {
    workspaces: Vec<Value>,
    boards: Vec<Board>,
    kept: Vec<String>,
    skipped: Vec<String>,
}

#[derive(Clone)]
struct Board {
    id: String,
    name: String,
    /// The unique, readable stem of its data types.
    label: String,
    json: Value,
}

impl Board {
    fn about(&self) -> String {
        format!("board {:?} ({})", self.name, self.id)
    }
}

#[derive(Clone)]
struct Attachment {
    url: reqwest::Url,
    bytes: Option<u64>,
    about: String,
}

pub fn build(src: &SourceConfig) -> anyhow::Result<Box<dyn Connector>> {
    let c: TrelloConfig = super::parse_options(src)?;
    let line = src.line;
    let mut base = c.base_url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    let base = reqwest::Url::parse(&base)
        .map_err(|e| anyhow::anyhow!("config line {line}: base_url {:?}: {e}", c.base_url))?;
    if c.requests_per_10s == 0 {
        anyhow::bail!("config line {line}: requests_per_10s must be at least 1");
    }
    let file = |f: &Option<String>| f.as_deref().map(|p| src.resolve(p));
    Ok(Box::new(Trello {
        base,
        key: SecretRef::new("Trello API key", "key", c.key_env.as_deref(), "TRELLO_KEY", file(&c.key_file).as_deref()),
        token: SecretRef::new(
            "Trello token",
            "token",
            c.token_env.as_deref(),
            "TRELLO_TOKEN",
            file(&c.token_file).as_deref(),
        ),
        scope: Scope { include: c.include, exclude: c.exclude },
        limits: Limits {
            requests: c.requests_per_10s,
            per: Duration::from_secs(10),
            give_up_after: Duration::from_secs(c.give_up_after_seconds),
            timeout: Duration::from_secs(c.timeout_seconds.max(1)),
        },
        overlap: chrono::Duration::seconds(c.overlap_seconds as i64),
        http: OnceCell::new(),
        seen: Mutex::default(),
        listed: Mutex::default(),
        files: Mutex::default(),
    }))
}

/// What a data type name stands for.
enum Target {
    Workspaces,
    Boards,
    Board(Board, &'static str),
}

fn stop() -> SourceError {
    SourceError::Other("the engine stopped reading".into())
}

/// The board's name made a safe, readable data type stem: no `/` (it separates the kind).
fn label_of(name: &str) -> String {
    let s: String = name.chars().map(|c| if c == '/' || c.is_control() { '-' } else { c }).collect();
    let s = s.trim().to_string();
    if s.is_empty() { "unnamed board".into() } else { s }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A Trello date ("2026-01-02T03:04:05.678Z") in the engine's form (RFC 3339, UTC).
fn modified(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| v.pointer(k).and_then(Value::as_str))
        .find_map(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| rfc3339(t.with_timezone(&Utc)))
}

impl Trello {
    async fn http(&self) -> Result<&Http, SourceError> {
        self.http
            .get_or_try_init(|| async {
                let key = self.key.read()?;
                let token = self.token.read()?;
                let auth = zeroize::Zeroizing::new(client::oauth_header(&key, &token));
                let hint = format!("{} and {}", self.key.hint(), self.token.hint());
                Http::new(self.base.as_str(), &[("Authorization", auth.as_str())], &hint, self.limits.clone())
                    .map_err(|e| SourceError::Other(e.to_string()))
            })
            .await
    }

    fn target(&self, data_type: &str) -> Result<Target, SourceError> {
        match data_type {
            "workspaces" => return Ok(Target::Workspaces),
            "boards" => return Ok(Target::Boards),
            _ => {}
        }
        let unknown = || SourceError::Other(format!("{data_type}: not a data type of this Trello source"));
        let (label, kind) = data_type.rsplit_once('/').ok_or_else(unknown)?;
        let kind = KINDS.iter().find(|k| **k == kind).ok_or_else(unknown)?;
        let seen = self.seen.lock().unwrap();
        let b = seen.boards.iter().find(|b| b.label == label).ok_or_else(unknown)?;
        Ok(Target::Board(b.clone(), kind))
    }

    fn record(&self, v: Value, modified: Option<String>, files: Vec<FileRef>) -> Result<Record, SourceError> {
        let rid = id(&v).ok_or_else(|| SourceError::Other(format!("an object without an id: {v}")))?.to_string();
        Ok(Record { id: rid, json: v.to_string(), files, line: None, modified })
    }

    /// Where a read of changes starts: the last cursor, less the overlap for clock skew.
    fn since(&self, about: &str, cursor: &str) -> Result<DateTime<Utc>, SourceError> {
        let t = DateTime::parse_from_rfc3339(cursor)
            .map_err(|e| SourceError::Other(format!("{about}: cursor {cursor:?}: {e}")))?;
        Ok(t.with_timezone(&Utc) - self.overlap)
    }

    fn remember_ids(&self, data_type: &str, ids: Vec<String>) {
        self.listed.lock().unwrap().insert(data_type.to_string(), ids);
    }

    /// Sends records in batches.
    async fn send_all(&self, out: &mpsc::Sender<Batch>, records: Vec<Record>) -> Result<(), SourceError> {
        let mut it = records.into_iter().peekable();
        while it.peek().is_some() {
            out.send(it.by_ref().take(BATCH).collect()).await.map_err(|_| stop())?;
        }
        Ok(())
    }

    /// The boards the token sees (those of its member), with their workspaces; the scope
    /// keeps some. Duplicate board names get the board's short link in their data types.
    async fn list_boards(&self) -> Result<(), SourceError> {
        let http = self.http().await?;
        let about = "listing the token's Trello boards";
        let boards =
            get_list(http, about, "members/me/boards", &[("filter", "all".into()), ("fields", "all".into())]).await?;
        let workspaces = get_list(http, about, "members/me/organizations", &[("fields", "all".into())]).await?;
        let ws_names: HashMap<&str, Vec<&str>> = workspaces
            .iter()
            .filter_map(|w| {
                let names = [str_of(w, "displayName"), str_of(w, "name")].into_iter().flatten().collect();
                Some((id(w)?, names))
            })
            .collect();
        let mut seen = Seen::default();
        let mut kept = Vec::new();
        for b in boards {
            let bid = id(&b).ok_or_else(|| SourceError::Other(format!("{about}: a board without an id")))?.to_string();
            let name = str_of(&b, "name").unwrap_or_default().to_string();
            let ws = str_of(&b, "idOrganization").map(|w| (w, ws_names.get(w).cloned().unwrap_or_default()));
            let mut names = vec![bid.as_str(), name.as_str()];
            names.extend(str_of(&b, "shortLink"));
            let paths: Vec<String> = ws.iter().flat_map(|(_, ns)| ns.iter().map(|n| format!("{n}/{name}"))).collect();
            names.extend(paths.iter().map(String::as_str));
            let parents: Vec<&str> =
                ws.iter().flat_map(|(w, ns)| std::iter::once(*w).chain(ns.iter().copied())).collect();
            let all: Vec<&str> = names.iter().chain(parents.iter()).copied().collect();
            let shown = format!("board {name} ({bid})");
            // A board answers to its own names and its workspace's: a workspace named in
            // include keeps its boards, named in exclude drops them.
            if self.scope.keeps(&all) {
                seen.kept.push(shown);
                kept.push(Board { id: bid, label: label_of(&name), name, json: b });
            } else {
                seen.skipped.push(shown);
            }
        }
        let mut count: HashMap<String, usize> = HashMap::new();
        for b in &kept {
            *count.entry(b.label.to_lowercase()).or_default() += 1;
        }
        for b in &mut kept {
            if count[&b.label.to_lowercase()] > 1 {
                let short = str_of(&b.json, "shortLink").unwrap_or(&b.id).to_string();
                b.label = format!("{} ({short})", b.label);
            }
        }
        kept.sort_by(|a, b| a.label.cmp(&b.label));
        let used: HashSet<&str> = kept.iter().filter_map(|b| str_of(&b.json, "idOrganization")).collect();
        for w in &workspaces {
            if id(w).is_some_and(|i| used.contains(i)) {
                let n = str_of(w, "displayName").or(str_of(w, "name")).unwrap_or_default();
                seen.kept.insert(0, format!("workspace {n} ({})", id(w).unwrap_or_default()));
            }
        }
        seen.workspaces = workspaces.into_iter().filter(|w| id(w).is_some_and(|i| used.contains(i))).collect();
        seen.boards = kept;
        *self.seen.lock().unwrap() = seen;
        Ok(())
    }

    /// A board's list that Trello gives whole (lists, checklists, labels, members, custom
    /// field definitions).
    async fn small(&self, b: &Board, kind: &str) -> Result<Vec<Value>, SourceError> {
        let http = self.http().await?;
        let about = format!("{} {kind}", b.about());
        let (path, query): (&str, Vec<(&str, String)>) = match kind {
            "lists" => ("lists", vec![("filter", "all".into()), ("fields", "all".into())]),
            "checklists" => ("checklists", vec![("checkItems", "all".into()), ("fields", "all".into())]),
            // "limit: 0-1000, default 50" (GET /1/boards/{id}/labels): without it, a board
            // with more than 50 labels would be cut short without a word.
            "labels" => ("labels", vec![("fields", "all".into()), ("limit", client::PAGE.to_string())]),
            "members" => ("members", vec![("fields", "fullName,username,initials,memberType".into())]),
            _ => ("customFields", vec![]),
        };
        let items = get_list(http, &about, &format!("boards/{}/{path}", b.id), &query).await?;
        if kind == "labels" && items.len() >= client::PAGE {
            return Err(SourceError::Other(format!(
                "{about}: Trello lists labels 1000 at most and this board has that many; the rest cannot be listed"
            )));
        }
        Ok(items)
    }

    /// Every comment on a board (commentCard actions), newest first, paged by id.
    async fn comments(
        &self,
        b: &Board,
        since: Option<&str>,
        filter: &str,
        fields: Option<&str>,
    ) -> Result<Vec<Value>, SourceError> {
        let http = self.http().await?;
        let about = format!("{} comments", b.about());
        let mut q = vec![("filter", filter.to_string())];
        if let Some(s) = since {
            q.push(("since", s.to_string()));
        }
        if let Some(f) = fields {
            q.push(("fields", f.to_string()));
        }
        let mut pager = Pager::new(http, &about, format!("boards/{}/actions", b.id), q);
        let mut all = Vec::new();
        while let Some(page) = pager.next().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// A card as a record: Trello's card object, with the board's comments on it added as
    /// `comments` (so a restored card brings them as text), and its uploaded attachments
    /// as files.
    fn card_record(
        &self,
        b: &Board,
        mut card: Value,
        comments: &HashMap<String, Vec<Value>>,
    ) -> Result<Record, SourceError> {
        let cid =
            id(&card).ok_or_else(|| SourceError::Other(format!("{}: a card without an id", b.about())))?.to_string();
        let mut files = Vec::new();
        for a in card.get("attachments").and_then(Value::as_array).into_iter().flatten() {
            // Links (isUpload false) are URLs elsewhere: kept in the record, not downloaded.
            if a.get("isUpload").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(aid) = id(a) else { continue };
            let name = str_of(a, "fileName").or(str_of(a, "name")).unwrap_or(aid).to_string();
            let bytes = a.get("bytes").and_then(Value::as_u64);
            let key = format!("{cid}/{aid}");
            // The download route Trello recommends, built on the API's own host so the
            // OAuth header goes with it ("Authenticated Access to S3", Trello developer
            // changelog): /1/cards/{idCard}/attachments/{idAttachment}/download/{fileName}.
            let mut url = self
                .base
                .join(&format!("cards/{cid}/attachments/{aid}/download/"))
                .map_err(|e| SourceError::Other(format!("{}: card {cid}: attachment {aid}: {e}", b.about())))?;
            url.path_segments_mut()
                .map_err(|_| SourceError::Other("base_url cannot take a path".into()))?
                .pop_if_empty()
                .push(&name);
            let about = format!("{} card {cid} attachment {name:?} ({aid})", b.about());
            self.files.lock().unwrap().insert(key.clone(), Attachment { url, bytes, about });
            let fingerprint = format!(
                "{aid}:{}:{}",
                bytes.map(|n| n.to_string()).unwrap_or_default(),
                str_of(a, "date").unwrap_or_default()
            );
            files.push(FileRef { key, name, fingerprint: Some(fingerprint) });
        }
        let mut on_card = comments.get(&cid).cloned().unwrap_or_default();
        on_card.sort_by(|x, y| str_of(x, "date").cmp(&str_of(y, "date")));
        if let Some(o) = card.as_object_mut() {
            o.insert("comments".into(), Value::Array(on_card));
        }
        let m = modified(&card, &["/dateLastActivity"]);
        self.record(card, m, files)
    }

    /// The comments of a board by card, each as the text, author and date a copy needs.
    async fn comments_by_card(&self, b: &Board) -> Result<HashMap<String, Vec<Value>>, SourceError> {
        let mut by: HashMap<String, Vec<Value>> = HashMap::new();
        for a in self.comments(b, None, "commentCard", None).await? {
            let Some(card) = a.pointer("/data/card/id").and_then(Value::as_str) else { continue };
            by.entry(card.to_string()).or_default().push(json!({
                "id": a.get("id"),
                "date": a.get("date"),
                "text": a.pointer("/data/text"),
                "author": a.pointer("/memberCreator/fullName").or(a.get("idMemberCreator")),
            }));
        }
        Ok(by)
    }

    async fn read_cards(
        &self,
        ty: &str,
        b: &Board,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let http = self.http().await?;
        let started = Utc::now();
        let about = format!("{} cards", b.about());
        let path = format!("boards/{}/cards/all", b.id);
        let full_query = || CARD_QUERY.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>();
        // Only these cards, when reading changes.
        let wanted: Option<HashSet<String>> = match &mode {
            ReadMode::Full => None,
            ReadMode::Since(cursor) => {
                let since = self.since(&about, cursor)?;
                // The cheap listing: every card's id and last activity, which Trello moves
                // on any change to the card, its checklists, attachments or comments.
                let q = vec![("fields", "id,dateLastActivity".to_string())];
                let mut pager = Pager::new(http, &about, path.clone(), q);
                let (mut ids, mut changed) = (Vec::new(), HashSet::new());
                while let Some(page) = pager.next().await? {
                    for c in page {
                        let cid = id(&c).unwrap_or_default().to_string();
                        let last = modified(&c, &["/dateLastActivity"])
                            .and_then(|m| DateTime::parse_from_rfc3339(&m).ok())
                            .map(|t| t.with_timezone(&Utc));
                        if last.is_none_or(|t| t >= since) {
                            changed.insert(cid.clone());
                        }
                        ids.push(cid);
                    }
                }
                self.remember_ids(ty, ids);
                if changed.is_empty() {
                    return Ok(ReadSummary { cursor: Some(rfc3339(started)) });
                }
                // One request per changed card, unless reading the pages costs less.
                if (changed.len() as u64) <= pager.pages {
                    let comments = self.comments_by_card(b).await?;
                    let mut batch = Vec::new();
                    for cid in &changed {
                        let q = full_query();
                        match http.get_json::<Value>(&format!("cards/{cid}"), &q).await {
                            Ok(card) => batch.push(self.card_record(b, card, &comments)?),
                            // Deleted since the listing: the next listing says so.
                            Err(super::http::HttpError::NotFound { .. }) => {}
                            Err(e) => return Err(client::err(&about, e)),
                        }
                    }
                    self.send_all(&out, batch).await?;
                    return Ok(ReadSummary { cursor: Some(rfc3339(started)) });
                }
                Some(changed)
            }
        };
        let comments = self.comments_by_card(b).await?;
        let mut pager = Pager::new(http, &about, path, full_query());
        while let Some(page) = pager.next().await? {
            let mut batch = Vec::with_capacity(page.len());
            for card in page {
                if wanted.as_ref().is_some_and(|w| !id(&card).is_some_and(|i| w.contains(i))) {
                    continue;
                }
                batch.push(self.card_record(b, card, &comments)?);
            }
            if !batch.is_empty() {
                out.send(batch).await.map_err(|_| stop())?;
            }
        }
        Ok(ReadSummary { cursor: Some(rfc3339(started)) })
    }

    async fn read_comments(
        &self,
        b: &Board,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let started = Utc::now();
        let comment = |a: Value| {
            let m = modified(&a, &["/data/dateLastEdited", "/date"]);
            self.record(a, m, Vec::new())
        };
        let records = match mode {
            ReadMode::Full => {
                self.comments(b, None, "commentCard", None).await?.into_iter().map(comment).collect::<Result<_, _>>()?
            }
            ReadMode::Since(cursor) => {
                let since = self.since(&format!("{} comments", b.about()), &cursor)?;
                // New comments are commentCard actions since then; an edit keeps the
                // comment's date and leaves an updateComment action naming it.
                let actions = self.comments(b, Some(&rfc3339(since)), "commentCard,updateComment", None).await?;
                let mut records: Vec<Record> = Vec::new();
                let mut have: HashSet<String> = HashSet::new();
                let mut edited = Vec::new();
                for a in actions {
                    if str_of(&a, "type") == Some("updateComment") {
                        edited.extend(a.pointer("/data/action/id").and_then(Value::as_str).map(str::to_string));
                    } else {
                        have.extend(id(&a).map(str::to_string));
                        records.push(comment(a)?);
                    }
                }
                let http = self.http().await?;
                for e in edited {
                    if have.insert(e.clone()) {
                        match http.get_json::<Value>(&format!("actions/{e}"), &[]).await {
                            Ok(a) => records.push(comment(a)?),
                            Err(super::http::HttpError::NotFound { .. }) => {}
                            Err(err) => return Err(client::err(&format!("{} comments", b.about()), err)),
                        }
                    }
                }
                records
            }
        };
        self.send_all(&out, records).await?;
        Ok(ReadSummary { cursor: Some(rfc3339(started)) })
    }
}

#[async_trait]
impl Connector for Trello {
    fn incremental(&self) -> bool {
        true
    }

    fn location(&self, data_type: &str) -> String {
        format!("Trello {data_type}")
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        self.list_boards().await?;
        let seen = self.seen.lock().unwrap();
        let mut types = vec![DataType::named("workspaces"), DataType::named("boards")];
        for b in &seen.boards {
            types.extend(KINDS.iter().map(|k| DataType::named(format!("{}/{k}", b.label))));
        }
        Ok(types)
    }

    async fn read(
        &self,
        data_type: &str,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let records = match self.target(data_type)? {
            Target::Board(b, "cards") => return self.read_cards(data_type, &b, mode, out).await,
            Target::Board(b, "comments") => return self.read_comments(&b, mode, out).await,
            Target::Board(b, kind) => {
                let items = self.small(&b, kind).await?;
                let recs: Vec<Record> = items
                    .into_iter()
                    .map(|v| {
                        let m = modified(&v, &["/dateLastActivity"]);
                        self.record(v, m, Vec::new())
                    })
                    .collect::<Result<_, _>>()?;
                recs
            }
            Target::Workspaces | Target::Boards => {
                let seen = self.seen.lock().unwrap();
                if data_type == "boards" {
                    seen.boards
                        .iter()
                        .map(|b| self.record(b.json.clone(), modified(&b.json, &["/dateLastActivity"]), Vec::new()))
                        .collect::<Result<_, _>>()?
                } else {
                    seen.workspaces
                        .iter()
                        .map(|w| self.record(w.clone(), None, Vec::new()))
                        .collect::<Result<_, _>>()?
                }
            }
        };
        // Read whole every time: no cursor, so the engine takes each read as the listing.
        self.send_all(&out, records).await?;
        Ok(ReadSummary::default())
    }

    async fn list_ids(&self, data_type: &str) -> Result<Vec<String>, SourceError> {
        if let Some(ids) = self.listed.lock().unwrap().remove(data_type) {
            return Ok(ids);
        }
        match self.target(data_type)? {
            Target::Board(b, "comments") => {
                let all = self.comments(&b, None, "commentCard", Some("id")).await?;
                Ok(all.iter().filter_map(|a| id(a).map(str::to_string)).collect())
            }
            Target::Board(b, "cards") => {
                let http = self.http().await?;
                let about = format!("{} cards", b.about());
                let q = vec![("fields", "id".to_string())];
                let mut pager = Pager::new(http, &about, format!("boards/{}/cards/all", b.id), q);
                let mut ids = Vec::new();
                while let Some(page) = pager.next().await? {
                    ids.extend(page.iter().filter_map(|c| id(c).map(str::to_string)));
                }
                Ok(ids)
            }
            // The rest have no cursor: always read whole, never listed.
            _ => Err(SourceError::Other(format!("{data_type} is read whole, not listed"))),
        }
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let a = self.files.lock().unwrap().get(&file.key).cloned().ok_or_else(|| {
            SourceError::Other(format!("attachment {}: not among the cards read this cycle", file.key))
        })?;
        let http = self.http().await?;
        let bytes = http.download(a.url.as_str(), &a.about).await.map_err(|e| client::err(&a.about, e))?;
        if client::looks_unauthorized(&bytes) {
            return Err(SourceError::Other(format!(
                "{}: Trello answered the download with an \"unauthorized\" page, not the file; not stored",
                a.about
            )));
        }
        super::check_download(&file.name, &bytes, a.bytes)?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    fn visible(&self) -> super::Visibility {
        let seen = self.seen.lock().unwrap();
        super::Visibility { kept: seen.kept.clone(), skipped: seen.skipped.clone() }
    }

    fn requests(&self) -> Option<u64> {
        Some(self.http.get().map_or(0, Http::requests))
    }

    fn restorable(&self, data_type: &str) -> Result<(), String> {
        restore::restorable(data_type)
    }

    async fn restore(&self, data_type: &str, record: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
        restore::restorable(data_type).map_err(SourceError::Other)?;
        let http = self.http().await?;
        restore::restore(http, data_type, record, files).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_names_make_safe_data_type_stems() {
        assert_eq!(label_of("Sales / Leads"), "Sales - Leads");
        assert_eq!(label_of("  "), "unnamed board");
        assert_eq!(label_of("a\nb"), "a-b");
    }

    #[test]
    fn dates_come_out_in_the_engines_form() {
        let v = json!({"date": "2026-01-02T03:04:05.6Z", "data": {"dateLastEdited": null}});
        assert_eq!(modified(&v, &["/data/dateLastEdited", "/date"]).as_deref(), Some("2026-01-02T03:04:05.600Z"));
        assert_eq!(modified(&json!({}), &["/date"]), None);
    }
}
