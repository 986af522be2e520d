//! NocoDB: every table's rows (read by change time after the first cycle, deletions from a
//! listing of keys), their attachments, and each base's configuration (table definitions
//! with their fields, and views with their filters, sorts and field settings).

mod client;
mod config;
mod restore;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{OnceCell, mpsc};

use super::http::{Http, HttpError, Limits};
use super::scope::Scope;
use super::secret::SecretRef;
use super::{
    Batch, Connector, DataType, FileRef, ReadMode, ReadSummary, Record, RestoreFile, Restored, SourceError, Visibility,
};
use crate::config::SourceConfig;
use client::{Base, List, RowsPage, Table, TableRef, rfc3339, where_time};
pub use config::NocoConfig;
use serde_json::value::RawValue;

const BATCH: usize = 500;

pub struct NocoDb {
    cfg: NocoConfig,
    token: SecretRef,
    scope: Scope,
    http: OnceCell<Http>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    types: BTreeMap<String, Kind>,
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
    let c: NocoConfig = super::parse_options(src)?;
    let file = c.token_file.as_ref().map(|f| src.resolve(f));
    let token = SecretRef::new("NocoDB API token", "token", c.token_env.as_deref(), "NOCODB_TOKEN", file.as_deref());
    let line = src.line;
    reqwest::Url::parse(&c.base_url)
        .map_err(|e| anyhow::anyhow!("config line {line}: base_url {:?}: {e}", c.base_url))?;
    if c.requests_per_second == 0 || c.page_size == 0 {
        anyhow::bail!("config line {line}: requests_per_second and page_size must be at least 1");
    }
    let scope = Scope { include: c.include.clone(), exclude: c.exclude.clone() };
    Ok(Box::new(NocoDb { cfg: c, token, scope, http: OnceCell::new(), state: Mutex::default() }))
}

fn err(e: HttpError) -> SourceError {
    SourceError::Other(e.to_string())
}

impl NocoDb {
    async fn http(&self) -> Result<&Http, SourceError> {
        self.http
            .get_or_try_init(|| async {
                let token = self.token.read()?;
                let limits = Limits {
                    requests: self.cfg.requests_per_second,
                    per: Duration::from_secs(1),
                    give_up_after: Duration::from_secs(self.cfg.give_up_after_seconds),
                    timeout: Duration::from_secs(self.cfg.timeout_seconds),
                };
                let base = format!("{}/", self.cfg.base_url.trim_end_matches('/'));
                Http::new(&base, &[("xc-token", token.as_str())], &self.token.hint(), limits).map_err(err)
            })
            .await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, q: &[(&str, String)]) -> Result<T, SourceError> {
        self.http().await?.get_json(path, q).await.map_err(err)
    }

