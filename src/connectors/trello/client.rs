//! Trello's wire format, as its REST API reference and guides give it
//! (developer.atlassian.com/cloud/trello): the OAuth header, paging by object ids, and the
//! errors mapped to words that name the board and the fix.

use reqwest::Method;
use serde_json::Value;

use super::super::SourceError;
use super::super::http::{Http, HttpError};

/// Most items one request returns: "limit ... between 0 and 1000" on a board's cards and
/// actions (Trello REST reference, GET /1/boards/{id}/actions and /cards).
pub const PAGE: usize = 1000;

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

/// What an error is about, for messages: "board Roadmap (5f0c...)".
pub fn err(about: &str, e: HttpError) -> SourceError {
    SourceError::Other(match e {
        HttpError::NotFound { what } => {
            format!("{about}: Trello answers 404 on {what}: it was deleted, or the token no longer sees it")
        }
        e => format!("{about}: {e}"),
    })
}

pub async fn get(http: &Http, about: &str, path: &str, query: &[(&str, String)]) -> Result<Value, SourceError> {
    http.get_json(path, query).await.map_err(|e| err(about, e))
}

pub async fn get_list(
    http: &Http,
    about: &str,
    path: &str,
    query: &[(&str, String)],
) -> Result<Vec<Value>, SourceError> {
    match get(http, about, path, query).await? {
        Value::Array(v) => Ok(v),
        other => Err(SourceError::Other(format!(
            "{about}: GET {path}: expected a JSON array, got {}",
            other.to_string().chars().take(120).collect::<String>()
        ))),
    }
}

pub async fn post(http: &Http, about: &str, path: &str, body: &Value) -> Result<Value, SourceError> {
    let bytes = http.send(Method::POST, path, &[], Some(body)).await.map_err(|e| err(about, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::Other(format!("{about}: POST {path}: the answer is not JSON: {e}")))
}

pub fn id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn str_of<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str)
}

/// Pages through a list Trello pages by id: `limit=1000`, then `before=<the oldest id
/// seen>`. Trello ids are MongoDB ObjectIds, which begin with their creation time, so
/// `before` walks back through creation order whatever order a page comes in, and an
/// object edited or moved while we page keeps its place ("Paging" in Trello's REST API
/// introduction: `before` and `since` take a date or an id). A short page is the last.
pub struct Pager<'a> {
    http: &'a Http,
    about: &'a str,
    path: String,
    query: Vec<(&'a str, String)>,
    before: Option<String>,
    done: bool,
    pub pages: u64,
}

impl<'a> Pager<'a> {
    pub fn new(http: &'a Http, about: &'a str, path: String, query: Vec<(&'a str, String)>) -> Pager<'a> {
        Pager { http, about, path, query, before: None, done: false, pages: 0 }
    }

    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let mut q = self.query.clone();
        q.push(("limit", PAGE.to_string()));
        if let Some(b) = &self.before {
            q.push(("before", b.clone()));
        }
        let page = get_list(self.http, self.about, &self.path, &q).await?;
        self.pages += 1;
        let mut oldest: Option<&str> = None;
        for item in &page {
            let Some(i) = id(item) else {
                return Err(SourceError::Other(format!("{}: GET {}: an item has no id", self.about, self.path)));
            };
            oldest = Some(oldest.map_or(i, |o| o.min(i)));
        }
        match oldest {
            Some(o) if page.len() >= PAGE => {
                if self.before.as_deref().is_some_and(|b| o >= b) {
                    return Err(SourceError::Other(format!(
                        "{}: GET {}: paging with before={o} did not move back; stopped rather than loop",
                        self.about, self.path
                    )));
                }
                self.before = Some(o.to_string());
            }
            _ => self.done = true,
        }
        Ok(Some(page))
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
    fn the_header_carries_key_and_token() {
        assert_eq!(oauth_header("k", "t"), "OAuth oauth_consumer_key=\"k\", oauth_token=\"t\"");
    }
}
