//! Mirrors: each org's latest snapshots kept in a place people read, a Google Sheet per
//! data type with its files in Drive, or the same tree in a local folder. A mirror reads
//! the vault only through its read API and is never the primary copy: `--rebuild` writes a
//! target again from the vault.
//!
//! Per org, target and data type, a run applies `changes_between(cycle it last mirrored,
//! latest)`; a data type with no new snapshot sends nothing. The target's own work (what a
//! sheet or a folder needs) is behind `MirrorTarget`, one file per kind.

pub mod folder;
pub mod google;
pub mod layout;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use crate::config::{Config, MirrorConfig, OrgConfig};
use crate::vault::catalog::MirrorRow;
use crate::vault::read::{At, ChangeKind, CycleId, TypeInfo};
use crate::vault::{Org, Vault};
use layout::{Place, Row};

/// The kinds a config may name, each with its builder.
const KINDS: &[(&str, Builder)] = &[("folder", folder::build), ("google", google::build)];

type Builder = fn(&MirrorConfig) -> Result<Box<dyn MirrorTarget>>;

/// Records deleted within this many days are on a sheet's Deleted tab.
pub const DELETED_DAYS: i64 = 30;

const STATE_AAD: &[u8] = b"daybook mirror state v1";
const ERROR_AAD: &[u8] = b"daybook mirror error v1";

fn builder(m: &MirrorConfig) -> Result<Builder> {
    let kind = m.kind.get_ref();
    match KINDS.iter().find(|(k, _)| k == kind) {
        Some((_, b)) => Ok(*b),
        None => {
            let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            bail!("config line {}: unknown mirror kind {kind:?} (known: {})", m.line, known.join(", "))
        }
    }
}

pub fn build(m: &MirrorConfig) -> Result<Box<dyn MirrorTarget>> {
    builder(m)?(m)
}

/// Checks every mirror of a config: its kind is known and its keys parse.
pub fn check_config(cfg: &Config) -> Result<()> {
    for m in cfg.orgs.iter().flat_map(|o| o.mirrors.iter()) {
        build(m)?;
    }
    Ok(())
}

/// Parses a target's own keys of a `[[orgs.mirrors]]` table, naming the line on error.
pub fn parse_options<T: serde::de::DeserializeOwned>(m: &MirrorConfig) -> Result<T> {
    toml::Value::Table(m.options.clone()).try_into().map_err(|e: toml::de::Error| config_error(m, e.message()))
}

pub fn config_error(m: &MirrorConfig, msg: &str) -> anyhow::Error {
    anyhow!("config line {}: mirror {:?} (kind {:?}): {msg}", m.line, m.name.get_ref(), m.kind.get_ref())
}

/// The org a target writes for.
#[derive(Debug, Clone)]
pub struct OrgRef {
    pub sid: String,
    pub name: String,
    pub tz: chrono_tz::Tz,
}

/// A data type as a target knows it.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// A stable tag of the data type (its source and key, hashed): what a target marks its
    /// files with to find them again whatever they are called.
    pub tag: String,
    pub place: Place,
    /// Where it was last written, when that differs (a board renamed).
    pub was: Option<Place>,
}

/// What a data type's rows became.
pub enum Rows {
    /// Every live record (a first mirror, a rebuild, or a sheet that was lost).
    Full(Vec<Row>),
    /// Records added or changed, and SIDs deleted, since the cycle the target holds.
    Delta { upsert: Vec<Row>, delete: Vec<String> },
}

/// A file of a data type, under its name in `files/`.
#[derive(Debug, Clone)]
pub struct PlacedFile {
    pub uid: String,
    pub name: String,
    pub size: u64,
}

