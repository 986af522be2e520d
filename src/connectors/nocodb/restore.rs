//! A stored row brought back as a new row: the fields a row can be given, attachments
//! uploaded again. Nothing existing is changed: one POST of one row, after the uploads.

use serde_json::{Map, Value};

use super::Kind;
use super::client::Table;
use crate::connectors::error::json_why;
use crate::connectors::http::Http;
use crate::connectors::{RestoreFile, Restored, SourceError};

pub(super) fn restorable(data_type: &str, kind: Option<&Kind>) -> Result<(), String> {
    match kind {
        Some(Kind::Rows(_)) => Ok(()),
        Some(Kind::Tables(_)) => Err(format!(
            "{data_type}: table definitions are backed up to be read (daybook show), not restored: \
             NocoDB's API can create tables, but recreating one would not bring its rows, links or views back"
        )),
        Some(Kind::Views(_)) => Err(format!(
            "{data_type}: views are backed up to be read (daybook show), not restored: a view's filters \
             and sorts name field ids that a recreated table would not have"
        )),
        None => Err(format!("{data_type}: no such table is visible in NocoDB now; restore needs the table to exist")),
    }
}

pub(super) async fn restore_row(
    http: &Http,
    t: &Table,
    record: &Value,
    files: Vec<RestoreFile>,
) -> Result<Restored, SourceError> {
    let data = record
        .as_object()
        .ok_or_else(|| SourceError::unsupported("restoring a row", "the stored record is not an object"))?;
    let mut row = Map::new();
    let mut out = Restored::default();
    let mut left_out = Vec::new();
    for (field, value) in data {
        let Some(col) = t.columns.iter().find(|c| &c.title == field) else {
            out.notes.push(format!("field {field:?} no longer exists in the table: its value is not restored"));
            continue;
        };
        if !t.writable(col) {
            if !col.pk && !col.system && !value.is_null() {
                left_out.push(format!("{field} ({})", col.uidt));
            }
            continue;
        }
        if col.uidt == "Attachment" {
            if let Some(items) = value.as_array() {
                let mut uploaded = Vec::new();
                for item in items {
                    match upload(http, t, &col.title, item, &files).await? {
                        Some(v) => {
                            uploaded.push(v);
                            out.files_uploaded += 1;
                        }
                        None => out.notes.push(format!(
                            "attachment {} in {field}: its bytes are not in the backup, so it is left out",
                            item.get("title").and_then(Value::as_str).unwrap_or("?")
                        )),
                    }
                }
                row.insert(field.clone(), Value::Array(uploaded));
            }
            continue;
        }
        row.insert(field.clone(), value.clone());
    }
    if !left_out.is_empty() {
        out.notes.push(format!(
            "computed or linked fields are not written (NocoDB computes them, and links need the linked rows): {}",
            left_out.join(", ")
        ));
    }
    let body = Value::Array(vec![Value::Object(row)]);
    let path = format!("api/v2/tables/{}/records", t.id);
    let answer = http.send(reqwest::Method::POST, &path, &[], Some(&body)).await?;
    let pk = t.pk()?;
    let what = format!("POST /{path}");
    let created: Value = serde_json::from_slice(&answer).map_err(|e| SourceError::bad_data(&what, json_why(&e)))?;
    let first = created.as_array().and_then(|a| a.first()).unwrap_or(&created);
    out.new_id = match first.get(pk) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return Err(SourceError::bad_data(what, format!("the answer names no {pk}"))),
    };
    Ok(out)
}

/// Uploads one stored attachment again; its new description goes into the new row.
async fn upload(
    http: &Http,
    t: &Table,
    field: &str,
    item: &Value,
    files: &[RestoreFile],
) -> Result<Option<Value>, SourceError> {
    let key = item.get("path").or_else(|| item.get("url")).and_then(Value::as_str);
    let Some(file) = key.and_then(|k| files.iter().find(|f| f.key == k)) else { return Ok(None) };
    let folder = format!("noco/{}/{}/{}", t.base_title, t.title, field);
    let answer = http.upload("api/v2/storage/upload", &[("path", folder)], "files", &file.name, &file.bytes).await;
    let what = format!("uploading {}", file.name);
    let answer = answer.map_err(|e| e.about(&what))?;
    let mut list: Vec<Value> = serde_json::from_slice(&answer)
        .map_err(|e| SourceError::bad_data(&what, format!("not a list ({})", json_why(&e))))?;
    let mut v = list.pop().ok_or_else(|| SourceError::bad_data(&what, "an empty list"))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("signedPath");
        o.remove("signedUrl");
    }
    Ok(Some(v))
}
