//! Archives: a priced, downloadable zip copy of an org's data (the layout is in DESIGN.md).
//! An archive is quoted from the catalog, recorded `in_progress`, built (build.rs) into
//! sealed chunks in the blob store, then `ready` and charged, or `failed` with its reason
//! and not charged; its requester is emailed a signed link (links.rs) that `daybook serve`
//! answers. The CLI runs the build in the foreground; the daemon runs the same `run_build`
//! as a job.

pub mod billing;
pub mod build;
pub mod config;
pub mod job;
pub mod links;
pub mod names;
pub mod quote;
pub mod zipout;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::vault::catalog::{ArchiveRow, Built, LinkRow, NewArchive, PartRow};
use crate::vault::objects::Objects;
use crate::vault::read::At;
use crate::vault::{Org, Vault};

/// What a person said about an archive (sealed with the org's key: it may name customers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Who asked for it (emailed when it is ready).
    #[serde(default)]
    email: Option<String>,
    /// The --at given, as given.
    #[serde(default)]
    at: Option<String>,
}

/// An archive as `list` and `show` present it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ArchiveInfo {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub versions: i64,
    pub files: i64,
    /// The versions' and files' bytes as extracted.
    pub content_bytes: i64,
    /// The zip's bytes (all parts).
    pub file_size: i64,
    pub parts: Vec<PartInfo>,
    /// The latest working link to part 1, if one was issued.
    pub link: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub at: Option<String>,
    pub at_cycle: Option<i64>,
    pub history: bool,
    pub windows_safe_names: bool,
    pub currency: String,
    /// The build's price (charged when ready), or the quote while it is not.
    pub price: f64,
    pub requested_by: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PartInfo {
    pub part: i64,
    pub size: i64,
    pub sha256: String,
    pub file_name: String,
}

/// What `create` is asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub org: String,
    pub name: String,
    pub description: Option<String>,
    pub at: At,
    pub at_text: Option<String>,
    pub history: bool,
    pub windows_safe: bool,
    pub email: Option<String>,
}

/// A build's outcome, for the person who asked.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub archive: ArchiveInfo,
    /// A fresh link per part (ready archives).
    pub links: Vec<String>,
    /// Whether the requester was emailed, and if not why.
    pub emailed: bool,
    pub email_error: Option<String>,
}

fn lease_name(nonce: &str) -> String {
    format!("archive-build:{nonce}")
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn org_name(cfg: &Config, sid: &str) -> String {
    cfg.orgs.iter().find(|o| o.sid.get_ref() == sid).map_or_else(|| sid.to_string(), |o| o.name.clone())
}

/// `<Type>_<Org name>_<timestamp>.zip` of a part (the part number only when there are
/// several).
fn part_file_name(cfg: &Config, org: &str, created_at: &str, part: i64, parts: i64) -> String {
    let ts = chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|t| t.to_utc().format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| "archive".into());
    names::download_name("Archive", &org_name(cfg, org), &ts, (parts > 1).then_some(part))
}

fn seal_meta(org: &Org, m: &Meta) -> Vec<u8> {
    let aad = format!("daybook archive meta v1 {}", org.sid);
    org.keys.seal.seal(aad.as_bytes(), &serde_json::to_vec(m).expect("a Meta serializes"))
}

fn open_meta(org: &Org, sealed: &[u8]) -> Result<Meta> {
    let plain = org
        .keys
        .seal
        .open(format!("daybook archive meta v1 {}", org.sid).as_bytes(), sealed)
        .map_err(|e| anyhow!("catalog: an archive's name does not open: {e}"))?;
    Ok(serde_json::from_slice(&plain)?)
}

fn seal_error(org: &Org, msg: &str) -> Vec<u8> {
    org.keys.seal.seal(format!("daybook archive error v1 {}", org.sid).as_bytes(), msg.as_bytes())
}

fn open_error(org: &Org, sealed: &[u8]) -> String {
    org.keys
        .seal
        .open(format!("daybook archive error v1 {}", org.sid).as_bytes(), sealed)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|_| "(the reason does not open)".into())
}