/// One data type's new state, for a target to write.
pub struct Job {
    pub org: OrgRef,
    pub ty: TypeRef,
    pub cycle: CycleId,
    pub header: Vec<String>,
    pub rows: Rows,
    /// Rows of the Deleted tab: id, last content, deleted at.
    pub deleted: Vec<Vec<String>>,
    /// Rows of the About tab.
    pub about: Vec<Vec<String>>,
    /// The CSV of every live row, whole, in a temporary file, and its rows.
    pub csv: PathBuf,
    pub csv_rows: u64,
    /// The data type's files now, and those it had that are gone.
    pub files: Vec<PlacedFile>,
    pub gone_files: Vec<PlacedFile>,
}

/// Requests and cells a target sent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub write_requests: u64,
    pub cells: u64,
}

#[async_trait]
pub trait MirrorTarget: Send {
    /// Before an org's data types: find what the target already holds for it.
    async fn begin(&mut self, org: &OrgRef) -> Result<()>;

    /// Whether a data type's sheet (or CSV) is still there; if not, it is written whole.
    async fn intact(&mut self, ty: &TypeRef) -> Result<bool>;

    async fn write(&mut self, vault: &Vault, job: &Job) -> Result<()>;

    /// What it sent so far.
    fn counts(&self) -> Counts;
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            requests: self.requests - o.requests,
            write_requests: self.write_requests - o.write_requests,
            cells: self.cells - o.cells,
        }
    }
}

/// What a target remembers of a data type between runs (sealed in the catalog).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TypeState {
    place: Option<Place>,
    header: Vec<String>,
    /// Its files by UID, under their names in `files/`.
    files: BTreeMap<String, (String, u64)>,
    /// A hash of the Deleted tab as written: records leave it 30 days after their deletion,
    /// so it changes with the date even on a day without a new snapshot.
    #[serde(default)]
    deleted: String,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub org: Option<String>,
    pub target: Option<String>,
    pub rebuild: bool,
    /// What time it is for the Deleted tab's 30 days (the system's when None).
    pub now: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeReport {
    pub source: String,
    pub data_type: String,
    /// Where it is under the target's root.
    pub place: String,
    pub cycle: Option<i64>,
    /// "written", "unchanged" or "failed".
    pub status: &'static str,
    pub rows_written: u64,
    pub rows_deleted: u64,
    pub full: bool,
    pub requests: u64,
    pub write_requests: u64,
    pub cells: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub org: String,
    pub target: String,
    pub kind: String,
    /// Where it writes, for people ("/srv/mirror", "Drive folder 1AbC...").
    pub root: String,
    pub types: Vec<TypeReport>,
    pub requests: u64,
    pub write_requests: u64,
    pub cells: u64,
    pub seconds: f64,
    /// A failure of the whole target (its credentials, its root).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// A run that could not start (the catalog unreachable, say), as a failure of each target.
    pub fn failed_whole(cfg: &Config, org: Option<&str>, e: &anyhow::Error) -> Report {
        let targets = cfg
            .orgs
            .iter()
            .filter(|o| org.is_none_or(|s| o.sid.get_ref() == s))
            .flat_map(|o| o.mirrors.iter().map(move |m| (o, m)))
            .map(|(o, m)| TargetReport {
                org: o.sid.get_ref().clone(),
                target: m.name.get_ref().clone(),
                kind: m.kind.get_ref().clone(),
                root: root_of(m),
                types: Vec::new(),
                requests: 0,
                write_requests: 0,
                cells: 0,
                seconds: 0.0,
                error: Some(format!("{e:#}")),
            })
            .collect();
        Report { targets }
    }

    pub fn failed(&self) -> usize {
        self.targets
            .iter()
            .map(|t| t.error.is_some() as usize + t.types.iter().filter(|x| x.error.is_some()).count())
            .sum()
    }
}

