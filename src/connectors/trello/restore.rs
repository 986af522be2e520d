//! Restore as a copy: POST new objects (a card, its checklists, comments and attachments;
//! a list, a label, a checklist, a comment). Nothing existing is changed, moved or
//! deleted; the one PUT sets a custom field value on the card just created, because
//! Trello sets card custom field values only with PUT
//! /1/cards/{idCard}/customField/{idCustomField}/item.

use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

use super::super::http::Http;
use super::super::{RestoreFile, Restored, SourceError};
use super::client::{get_list, id, post, str_of};

pub fn restorable(data_type: &str) -> Result<(), String> {
    let kind = data_type.rsplit_once('/').map_or(data_type, |(_, k)| k);
    match kind {
        "cards" | "lists" | "labels" | "checklists" | "comments" => Ok(()),
        "members" => Err(format!(
            "{data_type}: Trello's API cannot create members (people make their own accounts); invite them to the board again"
        )),
        "custom-fields" => Err(format!(
            "{data_type}: daybook does not recreate custom field definitions; the backup holds each one's name, type and \
             options to recreate it in Trello (card values are restored with their cards)"
        )),
        "boards" | "workspaces" => Err(format!(
            "{data_type}: daybook does not create boards or workspaces; restore their lists, labels and cards into a board"
        )),
        _ => Err(format!("{data_type}: not a Trello data type")),
    }
}

/// The record as the connector gave it, whether passed bare or as a stored version
/// (`{"data": ..., "files": ...}`).
fn unwrap(record: &Value) -> &Value {
    match record.as_object() {
        Some(o) if o.get("data").is_some_and(Value::is_object) && o.keys().all(|k| k == "data" || k == "files") => {
            &o["data"]
        }
        _ => record,
    }
}

fn need<'v>(v: &'v Value, k: &str, what: &str) -> Result<&'v str, SourceError> {
    str_of(v, k).ok_or_else(|| SourceError::unsupported(what, format!("the backed-up record has no {k:?}")))
}

/// Whether an object still exists at Trello (false on 404).
async fn exists(http: &Http, about: &str, path: &str) -> Result<bool, SourceError> {
    match http.get_json::<Value>(path, &[("fields", "id".into())]).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.about(about)),
    }
}

fn new_id(v: &Value, about: &str) -> Result<String, SourceError> {
    id(v).map(str::to_string).ok_or_else(|| SourceError::bad_data(about, "Trello's answer has no id"))
}

/// Copies only the fields a create call takes, where the record has them.
fn pick(from: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter().filter_map(|k| from.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone()))).collect()
}

pub async fn restore(
    http: &Http,
    data_type: &str,
    record: &Value,
    files: Vec<RestoreFile>,
) -> Result<Restored, SourceError> {
    let rec = unwrap(record);
    let kind = data_type.rsplit_once('/').map_or(data_type, |(_, k)| k);
    match kind {
        "cards" => card(http, rec, files).await,
        "lists" => {
            let mut body = pick(rec, &["name"]);
            body.insert("idBoard".into(), need(rec, "idBoard", "list")?.into());
            body.insert("pos".into(), "bottom".into());
            let made = post(http, "restoring a list", "lists", &Value::Object(body)).await?;
            Ok(Restored { new_id: new_id(&made, "list")?, ..Default::default() })
        }
        "labels" => {
            let mut body = pick(rec, &["name"]);
            body.insert("color".into(), rec.get("color").cloned().unwrap_or(Value::Null));
            body.insert("idBoard".into(), need(rec, "idBoard", "label")?.into());
            let made = post(http, "restoring a label", "labels", &Value::Object(body)).await?;
            Ok(Restored { new_id: new_id(&made, "label")?, ..Default::default() })
        }
        "checklists" => {
            let card = need(rec, "idCard", "checklist")?;
            if !exists(http, "restoring a checklist", &format!("cards/{card}")).await? {
                return Err(SourceError::unsupported(
                    "checklist",
                    format!("its card {card} no longer exists; restore the card (its copy brings its checklists)"),
                ));
            }
            let made = checklist(http, card, rec).await?;
            Ok(Restored { new_id: made, ..Default::default() })
        }
        _ => {
            let card = rec
                .pointer("/data/card/id")
                .and_then(Value::as_str)
                .ok_or_else(|| SourceError::unsupported("comment", "the backed-up record names no card"))?;
            if !exists(http, "restoring a comment", &format!("cards/{card}")).await? {
                return Err(SourceError::unsupported(
                    "comment",
                    format!("its card {card} no longer exists; restore the card (its copy brings its comments)"),
                ));
            }
            let text = comment_text(
                rec.pointer("/memberCreator/fullName").or(rec.get("idMemberCreator")),
                rec.get("date"),
                rec.pointer("/data/text"),
            );
            let made =
                post(http, "restoring a comment", &format!("cards/{card}/actions/comments"), &json!({ "text": text }))
                    .await?;
            Ok(Restored { new_id: new_id(&made, "comment")?, notes: vec![AUTHOR_NOTE.into()], ..Default::default() })
        }
    }
}

