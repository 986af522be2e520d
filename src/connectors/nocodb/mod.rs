//! NocoDB: every table's rows (read by change time after the first cycle, deletions from a
//! listing of keys), their attachments, and each base's configuration (table definitions
//! with their fields, and views with their filters, sorts and field settings).

mod client;
mod config;
mod restore;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::{json_why, kind_of};
use super::http::{Expect, Http, HttpSourceOptions, LazyHttp};
use super::sink::Sink;
use super::{
    Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, RestoreFile, Restored, SourceError, Visibility,
};
use crate::config::SourceConfig;
use client::{Base, List, RowsPage, Table, TableRef, rfc3339, where_time};
pub use config::NocoConfig;
use serde_json::value::RawValue;

const BATCH: usize = 500;

pub struct NocoDb {
    opts: HttpSourceOptions,
    page_size: u32,
    http: LazyHttp,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By key: `table:<table id>` (rows), `base:<base id>/tables`, `base:<base id>/views`.
    types: BTreeMap<String, Kind>,
    /// The keys an earlier release used (names), to each type's key.
    former: HashMap<String, String>,
    visible: Visibility,
    /// Where to download each attachment (its signed link), by file key, from the last read.
    downloads: HashMap<String, String>,
}

#[derive(Clone)]
enum Kind {
    Rows(Arc<Table>),
    /// A base's table definitions, one record a table.
    Tables(Vec<Arc<Table>>),
    /// A base's views with their filters, sorts and field settings, one record a view.
    Views(Vec<Arc<Table>>),
}

pub fn build(src: &SourceConfig) -> anyhow::Result<Box<dyn Connector>> {
    let (opts, own): (_, NocoConfig) = HttpSourceOptions::parse(src, &config::DEFAULTS)?;
    if own.page_size == 0 {
        return Err(super::config_error(src, "page_size must be at least 1"));
    }
    let http = LazyHttp::with_token(&opts, "xc-token");
    Ok(Box::new(NocoDb { opts, page_size: own.page_size, http, state: Mutex::default() }))
}

impl NocoDb {
    async fn http(&self) -> Result<&Http, SourceError> {
        self.http.get().await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, q: &[(&str, String)]) -> Result<T, SourceError> {
        self.http().await?.get_json(path, q).await
    }

    /// `get`, with None for a base or table deleted since it was listed: as if it had been
    /// deleted a moment earlier, not a reason to back up nothing else (its data types, if
    /// backed up before, are reported gone and keep their last snapshot).
    async fn get_if_there<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, SourceError> {
        match self.get(path, &[]).await {
            Err(e) if e.is_not_found() => {
                tracing::info!("{path}: deleted while its base was being listed");
                Ok(None)
            }
            r => r.map(Some),
        }
    }

    /// A data type by its key (or the name an earlier release stored it under).
    fn kind(&self, data_type: &str) -> Result<Kind, SourceError> {
        let st = self.state.lock().unwrap();
        let key = st.former.get(data_type).map_or(data_type, String::as_str);
        st.types.get(key).cloned().ok_or_else(|| SourceError::NoSuchType {
            key: data_type.into(),
            why: "no such base or table is visible in NocoDB any more".into(),
        })
    }

    async fn kind_fresh(&self, data_type: &str) -> Result<Kind, SourceError> {
        if self.state.lock().unwrap().types.is_empty() {
            self.discover().await?;
        }
        self.kind(data_type)
    }