async fn row(vault: &Vault, id: i64) -> Result<(ArchiveRow, Arc<Org>)> {
    let r = vault
        .catalog
        .archive_row(id)
        .await?
        .ok_or_else(|| anyhow!("no archive {id} (see `daybook archive list --org SID`)"))?;
    let org = vault.org_by_id(r.org_id).await?;
    Ok((r, org))
}

async fn info(vault: &Vault, cfg: &Config, r: &ArchiveRow, org: &Org) -> Result<ArchiveInfo> {
    let meta = open_meta(org, &r.sealed)?;
    let parts = vault.catalog.archive_parts(r.id).await?;
    let n = parts.len() as i64;
    let key = vault.link_key().await?;
    let now = now_secs();
    let link = vault
        .catalog
        .archive_links(r.id)
        .await?
        .into_iter()
        .find(|l| l.part == 1 && l.generation == r.generation && l.expires_at > now)
        .map(|l| url(cfg, &key, r, l.part, l.expires_at));
    let charged: i64 = vault
        .catalog
        .archive_charges(r.org_id)
        .await?
        .iter()
        .filter(|c| c.archive_id == r.id && c.kind == "build")
        .map(|c| c.amount_micros)
        .sum();
    let price =
        if r.status == "in_progress" || r.status == "failed" && charged == 0 { r.quoted_micros } else { charged };
    Ok(ArchiveInfo {
        id: r.id,
        org: org.sid.clone(),
        name: meta.name,
        description: meta.description,
        status: r.status.clone(),
        versions: r.versions,
        files: r.files,
        content_bytes: r.content_bytes,
        file_size: r.stored_bytes,
        parts: parts
            .iter()
            .map(|p| PartInfo {
                part: p.part,
                size: p.size,
                sha256: p.sha256.clone(),
                file_name: part_file_name(cfg, &org.sid, &r.created_at, p.part, n),
            })
            .collect(),
        link,
        created_at: r.created_at.clone(),
        finished_at: r.finished_at.clone(),
        at: meta.at,
        at_cycle: r.at_cycle,
        history: r.history,
        windows_safe_names: r.windows_safe,
        currency: cfg.pricing.currency.clone(),
        price: price as f64 / 1e6,
        requested_by: meta.email,
        error: r.error.as_deref().map(|e| open_error(org, e)),
    })
}

fn url(cfg: &Config, key: &[u8; 32], r: &ArchiveRow, part: i64, expires: i64) -> String {
    let t = links::Token { archive_id: r.id, org_id: r.org_id, part, generation: r.generation, expires };
    format!("{}/downloads/{}", cfg.archive.public_url.trim_end_matches('/'), links::sign(key, &t))
}

/// Marks builds whose builder is gone (killed, crashed, a dead host) as failed, removes what
/// they had stored, and charges nothing. Every archive command and `serve` run it first. A
/// build queued for the daemon and not yet claimed has no builder yet: it is left alone.
pub async fn recover_interrupted(vault: &Vault) -> Result<u64> {
    let mut n = 0;
    let mut queued: Option<Vec<i64>> = None;
    for r in vault.catalog.archive_rows(None).await?.into_iter().filter(|r| r.status == "in_progress") {
        if !vault.catalog.live_leases(|l| l == r.lease).await?.is_empty() {
            continue;
        }
        if queued.is_none() {
            queued = Some(job::queued_builds(vault).await?);
        }
        if queued.as_ref().is_some_and(|q| q.contains(&r.id)) {
            continue;
        }
        let org = vault.org_by_id(r.org_id).await?;
        vault.objects().delete_objects(&org, &build::object_prefix(r.id)).await?;
        let why = "the build was interrupted (the process building it stopped); nothing was charged: create it again";
        if vault.catalog.archive_failed(r.id, &seal_error(&org, why)).await? {
            tracing::warn!("archive {} of org {}: {why}", r.id, org.sid);
            n += 1;
        }
    }
    Ok(n)
}

