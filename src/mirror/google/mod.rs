//! `kind = "google"`: a Google Sheet per data type and its files in a Drive folder that
//! follows the app's hierarchy.
//!
//! Everything daybook creates carries appProperties (`daybook_org`, `daybook_role`, and the
//! data type's tag, part or file UID), and one listing per org finds it all again, renamed or
//! moved by a person or not, so a crash between a create and the catalog's record never
//! makes a second copy. Rows are found by the `daybook_sid` column of the sheet itself and
//! updated in place; deleted records' rows are removed whole (a column a reader added to the
//! right goes with its row); new fields are inserted as columns. Nothing is ever cleared.

pub mod auth;
pub mod call;
pub mod drive;
pub mod sheets;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use google_sheets4::api::{
    AddSheetRequest, AppendDimensionRequest, DeleteDimensionRequest, DimensionRange, GridProperties,
    InsertDimensionRequest, Request, SheetProperties, UpdateSheetPropertiesRequest, ValueRange,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{self, Cell, Row};
use super::{Counts, Job, MirrorTarget, OrgRef, Rows, TypeRef};
use crate::config::MirrorConfig;
use crate::vault::Vault;
use call::{GoogleError, Shared};
use drive::{DFile, Drive, Media};
use sheets::{Sheets, Tab, a1, col};

/// Google's most cells in a spreadsheet.
pub const MAX_CELLS: u64 = 10_000_000;
/// Google recommends at most this much in one request.
const REQUEST_BYTES: usize = 2_000_000;
/// Rows made into cells at a time when a block of rows is sent.
const ROWS_PER_PIECE: usize = 500;
const DELETED_TAB: &str = "Deleted";
const ABOUT_TAB: &str = "About";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A service-account key, or an OAuth client (then `daybook mirror login`).
    pub credentials: String,
    /// The Drive folder to mirror into.
    pub folder_id: String,
    #[serde(default = "default_drive_root")]
    pub drive_root_url: String,
    #[serde(default = "default_sheets_root")]
    pub sheets_root_url: String,
    /// Where an OAuth client's token is kept (mode 0600).
    #[serde(default = "default_token_cache")]
    pub token_cache: String,
    /// Writes a minute, below Google's 60 a minute per user.
    #[serde(default = "default_writes_per_minute")]
    pub writes_per_minute: u32,
    /// Cells a spreadsheet may hold before a data type continues in "<name> (2)".
    #[serde(default = "default_max_cells")]
    pub max_cells: u64,
    /// How long one request may be retried (429, 5xx) before the data type fails.
    #[serde(default = "default_give_up")]
    pub give_up_after_seconds: u64,
    /// The first wait before a retry; each next one doubles (Retry-After wins when sent).
    #[serde(default = "default_first_retry")]
    pub first_retry_seconds: f64,
}

fn default_drive_root() -> String {
    "https://www.googleapis.com/".into()
}
fn default_sheets_root() -> String {
    "https://sheets.googleapis.com/".into()
}
fn default_token_cache() -> String {
    "daybook-data/google-token.json".into()
}
fn default_writes_per_minute() -> u32 {
    50
}
fn default_max_cells() -> u64 {
    MAX_CELLS
}
fn default_give_up() -> u64 {
    300
}
fn default_first_retry() -> f64 {
    1.0
}

fn root_url(m: &MirrorConfig, key: &str, url: &str) -> Result<String> {
    let ok = url.starts_with("https://") || url.starts_with("http://");
    if !ok || url.contains(char::is_whitespace) {
        return Err(super::config_error(m, &format!("{key} {url:?} must be an http(s) URL")));
    }
    Ok(if url.ends_with('/') { url.to_string() } else { format!("{url}/") })
}

