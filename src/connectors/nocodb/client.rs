//! NocoDB's REST API v2 as daybook uses it, shapes checked against a running NocoDB 0.265:
//! `GET /api/v2/meta/bases` and `/meta/bases/{id}/tables` → `{list: [...]}`;
//! `GET /api/v2/meta/tables/{id}` → the table with `columns` and `views`;
//! `GET /api/v2/tables/{id}/records?where&sort&fields&limit` → `{list, pageInfo}`;
//! `POST /api/v2/tables/{id}/records` → `[{<pk>: n}]`; `POST /api/v2/storage/upload`.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::connectors::SourceError;

#[derive(Debug, Deserialize)]
pub struct List<T> {
    pub list: Vec<T>,
    #[serde(rename = "pageInfo")]
    pub page_info: Option<PageInfo>,
}

#[derive(Debug, Deserialize)]
pub struct PageInfo {
    #[serde(rename = "isLastPage")]
    pub is_last_page: Option<bool>,
}

pub type RowsPage = List<Box<RawValue>>;

#[derive(Debug, Clone, Deserialize)]
pub struct Base {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableRef {
    pub id: String,
    pub title: String,
    /// "table", or "view" for a database view of an external source.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Column {
    pub title: String,
    pub uidt: String,
    #[serde(default, deserialize_with = "truthy")]
    pub pk: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub system: bool,
}

/// A table's definition, as fetched, and what reading it needs.
#[derive(Debug, Clone)]
pub struct Table {
    pub id: String,
    pub title: String,
    pub base_title: String,
    pub columns: Vec<Column>,
    /// The definition as NocoDB gave it (the "tables" data type's record).
    pub raw: Value,
}

/// Fields NocoDB computes or owns: a copy never writes them.
const COMPUTED: &[&str] = &[
    "ID",
    "CreatedTime",
    "LastModifiedTime",
    "CreatedBy",
    "LastModifiedBy",
    "Order",
    "Formula",
    "Rollup",
    "Lookup",
    "Links",
    "LinkToAnotherRecord",
    "Count",
    "QrCode",
    "Barcode",
    "Button",
    "AutoNumber",
    "ForeignKey",
];

impl Table {
    pub fn from_meta(raw: Value, base_title: &str) -> Result<Table, SourceError> {
        #[derive(Deserialize)]
        struct Meta {
            id: String,
            title: String,
            columns: Vec<Column>,
        }
        let m: Meta = Meta::deserialize(&raw).map_err(|e| {
            SourceError::bad_data(
                format!("a table definition of base {base_title}"),
                crate::connectors::error::json_why(&e),
            )
        })?;
        let mut raw = raw;
        if let Some(o) = raw.as_object_mut() {
            // Derived from `columns`, and ordered differently from one answer to the next.
            o.remove("columnsById");
            o.remove("columnsHash");
        }
        Ok(Table { id: m.id, title: m.title, base_title: base_title.into(), columns: m.columns, raw })
    }

    /// The primary key's field title: rows are paged and told apart by it.
    pub fn pk(&self) -> Result<&str, SourceError> {
        let pks: Vec<&Column> = self.columns.iter().filter(|c| c.pk).collect();
        let what = format!("table {}/{} ({})", self.base_title, self.title, self.id);
        match pks.as_slice() {
            [one] => Ok(&one.title),
            [] => Err(SourceError::unsupported(
                what,
                "it has no primary key, so its rows cannot be told apart from one day to the next; \
                 add an ID field to it in NocoDB",
            )),
            _ => Err(SourceError::unsupported(
                what,
                format!("its primary key has {} fields; daybook pages by a single-field key", pks.len()),
            )),
        }
    }

    fn system_title(&self, uidt: &str) -> Option<&str> {
        self.columns.iter().find(|c| c.system && c.uidt == uidt).map(|c| c.title.as_str())
    }

    /// The titles of the creation and last-change times, where the table has both.
    pub fn timestamps(&self) -> Option<(&str, &str)> {
        Some((self.system_title("CreatedTime")?, self.system_title("LastModifiedTime")?))
    }

    pub fn attachment_fields(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.uidt == "Attachment")
    }

    /// Fields a new row can be given: not the key, not what NocoDB computes or owns.
    pub fn writable(&self, c: &Column) -> bool {
        !c.pk && !c.system && !COMPUTED.contains(&c.uidt.as_str())
    }
}

/// NocoDB answers booleans as 0/1 on SQLite and as true/false on PostgreSQL.
fn truthy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    })
}

/// A NocoDB time ("2026-11-22 05:00:51+00:00", or RFC 3339) as RFC 3339 UTC to the second.
pub fn rfc3339(t: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%:z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .or_else(|_| chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()?;
    Some(parsed.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// A `where` time: NocoDB's `exactDate` wants "YYYY-MM-DD HH:MM:SS" (UTC); an RFC 3339
/// string there matches nothing, silently.
pub fn where_time(rfc3339: &str, minus_secs: u64) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?.with_timezone(&chrono::Utc);
    Some((t - chrono::Duration::seconds(minus_secs as i64)).format("%Y-%m-%d %H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times() {
        assert_eq!(super::rfc3339("2026-11-22 05:00:51+00:00").as_deref(), Some("2026-11-22T05:00:51Z"));
        assert_eq!(super::rfc3339("2026-11-22 07:00:51+02:00").as_deref(), Some("2026-11-22T05:00:51Z"));
        assert_eq!(super::where_time("2026-11-22T05:00:51Z", 300).as_deref(), Some("2026-11-22 04:55:51"));
    }
}
