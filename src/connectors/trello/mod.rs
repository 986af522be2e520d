//! Trello, through its REST API (key and token in the OAuth header). Data types: the
//! token's `workspaces` and `boards`, and per board (known by its id, `board:<id>/<kind>`,
//! shown as "<board name>/<kind>") its cards (with attachments, checklists, custom field
//! values and comments), lists, checklists, comments, labels, members and custom fields.
//! Cards and comments are read incrementally; the rest are small and read whole.

mod client;
mod config;
mod restore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::http::{Expect, Http, HttpSourceOptions, LazyHttp};
use super::secret::SecretRef;
use super::sink::Sink;
use super::{Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, RestoreFile, Restored, SourceError};
use crate::config::SourceConfig;
use client::{CARD_QUERY, COMMENTS, Pager, get_list, id, str_of};
use tokio::sync::mpsc;

pub use config::TrelloConfig;

/// The per-board data types, each `board:<id>/<kind>`.
const KINDS: &[&str] = &["cards", "lists", "checklists", "comments", "labels", "members", "custom-fields"];
const BATCH: usize = 500;

pub struct Trello {
    opts: HttpSourceOptions,
    http: LazyHttp,
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
    /// The readable stem of its data types' names, unique in the source: its name, and for
    /// a board that shares it with an older one, its short link too.
    label: String,
    /// The stem an earlier release named its data types with (and stored them under).
    former: String,
    /// Its workspace's display name.
    workspace: Option<String>,
    json: Value,
}

impl Board {
    fn about(&self) -> String {
        format!("board {:?} ({})", self.name, self.id)
    }

    fn key(&self, kind: &str) -> String {
        format!("board:{}/{kind}", self.id)
    }
}

#[derive(Clone)]
struct Attachment {
    url: reqwest::Url,
    bytes: Option<u64>,
    about: String,
}

pub fn build(src: &SourceConfig) -> anyhow::Result<Box<dyn Connector>> {
    let (opts, own): (_, TrelloConfig) = HttpSourceOptions::parse(src, &config::DEFAULTS)?;
    let key_file = own.key_file.as_deref().map(|p| src.resolve(p));
    let key = SecretRef::new("Trello API key", "key", own.key_env.as_deref(), "TRELLO_KEY", key_file.as_deref());
    let token = opts.token.clone();
    let hint = format!("{} and {}", key.hint(), token.hint());
    let http = LazyHttp::new(
        &opts,
        hint,
        Box::new(move || {
            let (key, token) = (key.read()?, token.read()?);
            Ok(vec![("Authorization", zeroize::Zeroizing::new(client::oauth_header(&key, &token)))])
        }),
    );
    Ok(Box::new(Trello { opts, http, seen: Mutex::default(), listed: Mutex::default(), files: Mutex::default() }))
}

/// What a data type key stands for.
enum Target {
    Workspaces,
    Boards,
    Board(Board, &'static str),
}

/// The board's name made a safe, readable data type stem: no `/` (it separates the kind).
fn label_of(name: &str) -> String {
    let s: String = name.chars().map(|c| if c == '/' || c.is_control() { '-' } else { c }).collect();
    let s = s.trim().to_string();
    if s.is_empty() { "unnamed board".into() } else { s }
}

/// Stems for boards that share a name: the oldest (smallest id) keeps the name, the others
/// add their short link, so a new board named like an old one changes nothing of the old
/// one's data types. `former` is how an earlier release told them apart (every board of a
/// shared name got its short link), to find the history it stored.
fn name_boards(boards: &mut [Board]) {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, b) in boards.iter().enumerate() {
        by_name.entry(b.label.to_lowercase()).or_default().push(i);
    }
    for group in by_name.values_mut() {
        if group.len() < 2 {
            continue;
        }
        group.sort_by(|a, b| boards[*a].id.cmp(&boards[*b].id));
        for (n, &i) in group.iter().enumerate() {
            let b = &mut boards[i];
            let short = str_of(&b.json, "shortLink").unwrap_or(&b.id).to_string();
            b.former = format!("{} ({short})", b.label);
            if n > 0 {
                b.label = b.former.clone();
            }
        }
    }
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

/// An object of Trello's as a record.
fn record(v: Value, modified: Option<String>, files: Vec<FileRef>, about: &str) -> Result<Record, SourceError> {
    let rid = id(&v).ok_or_else(|| SourceError::bad_data(about, "an object without an id"))?.to_string();
    Ok(Record { id: rid, json: v.to_string(), files, line: None, modified, unparsed: None })
}

impl Trello {
    async fn http(&self) -> Result<&Http, SourceError> {
        self.http.get().await
    }