/// The snapshots an archive of `org` is made of: `at` as given (YYYY-MM-DD, an RFC 3339
/// time, cycle:N, in the org's timezone), or the latest.
pub fn at_of(cfg: &Config, org: &str, at: Option<&str>) -> Result<At> {
    if !cfg.orgs.iter().any(|o| o.sid.get_ref() == org) {
        bail!("no org {org:?} in the config");
    }
    Ok(match at {
        Some(a) => At::parse(a, crate::engine::query::org_tz(cfg, org))?,
        None => At::Latest,
    })
}

/// Records a new archive `in_progress` (after the caller showed the quote), holding its
/// build lease; `run_build` builds it.
pub async fn start(vault: &Vault, cfg: &Config, req: &Request) -> Result<(i64, crate::vault::catalog::Lease)> {
    if req.name.trim().is_empty() {
        bail!("an archive needs a name (--name)");
    }
    if let Some(e) = &req.email {
        e.parse::<lettre::message::Mailbox>().with_context(|| format!("--email {e:?} is not an email address"))?;
    }
    let org = vault
        .existing_org(&req.org)
        .await?
        .ok_or_else(|| anyhow!("no org {:?} in the vault (back it up first)", req.org))?;
    let q = quote::quote(vault, &cfg.archive, &cfg.pricing, &req.org, req.at, req.history).await?;
    let nonce = hex::encode(crate::vault::crypto::random_bytes::<8>().as_ref());
    let lease = vault.lease_unless_rewriting(&lease_name(&nonce), "this archive's build", &req.org).await?;
    let meta = Meta {
        name: req.name.clone(),
        description: req.description.clone(),
        email: req.email.clone(),
        at: req.at_text.clone(),
    };
    let id = vault
        .catalog
        .insert_archive(&NewArchive {
            org_id: org.id,
            history: req.history,
            windows_safe: req.windows_safe,
            quoted_micros: quote::price_micros(&cfg.pricing, q.versions, q.content_bytes),
            lease: &lease_name(&nonce),
            sealed: &seal_meta(&org, &meta),
        })
        .await?;
    Ok((id, lease))
}

