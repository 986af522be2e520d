//! The bodies of `/api/v1`, as JSON Schema (draft 2020-12, which OpenAPI 3.1 takes), made
//! from the very types the handlers serialize and parse: `schemas/api.schema.json`, which
//! `schemas/openapi.json` refers to. tests/web.rs holds the file equal to `document()`
//! (`DAYBOOK_BLESS=1` rewrites it), and checks every answer its tests get against the schema
//! openapi.json gives for that route and status.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::{api, archives, views};

/// `schemas/api.schema.json`: each body's schema under `$defs`, by name. Objects are closed
/// (`additionalProperties: false`), so a field added to an answer is a field documented.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    // The bodies the API reads: a request may leave out what is optional.
    let mut requests = Vec::new();
    macro_rules! answers {
        ($($t:ty),* $(,)?) => { $( g.subschema_for::<$t>(); )* };
    }
    macro_rules! requests {
        ($($t:ty),* $(,)?) => { $( g.subschema_for::<$t>(); requests.push(<$t as schemars::JsonSchema>::schema_name()); )* };
    }
    answers!(
        super::Error,
        api::Me,
        api::Orgs,
        views::Overview,
        super::JobRef,
        api::Snapshots,
        views::RecordsPage,
        views::RecordView,
        views::RestoreDone,
        views::DeletedPage,
        views::LogsPage,
        views::JobsPage,
        views::JobDetail,
        views::AuditPage,
        archives::ArchivesPage,
        archives::Ordered,
        archives::QuoteView,
        archives::ArchiveView,
        api::DownloadLink,
        api::ArchiveDeleted,
    );
    requests!(api::RestoreBody, archives::Order, archives::Rename, api::ProofBody);
    let mut defs = g.take_definitions(true);
    for (name, v) in defs.iter_mut() {
        // An answer has each of its fields, null when there is nothing.
        let answer = !requests.iter().any(|r| r == name);
        close(v, answer);
    }
    let mut doc = Map::new();
    doc.insert("$schema".into(), "https://json-schema.org/draft/2020-12/schema".into());
    doc.insert("title".into(), "daybook API: the bodies of /api/v1 (generated: see src/http/web/openapi.rs)".into());
    doc.insert("$defs".into(), Value::Object(defs));
    Value::Object(doc)
}

fn close(v: &mut Value, answer: bool) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get("properties") {
                let all: Vec<Value> = props.keys().map(|k| Value::String(k.clone())).collect();
                o.entry("additionalProperties").or_insert(Value::Bool(false));
                if answer {
                    o.insert("required".into(), Value::Array(all));
                }
            }
            o.values_mut().for_each(|v| close(v, answer));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| close(v, answer)),
        _ => {}
    }
}