pub fn build(m: &MirrorConfig) -> Result<Box<dyn MirrorTarget>> {
    let mut c: GoogleConfig = super::parse_options(m)?;
    if c.folder_id.trim().is_empty() {
        return Err(super::config_error(m, "folder_id must name the Drive folder to mirror into"));
    }
    if !(1..=300).contains(&c.writes_per_minute) {
        return Err(super::config_error(m, "writes_per_minute must be 1 to 300 (Google allows 60 a user)"));
    }
    if !(1000..=MAX_CELLS).contains(&c.max_cells) {
        return Err(super::config_error(m, &format!("max_cells must be 1000 to {MAX_CELLS}")));
    }
    if !(c.first_retry_seconds.is_finite() && (0.0..=60.0).contains(&c.first_retry_seconds)) {
        return Err(super::config_error(m, "first_retry_seconds must be 0 to 60"));
    }
    c.drive_root_url = root_url(m, "drive_root_url", &c.drive_root_url)?;
    c.sheets_root_url = root_url(m, "sheets_root_url", &c.sheets_root_url)?;
    let shared = Shared::new(
        c.writes_per_minute,
        Duration::from_secs(c.give_up_after_seconds),
        Duration::from_secs_f64(c.first_retry_seconds),
    );
    Ok(Box::new(Google {
        credentials: m.resolve(&c.credentials),
        token_cache: m.resolve(&c.token_cache),
        cfg: c,
        conn: None,
        shared,
        index: Vec::new(),
        org: String::new(),
        cells: 0,
    }))
}

/// `daybook mirror login` for a google target.
pub async fn login(m: &MirrorConfig) -> Result<PathBuf> {
    let c: GoogleConfig = super::parse_options(m)?;
    auth::login(&m.resolve(&c.credentials), &m.resolve(&c.token_cache)).await
}

struct Conn {
    drive: Drive,
    sheets: Sheets,
}

pub struct Google {
    cfg: GoogleConfig,
    credentials: PathBuf,
    token_cache: PathBuf,
    conn: Option<Conn>,
    shared: Arc<Shared>,
    /// Every file of the org daybook made, as the last listing (and what was made since) says.
    index: Vec<DFile>,
    org: String,
    cells: u64,
}

fn props(org: &str, role: &str, more: &[(&str, &str)]) -> HashMap<String, String> {
    let mut p = HashMap::from([("daybook_org".to_string(), org.to_string()), ("daybook_role".into(), role.into())]);
    p.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

/// One spreadsheet of a data type, as read before writing.
struct Part {
    file: DFile,
    data: Tab,
    deleted: Option<Tab>,
    about: Option<Tab>,
    header: Vec<String>,
    /// Each data row's SID (None: an empty row, free for a new record).
    rows: Vec<Option<String>>,
    /// Tabs' cells other than the data tab's.
    other_cells: u64,
}

/// What a part will get: its structure changes, then its values, then its rows (made into
/// cells only as each request is sent, so memory holds one request's cells, not a sheet's).
#[derive(Default)]
struct Plan<'a> {
    structure: Vec<Request>,
    values: Vec<ValueRange>,
    rows: Vec<RowBlock<'a>>,
}

/// Rows written to consecutive sheet rows from `first` (1-based) of a tab.
struct RowBlock<'a> {
    title: String,
    first: usize,
    rows: Vec<&'a Row>,
}

fn value_bytes(v: &ValueRange) -> usize {
    v.values.iter().flatten().flatten().map(|c| c.to_string().len() + 1).sum::<usize>() + 64
}

fn part_name(name: &str, n: usize) -> String {
    if n == 1 { name.to_string() } else { format!("{name} ({n})") }
}

fn range_value(range: String, rows: Vec<Vec<Value>>) -> ValueRange {
    ValueRange { range: Some(range), major_dimension: Some("ROWS".into()), values: Some(rows) }
}

fn dim(sheet: i32, dimension: &str, start: i64, end: i64) -> DimensionRange {
    DimensionRange {
        sheet_id: Some(sheet),
        dimension: Some(dimension.into()),
        start_index: Some(start as i32),
        end_index: Some(end as i32),
    }
}