    fn kind(&self, data_type: &str) -> Result<Kind, SourceError> {
        self.state.lock().unwrap().types.get(data_type).cloned().ok_or_else(|| {
            SourceError::Other(format!("{data_type}: no such base or table is visible in NocoDB any more"))
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
        let pk = t.pk().map_err(SourceError::Other)?.to_string();
        let stamps = t.timestamps().map(|(c, u)| (c.to_string(), u.to_string()));
        // Without change times (tables of some external databases), every read is whole.
        let filter = match (since, &stamps) {
            (Some(c), Some((created, updated))) => where_time(c, self.cfg.overlap_seconds)
                .map(|w| format!("(({updated},gt,exactDate,{w})~or({created},gt,exactDate,{w}))")),
            _ => None,
        };
        let attachment_fields: Vec<String> = t.attachment_fields().map(|c| c.title.clone()).collect();
        let mut cursor = since.map(str::to_string);
        let where_ = format!("{}/{}", t.base_title, t.title);
        let mut pager = Pager::new(self, t, None, filter)?;
        let mut started = None;
        while let Some(rows) = pager.next().await? {
            // NocoDB's clock when the read began: every change after it is for the next read.
            started = started.or_else(|| self.http.get().and_then(Http::server_time));
            let mut batch = Vec::with_capacity(BATCH);
            for raw in rows {
                let rec = self.row(&where_, &pk, stamps.as_ref(), &attachment_fields, raw.get())?;
                if let Some(m) = &rec.modified
                    && cursor.as_ref().is_none_or(|c| m > c)
                {
                    cursor = Some(m.clone());
                }
                batch.push(rec);
                if batch.len() == BATCH {
                    send(out, std::mem::take(&mut batch)).await?;
                }
            }
            send(out, batch).await?;
        }
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
        let bad = |why: String| SourceError::Other(format!("table {table}: a row {why}"));
        let mut obj: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|e| bad(format!("is not a JSON object: {e}")))?;
        let id = match obj.get(pk) {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            other => return Err(bad(format!("has {pk} = {other:?}, not a key"))),
        };
        let modified = stamps.and_then(|(created, updated)| {
            [updated, created].iter().filter_map(|f| obj.get(*f)?.as_str().and_then(rfc3339)).max()
        });
        let mut files = Vec::new();
        let mut changed = false;
        for f in attachment_fields {
            // Some NocoDB versions and databases give the field as JSON text.
            if let Some(Value::String(text)) = obj.get(f) {
                let parsed: Value = serde_json::from_str(text)
                    .map_err(|e| bad(format!("{id} has an attachment field {f} that is not JSON: {e}")))?;
                obj.insert(f.clone(), parsed);
                changed = true;
            }
            let items = match obj.get_mut(f) {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => continue,
                Some(other) => {
                    return Err(bad(format!("{id} has an attachment field {f} that is not a list: {other}")));
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
        Ok(Record { id, json, files, line: None, modified })
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
                            return Err(SourceError::Other(format!("table {}: a view without an id", t.title)));
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
        send(out, batch).await?;
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
            table: format!("{}/{}", t.base_title, t.title),
            pk: t.pk().map_err(SourceError::Other)?.to_string(),
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
        let mut q = vec![("limit", self.conn.cfg.page_size.to_string()), ("sort", pk.clone())];
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
                    return Err(SourceError::Other(format!(
                        "table {}: key {k:?} cannot be paged past (it holds , ( ) or ~)",
                        self.table
                    )));
                }
                _ => return Err(SourceError::Other(format!("table {}: a row without its {pk}", self.table))),
            }
        }
        Ok(Some(page.list))
    }
}

async fn send(out: &mpsc::Sender<Batch>, batch: Batch) -> Result<(), SourceError> {
    if batch.is_empty() {
        return Ok(());
    }
    out.send(batch).await.map_err(|_| SourceError::Other("the engine stopped reading".into()))
}

impl Record {
    fn plain(id: String, json: String) -> Record {
        Record { id, json, files: Vec::new(), line: None, modified: None }
    }
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
            Ok(Kind::Rows(t)) => format!("{}/api/v2/tables/{}/records", self.cfg.base_url, t.id),
            _ => format!("{} ({})", self.cfg.base_url, data_type),
        }
    }

    async fn discover(&self) -> Result<Vec<DataType>, SourceError> {
        let bases: List<Base> = self.get("api/v2/meta/bases", &[]).await?;
        let mut types = BTreeMap::new();
        let mut vis = Visibility::default();
        for b in &bases.list {
            let label = base_label(b, &bases.list);
            if !self.scope.keeps_parent(&[&b.id, &b.title]) {
                vis.skipped.push(format!("base {} ({})", b.title, b.id));
                continue;
            }
            let tables: List<TableRef> = self.get(&format!("api/v2/meta/bases/{}/tables", b.id), &[]).await?;
            let mut kept = Vec::new();
            for t in &tables.list {
                let path = format!("{}/{}", b.title, t.title);
                let shown = format!("table {path} ({})", t.id);
                if t.kind.as_deref().is_some_and(|k| k != "table") {
                    vis.skipped.push(format!("{shown}: a database view, not a table"));
                } else if self.scope.keeps(&[&t.id, &t.title, &path, &b.id, &b.title]) {
                    let meta: Value = self.get(&format!("api/v2/meta/tables/{}", t.id), &[]).await?;
                    let table = Arc::new(Table::from_meta(meta, &b.title).map_err(SourceError::Other)?);
                    types.insert(format!("{label}/{}", t.title), Kind::Rows(table.clone()));
                    kept.push(table);
                    vis.kept.push(shown);
                } else {
                    vis.skipped.push(shown);
                }
            }
            if !kept.is_empty() {
                types.insert(format!("{label} (tables)"), Kind::Tables(kept.clone()));
                types.insert(format!("{label} (views)"), Kind::Views(kept));
            }
        }
        let out = types.keys().map(|name| DataType::named(name.clone())).collect();
        let mut st = self.state.lock().unwrap();
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
            _ => return Err(SourceError::Other(format!("{data_type} is read whole, not listed"))),
        };
        let pk = t.pk().map_err(SourceError::Other)?.to_string();
        let mut ids = Vec::new();
        let mut pager = Pager::new(self, &t, Some(&pk), None)?;
        while let Some(rows) = pager.next().await? {
            for raw in rows {
                match super::id_of(raw.get(), &pk) {
                    Ok(super::IdField::Id(id)) => ids.push(id),
                    _ => return Err(SourceError::Other(format!("table {}: a listed row has no {pk}", t.title))),
                }
            }
        }
        Ok(ids)
    }

    async fn fetch_file(&self, file: &FileRef) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, SourceError> {
        let link = self.state.lock().unwrap().downloads.get(&file.key).cloned().ok_or_else(|| {
            SourceError::Other(format!("attachment {}: no download link in this cycle's read", file.name))
        })?;
        let bytes = self
            .http()
            .await?
            .download(&link, &format!("attachment {}", file.name))
            .await
            .map_err(|e| SourceError::Other(format!("attachment {}: {e}", file.name)))?;
        // The fingerprint is "size:key".
        let size = file.fingerprint.as_deref().and_then(|f| f.split(':').next()?.parse().ok());
        super::check_download(&file.name, &bytes, size)?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    fn visible(&self) -> Visibility {
        self.state.lock().unwrap().visible.clone()
    }

    fn requests(&self) -> Option<u64> {
        Some(self.http.get().map_or(0, Http::requests))
    }

    fn restorable(&self, data_type: &str) -> Result<(), String> {
        restore::restorable(data_type, self.kind(data_type).ok().as_ref())
    }

    async fn restore(&self, data_type: &str, record: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
        let kind = self.kind_fresh(data_type).await?;
        restore::restorable(data_type, Some(&kind)).map_err(SourceError::Other)?;
        let Kind::Rows(t) = kind else { unreachable!() };
        restore::restore_row(self.http().await?, &t, record, files).await
    }
}