/// Brings every configured mirror (of one org, one target) up to date.
pub async fn run(vault: &Vault, cfg: &Config, opts: &Options) -> Result<Report> {
    if let Some(o) = opts.org.as_ref().filter(|o| !cfg.orgs.iter().any(|c| c.sid.get_ref() == *o)) {
        bail!("no org {o:?} in the config");
    }
    let mut report = Report::default();
    let mut named = false;
    for org in cfg.orgs.iter().filter(|o| opts.org.as_deref().is_none_or(|s| o.sid.get_ref() == s)) {
        for m in org.mirrors.iter().filter(|m| opts.target.as_deref().is_none_or(|t| m.name.get_ref() == t)) {
            named = true;
            report.targets.push(run_target(vault, org, m, opts).await);
        }
    }
    if let (Some(t), false) = (&opts.target, named) {
        bail!(
            "no mirror {t:?} in the config{}",
            opts.org.as_ref().map(|o| format!(" of org {o:?}")).unwrap_or_default()
        );
    }
    Ok(report)
}

fn root_of(m: &MirrorConfig) -> String {
    match m.kind.get_ref().as_str() {
        "folder" => m.options.get("path").and_then(|p| p.as_str()).map(|p| m.resolve(p).display().to_string()),
        _ => m.options.get("folder_id").and_then(|p| p.as_str()).map(|p| format!("Drive folder {p}")),
    }
    .unwrap_or_default()
}

/// The page a person opens to see the target: a Drive folder's.
fn link_of(m: &MirrorConfig) -> Option<String> {
    match m.kind.get_ref().as_str() {
        // Drive's ids are letters, digits, `-` and `_`; anything else makes no link.
        "google" => m
            .options
            .get("folder_id")
            .and_then(|p| p.as_str())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .map(|id| format!("https://drive.google.com/drive/folders/{id}")),
        _ => None,
    }
}

async fn run_target(vault: &Vault, org: &OrgConfig, m: &MirrorConfig, opts: &Options) -> TargetReport {
    let started = std::time::Instant::now();
    let mut tr = TargetReport {
        org: org.sid.get_ref().clone(),
        target: m.name.get_ref().clone(),
        kind: m.kind.get_ref().clone(),
        root: root_of(m),
        types: Vec::new(),
        requests: 0,
        write_requests: 0,
        cells: 0,
        seconds: 0.0,
        error: None,
    };
    if let Err(e) = mirror_org(vault, org, m, opts, &mut tr).await {
        tr.error = Some(format!("{e:#}"));
    }
    tr.seconds = started.elapsed().as_secs_f64();
    for t in &tr.types {
        tr.requests += t.requests;
        tr.write_requests += t.write_requests;
        tr.cells += t.cells;
    }
    tr
}

struct Ctx<'a> {
    vault: &'a Vault,
    org: std::sync::Arc<Org>,
    oref: OrgRef,
    target: String,
    now: DateTime<Utc>,
    /// Each data type's place (`layout::places`).
    places: HashMap<i64, Place>,
}

impl Ctx<'_> {
    fn seal_state(&self, s: &TypeState) -> Vec<u8> {
        self.org.keys.seal.seal(STATE_AAD, &serde_json::to_vec(s).expect("state serializes"))
    }

    fn open_state(&self, sealed: Option<&[u8]>) -> Option<TypeState> {
        // A state that does not open (a damaged row) is as good as none: the data type is
        // written whole again.
        let plain = self.org.keys.seal.open(STATE_AAD, sealed?).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    async fn save(&self, row: &MirrorRow) -> Result<()> {
        self.vault.catalog.put_mirror_row(self.org.id, &self.target, row).await
    }
}