    fn target(&self, data_type: &str) -> Result<Target, SourceError> {
        match data_type {
            "workspaces" => return Ok(Target::Workspaces),
            "boards" => return Ok(Target::Boards),
            _ => {}
        }
        let unknown = |why: &str| SourceError::NoSuchType { key: data_type.into(), why: why.into() };
        let (board, kind) = data_type
            .strip_prefix("board:")
            .and_then(|r| r.split_once('/'))
            .ok_or_else(|| unknown("not a data type of this Trello source"))?;
        let kind = KINDS.iter().find(|k| **k == kind).ok_or_else(|| unknown("not a kind of Trello data"))?;
        let seen = self.seen.lock().unwrap();
        let b = seen
            .boards
            .iter()
            .find(|b| b.id == board)
            .ok_or_else(|| unknown("the board is not among those the token sees and the scope keeps now"))?;
        Ok(Target::Board(b.clone(), kind))
    }

    /// Where a read of changes starts: the last cursor, less the overlap for clock skew.
    fn since(&self, about: &str, cursor: &str) -> Result<DateTime<Utc>, SourceError> {
        let t = DateTime::parse_from_rfc3339(cursor)
            .map_err(|e| SourceError::bad_data(about, format!("the cursor {cursor:?} is not a time: {e}")))?;
        Ok(t.with_timezone(&Utc) - chrono::Duration::seconds(self.opts.overlap_secs()))
    }

    fn remember_ids(&self, data_type: &str, ids: Vec<String>) {
        self.listed.lock().unwrap().insert(data_type.to_string(), ids);
    }

