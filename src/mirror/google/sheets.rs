//! Sheets v4 through google-sheets4: a spreadsheet's tabs, reading a header and a column,
//! structure changes in one `spreadsheets.batchUpdate`, and values in one RAW
//! `values.batchUpdate` per ~2 MB.

use google_sheets4::Sheets as Hub;
use google_sheets4::api::{BatchUpdateSpreadsheetRequest, BatchUpdateValuesRequest, Request, ValueRange};
use serde_json::Value;

use super::auth::{Connector, SCOPE};
use super::call::{GoogleError, Shared, classify};

/// A tab of a spreadsheet.
#[derive(Debug, Clone)]
pub struct Tab {
    pub id: i32,
    pub title: String,
    pub rows: i64,
    pub cols: i64,
}

pub struct Sheets {
    pub hub: Hub<Connector>,
}

/// A tab's title in an A1 range: quoted, quotes doubled. The crate puts ranges into the URL
/// as they are, so what a URL would misread is percent-encoded here.
pub fn a1(title: &str, cells: &str) -> String {
    let quoted = format!("'{}'!{cells}", title.replace('\'', "''"));
    let mut out = String::with_capacity(quoted.len());
    for b in quoted.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'!' | b':' | b'\'' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The letters of a column (0 is A).
pub fn col(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII")
}

impl Sheets {
    pub async fn tabs(&self, shared: &Shared, id: &str) -> Result<Vec<Tab>, GoogleError> {
        let mut d = shared.delegate();
        let (_, s) = self
            .hub
            .spreadsheets()
            .get(id)
            .param("fields", "sheets.properties")
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit()
            .await
            .map_err(|e| classify(&format!("reading spreadsheet {id}"), e))?;
        Ok(s.sheets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                let p = t.properties?;
                let g = p.grid_properties.unwrap_or_default();
                Some(Tab {
                    id: p.sheet_id?,
                    title: p.title.unwrap_or_default(),
                    rows: g.row_count.unwrap_or(0) as i64,
                    cols: g.column_count.unwrap_or(0) as i64,
                })
            })
            .collect())
    }

    /// The values of some ranges (rows of cells; trailing empty ones left out, as Sheets does).
    pub async fn read(
        &self,
        shared: &Shared,
        id: &str,
        ranges: &[String],
    ) -> Result<Vec<Vec<Vec<Value>>>, GoogleError> {
        let mut d = shared.delegate();
        let mut call = self.hub.spreadsheets().values_batch_get(id).value_render_option("UNFORMATTED_VALUE");
        for r in ranges {
            call = call.add_ranges(r);
        }
        let (_, r) = call
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit()
            .await
            .map_err(|e| classify(&format!("reading spreadsheet {id}"), e))?;
        Ok(r.value_ranges.unwrap_or_default().into_iter().map(|v| v.values.unwrap_or_default()).collect())
    }

    pub async fn structure(&self, shared: &Shared, id: &str, requests: Vec<Request>) -> Result<(), GoogleError> {
        if requests.is_empty() {
            return Ok(());
        }
        shared.pace().await;
        let mut d = shared.delegate();
        let req = BatchUpdateSpreadsheetRequest { requests: Some(requests), ..Default::default() };
        self.hub
            .spreadsheets()
            .batch_update(req, id)
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit()
            .await
            .map_err(|e| classify(&format!("updating spreadsheet {id}"), e))?;
        Ok(())
    }

    /// Writes values RAW: text stays text, a leading `=` or `+` included.
    pub async fn write(&self, shared: &Shared, id: &str, data: Vec<ValueRange>) -> Result<(), GoogleError> {
        if data.is_empty() {
            return Ok(());
        }
        shared.pace().await;
        let mut d = shared.delegate();
        let req =
            BatchUpdateValuesRequest { data: Some(data), value_input_option: Some("RAW".into()), ..Default::default() };
        self.hub
            .spreadsheets()
            .values_batch_update(req, id)
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit()
            .await
            .map_err(|e| classify(&format!("writing spreadsheet {id}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_and_columns() {
        assert_eq!(super::col(0), "A");
        assert_eq!(super::col(25), "Z");
        assert_eq!(super::col(26), "AA");
        assert_eq!(super::col(701), "ZZ");
        assert_eq!(super::col(702), "AAA");
        assert_eq!(super::a1("cards", "1:1"), "'cards'!1:1");
        assert_eq!(super::a1("it's #1 / ?", "A2"), "'it''s%20%231%20%2F%20%3F'!A2");
    }
}