    async fn read_rows(
        &self,
        t: &Table,
        since: Option<&str>,
        out: &mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        let pk = t.pk()?.to_string();
        let stamps = t.timestamps().map(|(c, u)| (c.to_string(), u.to_string()));
        // Without change times (tables of some external databases), every read is whole.
        let filter = match (since, &stamps) {
            (Some(c), Some((created, updated))) => where_time(c, self.opts.overlap.as_secs())
                .map(|w| format!("(({updated},gt,exactDate,{w})~or({created},gt,exactDate,{w}))")),
            _ => None,
        };
        let attachment_fields: Vec<String> = t.attachment_fields().map(|c| c.title.clone()).collect();
        let mut cursor = since.map(str::to_string);
        let where_ = format!("{}/{}", t.base_title, t.title);
        let mut pager = Pager::new(self, t, None, filter)?;
        let mut started = None;
        let mut sink = Sink::new(out.clone(), BATCH);
        let http = self.http().await?;
        while let Some(rows) = pager.next().await? {
            // NocoDB's clock when the read began: every change after it is for the next read.
            started = started.or_else(|| http.server_time());
            for raw in rows {
                let rec = self.row(&where_, &pk, stamps.as_ref(), &attachment_fields, raw.get())?;
                if let Some(m) = &rec.modified
                    && cursor.as_ref().is_none_or(|c| m > c)
                {
                    cursor = Some(m.clone());
                }
                sink.push(rec).await?;
            }
        }
        sink.finish().await?;
        // The next read starts from when this one began, never from a later change it saw:
        // a row edited after its page was read may be older than that change. Without a
        // Date header, the last change seen (the overlap covers the rows read meanwhile).
        if let Some(t) = started {
            cursor = Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        Ok(ReadSummary { cursor })
    }

    /// One row as a record: its key, its change time, its attachments as files. The links
    /// NocoDB signs anew on every answer are left out, or every row with a file would look
    /// changed every day.
    fn row(
        &self,
        table: &str,
        pk: &str,
        stamps: Option<&(String, String)>,
        attachment_fields: &[String],
        text: &str,
    ) -> Result<Record, SourceError> {
        let bad = |why: String| SourceError::bad_data(format!("table {table}"), format!("a row {why}"));
        let mut obj: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|e| bad(format!("is not a JSON object ({})", json_why(&e))))?;
        let id = match obj.get(pk) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => return Err(bad(format!("has {} as its {pk}, not a key", kind_of(other)))),
            None => return Err(bad(format!("has no {pk}"))),
        };
        let modified = stamps.and_then(|(created, updated)| {
            [updated, created].iter().filter_map(|f| obj.get(*f)?.as_str().and_then(rfc3339)).max()
        });
        let mut files = Vec::new();
        let mut changed = false;
        for f in attachment_fields {
            // Some NocoDB versions and databases give the field as JSON text.
            if let Some(Value::String(text)) = obj.get(f) {
                let parsed: Value = serde_json::from_str(text).map_err(|e| {
                    bad(format!("{id} has an attachment field {f} that is not JSON ({})", json_why(&e)))
                })?;
                obj.insert(f.clone(), parsed);
                changed = true;
            }
            let items = match obj.get_mut(f) {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => continue,
                Some(other) => {
                    return Err(bad(format!("{id} has {} in its attachment field {f}, not a list", kind_of(other))));
                }
            };
            let mut st = self.state.lock().unwrap();
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                let link = ["signedPath", "signedUrl", "url", "path"]
                    .iter()
                    .find_map(|k| item.get(*k).and_then(Value::as_str))
                    .map(str::to_string);
                for volatile in ["signedPath", "signedUrl", "id"] {
                    changed |= item.remove(volatile).is_some();
                }
                let key = item.get("path").or_else(|| item.get("url")).and_then(Value::as_str).map(str::to_string);
                let (Some(key), Some(link)) = (key, link) else {
                    return Err(bad(format!("{id} has an attachment in {f} without a path or url")));
                };
                let size = match item.get("size") {
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::String(t)) => t.clone(),
                    _ => String::new(),
                };
                let name = item.get("title").and_then(Value::as_str).unwrap_or("attachment").to_string();
                st.downloads.insert(key.clone(), link);
                files.push(FileRef { fingerprint: Some(format!("{size}:{key}")), key, name });
            }
        }
        let json = if changed { Value::Object(obj).to_string() } else { text.to_string() };
        Ok(Record { id, json, files, line: None, modified, unparsed: None })
    }

    async fn read_config(&self, kind: &Kind, out: &mpsc::Sender<Batch>) -> Result<ReadSummary, SourceError> {
        let mut batch = Vec::new();
        match kind {
            Kind::Tables(tables) => {
                for t in tables {
                    batch.push(Record::plain(t.id.clone(), t.raw.to_string()));
                }
            }
            Kind::Views(tables) => {
                for t in tables {
                    let views: List<Value> = self.get(&format!("api/v2/meta/tables/{}/views", t.id), &[]).await?;
                    for mut v in views.list {
                        let id = v.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                        if id.is_empty() {
                            return Err(SourceError::bad_data(format!("table {}", t.id), "a view without an id"));
                        }
                        for part in ["filters", "sorts", "columns"] {
                            let l: List<Value> = self.get(&format!("api/v2/meta/views/{id}/{part}"), &[]).await?;
                            v[part] = Value::Array(l.list);
                        }
                        batch.push(Record::plain(id, v.to_string()));
                    }
                }
            }
            Kind::Rows(_) => unreachable!(),
        }
        let mut sink = Sink::new(out.clone(), BATCH);
        for r in batch {
            sink.push(r).await?;
        }
        sink.finish().await?;
        // No cursor: the engine reads it whole every cycle, and the read is its listing.
        Ok(ReadSummary::default())
    }
}

