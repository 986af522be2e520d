//! The Archives views, for the page and the API alike: the list, the quote shown before an
//! order, the order, a detail, rename, download and delete. Each calls `crate::archive`, as
//! the CLI does; an archive id of another org answers 404 like one that does not exist.

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::auth::{self, Proof, Who};
use super::views::{self, When, tz, when};
use super::{Archives, WebError};
use crate::archive::{self, ArchiveInfo, Request, quote::Quote};
use crate::config::Config;
use crate::http::HttpState;
use crate::util::human_bytes;
use crate::vault::Vault;
use crate::vault::catalog::Lease;

/// An archive as the list and the detail show it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ArchiveView {
    #[serde(flatten)]
    pub archive: ArchiveInfo,
    pub date_created: When,
    /// Where the dashboard downloads part 1 (ready archives); the API's is under /api/v1.
    pub file_path: Option<String>,
    /// The name part 1 downloads as.
    pub file_name: Option<String>,
    pub file_size_text: String,
    pub price_text: String,
}

fn view(state: &HttpState, org: &str, a: ArchiveInfo) -> ArchiveView {
    let date_created = match chrono::DateTime::parse_from_rfc3339(&a.created_at) {
        Ok(t) => when(t.to_utc(), tz(state, org)),
        Err(_) => When { utc: a.created_at.clone(), local: a.created_at.clone(), day: a.created_at.clone() },
    };
    let ready = a.status == "ready";
    ArchiveView {
        date_created,
        file_path: ready.then(|| format!("/orgs/{org}/archives/{}/download?part=1", a.id)),
        file_name: a.parts.first().map(|p| p.file_name.clone()),
        file_size_text: if a.file_size > 0 { human_bytes(a.file_size as u64) } else { "-".into() },
        price_text: format!("{:.2} {}", a.price, a.currency),
        archive: a,
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ArchivesPage {
    pub archives: Vec<ArchiveView>,
    pub next_cursor: Option<String>,
}

/// The org's archives, newest first, `limit` a page, after the page `cursor` ended.
pub async fn list(state: &HttpState, org: &str, cursor: Option<&str>, limit: usize) -> Result<ArchivesPage, WebError> {
    let before = views::id_cursor(cursor)?;
    let all = archive::list(&state.vault, &state.config, org).await?;
    let mut archives: Vec<ArchiveView> = all
        .into_iter()
        .rev()
        .filter(|a| before.is_none_or(|b| a.id < b))
        .take(limit + 1)
        .map(|a| view(state, org, a))
        .collect();
    let next_cursor = views::page_end(&mut archives, limit, |a| a.archive.id.to_string());
    Ok(ArchivesPage { archives, next_cursor })
}

/// Archive `id` of `org`, or 404.
pub async fn show(state: &HttpState, org: &str, id: i64) -> Result<ArchiveView, WebError> {
    let a = archive::find(&state.vault, &state.config, org, id).await?.ok_or(WebError::NotFound)?;
    Ok(view(state, org, a))
}

/// What an order is made of (the page's form and the API's body).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// YYYY-MM-DD in the org's timezone; none or empty: the latest snapshots.
    #[serde(default)]
    pub day: Option<String>,
    #[serde(default)]
    pub history: bool,
    /// Who is emailed when it is ready (a signed-in person by default).
    #[serde(default)]
    pub email: Option<String>,
    /// The price the person saw: refused if the archive now costs more.
    #[serde(default)]
    pub accept_price: Option<f64>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct QuoteView {
    #[serde(flatten)]
    pub quote: Quote,
    /// The day asked for, none for the latest snapshots.
    pub day: Option<String>,
    pub price_text: String,
    pub storage_text: String,
    pub size_text: String,
    pub content_text: String,
}

fn day_of(d: Option<&str>) -> Option<String> {
    d.map(str::trim).filter(|d| !d.is_empty()).map(str::to_string)
}

/// The price of an archive of `day` (with or without history), before anything is built.
pub async fn quote(state: &HttpState, org: &str, day: Option<&str>, history: bool) -> Result<QuoteView, WebError> {
    let cfg = &state.config;
    let day = day_of(day);
    let at = archive::at_of(cfg, org, day.as_deref()).map_err(|e| WebError::BadRequest(format!("day: {e:#}")))?;
    let q = archive::quote::quote(&state.vault, &cfg.archive, &cfg.pricing, org, at, history).await?;
    Ok(QuoteView {
        price_text: format!("{:.2} {}", q.price, q.currency),
        storage_text: format!("{:.2} {} per month", q.storage_per_month, q.currency),
        size_text: human_bytes(q.estimated_zip_bytes),
        content_text: human_bytes(q.content_bytes),
        day,
        quote: q,
    })
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Ordered {
    pub archive: ArchiveView,
    /// The daemon's job that builds it, when one was queued.
    pub job: Option<i64>,
}

/// Records the archive `in_progress` and has it built away from the request.
pub async fn order(state: &HttpState, who: &Who, org: &str, o: &Order) -> Result<Ordered, WebError> {
    let builder = state.web.archives.clone().ok_or_else(|| {
        WebError::Refused("this server does not build archives: `daybook daemon` or `daybook serve` does".into())
    })?;
    let name = o.name.trim();
    if name.is_empty() {
        return Err(WebError::BadRequest("an archive needs a name".into()));
    }
    let email = match o.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(e.to_string()),
        None => who.user_id.map(|_| who.actor.clone()),
    };
    if let Some(e) = &email
        && e.parse::<lettre::message::Mailbox>().is_err()
    {
        return Err(WebError::BadRequest(format!("{e:?} is not an email address")));
    }
    let q = quote(state, org, o.day.as_deref(), o.history).await?;
    if let Some(seen) = o.accept_price
        && q.quote.price > seen + 0.005
    {
        return Err(WebError::Refused(format!(
            "the price is now {} (the backups changed since it was shown as {seen:.2}): look at it again and confirm",
            q.price_text
        )));
    }
    let cfg = &state.config;
    let at = archive::at_of(cfg, org, q.day.as_deref()).map_err(|e| WebError::BadRequest(format!("day: {e:#}")))?;
    let req = Request {
        org: org.to_string(),
        name: name.to_string(),
        description: o.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_string),
        at,
        at_text: q.day.clone(),
        history: o.history,
        windows_safe: cfg.archive.windows_safe_names,
        email,
    };
    let (id, lease) = archive::start(&state.vault, cfg, &req).await?;
    let job = builder.build(org, id, q.day.clone(), lease).await?;
    let detail = format!(
        "archive {id} {name:?}: {}{}, quoted {}{}",
        q.day.as_deref().unwrap_or("latest snapshots"),
        if o.history { ", with history" } else { "" },
        q.price_text,
        job.map(|j| format!(", job {j}")).unwrap_or_default()
    );
    super::audit(state, Some(org), &who.actor, "archive-create", &detail).await;
    Ok(Ordered { archive: show(state, org, id).await?, job })
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    #[serde(default)]
    pub name: String,
    /// Empty clears it; none keeps it.
    #[serde(default)]
    pub description: Option<String>,
}

pub async fn rename(state: &HttpState, who: &Who, org: &str, id: i64, r: &Rename) -> Result<ArchiveView, WebError> {
    show(state, org, id).await?;
    let name = r.name.trim();
    if name.is_empty() {
        return Err(WebError::BadRequest("an archive needs a name".into()));
    }
    archive::rename(&state.vault, id, name, r.description.as_deref().map(str::trim)).await?;
    super::audit(state, Some(org), &who.actor, "archive-rename", &format!("archive {id} is now {name:?}")).await;
    show(state, org, id).await
}

/// A fresh signed link to part `part` of a ready archive (audited as a download).
pub async fn download(state: &HttpState, who: &Who, org: &str, id: i64, part: i64) -> Result<String, WebError> {
    let a = show(state, org, id).await?;
    if a.archive.status != "ready" {
        return Err(WebError::Refused(format!("archive {id} is {}: only a ready archive downloads", a.archive.status)));
    }
    let n = a.archive.parts.len() as i64;
    if !(1..=n).contains(&part) {
        return Err(WebError::BadRequest(format!("archive {id} has parts 1 to {n}")));
    }
    let links = archive::link(&state.vault, &state.config, id, state.config.archive.link_days as i64 * 86_400).await?;
    let url = links.into_iter().nth((part - 1) as usize).ok_or(WebError::NotFound)?;
    super::audit(state, Some(org), &who.actor, "archive-download", &format!("archive {id}, part {part} of {n}")).await;
    Ok(url)
}

/// Deletes an archive after identity verification (as a restore asks).
pub async fn delete(state: &HttpState, who: &Who, org: &str, id: i64, proof: &Proof) -> Result<(), WebError> {
    let a = show(state, org, id).await?;
    auth::verify_identity(state, who, proof, "delete an archive").await?;
    if a.archive.status == "in_progress" {
        return Err(WebError::Refused(format!("archive {id} is being built: delete it once it is ready or failed")));
    }
    let removed = archive::delete(&state.vault, id).await?;
    let detail = format!("archive {id} {:?} ({} objects removed)", a.archive.name, removed);
    super::audit(state, Some(org), &who.actor, "archive-delete", &detail).await;
    Ok(())
}

/// Builds in this process (`daybook serve`, tests): a task that holds the creator's lease.
pub struct InProcess {
    pub vault: Arc<Vault>,
    pub config: Arc<Config>,
}

#[async_trait::async_trait]
impl Archives for InProcess {
    async fn build(&self, org: &str, id: i64, at: Option<String>, lease: Lease) -> Result<Option<i64>> {
        let at = archive::at_of(&self.config, org, at.as_deref())?;
        let (vault, cfg) = (self.vault.clone(), self.config.clone());
        tokio::spawn(async move {
            match archive::run_build(&vault, &cfg, id, at, lease, indicatif::ProgressBar::hidden()).await {
                Ok(o) => tracing::info!("archive {id}: {}", o.archive.status),
                Err(e) => tracing::error!("archive {id}: the build could not be recorded: {e:#}"),
            }
        });
        Ok(None)
    }
}