async fn mirror_org(
    vault: &Vault,
    org: &OrgConfig,
    m: &MirrorConfig,
    opts: &Options,
    tr: &mut TargetReport,
) -> Result<()> {
    let sid = org.sid.get_ref();
    let Some(o) = vault.existing_org(sid).await? else {
        return Ok(()); // nothing backed up yet: nothing to mirror
    };
    let types = vault.types(Some(sid)).await?;
    let ctx = Ctx {
        vault,
        org: o,
        oref: OrgRef { sid: sid.clone(), name: org.name.clone(), tz: org.tz() },
        target: m.name.get_ref().clone(),
        now: opts.now.unwrap_or_else(Utc::now),
        places: layout::places(&org.name, &types),
    };
    if opts.rebuild {
        vault.catalog.forget_mirror(ctx.org.id, &ctx.target).await?;
    }
    let mut rows: HashMap<i64, MirrorRow> = vault
        .catalog
        .mirror_rows(ctx.org.id, Some(&ctx.target))
        .await?
        .into_iter()
        .map(|(_, r)| (r.type_id, r))
        .collect();
    // Names taken in each folder's files/, by every data type's files there.
    let mut taken: HashMap<Vec<String>, HashSet<String>> = HashMap::new();
    let mut states: HashMap<i64, TypeState> = HashMap::new();
    for t in &types {
        let st = rows.get(&t.id.0).and_then(|r| ctx.open_state(r.state.as_deref())).unwrap_or_default();
        let place = &ctx.places[&t.id.0];
        for (name, _) in st.files.values() {
            taken.entry(place.dirs.clone()).or_default().insert(name.to_lowercase());
        }
        states.insert(t.id.0, st);
    }
    let deleted = vault.deleted_records(Some(sid)).await?;
    let begun = match build(m) {
        Ok(mut target) => target.begin(&ctx.oref).await.map(|()| target),
        Err(e) => Err(e),
    };
    let mut target = match begun {
        Ok(target) => target,
        Err(e) => {
            // The target cannot be reached at all (credentials, its root folder): every data
            // type's status says so, keeping what the target last held.
            let msg = ctx.org.keys.seal.seal(ERROR_AAD, format!("{e:#}").as_bytes());
            for t in &types {
                let mut row =
                    rows.remove(&t.id.0).unwrap_or_else(|| MirrorRow { type_id: t.id.0, ..Default::default() });
                row.attempted_at = crate::util::now_rfc3339();
                (row.requests, row.cells, row.error) = (0, 0, Some(msg.clone()));
                ctx.save(&row).await?;
            }
            return Err(e);
        }
    };
    for t in &types {
        let row = rows.remove(&t.id.0).unwrap_or_default();
        let st = states.remove(&t.id.0).unwrap_or_default();
        let place = &ctx.places[&t.id.0];
        let before = target.counts();
        let folder = taken.entry(place.dirs.clone()).or_default();
        let rep = match mirror_type(&ctx, target.as_mut(), t, row, st, &deleted, folder).await {
            Ok(rep) => rep,
            Err((p, e)) => {
                let c = target.counts() - before;
                let msg = format!("{e:#}");
                let row = MirrorRow {
                    type_id: t.id.0,
                    cycle: p.cycle,
                    mirrored_at: p.mirrored_at.clone(),
                    attempted_at: crate::util::now_rfc3339(),
                    requests: c.requests as i64,
                    cells: c.cells as i64,
                    error: Some(ctx.org.keys.seal.seal(ERROR_AAD, msg.as_bytes())),
                    state: p.state.clone(),
                };
                ctx.save(&row).await?;
                TypeReport {
                    status: "failed",
                    error: Some(msg),
                    requests: c.requests,
                    write_requests: c.write_requests,
                    cells: c.cells,
                    ..p.report
                }
            }
        };
        tr.types.push(rep);
    }
    Ok(())
}

/// What a failed data type leaves: its last good cycle and state, and the report so far.
struct Partial {
    cycle: Option<i64>,
    mirrored_at: Option<String>,
    state: Option<Vec<u8>>,
    report: TypeReport,
}

type TypeResult = std::result::Result<TypeReport, (Partial, anyhow::Error)>;

