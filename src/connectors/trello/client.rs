//! Trello's wire format, as its REST API reference and guides give it
//! (developer.atlassian.com/cloud/trello): the OAuth header, paging by object ids, and the
//! errors mapped to words that name the board and the fix.

use reqwest::Method;
use serde_json::Value;
use std::collections::HashSet;

use super::super::SourceError;
use super::super::error::kind_of;
use super::super::http::Http;

/// Items one request asks for: "limit ... between 0 and 1000" on a board's actions (Trello
/// REST reference, GET /1/boards/{id}/actions); cards take the same.
pub const PAGE: usize = 1000;

/// The largest page of cards asked for when more than `PAGE` cards were created in one
/// second (board copies and imports): a board's cards take a larger `limit` (Airbyte's
/// source-trello asked for 20000 at once), its actions do not.
pub const MAX_CARD_PAGE: usize = 20_000;

/// What a board's comments are: comments written on a card, and those copied with a card
/// (a copied card's comments are `copyCommentCard` actions, not `commentCard`).
pub const COMMENTS: &str = "commentCard,copyCommentCard";

/// A card's nested resources as one request gives them: attachments (with their sizes
/// and dates), checklists with their items, and custom field values (`customFieldItems`),
/// per the "Nested Resources" guide and GET /1/cards/{id}.
pub const CARD_QUERY: &[(&str, &str)] = &[
    ("fields", "all"),
    ("attachments", "true"),
    ("attachment_fields", "all"),
    ("checklists", "all"),
    ("customFieldItems", "true"),
];

/// The `Authorization` header Trello documents for the key and token
/// ("Authorization: OAuth oauth_consumer_key=\"{key}\", oauth_token=\"{token}\""): they never
/// go in a URL, where logs and proxies would keep them.
pub fn oauth_header(key: &str, token: &str) -> String {
    format!("OAuth oauth_consumer_key=\"{key}\", oauth_token=\"{token}\"")
}

pub async fn get(http: &Http, about: &str, path: &str, query: &[(&str, String)]) -> Result<Value, SourceError> {
    http.get_json(path, query).await.map_err(|e| e.about(about))
}

pub async fn get_list(
    http: &Http,
    about: &str,
    path: &str,
    query: &[(&str, String)],
) -> Result<Vec<Value>, SourceError> {
    match get(http, about, path, query).await? {
        Value::Array(v) => Ok(v),
        other => Err(SourceError::bad_data(
            format!("{about}: GET /{path}"),
            format!("expected a JSON array, got {}", kind_of(&other)),
        )),
    }
}

pub async fn post(http: &Http, about: &str, path: &str, body: &Value) -> Result<Value, SourceError> {
    let bytes = http.send(Method::POST, path, &[], Some(body)).await.map_err(|e| e.about(about))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::bad_data(format!("{about}: POST /{path}"), super::super::error::json_why(&e)))
}

pub fn id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn str_of<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str)
}

/// The creation second a Trello id holds: ids are MongoDB ObjectIds, whose first 4 bytes
/// are the Unix second the object was made.
pub fn created_second(id: &str) -> Option<i64> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(&id[..8], 16).ok()
}

/// The smallest id of a second, as `before` takes it: everything made before that second.
fn id_of_second(s: i64) -> String {
    format!("{:08x}{:016x}", s.clamp(0, u32::MAX as i64), 0)
}

/// Pages through a list Trello pages by id, newest first: `limit=1000`, then `before=<id>`.
/// Trello turns a `before` id into its creation second (api-docs issue #68, "Paging With
/// Objects Created In Same Second Returns Incorrect Results"), so asking before the oldest
/// item of a page would skip what was made in that same second but did not fit on it. So
/// the next page is asked with an overlap of one second (before the second after the oldest
/// item's), ids already seen are dropped, and only an empty page ends the listing (a short
/// one is followed by a page asked strictly before its oldest second, which must be empty).
/// A full page that brings nothing new (more items in one second than a page holds) is
/// asked again with a larger page where Trello takes one (cards), else it is an error:
/// stopping there would drop the rest, and mark it deleted.
pub struct Pager<'a> {
    http: &'a Http,
    about: &'a str,
    path: String,
    query: Vec<(&'a str, String)>,
    /// Only items made before this second (None: the newest).
    before: Option<i64>,
    limit: usize,
    max_limit: usize,
    seen: HashSet<String>,
    done: bool,
    pub pages: u64,
}