/// Builds a started archive: `ready` and charged, or `failed` with its reason and its
/// objects removed; then emails the requester (or logs the link).
pub async fn run_build(
    vault: &Vault,
    cfg: &Config,
    id: i64,
    at: At,
    lease: crate::vault::catalog::Lease,
    progress: indicatif::ProgressBar,
) -> Result<Outcome> {
    let (r, org) = row(vault, id).await?;
    let meta = open_meta(&org, &r.sealed)?;
    let created = r.created_at.clone();
    let header = serde_json::json!({
        "schema": "daybook-archive-manifest/1",
        "archive": id,
        "org": org.sid,
        "org_name": org_name(cfg, &org.sid),
        "name": meta.name,
        "description": meta.description,
        "created_at": created,
        "at": meta.at,
        "history": r.history,
        "windows_safe_names": r.windows_safe,
    });
    let (cfg2, sid) = (Arc::new(cfg.clone()), org.sid.clone());
    let plan = build::Plan {
        archive_id: id,
        at,
        history: r.history,
        windows_safe: r.windows_safe,
        part_bytes: cfg.archive.part_bytes,
        temp_dir: cfg.archive.temp_dir.as_deref().map(|d| cfg.resolve(d)),
        header,
        part_name: Arc::new(move |p, n| part_file_name(&cfg2, &sid, &created, p, n)),
        progress,
    };
    let built = build::build(vault, &org, &plan).await;
    let result = match built {
        Ok(out) => {
            let mut stored = 0;
            for p in &out.parts {
                vault.catalog.add_archive_part(id, p).await?;
                stored += p.size;
            }
            let b = Built {
                at_cycle: out.at_cycle,
                versions: out.versions as i64,
                files: out.files as i64,
                content_bytes: out.content_bytes as i64,
                stored_bytes: stored,
                parts: out.parts.len() as i64,
                charge_micros: quote::price_micros(&cfg.pricing, out.versions, out.content_bytes),
            };
            vault.catalog.archive_ready(id, org.id, &b).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        let why = format!("{e:#}");
        vault.objects().delete_objects(&org, &build::object_prefix(id)).await?;
        vault.catalog.archive_failed(id, &seal_error(&org, &why)).await?;
        tracing::warn!("archive {id} of org {} failed: {why}", org.sid);
    }
    lease.release().await?;
    let links =
        if result.is_ok() { link(vault, cfg, id, cfg.archive.link_days as i64 * 86_400).await? } else { Vec::new() };
    let archive = show(vault, cfg, id).await?;
    let (emailed, email_error) = notify(cfg, &archive, &links).await;
    Ok(Outcome { archive, links, emailed, email_error })
}

/// Tells the requester: by email with `[email]`, else in the log.
async fn notify(cfg: &Config, a: &ArchiveInfo, links: &[String]) -> (bool, Option<String>) {
    let (subject, body) = if a.status == "ready" {
        let list: String = links.iter().map(|l| format!("  {l}\n")).collect();
        (
            format!("Your archive \"{}\" is ready", a.name),
            format!(
                "The archive \"{}\" of {} is ready: {} versions and {} files, {} in {} part(s).\n\nDownload (the link works for {} days):\n{list}\nPrice: {:.2} {}\n",
                a.name,
                a.org,
                a.versions,
                a.files,
                crate::util::human_bytes(a.file_size as u64),
                a.parts.len(),
                cfg.archive.link_days,
                a.price,
                a.currency
            ),
        )
    } else {
        (
            format!("Your archive \"{}\" failed", a.name),
            format!(
                "The archive \"{}\" of {} could not be built, and nothing was charged.\n\nReason: {}\n",
                a.name,
                a.org,
                a.error.as_deref().unwrap_or("unknown")
            ),
        )
    };
    let Some(to) = &a.requested_by else {
        tracing::info!("archive {}: {subject}; {}", a.id, links.join(" "));
        return (false, None);
    };
    match &cfg.email {
        Some(e) => match crate::email::send(e, to, &subject, &body).await {
            Ok(()) => (true, None),
            Err(err) => {
                tracing::warn!("archive {}: {err:#}", a.id);
                (false, Some(format!("{err:#}")))
            }
        },
        None => {
            tracing::info!(
                "archive {}: no [email] in the config, so {to} is not emailed: {subject}; {}",
                a.id,
                links.join(" ")
            );
            (false, Some("no [email] in the config: the link is printed instead".into()))
        }
    }
}

/// An org's archives (deleted ones are in `billing`), oldest first.
pub async fn list(vault: &Vault, cfg: &Config, org: &str) -> Result<Vec<ArchiveInfo>> {
    let Some(o) = vault.existing_org(org).await? else { bail!("no org {org:?} in the vault") };
    let mut out = Vec::new();
    for r in vault.catalog.archive_rows(Some(o.id)).await?.into_iter().filter(|r| r.status != "deleted") {
        out.push(info(vault, cfg, &r, &o).await?);
    }
    Ok(out)
}

pub async fn show(vault: &Vault, cfg: &Config, id: i64) -> Result<ArchiveInfo> {
    let (r, org) = row(vault, id).await?;
    info(vault, cfg, &r, &org).await
}

/// Archive `id` if it is `org`'s and not deleted; None otherwise (the web answers 404 alike
/// for another org's archive and one that does not exist).
pub async fn find(vault: &Vault, cfg: &Config, org: &str, id: i64) -> Result<Option<ArchiveInfo>> {
    let Some(r) = vault.catalog.archive_row(id).await?.filter(|r| r.status != "deleted") else { return Ok(None) };
    let o = vault.org_by_id(r.org_id).await?;
    if o.sid != org {
        return Ok(None);
    }
    Ok(Some(info(vault, cfg, &r, &o).await?))
}

/// The build lease of a started archive, taken by a builder other than its creator (a queued
/// job): the creator's has been released, or its holder is gone.
pub async fn take_build_lease(vault: &Vault, id: i64) -> Result<crate::vault::catalog::Lease> {
    let (r, org) = row(vault, id).await?;
    vault.lease_unless_rewriting(&r.lease, "this archive's build", &org.sid).await
}

/// Removes what an earlier, stopped run of this build had stored, before it runs again.
pub async fn clear_partial(vault: &Vault, id: i64) -> Result<u64> {
    let (_, org) = row(vault, id).await?;
    vault.objects().delete_objects(&org, &build::object_prefix(id)).await
}

pub async fn rename(vault: &Vault, id: i64, name: &str, description: Option<&str>) -> Result<()> {
    if name.trim().is_empty() {
        bail!("an archive needs a name (--name)");
    }
    let (r, org) = row(vault, id).await?;
    let mut meta = open_meta(&org, &r.sealed)?;
    meta.name = name.to_string();
    if let Some(d) = description {
        meta.description = (!d.is_empty()).then(|| d.to_string());
    }
    vault.catalog.set_archive_sealed(id, &seal_meta(&org, &meta)).await
}

fn ready(r: &ArchiveRow) -> Result<()> {
    match r.status.as_str() {
        "ready" => Ok(()),
        "in_progress" => bail!("archive {} is still being built", r.id),
        "failed" => bail!("archive {} failed to build (see `daybook archive show {}`); create it again", r.id, r.id),
        _ => bail!("archive {} was deleted", r.id),
    }
}

/// Fresh signed links, one per part, working for `secs`; nothing is rebuilt.
pub async fn link(vault: &Vault, cfg: &Config, id: i64, secs: i64) -> Result<Vec<String>> {
    if secs <= 0 {
        bail!("a link must work for some time (--expires 7d, 12h, 30m)");
    }
    let (r, _) = row(vault, id).await?;
    ready(&r)?;
    let key = vault.link_key().await?;
    let expires = now_secs() + secs;
    let mut out = Vec::new();
    for p in vault.catalog.archive_parts(id).await? {
        let l = LinkRow {
            part: p.part,
            generation: r.generation,
            created_at: crate::util::now_rfc3339(),
            expires_at: expires,
        };
        vault.catalog.add_archive_link(id, &l).await?;
        out.push(url(cfg, &key, &r, p.part, expires));
    }
    Ok(out)
}

/// Every link to the archive stops working.
pub async fn revoke(vault: &Vault, id: i64) -> Result<()> {
    row(vault, id).await?;
    vault.catalog.bump_archive_generation(id).await?;
    Ok(())
}

/// Deletes an archive: its links stop, its objects go, storage stops accruing.
pub async fn delete(vault: &Vault, id: i64) -> Result<u64> {
    let (r, org) = row(vault, id).await?;
    if r.status == "in_progress" {
        bail!("archive {id} is being built; delete it once it is ready or failed");
    }
    if r.status == "deleted" {
        bail!("archive {id} was already deleted");
    }
    vault.catalog.archive_deleted(id).await?;
    vault.objects().delete_objects(&org, &build::object_prefix(id)).await
}

/// "7d", "12h", "30m", "90s" in seconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || anyhow!("{s:?} is not a duration: use a number and d, h, m or s (7d, 12h)");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0 && *v <= 366 * 86_400)
        .ok_or_else(|| anyhow!("{s:?}: a link works from 1 second to 366 days"))
}