async fn mirror_type(
    ctx: &Ctx<'_>,
    target: &mut dyn MirrorTarget,
    t: &TypeInfo,
    row: MirrorRow,
    st: TypeState,
    deleted: &[crate::vault::read::DeletedRecord],
    taken: &mut HashSet<String>,
) -> TypeResult {
    let place = ctx.places[&t.id.0].clone();
    let report = TypeReport {
        source: t.source.clone(),
        data_type: t.name.clone(),
        place: place.shown(),
        cycle: row.cycle,
        status: "unchanged",
        rows_written: 0,
        rows_deleted: 0,
        full: false,
        requests: 0,
        write_requests: 0,
        cells: 0,
        error: None,
    };
    let partial = |report: &TypeReport| Partial {
        cycle: row.cycle,
        mirrored_at: row.mirrored_at.clone(),
        state: row.state.clone(),
        report: report.clone(),
    };
    let latest = match ctx.vault.snapshot_at(t.id, At::Latest).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(report),
        Err(e) => return Err((partial(&report), e)),
    };
    let tref = TypeRef {
        tag: type_tag(&t.source, &t.key),
        place: place.clone(),
        was: st.place.clone().filter(|p| *p != place),
    };
    let before = target.counts();
    let deleted = deleted_rows(ctx, t, deleted);
    let deleted_hash = hash_rows(&deleted);
    let r: Result<TypeReport> = async {
        let known = row.cycle.filter(|_| !st.header.is_empty() && st.place.is_some());
        let intact = known.is_some() && target.intact(&tref).await?;
        let same_deleted = st.deleted == deleted_hash;
        if intact && known == Some(latest.cycle.0) && tref.was.is_none() && row.error.is_none() && same_deleted {
            return Ok(report.clone());
        }
        let mut rep = report.clone();
        let from = known.filter(|_| intact).map(CycleId);
        let Some(job) = prepare(ctx, t, &tref, from, latest.cycle, &st, deleted, same_deleted, taken, &mut rep).await?
        else {
            // A new snapshot with nothing new in it: the target holds it already.
            ctx.save(&MirrorRow { cycle: Some(latest.cycle.0), error: None, ..row.clone() }).await?;
            rep.cycle = Some(latest.cycle.0);
            return Ok(rep);
        };
        // What the job will name is known before it is written: a crash while writing
        // leaves a state whose files and names the next run takes up, never doubles.
        let mut next = TypeState {
            place: st.place.clone(),
            header: st.header.clone(),
            files: st.files.clone(),
            deleted: st.deleted.clone(),
        };
        for f in &job.files {
            next.files.insert(f.uid.clone(), (f.name.clone(), f.size));
        }
        ctx.save(&MirrorRow {
            state: Some(ctx.seal_state(&next)),
            attempted_at: crate::util::now_rfc3339(),
            ..row.clone()
        })
        .await?;
        crate::fault::point("mirror-before-write");
        target.write(ctx.vault, &job).await?;
        let _ = std::fs::remove_file(&job.csv);
        for g in &job.gone_files {
            next.files.remove(&g.uid);
        }
        next.place = Some(place.clone());
        next.header = job.header.clone();
        next.deleted = deleted_hash;
        let now = crate::util::now_rfc3339();
        let c = target.counts() - before;
        ctx.save(&MirrorRow {
            type_id: t.id.0,
            cycle: Some(latest.cycle.0),
            mirrored_at: Some(now.clone()),
            attempted_at: now,
            requests: c.requests as i64,
            cells: c.cells as i64,
            error: None,
            state: Some(ctx.seal_state(&next)),
        })
        .await?;
        crate::fault::point("mirror-type-done");
        rep.status = "written";
        rep.cycle = Some(latest.cycle.0);
        (rep.requests, rep.write_requests, rep.cells) = (c.requests, c.write_requests, c.cells);
        Ok(rep)
    }
    .await;
    r.map_err(|e| (partial(&report), e))
}