impl<'a> Pager<'a> {
    /// A pager of a board's actions (at most `PAGE` an answer).
    pub fn new(http: &'a Http, about: &'a str, path: String, query: Vec<(&'a str, String)>) -> Pager<'a> {
        Pager {
            http,
            about,
            path,
            query,
            before: None,
            limit: PAGE,
            max_limit: PAGE,
            seen: HashSet::new(),
            done: false,
            pages: 0,
        }
    }

    /// A pager of a board's cards: `sort=-id` (newest first, as Airbyte's source-trello
    /// asks), and larger pages when one second holds more than a page.
    pub fn cards(http: &'a Http, about: &'a str, path: String, mut query: Vec<(&'a str, String)>) -> Pager<'a> {
        query.push(("sort", "-id".into()));
        Pager { max_limit: MAX_CARD_PAGE, ..Pager::new(http, about, path, query) }
    }

    /// The next items not seen yet, or None once the listing is complete.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, SourceError> {
        while !self.done {
            let mut q = self.query.clone();
            q.push(("limit", self.limit.to_string()));
            if let Some(b) = self.before {
                q.push(("before", id_of_second(b)));
            }
            let page = get_list(self.http, self.about, &self.path, &q).await?;
            self.pages += 1;
            if page.is_empty() {
                self.done = true;
                break;
            }
            let full = page.len() >= self.limit;
            let mut oldest = i64::MAX;
            let mut new = Vec::new();
            for item in page {
                let Some(second) = id(&item).and_then(created_second) else {
                    return Err(SourceError::bad_data(
                        format!("{}: GET /{}", self.about, self.path),
                        "an item has no Trello id (24 hex digits)",
                    ));
                };
                oldest = oldest.min(second);
                if self.seen.insert(id(&item).unwrap_or_default().to_string()) {
                    new.push(item);
                }
            }
            if new.is_empty() && full {
                if self.limit < self.max_limit {
                    self.limit = (self.limit * 5).min(self.max_limit);
                    continue;
                }
                return Err(SourceError::bad_data(
                    format!("{}: GET /{}", self.about, self.path),
                    format!(
                        "a full page of {} items brought none not seen: more were made in one second than \
                         Trello gives at once, and it pages by the second; not taken as the end",
                        self.limit
                    ),
                ));
            }
            self.limit = PAGE;
            self.before = Some(if full { oldest + 1 } else { oldest });
            if !new.is_empty() {
                return Ok(Some(new));
            }
        }
        Ok(None)
    }
}

/// Trello's answer when a download lacks the OAuth header or the token may not read the
/// file: a short "unauthorized" text or page (sometimes with status 200). Never a file.
pub fn looks_unauthorized(bytes: &[u8]) -> bool {
    if bytes.len() > 4096 {
        return false;
    }
    let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    let t = text.trim();
    t.starts_with("unauthorized")
        || t.starts_with("invalid token")
        || t.starts_with("invalid key")
        || ((t.starts_with("<!doctype html") || t.starts_with("<html")) && t.contains("unauthorized"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unauthorized_answer_is_told_from_a_file() {
        assert!(looks_unauthorized(b"unauthorized permission requested"));
        assert!(looks_unauthorized(b"invalid token\n"));
        assert!(looks_unauthorized(b"<!DOCTYPE html><html><body>Unauthorized</body></html>"));
        assert!(!looks_unauthorized(b"%PDF-1.7 unauthorized"));
        assert!(!looks_unauthorized(b"<html><body>my own page</body></html>"));
        assert!(!looks_unauthorized(&[b'u'; 5000]));
    }

    #[test]
    fn ids_hold_their_creation_second() {
        assert_eq!(created_second("5f0c3a2b0000000000000000"), Some(0x5f0c3a2b));
        assert_eq!(created_second("not an id"), None);
        assert_eq!(id_of_second(0x5f0c3a2c), "5f0c3a2c0000000000000000");
    }

    #[test]
    fn the_header_carries_key_and_token() {
        assert_eq!(oauth_header("k", "t"), "OAuth oauth_consumer_key=\"k\", oauth_token=\"t\"");
    }
}