/// A part being downloaded: where its chunks are, its size and names.
pub struct Download {
    pub archive_id: i64,
    pub part: PartRow,
    pub etag: String,
    pub file_name: String,
    objects: Objects,
    org: Arc<Org>,
}

/// Why a link does not lead to a download (shown to whoever holds it: nothing about other
/// archives).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Token(#[from] links::TokenError),
    #[error("this download link was revoked")]
    Revoked,
    #[error("this archive no longer exists")]
    Gone,
}

impl Download {
    /// The SID of the org the archive is of.
    pub fn org_sid(&self) -> &str {
        &self.org.sid
    }

    /// The part behind a link, if the link is valid, current, and the archive ready.
    pub async fn for_token(vault: &Vault, cfg: &Config, token: &str) -> Result<Download, DownloadError> {
        let key = vault.link_key().await.map_err(DownloadError::Other)?;
        let t = links::verify(&key, token, now_secs()).map_err(LinkError::from)?;
        let r = vault.catalog.archive_row(t.archive_id).await.map_err(DownloadError::Other)?;
        let Some(r) = r.filter(|r| r.org_id == t.org_id && r.status == "ready") else {
            return Err(LinkError::Gone.into());
        };
        if r.generation != t.generation {
            return Err(LinkError::Revoked.into());
        }
        Download::part(vault, cfg, &r, t.part).await
    }