    /// The boards the token sees (those of its member), with their workspaces; the scope
    /// keeps some.
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
            let bid = id(&b).ok_or_else(|| SourceError::bad_data(about, "a board without an id"))?.to_string();
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
            if self.opts.scope.keeps(&all) {
                seen.kept.push(shown);
                let workspace = ws.as_ref().and_then(|(_, ns)| ns.first()).map(|n| n.to_string());
                let label = label_of(&name);
                kept.push(Board { id: bid, former: label.clone(), label, name, workspace, json: b });
            } else {
                seen.skipped.push(shown);
            }
        }
        name_boards(&mut kept);
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
            return Err(SourceError::unsupported(
                about,
                "Trello lists labels 1000 at most and this board has that many; the rest cannot be listed",
            ));
        }
        Ok(items)
    }

    /// Every comment on a board (written or copied with a card), and with `since` the edits
    /// since then, newest first, paged by id.
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
        let cid = id(&card).ok_or_else(|| SourceError::bad_data(b.about(), "a card without an id"))?.to_string();
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
            let bad = |why: &str| SourceError::bad_data(format!("{}: card {cid}: attachment {aid}", b.about()), why);
            let mut url = self
                .opts
                .base_url
                .join(&format!("cards/{cid}/attachments/{aid}/download/"))
                .map_err(|_| bad("its download route is not a URL"))?;
            url.path_segments_mut().map_err(|_| bad("base_url cannot take a path"))?.pop_if_empty().push(&name);
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
        record(card, m, files, &b.about())
    }

    /// The comments of a board by card, each as the text, author and date a copy needs.
    async fn comments_by_card(&self, b: &Board) -> Result<HashMap<String, Vec<Value>>, SourceError> {
        let mut by: HashMap<String, Vec<Value>> = HashMap::new();
        for a in self.comments(b, None, COMMENTS, None).await? {
            let Some(card) = a.pointer("/data/card/id").and_then(Value::as_str) else { continue };
            by.entry(card.to_string()).or_default().push(json!({
                "id": a.get("id"),
                "date": a.get("date"),
                "text": a.pointer("/data/text"),
                "author": a.pointer("/memberCreator/fullName").or(a.get("idMemberCreator")),
                "copied": str_of(&a, "type") == Some("copyCommentCard"),
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
        let mut sink = Sink::new(out, BATCH);
        // Only these cards, when reading changes.
        let wanted: Option<HashSet<String>> = match &mode {
            ReadMode::Full => None,
            ReadMode::Since(cursor) => {
                let since = self.since(&about, cursor)?;
                // The cheap listing: every card's id and last activity, which Trello moves
                // on any change to the card, its checklists, attachments or comments.
                let q = vec![("fields", "id,dateLastActivity".to_string())];
                let mut pager = Pager::cards(http, &about, path.clone(), q);
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
                    for cid in &changed {
                        let q = full_query();
                        match http.get_json::<Value>(&format!("cards/{cid}"), &q).await {
                            Ok(card) => sink.push(self.card_record(b, card, &comments)?).await?,
                            // Deleted since the listing: the next listing says so.
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e.about(&about)),
                        }
                    }
                    sink.finish().await?;
                    return Ok(ReadSummary { cursor: Some(rfc3339(started)) });
                }
                Some(changed)
            }
        };
        let comments = self.comments_by_card(b).await?;
        let mut pager = Pager::cards(http, &about, path, full_query());
        while let Some(page) = pager.next().await? {
            for card in page {
                if wanted.as_ref().is_some_and(|w| !id(&card).is_some_and(|i| w.contains(i))) {
                    continue;
                }
                sink.push(self.card_record(b, card, &comments)?).await?;
            }
        }
        sink.finish().await?;
        Ok(ReadSummary { cursor: Some(rfc3339(started)) })
    }

    async fn read_comments(
        &self,
        b: &Board,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let started = Utc::now();
        let about = format!("{} comments", b.about());
        let comment = |a: Value| {
            let m = modified(&a, &["/data/dateLastEdited", "/date"]);
            record(a, m, Vec::new(), &about)
        };
        let mut sink = Sink::new(out, BATCH);
        match mode {
            ReadMode::Full => {
                for a in self.comments(b, None, COMMENTS, None).await? {
                    sink.push(comment(a)?).await?;
                }
            }
            ReadMode::Since(cursor) => {
                let since = self.since(&about, &cursor)?;
                // New comments are commentCard (and copyCommentCard) actions since then; an
                // edit keeps the comment's date and leaves an updateComment action naming it.
                let filter = format!("{COMMENTS},updateComment");
                let actions = self.comments(b, Some(&rfc3339(since)), &filter, None).await?;
                let mut edited = Vec::new();
                for a in actions {
                    if str_of(&a, "type") == Some("updateComment") {
                        edited.extend(a.pointer("/data/action/id").and_then(Value::as_str).map(str::to_string));
                    } else {
                        sink.push(comment(a)?).await?;
                    }
                }
                let http = self.http().await?;
                for e in edited {
                    if sink.has(&e) {
                        continue;
                    }
                    match http.get_json::<Value>(&format!("actions/{e}"), &[]).await {
                        Ok(a) => sink.push(comment(a)?).await?,
                        Err(err) if err.is_not_found() => {}
                        Err(err) => return Err(err.about(&about)),
                    }
                }
            }
        }
        sink.finish().await?;
        Ok(ReadSummary { cursor: Some(rfc3339(started)) })
    }
}

#[async_trait]
impl Connector for Trello {
    fn incremental(&self) -> bool {
        true
    }

    fn location(&self, data_type: &str) -> String {
        match self.target(data_type) {
            Ok(Target::Board(b, kind)) => format!("Trello {} {kind}", b.about()),
            _ => format!("Trello {data_type}"),
        }
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        self.list_boards().await?;
        let seen = self.seen.lock().unwrap();
        let mut types = vec![DataType::named("workspaces"), DataType::named("boards")];
        for b in &seen.boards {
            let path: Vec<String> = b.workspace.iter().cloned().chain([b.name.clone()]).collect();
            types.extend(KINDS.iter().map(|k| DataType {
                key: b.key(k),
                name: format!("{}/{k}", b.label),
                path: path.clone(),
                former: vec![format!("{}/{k}", b.former)],
            }));
        }
        Ok(types)
    }

    async fn read(
        &self,
        data_type: &str,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let records: Vec<Record> = match self.target(data_type)? {
            Target::Board(b, "cards") => return self.read_cards(data_type, &b, mode, out).await,
            Target::Board(b, "comments") => return self.read_comments(&b, mode, out).await,
            Target::Board(b, kind) => {
                let about = format!("{} {kind}", b.about());
                let items = self.small(&b, kind).await?;
                items
                    .into_iter()
                    .map(|v| {
                        let m = modified(&v, &["/dateLastActivity"]);
                        record(v, m, Vec::new(), &about)
                    })
                    .collect::<Result<_, _>>()?
            }
            Target::Workspaces | Target::Boards => {
                let seen = self.seen.lock().unwrap();
                if data_type == "boards" {
                    seen.boards
                        .iter()
                        .map(|b| {
                            record(b.json.clone(), modified(&b.json, &["/dateLastActivity"]), Vec::new(), "boards")
                        })
                        .collect::<Result<_, _>>()?
                } else {
                    seen.workspaces
                        .iter()
                        .map(|w| record(w.clone(), None, Vec::new(), "workspaces"))
                        .collect::<Result<_, _>>()?
                }
            }
        };
        // Read whole every time: no cursor, so the engine takes each read as the listing.
        let mut sink = Sink::new(out, BATCH);
        for r in records {
            sink.push(r).await?;
        }
        sink.finish().await?;
        Ok(ReadSummary::default())
    }

    async fn list_ids(&self, data_type: &str) -> Result<Vec<String>, SourceError> {
        if let Some(ids) = self.listed.lock().unwrap().remove(data_type) {
            return Ok(ids);
        }
        match self.target(data_type)? {
            Target::Board(b, "comments") => {
                let all = self.comments(&b, None, COMMENTS, Some("id")).await?;
                Ok(all.iter().filter_map(|a| id(a).map(str::to_string)).collect())
            }
            Target::Board(b, "cards") => {
                let http = self.http().await?;
                let about = format!("{} cards", b.about());
                let q = vec![("fields", "id".to_string())];
                let mut pager = Pager::cards(http, &about, format!("boards/{}/cards/all", b.id), q);
                let mut ids = Vec::new();
                while let Some(page) = pager.next().await? {
                    ids.extend(page.iter().filter_map(|c| id(c).map(str::to_string)));
                }
                Ok(ids)
            }
            // The rest have no cursor: always read whole, never listed.
            _ => Err(SourceError::unsupported(data_type, "read whole, not listed")),
        }
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let a = self.files.lock().unwrap().get(&file.key).cloned().ok_or_else(|| {
            SourceError::unsupported(format!("attachment {}", file.key), "not among the cards read this cycle")
        })?;
        let http = self.http().await?;
        let expect = Expect { name: &file.name, size: a.bytes, sniff: Some(unauthorized_page) };
        http.download(a.url.as_str(), &a.about, expect).await.map_err(|e| match e {
            e @ SourceError::BadFile { .. } => e,
            e => e.about(&a.about),
        })
    }

    fn visible(&self) -> super::Visibility {
        let seen = self.seen.lock().unwrap();
        super::Visibility { kept: seen.kept.clone(), skipped: seen.skipped.clone() }
    }

    fn requests(&self) -> Option<u64> {
        Some(self.http.requests())
    }

    fn rate_limited(&self) -> Option<u64> {
        Some(self.http.rate_limited())
    }

    fn restorable(&self, data_type: &str) -> Result<(), String> {
        restore::restorable(data_type)
    }

    async fn restore(&self, data_type: &str, record: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
        restore::restorable(data_type).map_err(|why| SourceError::unsupported(data_type, why))?;
        let http = self.http().await?;
        restore::restore(http, data_type, record, files).await
    }
}

/// Trello's "unauthorized" answer to a download, which it may send with status 200.
fn unauthorized_page(head: &[u8], whole: bool) -> Option<String> {
    (whole && client::looks_unauthorized(head))
        .then(|| "Trello answered the download with an \"unauthorized\" page, not the file".to_string())
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
    fn a_newer_board_of_the_same_name_changes_nothing_of_the_older_one() {
        let board = |id: &str, name: &str, short: &str| Board {
            id: id.into(),
            name: name.into(),
            label: label_of(name),
            former: label_of(name),
            workspace: None,
            json: json!({"id": id, "shortLink": short}),
        };
        let mut one = vec![board("5f01", "Ops", "aaa")];
        name_boards(&mut one);
        let mut two = vec![board("5f02", "ops", "bbb"), board("5f01", "Ops", "aaa")];
        name_boards(&mut two);
        assert_eq!(one[0].label, "Ops");
        assert_eq!(two[1].label, "Ops", "the older board keeps its name");
        assert_eq!(two[0].label, "ops (bbb)");
        assert_eq!(
            (two[1].former.as_str(), two[0].former.as_str()),
            ("Ops (aaa)", "ops (bbb)"),
            "as an earlier release named them"
        );
    }

    #[test]
    fn dates_come_out_in_the_engines_form() {
        let v = json!({"date": "2026-01-02T03:04:05.6Z", "data": {"dateLastEdited": null}});
        assert_eq!(modified(&v, &["/data/dateLastEdited", "/date"]).as_deref(), Some("2026-01-02T03:04:05.600Z"));
        assert_eq!(modified(&json!({}), &["/date"]), None);
    }
}