fn local_time(ctx: &Ctx<'_>, t: DateTime<Utc>) -> String {
    t.with_timezone(&ctx.oref.tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// The Deleted tab's rows: the data type's records deleted in the last `DELETED_DAYS`.
fn deleted_rows(ctx: &Ctx<'_>, t: &TypeInfo, deleted: &[crate::vault::read::DeletedRecord]) -> Vec<Vec<String>> {
    let since = ctx.now - chrono::Duration::days(DELETED_DAYS);
    deleted
        .iter()
        .filter(|d| d.record.type_id == t.id && d.noticed >= since)
        .map(|d| vec![d.record.source_id.clone(), d.last.content.data.to_string(), local_time(ctx, d.noticed)])
        .collect()
}

fn hash_rows(rows: &[Vec<String>]) -> String {
    let mut h = blake3::Hasher::new();
    for r in rows {
        for c in r {
            h.update(&(c.len() as u64).to_le_bytes());
            h.update(c.as_bytes());
        }
        h.update(b"\n");
    }
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// A stable tag of a data type, short enough for Drive's appProperties.
pub fn type_tag(source: &str, key: &str) -> String {
    let h = blake3::hash(format!("{source}\u{0}{key}").as_bytes());
    hex::encode(&h.as_bytes()[..12])
}

#[allow(clippy::too_many_arguments)]
async fn prepare(
    ctx: &Ctx<'_>,
    t: &TypeInfo,
    tref: &TypeRef,
    from: Option<CycleId>,
    to: CycleId,
    st: &TypeState,
    deleted: Vec<Vec<String>>,
    same_deleted: bool,
    taken: &mut HashSet<String>,
    rep: &mut TypeReport,
) -> Result<Option<Job>> {
    let vault = ctx.vault;
    let app_fields = |h: &[String]| -> BTreeSet<String> {
        h.iter().filter(|c| c.as_str() != layout::ID && !layout::OURS.contains(&c.as_str())).cloned().collect()
    };
    // The header first (a whole snapshot's fields, or the sheet's and the changes'), then
    // one pass over the snapshot writes the CSV, finds the files and, for a whole write,
    // makes the rows: parsed records are never all held at once.
    let (header, delta) = match from {
        None => {
            let mut fields = BTreeSet::new();
            let mut s = vault.records_at(t.id, to);
            while let Some(r) = s.next().await {
                fields.extend(layout::fields(&r?.content.data));
            }
            (layout::header(&fields), None)
        }
        Some(from) => {
            let changes = vault.changes_between(t.id, Some(from), to).await?;
            if changes.is_empty() && tref.was.is_none() && same_deleted {
                return Ok(None);
            }
            let mut fields = app_fields(&st.header);
            for c in &changes {
                if let Some(a) = &c.after {
                    fields.extend(layout::fields(&a.content.data));
                }
            }
            let header = layout::header(&fields);
            let mut upsert = Vec::new();
            let mut delete = Vec::new();
            for c in &changes {
                match (&c.kind, &c.after) {
                    (ChangeKind::Deleted, _) | (_, None) => delete.push(c.sid.clone()),
                    (_, Some(a)) => upsert.push(Row::of(a, &header)),
                }
            }
            (header, Some(Rows::Delta { upsert, delete }))
        }
    };
    let tmp = tempfile::Builder::new().prefix("daybook-mirror-").suffix(".csv").tempfile()?;
    let (file, csv_path) = tmp.keep().context("keeping the CSV's temporary file")?;
    let mut out = layout::CsvOut::new(std::io::BufWriter::new(file), &header)?;
    let mut files: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut csv_rows = 0;
    let mut full = Vec::new();
    let mut s = vault.records_at(t.id, to);
    while let Some(r) = s.next().await {
        let r = r?;
        let row = Row::of(&r, &header);
        out.row(&row)?;
        csv_rows += 1;
        for f in r.content.files {
            files.entry(f.uid).or_insert((f.name, f.size));
        }
        if delta.is_none() {
            full.push(row);
        }
    }
    drop(s);
    let rows = delta.unwrap_or(Rows::Full(full));
    match &rows {
        Rows::Full(r) => {
            rep.full = true;
            rep.rows_written = r.len() as u64;
        }
        Rows::Delta { upsert, delete } => {
            rep.rows_written = upsert.len() as u64;
            rep.rows_deleted = delete.len() as u64;
        }
    }
    std::io::Write::flush(&mut out.finish()?)?;
    let mut placed = Vec::new();
    for (uid, (name, size)) in &files {
        let name = match st.files.get(uid) {
            Some((n, _)) => n.clone(),
            None => layout::unique_name(name, taken),
        };
        placed.push(PlacedFile { uid: uid.clone(), name, size: *size });
    }
    let gone_files = st
        .files
        .iter()
        .filter(|(uid, _)| !files.contains_key(*uid))
        .map(|(uid, (name, size))| {
            taken.remove(&name.to_lowercase());
            PlacedFile { uid: uid.clone(), name: name.clone(), size: *size }
        })
        .collect();
    let local = |t: DateTime<Utc>| local_time(ctx, t);
    let snap = vault.snapshot_at(t.id, At::Cycle(to)).await?.ok_or_else(|| anyhow!("snapshot {to} vanished"))?;
    let about = vec![
        vec!["data type".into(), t.full_name()],
        vec!["snapshot".into(), format!("cycle {to}")],
        vec!["snapshot taken".into(), local(snap.taken_at)],
        vec!["live records".into(), snap.live.to_string()],
        vec!["written".into(), local(ctx.now)],
        vec!["note".into(), "written by daybook from its vault; edits here are not backed up".into()],
    ];
    Ok(Some(Job {
        org: ctx.oref.clone(),
        ty: tref.clone(),
        cycle: to,
        header,
        rows,
        deleted,
        about,
        csv: csv_path,
        csv_rows,
        files: placed,
        gone_files,
    }))
}

/// `mirror status`: per target and data type, the cycle mirrored, when, requests, errors.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StatusRow {
    pub org: String,
    pub target: String,
    pub kind: String,
    /// Where the target writes ("Drive folder <id>", a local path), and a link a browser
    /// opens (a Drive folder's).
    pub root: String,
    pub link: Option<String>,
    pub source: String,
    pub data_type: String,
    /// The cycle the target holds, and the latest snapshot's.
    pub cycle: Option<i64>,
    pub latest: Option<i64>,
    pub mirrored_at: Option<String>,
    pub attempted_at: Option<String>,
    pub requests: i64,
    pub cells: i64,
    pub error: Option<String>,
}

pub async fn status(vault: &Vault, cfg: &Config, org: Option<&str>) -> Result<Vec<StatusRow>> {
    let mut out = Vec::new();
    for o in cfg.orgs.iter().filter(|o| org.is_none_or(|s| o.sid.get_ref() == s)) {
        let Some(keys) = vault.existing_org(o.sid.get_ref()).await? else { continue };
        let types = vault.types(Some(o.sid.get_ref())).await?;
        let rows = vault.catalog.mirror_rows(keys.id, None).await?;
        for m in &o.mirrors {
            for t in &types {
                let r = rows.iter().find(|(n, r)| n == m.name.get_ref() && r.type_id == t.id.0).map(|(_, r)| r);
                let latest = vault.snapshot_at(t.id, At::Latest).await?.map(|s| s.cycle.0);
                let error = r.and_then(|r| r.error.as_deref()).map(|e| match keys.keys.seal.open(ERROR_AAD, e) {
                    Ok(p) => String::from_utf8_lossy(&p).into_owned(),
                    Err(_) => "(an error that does not open with the org's key)".into(),
                });
                out.push(StatusRow {
                    org: o.sid.get_ref().clone(),
                    target: m.name.get_ref().clone(),
                    kind: m.kind.get_ref().clone(),
                    root: root_of(m),
                    link: link_of(m),
                    source: t.source.clone(),
                    data_type: t.name.clone(),
                    cycle: r.and_then(|r| r.cycle),
                    latest,
                    mirrored_at: r.and_then(|r| r.mirrored_at.clone()),
                    attempted_at: r.map(|r| r.attempted_at.clone()),
                    requests: r.map(|r| r.requests).unwrap_or(0),
                    cells: r.map(|r| r.cells).unwrap_or(0),
                    error,
                });
            }
        }
    }
    Ok(out)
}