    async fn part(vault: &Vault, cfg: &Config, r: &ArchiveRow, part: i64) -> Result<Download, DownloadError> {
        let parts = vault.catalog.archive_parts(r.id).await.map_err(DownloadError::Other)?;
        let n = parts.len() as i64;
        let p = parts.into_iter().find(|p| p.part == part).ok_or(LinkError::Gone)?;
        let org = vault.org_by_id(r.org_id).await.map_err(DownloadError::Other)?;
        Ok(Download {
            archive_id: r.id,
            etag: format!("\"{}-{}-{}\"", r.id, p.part, &p.sha256[..16]),
            file_name: part_file_name(cfg, &org.sid, &r.created_at, p.part, n),
            part: p,
            objects: vault.objects(),
            org,
        })
    }

    pub fn size(&self) -> u64 {
        self.part.size as u64
    }

    /// Bytes `start..end` of the part, decrypting only the chunks they span, one at a time.
    pub fn range(&self, start: u64, end: u64) -> impl futures::Stream<Item = Result<bytes::Bytes>> + Send + 'static {
        let chunk = self.part.chunk_bytes as u64;
        let (objects, org, name) =
            (self.objects.clone(), self.org.clone(), build::object_name(self.archive_id, self.part.part));
        // Chunk indexes `first..past`: none for an empty range.
        let first = start / chunk;
        let past = if end > start { (end - 1) / chunk + 1 } else { first };
        futures::stream::StreamExt::then(futures::stream::iter(first..past), move |i| {
            let (objects, org, name) = (objects.clone(), org.clone(), name.clone());
            async move {
                let plain = objects.read_object_chunk(&org, &name, i).await?;
                let base = i * chunk;
                let from = start.saturating_sub(base) as usize;
                let to = ((end - base) as usize).min(plain.len());
                if from > to || (to as u64 + base) < end.min(base + chunk) {
                    bail!("{name}: chunk {i} is shorter than the catalog says");
                }
                Ok(bytes::Bytes::from(plain).slice(from..to))
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Writes a ready archive's parts to `to` (several parts: `<stem>.partN.zip` beside it),
/// each checked against its SHA-256 and put in place only when whole.
pub async fn download(vault: &Vault, cfg: &Config, id: i64, to: &Path) -> Result<Vec<PathBuf>> {
    use futures::StreamExt;
    use sha2::Digest;
    let (r, _) = row(vault, id).await?;
    ready(&r)?;
    let parts = vault.catalog.archive_parts(id).await?;
    let mut out = Vec::new();
    for p in &parts {
        let dest = if parts.len() == 1 {
            to.to_path_buf()
        } else {
            let stem = to.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "archive".into());
            to.with_file_name(format!("{stem}.part{}.zip", p.part))
        };
        let d = Download::part(vault, cfg, &r, p.part).await.map_err(|e| anyhow!("{e}"))?;
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write into {}", dir.display()))?;
        let mut f = tokio::fs::File::from_std(tmp.reopen()?);
        let mut hash = sha2::Sha256::new();
        let mut stream = Box::pin(d.range(0, d.size()));
        while let Some(b) = stream.next().await {
            let b = b?;
            hash.update(&b);
            f.write_all(&b).await.with_context(|| format!("writing {}", dest.display()))?;
        }
        f.sync_all().await?;
        if hex::encode(hash.finalize()) != p.sha256 {
            bail!("part {} of archive {id} does not match its SHA-256: the store is damaged", p.part);
        }
        tmp.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        out.push(dest);
    }
    Ok(out)
}