const AUTHOR_NOTE: &str = "Trello's API posts comments as the token's member and dates them now: each restored \
                           comment begins with its original author and date";

fn comment_text(author: Option<&Value>, date: Option<&Value>, text: Option<&Value>) -> String {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("?").to_string();
    format!(
        "[restored by daybook; written by {} on {}]\n\n{}",
        s(author),
        s(date),
        text.and_then(Value::as_str).unwrap_or("")
    )
}

async fn checklist(http: &Http, card: &str, cl: &Value) -> Result<String, SourceError> {
    let about = "restoring a checklist";
    let mut body = pick(cl, &["name"]);
    body.insert("idCard".into(), card.into());
    let made = post(http, about, "checklists", &Value::Object(body)).await?;
    let new = new_id(&made, "checklist")?;
    let mut items: Vec<&Value> = cl.get("checkItems").and_then(Value::as_array).into_iter().flatten().collect();
    items.sort_by(|a, b| {
        a.get("pos").and_then(Value::as_f64).partial_cmp(&b.get("pos").and_then(Value::as_f64)).unwrap()
    });
    for item in items {
        let mut body = pick(item, &["name", "due"]);
        body.insert("checked".into(), (str_of(item, "state") == Some("complete")).into());
        body.insert("pos".into(), "bottom".into());
        post(http, about, &format!("checklists/{new}/checkItems"), &Value::Object(body)).await?;
    }
    Ok(new)
}

/// The ids of a board's objects of one kind, to keep only references that still resolve.
async fn ids(http: &Http, board: &str, kind: &str) -> Result<HashSet<String>, SourceError> {
    let mut q = vec![("fields", "id".to_string())];
    if kind == "labels" {
        q.push(("limit", "1000".into()));
    }
    let list = get_list(http, "restoring a card", &format!("boards/{board}/{kind}"), &q).await?;
    Ok(list.iter().filter_map(|v| id(v).map(str::to_string)).collect())
}

/// Keeps the ids of `field` that still exist; says what was dropped.
fn still(card: &Value, field: &str, alive: &HashSet<String>, what: &str, notes: &mut Vec<String>) -> Vec<String> {
    let all: Vec<String> = card
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let (kept, gone): (Vec<String>, Vec<String>) = all.into_iter().partition(|i| alive.contains(i));
    if !gone.is_empty() {
        notes.push(format!("{} {what} no longer on the board, left off: {}", gone.len(), gone.join(", ")));
    }
    kept
}