/// Pages through a table's rows in key order, `filter` narrowing them. Paging by key (not
/// offset) means rows added or deleted meanwhile shift nothing: no row is skipped or read
/// twice.
struct Pager<'a> {
    conn: &'a NocoDb,
    path: String,
    table: String,
    pk: String,
    fields: Option<String>,
    filter: Option<String>,
    after: Option<String>,
    done: bool,
}

impl<'a> Pager<'a> {
    fn new(conn: &'a NocoDb, t: &Table, fields: Option<&str>, filter: Option<String>) -> Result<Self, SourceError> {
        Ok(Pager {
            conn,
            path: format!("api/v2/tables/{}/records", t.id),
            table: format!("{}/{} ({})", t.base_title, t.title, t.id),
            pk: t.pk()?.to_string(),
            fields: fields.map(str::to_string),
            filter,
            after: None,
            done: false,
        })
    }

    async fn next(&mut self) -> Result<Option<Vec<Box<RawValue>>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let pk = &self.pk;
        let mut conds = Vec::new();
        if let Some(a) = &self.after {
            conds.push(format!("({pk},gt,{a})"));
        }
        conds.extend(self.filter.clone());
        let mut q = vec![("limit", self.conn.page_size.to_string()), ("sort", pk.clone())];
        if !conds.is_empty() {
            q.push(("where", conds.join("~and")));
        }
        if let Some(f) = &self.fields {
            q.push(("fields", f.clone()));
        }
        let page: RowsPage = self.conn.get(&self.path, &q).await?;
        // Only NocoDB's own word ends the listing: a short page may just be its cap.
        self.done = page.list.is_empty() || page.page_info.as_ref().and_then(|p| p.is_last_page) == Some(true);
        if !self.done {
            let last = page.list.last().map(|r| super::id_of(r.get(), pk));
            match last {
                Some(Ok(super::IdField::Id(k))) if !k.contains([',', '(', ')', '~']) => self.after = Some(k),
                Some(Ok(super::IdField::Id(k))) => {
                    return Err(SourceError::unsupported(
                        format!("table {}", self.table),
                        format!("key {k:?} cannot be paged past (it holds , ( ) or ~)"),
                    ));
                }
                _ => {
                    return Err(SourceError::bad_data(
                        format!("table {}", self.table),
                        format!("a row without its {pk}"),
                    ));
                }
            }
        }
        Ok(Some(page.list))
    }
}

impl Record {
    fn plain(id: String, json: String) -> Record {
        Record { id, json, files: Vec::new(), line: None, modified: None, unparsed: None }
    }
}

/// A data type of a base, known by `key`; an earlier release stored it under its name.
fn data_type(key: &str, name: String, base: &Base) -> DataType {
    DataType { key: key.into(), former: vec![name.clone()], name, path: vec![base.title.clone()] }
}

/// Type names: "Base/Table" for rows; "Base (tables)" and "Base (views)" for its
/// configuration. A base title two bases share gets the base's id too.
fn base_label(b: &Base, bases: &[Base]) -> String {
    if bases.iter().filter(|o| o.title == b.title).count() > 1 {
        format!("{} [{}]", b.title, b.id)
    } else {
        b.title.clone()
    }
}

#[async_trait]
impl Connector for NocoDb {
    fn incremental(&self) -> bool {
        true
    }