fn append(sheet: i32, dimension: &str, n: i64) -> Request {
    Request {
        append_dimension: Some(AppendDimensionRequest {
            sheet_id: Some(sheet),
            dimension: Some(dimension.into()),
            length: Some(n as i32),
        }),
        ..Default::default()
    }
}

fn grid(sheet: i32, title: Option<&str>, rows: i64, cols: i64, frozen: bool) -> Request {
    let mut fields = vec!["gridProperties.rowCount", "gridProperties.columnCount"];
    if frozen {
        fields.push("gridProperties.frozenRowCount");
    }
    if title.is_some() {
        fields.push("title");
    }
    Request {
        update_sheet_properties: Some(UpdateSheetPropertiesRequest {
            fields: Some(google_sheets4::FieldMask::new(&fields)),
            properties: Some(SheetProperties {
                sheet_id: Some(sheet),
                title: title.map(str::to_string),
                grid_properties: Some(GridProperties {
                    row_count: Some(rows as i32),
                    column_count: Some(cols as i32),
                    frozen_row_count: frozen.then_some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn add_tab(title: &str, rows: i64, cols: i64) -> Request {
    Request {
        add_sheet: Some(AddSheetRequest {
            properties: Some(SheetProperties {
                title: Some(title.into()),
                grid_properties: Some(GridProperties {
                    row_count: Some(rows as i32),
                    column_count: Some(cols as i32),
                    frozen_row_count: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn text_row(cells: &[String]) -> Vec<Value> {
    cells.iter().map(|c| Cell::Text(c.clone()).sheet_value()).collect()
}

impl Google {
    fn conn(&self) -> &Conn {
        self.conn.as_ref().expect("begin() connects")
    }

    fn found(&self, role: &str, tag: &str) -> Vec<DFile> {
        self.index
            .iter()
            .filter(|f| f.prop("daybook_role") == Some(role) && f.prop("daybook_type") == Some(tag))
            .cloned()
            .collect()
    }

    /// A folder of daybook's under `parent`, found by name, renamed from `was`, or made.
    async fn folder(&mut self, parent: &str, name: &str, was: Option<&str>) -> Result<String> {
        let child = |n: &str| {
            self.index
                .iter()
                .find(|f| {
                    f.prop("daybook_role") == Some("folder") && f.name == n && f.parents.iter().any(|p| p == parent)
                })
                .map(|f| f.id.clone())
        };
        if let Some(id) = child(name) {
            return Ok(id);
        }
        if let Some(id) = was.and_then(child) {
            self.conn().drive.patch(&self.shared, &id, Some(name), false).await?;
            if let Some(f) = self.index.iter_mut().find(|f| f.id == id) {
                f.name = name.to_string();
            }
            return Ok(id);
        }
        let f = self
            .conn()
            .drive
            .create(&self.shared, name, parent, drive::FOLDER, props(&self.org, "folder", &[]), Media::Empty)
            .await?;
        crate::fault::point("mirror-folder-created");
        let id = f.id.clone();
        self.index.push(f);
        Ok(id)
    }

    async fn read_part(&self, file: DFile) -> Result<Part> {
        let s = &self.conn().sheets;
        let tabs = s.tabs(&self.shared, &file.id).await?;
        // The data tab is the spreadsheet's first one (sheet id 0 when Drive made it).
        let data = tabs
            .iter()
            .find(|t| t.id == 0)
            .or(tabs.first())
            .cloned()
            .with_context(|| format!("spreadsheet {} has no tab", file.id))?;
        let find = |title: &str| tabs.iter().find(|t| t.title == title && t.id != data.id).cloned();
        let (deleted, about) = (find(DELETED_TAB), find(ABOUT_TAB));
        let other_cells = tabs.iter().filter(|t| t.id != data.id).map(|t| (t.rows * t.cols) as u64).sum();
        let header: Vec<String> = s
            .read(&self.shared, &file.id, &[a1(&data.title, "1:1")])
            .await?
            .into_iter()
            .next()
            .and_then(|rows| rows.into_iter().next())
            .unwrap_or_default()
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
        // Columns a reader added right of daybook's are theirs.
        let mut header = header;
        if let Some(end) = header.iter().position(|h| h == layout::SID) {
            header.truncate((end + layout::OURS.len()).min(header.len()));
        }
        let mut rows: Vec<Option<String>> = vec![None; (data.rows - 1).max(0) as usize];
        if let Some(i) = header.iter().position(|h| h == layout::SID) {
            let c = col(i);
            let got = s.read(&self.shared, &file.id, &[a1(&data.title, &format!("{c}2:{c}"))]).await?;
            for (r, v) in got.into_iter().next().unwrap_or_default().into_iter().enumerate() {
                let sid = v.into_iter().next().and_then(|v| v.as_str().map(str::to_string)).filter(|s| !s.is_empty());
                if r >= rows.len() {
                    rows.resize(r + 1, None);
                }
                rows[r] = sid;
            }
        }
        Ok(Part { file, data, deleted, about, header, rows, other_cells })
    }

    /// A new spreadsheet for part `n` of a data type, with its tabs set up.
    async fn new_part(&mut self, job: &Job, leaf: &str, n: usize, ncols: usize) -> Result<Part> {
        let name = part_name(&job.ty.place.name, n);
        let pnum = n.to_string();
        let p = props(&self.org, "sheet", &[("daybook_type", &job.ty.tag), ("daybook_part", &pnum)]);
        let file = self.conn().drive.create(&self.shared, &name, leaf, drive::SHEET, p, Media::Empty).await?;
        crate::fault::point("mirror-sheet-created");
        self.index.push(file.clone());
        let part = self.read_part(file).await?;
        self.set_up(job, part, n, ncols).await
    }

    /// Sets up what a spreadsheet still lacks: a data tab never written to (new, or made by
    /// a run that stopped before setting it up) is named, sized and frozen; the first part
    /// gets its Deleted and About tabs. Nothing is sent for one that has it all.
    async fn set_up(&mut self, job: &Job, part: Part, n: usize, ncols: usize) -> Result<Part> {
        let mut setup = Vec::new();
        if part.header.is_empty() {
            setup.push(grid(part.data.id, Some(&job.ty.place.name), 2, ncols as i64, true));
        }
        if n == 1 && part.deleted.is_none() {
            setup.push(add_tab(DELETED_TAB, (job.deleted.len() as i64 + 1).max(2), 3));
        }
        if n == 1 && part.about.is_none() {
            setup.push(add_tab(ABOUT_TAB, job.about.len() as i64 + 4, 2));
        }
        if setup.is_empty() {
            return Ok(part);
        }
        self.conn().sheets.structure(&self.shared, &part.file.id, setup).await?;
        self.read_part(part.file).await
    }

    fn max_rows(&self, part: &Part, ncols: usize) -> usize {
        let free = self.cfg.max_cells.saturating_sub(part.other_cells);
        ((free / ncols.max(1) as u64) as usize).saturating_sub(1)
    }

    async fn send(
        &mut self,
        id: &str,
        plan: Plan<'_>,
        cells_of: &(dyn Fn(&Row) -> Vec<Value> + Sync),
        last: &str,
    ) -> Result<()> {
        let s = &self.conn.as_ref().expect("connected").sheets;
        s.structure(&self.shared, id, plan.structure).await?;
        // Values in requests of at most ~2 MB each.
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut cells = 0u64;
        let mut add = |v: ValueRange, batch: &mut Vec<ValueRange>| -> Option<Vec<ValueRange>> {
            let size = value_bytes(&v);
            let full = (bytes + size > REQUEST_BYTES && !batch.is_empty()).then(|| {
                bytes = 0;
                std::mem::take(batch)
            });
            cells += v.values.iter().flatten().map(|r| r.len() as u64).sum::<u64>();
            bytes += size;
            batch.push(v);
            full
        };
        for v in plan.values {
            if let Some(b) = add(v, &mut batch) {
                s.write(&self.shared, id, b).await?;
                crate::fault::point("mirror-values-written");
            }
        }
        for block in plan.rows {
            // A block goes in pieces small enough to fill a request, each its own range.
            let mut at = block.first;
            for piece in block.rows.chunks(ROWS_PER_PIECE) {
                let range = a1(&block.title, &format!("A{at}:{last}{}", at + piece.len() - 1));
                at += piece.len();
                let v = range_value(range, piece.iter().map(|r| cells_of(r)).collect());
                if let Some(b) = add(v, &mut batch) {
                    s.write(&self.shared, id, b).await?;
                    crate::fault::point("mirror-values-written");
                }
            }
        }
        s.write(&self.shared, id, batch).await?;
        crate::fault::point("mirror-values-written");
        self.cells += cells;
        Ok(())
    }

    async fn sheet(&mut self, job: &Job, leaf: &str) -> Result<()> {
        let mut found = self.found("sheet", &job.ty.tag);
        found.sort_by_key(|f| f.prop("daybook_part").and_then(|p| p.parse::<usize>().ok()).unwrap_or(usize::MAX));
        let mut parts = Vec::new();
        let mut seen = HashSet::new();
        for f in found {
            let n = f.prop("daybook_part").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
            if n == 0 || !seen.insert(n) {
                continue;
            }
            if let Some(was) = &job.ty.was {
                let (old, new) = (part_name(&was.name, n), part_name(&job.ty.place.name, n));
                if f.name == old && old != new {
                    self.conn().drive.patch(&self.shared, &f.id, Some(&new), false).await?;
                }
            }
            let part = self.read_part(f).await?;
            parts.push(self.set_up(job, part, n, job.header.len()).await?);
        }
        // The header: what the sheet has, with the new fields at their sorted places.
        let app = |h: &[String]| -> BTreeSet<String> {
            h.iter().filter(|c| c.as_str() != layout::ID && !layout::OURS.contains(&c.as_str())).cloned().collect()
        };
        let mut fields = app(&job.header);
        for p in &parts {
            fields.extend(app(&p.header));
        }
        let header = layout::header(&fields);
        let remap: Vec<Option<usize>> = header.iter().map(|h| job.header.iter().position(|x| x == h)).collect();
        let cells_of = |r: &Row| -> Vec<Value> {
            remap.iter().map(|i| i.map(|i| r.cells[i].sheet_value()).unwrap_or(Value::String(String::new()))).collect()
        };
        let (upsert, delete): (&[Row], HashSet<String>) = match &job.rows {
            Rows::Full(rows) => {
                let live: HashSet<&str> = rows.iter().map(|r| r.sid.as_str()).collect();
                let gone = parts.iter().flat_map(|p| p.rows.iter().flatten()).filter(|s| !live.contains(s.as_str()));
                (rows, gone.cloned().collect())
            }
            Rows::Delta { upsert, delete } => (upsert, delete.iter().cloned().collect()),
        };
        let mut plans: Vec<Plan> = parts.iter().map(|_| Plan::default()).collect();
        let ncols = header.len();
        let last = col(ncols - 1);
        // Structure first: deleted records' rows go, new columns come in.
        for (p, plan) in parts.iter_mut().zip(plans.iter_mut()) {
            let gone: Vec<usize> =
                (0..p.rows.len()).filter(|&i| p.rows[i].as_deref().is_some_and(|s| delete.contains(s))).collect();
            // Sheets keeps at least one row under a frozen header: the last one is emptied.
            let keep = if gone.len() == p.rows.len() { gone.first().copied() } else { None };
            for &i in gone.iter().rev() {
                if Some(i) == keep {
                    continue;
                }
                plan.structure.push(Request {
                    delete_dimension: Some(DeleteDimensionRequest {
                        range: Some(dim(p.data.id, "ROWS", i as i64 + 1, i as i64 + 2)),
                    }),
                    ..Default::default()
                });
            }
            if let Some(k) = keep {
                p.rows[k] = None;
                plan.values.push(range_value(
                    a1(&p.data.title, &format!("A{}:{last}{}", k + 2, k + 2)),
                    vec![vec![Value::String(String::new()); ncols]],
                ));
            }
            let mut i = 0;
            p.rows.retain(|_| {
                let out = !(gone.contains(&i) && Some(i) != keep);
                i += 1;
                out
            });
            p.data.rows = p.rows.len() as i64 + 1;
            let fresh = p.header.is_empty();
            if !fresh && p.header != header {
                let mut cur = p.header.clone();
                for (idx, h) in header.iter().enumerate() {
                    if cur.get(idx) != Some(h) && !cur.contains(h) {
                        plan.structure.push(Request {
                            insert_dimension: Some(InsertDimensionRequest {
                                range: Some(dim(p.data.id, "COLUMNS", idx as i64, idx as i64 + 1)),
                                inherit_from_before: Some(idx > 0),
                            }),
                            ..Default::default()
                        });
                        cur.insert(idx, h.clone());
                        p.data.cols += 1;
                    }
                }
                if cur != header {
                    bail!(
                        "spreadsheet {:?} has a header daybook did not write; rename it aside and run `daybook mirror`",
                        p.file.name
                    );
                }
            }
            if p.data.cols < ncols as i64 {
                plan.structure.push(append(p.data.id, "COLUMNS", ncols as i64 - p.data.cols));
                p.data.cols = ncols as i64;
            }
            if fresh || p.header != header {
                plan.values.push(range_value(a1(&p.data.title, &format!("A1:{last}1")), vec![text_row(&header)]));
                p.header = header.clone();
            }
        }
        // Rows: in place by SID, or into a free row, or appended where there is room.
        let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
        for (pi, p) in parts.iter().enumerate() {
            for (ri, s) in p.rows.iter().enumerate() {
                if let Some(s) = s {
                    at.insert(s.as_str(), (pi, ri));
                }
            }
        }
        let mut added: Vec<Vec<(usize, &Row)>> = parts.iter().map(|_| Vec::new()).collect();
        let mut pending: Vec<&Row> = Vec::new();
        for r in upsert {
            match at.get(r.sid.as_str()) {
                Some(&(pi, ri)) => {
                    plans[pi].rows.push(RowBlock { title: parts[pi].data.title.clone(), first: ri + 2, rows: vec![r] })
                }
                None => pending.push(r),
            }
        }
        let mut pi = 0;
        let mut rest = pending.into_iter().peekable();
        while rest.peek().is_some() {
            if pi == parts.len() {
                let n = parts.len() + 1;
                let part = self.new_part(job, leaf, n, ncols).await?;
                let mut plan = Plan::default();
                plan.values.push(range_value(a1(&part.data.title, &format!("A1:{last}1")), vec![text_row(&header)]));
                parts.push(part);
                plans.push(plan);
                added.push(Vec::new());
            }
            let cap = self.max_rows(&parts[pi], ncols);
            let p = &mut parts[pi];
            while let Some(r) = rest.peek() {
                let slot = match p.rows.iter().position(Option::is_none) {
                    Some(i) => i,
                    None if p.rows.len() < cap => {
                        p.rows.push(None);
                        p.rows.len() - 1
                    }
                    None => break,
                };
                p.rows[slot] = Some(r.sid.clone());
                added[pi].push((slot, *r));
                rest.next();
            }
            pi += 1;
        }
        for (pi, p) in parts.iter_mut().enumerate() {
            let need = p.rows.len() as i64 + 1;
            if need > p.data.rows {
                plans[pi].structure.push(append(p.data.id, "ROWS", need - p.data.rows));
                p.data.rows = need;
            }
            // Contiguous new rows go as one range.
            let mut adds = std::mem::take(&mut added[pi]);
            adds.sort_by_key(|(slot, _)| *slot);
            let mut block: Vec<&Row> = Vec::new();
            let mut start = 0;
            for (slot, r) in adds {
                if !block.is_empty() && slot != start + block.len() {
                    let rows = std::mem::take(&mut block);
                    plans[pi].rows.push(RowBlock { title: p.data.title.clone(), first: start + 2, rows });
                }
                if block.is_empty() {
                    start = slot;
                }
                block.push(r);
            }
            if !block.is_empty() {
                plans[pi].rows.push(RowBlock { title: p.data.title.clone(), first: start + 2, rows: block });
            }
        }
        // The first spreadsheet's Deleted and About tabs.
        if let Some(p) = parts.first() {
            let plan = &mut plans[0];
            if let Some(t) = &p.deleted {
                let n = job.deleted.len() as i64 + 1;
                plan.structure.push(grid(t.id, None, n.max(2), 3, false));
                let mut rows = vec![text_row(&["id".into(), "last content".into(), "deleted at".into()])];
                rows.extend(job.deleted.iter().map(|r| text_row(r)));
                if job.deleted.is_empty() {
                    rows.push(text_row(&[String::new(), String::new(), String::new()]));
                }
                plan.values.push(range_value(a1(&t.title, &format!("A1:C{}", rows.len())), rows));
            }
            if let Some(t) = &p.about {
                let mut about = job.about.clone();
                if parts.len() > 1 {
                    let more: Vec<String> = (2..=parts.len()).map(|n| part_name(&job.ty.place.name, n)).collect();
                    about.push(vec![
                        "continues in".into(),
                        format!("{} (a spreadsheet holds at most {} cells)", more.join(", "), self.cfg.max_cells),
                    ]);
                }
                let n = about.len() as i64 + 1;
                plan.structure.push(grid(t.id, None, n.max(2), 2, false));
                let mut rows = vec![text_row(&["".into(), "".into()])];
                rows[0] = text_row(&["about".into(), "this sheet".into()]);
                rows.extend(about.iter().map(|r| text_row(r)));
                plan.values.push(range_value(a1(&t.title, &format!("A1:B{}", rows.len())), rows));
            }
        }
        for (p, plan) in parts.iter().zip(plans) {
            let id = p.file.id.clone();
            self.send(&id, plan, &cells_of, &last).await?;
        }
        Ok(())
    }

    async fn csv(&mut self, job: &Job, leaf: &str) -> Result<()> {
        let name = job.ty.place.csv_name();
        match self.found("csv", &job.ty.tag).into_iter().next() {
            Some(f) => {
                self.conn().drive.update_media(&self.shared, &f.id, &job.csv, "text/csv").await?;
                if f.name != name && job.ty.was.is_some() {
                    self.conn().drive.patch(&self.shared, &f.id, Some(&name), false).await?;
                }
            }
            None => {
                let p = props(&self.org, "csv", &[("daybook_type", &job.ty.tag)]);
                let f = self
                    .conn()
                    .drive
                    .create(&self.shared, &name, leaf, "text/csv", p, Media::File(&job.csv, "text/csv"))
                    .await?;
                self.index.push(f);
            }
        }
        Ok(())
    }

    async fn files(&mut self, vault: &Vault, job: &Job, leaf: &str) -> Result<()> {
        let mine: HashMap<String, DFile> = self
            .found("file", &job.ty.tag)
            .into_iter()
            .filter_map(|f| Some((f.prop("daybook_file")?.to_string(), f)))
            .collect();
        for g in &job.gone_files {
            if let Some(f) = mine.get(&g.uid) {
                self.conn().drive.patch(&self.shared, &f.id, None, true).await?;
            }
        }
        let new: Vec<_> = job.files.iter().filter(|f| !mine.contains_key(&f.uid)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let dir = self.folder(leaf, "files", None).await?;
        for f in new {
            // The vault's reader is async and the crate's uploads read a seekable file: the
            // bytes go through a temporary file, never all into memory.
            let tmp = tempfile::NamedTempFile::new()?;
            let (size, mut r) = vault.open_file(&job.org.sid, &f.uid).await?;
            let mut w = tokio::fs::File::create(tmp.path()).await?;
            let n =
                tokio::io::copy(&mut r, &mut w).await.with_context(|| format!("reading {} from the vault", f.name))?;
            if n != size {
                bail!("file {} read {n} bytes of {size} from the vault", f.name);
            }
            drop(w);
            let p = props(&self.org, "file", &[("daybook_type", &job.ty.tag), ("daybook_file", &f.uid)]);
            let made = self
                .conn()
                .drive
                .create(
                    &self.shared,
                    &f.name,
                    &dir,
                    "application/octet-stream",
                    p,
                    Media::File(tmp.path(), "application/octet-stream"),
                )
                .await?;
            self.index.push(made);
            crate::fault::point("mirror-file-written");
        }
        Ok(())
    }
}

#[async_trait]
impl MirrorTarget for Google {
    async fn begin(&mut self, org: &OrgRef) -> Result<()> {
        if self.conn.is_none() {
            let auth = auth::authenticator(&self.credentials, &self.token_cache).await?;
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(auth::connector()?);
            let mut d = google_drive3::DriveHub::new(client.clone(), auth.clone());
            d.root_url(self.cfg.drive_root_url.clone());
            d.base_url(format!("{}drive/v3/", self.cfg.drive_root_url));
            let mut s = google_sheets4::Sheets::new(client, auth);
            s.root_url(self.cfg.sheets_root_url.clone());
            s.base_url(self.cfg.sheets_root_url.clone());
            self.conn = Some(Conn { drive: Drive { hub: d }, sheets: Sheets { hub: s } });
        }
        self.org = org.sid.clone();
        self.conn().drive.root(&self.shared, &self.cfg.folder_id).await?;
        self.index = self.conn().drive.list_org(&self.shared, &org.sid).await?;
        Ok(())
    }

    async fn intact(&mut self, ty: &TypeRef) -> Result<bool> {
        let sheet = self.found("sheet", &ty.tag).iter().any(|f| f.prop("daybook_part") == Some("1"));
        Ok(sheet && !self.found("csv", &ty.tag).is_empty())
    }

    async fn write(&mut self, vault: &Vault, job: &Job) -> Result<()> {
        let mut parent = self.cfg.folder_id.clone();
        for (i, d) in job.ty.place.dirs.iter().enumerate() {
            let was = job
                .ty
                .was
                .as_ref()
                .filter(|w| w.dirs.len() == job.ty.place.dirs.len() && w.dirs[..i] == job.ty.place.dirs[..i])
                .map(|w| w.dirs[i].clone());
            parent = self.folder(&parent, d, was.as_deref()).await?;
        }
        let r = async {
            self.sheet(job, &parent).await?;
            self.csv(job, &parent).await?;
            self.files(vault, job, &parent).await
        }
        .await;
        r.map_err(|e| match e.downcast::<GoogleError>() {
            Ok(g) => anyhow::Error::new(g),
            Err(e) => e,
        })
    }

    fn counts(&self) -> Counts {
        Counts {
            requests: self.shared.requests.load(Ordering::Relaxed),
            write_requests: self.shared.writes.load(Ordering::Relaxed),
            cells: self.cells,
        }
    }
}