async fn card(http: &Http, card: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
    let about = "restoring a card";
    let old = need(card, "id", "card")?;
    let board = need(card, "idBoard", "card")?;
    let mut notes = Vec::new();
    let mut list = need(card, "idList", "card")?.to_string();
    if !exists(http, about, &format!("lists/{list}")).await? {
        let open = get_list(http, about, &format!("boards/{board}/lists"), &[("filter", "open".into())]).await?;
        let first = open.first().and_then(id).ok_or_else(|| {
            SourceError::unsupported(
                about,
                format!("its list {list} is gone and board {board} has no open list to put it in"),
            )
        })?;
        notes.push(format!("its list {list} no longer exists: the copy is in list {first}"));
        list = first.to_string();
    }
    let labels = still(card, "idLabels", &ids(http, board, "labels").await?, "labels", &mut notes);
    let members = still(card, "idMembers", &ids(http, board, "members").await?, "members", &mut notes);
    let mut body =
        pick(card, &["name", "desc", "due", "start", "dueComplete", "address", "locationName", "coordinates"]);
    body.insert("idList".into(), list.into());
    body.insert("pos".into(), "bottom".into());
    body.insert("idLabels".into(), labels.into());
    body.insert("idMembers".into(), members.into());
    let made = post(http, about, "cards", &Value::Object(body)).await?;
    let new = new_id(&made, "card")?;
    if card.get("closed").and_then(Value::as_bool) == Some(true) {
        notes.push("the card was archived: the copy is open".into());
    }

    // The card exists from here on: a later step that fails is a note, never an error
    // that would lose the copy's id (and make a second copy on the next try).
    let mut uploaded = 0;
    let rest = async {
        for cl in card.get("checklists").and_then(Value::as_array).into_iter().flatten() {
            checklist(http, &new, cl).await?;
        }

        let fields = ids(http, board, "customFields").await?;
        for item in card.get("customFieldItems").and_then(Value::as_array).into_iter().flatten() {
            let Some(field) = str_of(item, "idCustomField") else { continue };
            if !fields.contains(field) {
                notes.push(format!("custom field {field} no longer on the board: its value is left off"));
                continue;
            }
            let body = match (item.get("idValue").filter(|v| !v.is_null()), item.get("value").filter(|v| !v.is_null()))
            {
                (Some(v), _) => json!({ "idValue": v }),
                (None, Some(v)) => json!({ "value": v }),
                (None, None) => continue,
            };
            let path = format!("cards/{new}/customField/{field}/item");
            http.send(Method::PUT, &path, &[], Some(&body)).await.map_err(|e| e.about(about))?;
        }

        let comments: Vec<&Value> = card.get("comments").and_then(Value::as_array).into_iter().flatten().collect();
        for c in &comments {
            let text = comment_text(c.get("author"), c.get("date"), c.get("text"));
            post(http, about, &format!("cards/{new}/actions/comments"), &json!({ "text": text })).await?;
        }
        if !comments.is_empty() {
            notes.push(AUTHOR_NOTE.into());
        }

        for a in card.get("attachments").and_then(Value::as_array).into_iter().flatten() {
            let Some(aid) = id(a) else { continue };
            let name = str_of(a, "name").or(str_of(a, "fileName")).unwrap_or(aid);
            let path = format!("cards/{new}/attachments");
            if a.get("isUpload").and_then(Value::as_bool) != Some(true) {
                if let Some(url) = str_of(a, "url") {
                    post(http, about, &path, &json!({ "url": url, "name": name })).await?;
                }
                continue;
            }
            let key = format!("{old}/{aid}");
            let Some(f) = files.iter().find(|f| f.key == key) else {
                notes.push(format!("attachment {name:?} was not in the backup: left off"));
                continue;
            };
            let mut q = vec![("name", name.to_string())];
            if let Some(m) = str_of(a, "mimeType").filter(|m| !m.is_empty()) {
                q.push(("mimeType", m.to_string()));
            }
            http.upload(&path, &q, "file", &f.name, &f.bytes).await.map_err(|e| e.about(about))?;
            uploaded += 1;
        }
        Ok::<(), SourceError>(())
    }
    .await;
    if let Err(e) = rest {
        notes.push(format!("the copy was created as card {new}, but not all of it: {e}; the rest is left off"));
    }
    Ok(Restored { new_id: new, files_uploaded: uploaded, notes })
}