    fn location(&self, data_type: &str) -> String {
        match self.kind(data_type) {
            Ok(Kind::Rows(t)) => format!("{}api/v2/tables/{}/records", self.opts.base_url, t.id),
            _ => format!("{} ({})", self.opts.base_url, data_type),
        }
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        let bases: List<Base> = self.get("api/v2/meta/bases", &[]).await?;
        let mut types = BTreeMap::new();
        let mut out = Vec::new();
        let mut vis = Visibility::default();
        for b in &bases.list {
            let label = base_label(b, &bases.list);
            if !self.opts.scope.keeps_parent(&[&b.id, &b.title]) {
                vis.skipped.push(format!("base {} ({})", b.title, b.id));
                continue;
            }
            let Some(tables) =
                self.get_if_there::<List<TableRef>>(&format!("api/v2/meta/bases/{}/tables", b.id)).await?
            else {
                continue;
            };
            let mut kept = Vec::new();
            for t in &tables.list {
                let path = format!("{}/{}", b.title, t.title);
                let shown = format!("table {path} ({})", t.id);
                if t.kind.as_deref().is_some_and(|k| k != "table") {
                    vis.skipped.push(format!("{shown}: a database view, not a table"));
                } else if self.opts.scope.keeps(&[&t.id, &t.title, &path, &b.id, &b.title]) {
                    let Some(meta) = self.get_if_there::<Value>(&format!("api/v2/meta/tables/{}", t.id)).await? else {
                        continue;
                    };
                    let table = Arc::new(Table::from_meta(meta, &b.title)?);
                    let key = format!("table:{}", table.id);
                    out.push(data_type(&key, format!("{label}/{}", table.title), b));
                    types.insert(key, Kind::Rows(table.clone()));
                    kept.push(table);
                    vis.kept.push(shown);
                } else {
                    vis.skipped.push(shown);
                }
            }
            if !kept.is_empty() {
                for (what, kind) in [("tables", Kind::Tables(kept.clone())), ("views", Kind::Views(kept))] {
                    let key = format!("base:{}/{what}", b.id);
                    out.push(data_type(&key, format!("{label} ({what})"), b));
                    types.insert(key, kind);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        let mut st = self.state.lock().unwrap();
        st.former = out.iter().flat_map(|t| t.former.iter().map(|f| (f.clone(), t.key.clone()))).collect();
        st.types = types;
        st.visible = vis;
        Ok(out)
    }

    async fn read(
        &self,
        data_type: &str,
        mode: ReadMode,
        out: mpsc::Sender<Batch>,
    ) -> Result<ReadSummary, SourceError> {
        match self.kind(data_type)? {
            Kind::Rows(t) => {
                let since = match &mode {
                    ReadMode::Full => None,
                    ReadMode::Since(c) => Some(c.as_str()),
                };
                self.read_rows(&t, since, &out).await
            }
            // Small: read whole each cycle; unchanged ones store nothing.
            kind => self.read_config(&kind, &out).await,
        }
    }

    async fn list_ids(&self, data_type: &str) -> Result<Vec<String>, SourceError> {
        let t = match self.kind(data_type)? {
            Kind::Rows(t) => t,
            // Configuration has no cursor, so it is always read whole and never listed.
            _ => return Err(SourceError::unsupported(data_type, "read whole, not listed")),
        };
        let pk = t.pk()?.to_string();
        let mut ids = Vec::new();
        let mut pager = Pager::new(self, &t, Some(&pk), None)?;
        while let Some(rows) = pager.next().await? {
            for raw in rows {
                match super::id_of(raw.get(), &pk) {
                    Ok(super::IdField::Id(id)) => ids.push(id),
                    _ => {
                        return Err(SourceError::bad_data(
                            format!("table {}", t.id),
                            format!("a listed row has no {pk}"),
                        ));
                    }
                }
            }
        }
        Ok(ids)
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let link = self.state.lock().unwrap().downloads.get(&file.key).cloned().ok_or_else(|| {
            SourceError::unsupported(format!("attachment {}", file.name), "no download link in this cycle's read")
        })?;
        // The fingerprint is "size:key".
        let size = file.fingerprint.as_deref().and_then(|f| f.split(':').next()?.parse().ok());
        let label = format!("attachment {}", file.name);
        self.http().await?.download(&link, &label, Expect { name: &file.name, size, sniff: None }).await
    }

    fn visible(&self) -> Visibility {
        self.state.lock().unwrap().visible.clone()
    }

    fn requests(&self) -> Option<u64> {
        Some(self.http.requests())
    }

    fn rate_limited(&self) -> Option<u64> {
        Some(self.http.rate_limited())
    }

    fn restorable(&self, data_type: &str) -> Result<(), String> {
        restore::restorable(data_type, self.kind(data_type).ok().as_ref())
    }

    async fn restore(&self, data_type: &str, record: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
        let kind = self.kind_fresh(data_type).await?;
        restore::restorable(data_type, Some(&kind)).map_err(|why| SourceError::unsupported(data_type, why))?;
        let Kind::Rows(t) = kind else { unreachable!() };
        restore::restore_row(self.http().await?, &t, record, files).await
    }
}
