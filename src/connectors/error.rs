//! What can go wrong reading a source, by kind, so that callers match on variants (never on
//! the text) and a person can tell "credentials refused" from "the app sent something else".
//! Messages name the request and the fix; they carry ids, kinds, statuses, counts and the
//! app's own error code and message, never record content, a response body or a credential.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The app does not accept the credentials (HTTP 401, or an app's code that says so).
    #[error("{what}: the app refused the credentials (HTTP {status}{}); check {hint}", says(app_says))]
    Refused { what: String, status: u16, hint: String, app_says: Option<String> },
    /// The credentials are good, but the app will not do this (HTTP 403 for one board, a
    /// workspace the token was not given, a request too big): what the app said.
    #[error("{what}: the app declined (HTTP {status}{})", says(app_says))]
    Forbidden { what: String, status: u16, app_says: Option<String> },
    /// HTTP 404.
    #[error("{what}: not found (HTTP 404): deleted, or no longer visible to these credentials")]
    NotFound { what: String },
    /// Any other status that is not worth a retry.
    #[error("{what}: HTTP {status}{}", says(app_says))]
    Status { what: String, status: u16, app_says: Option<String> },
    /// Retried until the bound passed (5xx, timeouts, cut-off bodies, 429 waits).
    #[error("{what}: gave up after {tries} tries in {secs} s; last: {last}")]
    GaveUp { what: String, tries: u32, secs: u64, last: String },
    /// The app's answer is not the documented shape.
    #[error("{what}: the answer is not the JSON expected: {why}")]
    BadData { what: String, why: String },
    /// A file's bytes are not the file: its size differs from the listed one, or it is an
    /// error or sign-in page.
    #[error("{what}: {why}; not stored")]
    BadFile { what: String, why: String },
    /// A line of an export that cannot be read.
    #[error("{file} line {line}: {why}")]
    BadLine { file: String, line: u64, why: String },
    /// A data type key this source does not offer (now).
    #[error("{key}: {why}")]
    NoSuchType { key: String, why: String },
    /// What this source cannot do (list a type read whole, restore a kind of record).
    #[error("{what}: {why}")]
    Unsupported { what: String, why: String },
    /// The engine dropped its end of the channel: it stopped reading this data type.
    #[error("the engine stopped reading")]
    Stopped,
    /// The source's config or credentials (a missing token, an unreadable file).
    #[error("{0}")]
    Config(String),
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
}

impl Clone for SourceError {
    fn clone(&self) -> Self {
        use SourceError::*;
        match self {
            Refused { what, status, hint, app_says } => {
                Refused { what: what.clone(), status: *status, hint: hint.clone(), app_says: app_says.clone() }
            }
            Forbidden { what, status, app_says } => {
                Forbidden { what: what.clone(), status: *status, app_says: app_says.clone() }
            }
            NotFound { what } => NotFound { what: what.clone() },
            Status { what, status, app_says } => {
                Status { what: what.clone(), status: *status, app_says: app_says.clone() }
            }
            GaveUp { what, tries, secs, last } => {
                GaveUp { what: what.clone(), tries: *tries, secs: *secs, last: last.clone() }
            }
            BadData { what, why } => BadData { what: what.clone(), why: why.clone() },
            BadFile { what, why } => BadFile { what: what.clone(), why: why.clone() },
            BadLine { file, line, why } => BadLine { file: file.clone(), line: *line, why: why.clone() },
            NoSuchType { key, why } => NoSuchType { key: key.clone(), why: why.clone() },
            Unsupported { what, why } => Unsupported { what: what.clone(), why: why.clone() },
            Stopped => Stopped,
            Config(m) => Config(m.clone()),
            Io { what, err } => Io { what: what.clone(), err: std::io::Error::new(err.kind(), err.to_string()) },
        }
    }
}

fn says(app: &Option<String>) -> String {
    match app {
        Some(a) => format!("; the app says: {a}"),
        None => String::new(),
    }
}

impl SourceError {
    /// The same error, about something more specific ("board \"Roadmap\" (5f0c...)").
    pub fn about(self, about: impl fmt::Display) -> SourceError {
        let pre = |w: String| format!("{about}: {w}");
        use SourceError::*;
        match self {
            Refused { what, status, hint, app_says } => Refused { what: pre(what), status, hint, app_says },
            Forbidden { what, status, app_says } => Forbidden { what: pre(what), status, app_says },
            NotFound { what } => NotFound { what: pre(what) },
            Status { what, status, app_says } => Status { what: pre(what), status, app_says },
            GaveUp { what, tries, secs, last } => GaveUp { what: pre(what), tries, secs, last },
            BadData { what, why } => BadData { what: pre(what), why },
            BadFile { what, why } => BadFile { what: pre(what), why },
            Unsupported { what, why } => Unsupported { what: pre(what), why },
            Io { what, err } => Io { what: pre(what), err },
            Config(m) => Config(pre(m)),
            e @ (BadLine { .. } | NoSuchType { .. } | Stopped) => e,
        }
    }

    pub fn bad_data(what: impl Into<String>, why: impl Into<String>) -> SourceError {
        SourceError::BadData { what: what.into(), why: why.into() }
    }

    pub fn unsupported(what: impl Into<String>, why: impl Into<String>) -> SourceError {
        SourceError::Unsupported { what: what.into(), why: why.into() }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::NotFound { .. })
    }
}

/// A JSON value's kind, for messages that must not show the value ("a string of 12
/// characters", "null").
pub fn kind_of(v: &serde_json::Value) -> String {
    use serde_json::Value::*;
    match v {
        Null => "null".into(),
        Bool(_) => "a boolean".into(),
        Number(_) => "a number".into(),
        String(s) if s.is_empty() => "an empty string".into(),
        String(s) => format!("a string of {} characters", s.chars().count()),
        Array(a) => format!("a list of {} items", a.len()),
        Object(o) => format!("an object of {} fields", o.len()),
    }
}

/// Why JSON did not parse, by where, never by what it held (serde's "invalid type:
/// string \"...\"" quotes the value).
pub fn json_why(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "cut short",
        Category::Data => "not the expected shape",
        Category::Io => "unreadable",
    };
    match e.line() {
        0 => what.to_string(),
        l => format!("{what} at line {l} column {}", e.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind() {
        let e = SourceError::NotFound { what: "GET /1/boards/x".into() }.about("board \"Ops\" (x)");
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("board \"Ops\" (x): GET /1/boards/x: not found (HTTP 404)"), "{e}");
        let f = SourceError::Forbidden {
            what: "GET /1/boards/x/cards".into(),
            status: 403,
            app_says: Some("API_TOO_MANY_CARDS_REQUESTED: Requested too many cards".into()),
        };
        assert!(f.to_string().contains("the app says: API_TOO_MANY_CARDS_REQUESTED"), "{f}");
        assert!(!f.to_string().contains("credentials"), "{f}");
    }

    #[test]
    fn json_errors_say_where_not_what() {
        let e = serde_json::from_str::<u64>("\"s3cr3t\"").unwrap_err();
        assert!(e.to_string().contains("s3cr3t"), "serde quotes the value");
        assert_eq!(json_why(&e), "not the expected shape at line 1 column 8");
    }

    #[test]
    fn kinds_not_values() {
        assert_eq!(kind_of(&serde_json::json!("s3cr3t")), "a string of 6 characters");
        assert_eq!(kind_of(&serde_json::json!({"a": 1})), "an object of 1 fields");
    }
}
