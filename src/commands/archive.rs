//! `daybook archive quote|create|list|show|rename|link|revoke|download|delete`.

use anyhow::{Result, bail};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::archive::{self, ArchiveInfo, Request, quote::Quote};
use crate::util::{human_bytes, print_table};
use crate::vault::Vault;

/// The vault, with builds whose builder died marked failed first.
async fn open(config: &Path) -> Result<(crate::config::Config, Vault)> {
    let (cfg, vault) = super::open(config).await?;
    archive::recover_interrupted(&vault).await?;
    Ok((cfg, vault))
}

fn print_quote(q: &Quote) {
    println!(
        "archive of {}{}: {} versions and {} files of {} data types, {} of content (zip about {}, {} part{})",
        q.org,
        if q.history { " with history" } else { "" },
        q.versions,
        q.files,
        q.data_types,
        human_bytes(q.content_bytes),
        human_bytes(q.estimated_zip_bytes),
        q.parts,
        if q.parts == 1 { "" } else { "s" }
    );
    println!(
        "price: {:.2} {} to build, then about {:.2} {} per month kept",
        q.price, q.currency, q.storage_per_month, q.currency
    );
}

pub async fn quote(config: &Path, org: &str, at: Option<&str>, history: bool, json: bool) -> Result<()> {
    let (cfg, vault) = open(config).await?;
    let q =
        archive::quote::quote(&vault, &cfg.archive, &cfg.pricing, org, archive::at_of(&cfg, org, at)?, history).await?;
    if json {
        super::print_json(&q)
    } else {
        print_quote(&q);
        Ok(())
    }
}

pub struct CreateArgs<'a> {
    pub org: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub at: Option<&'a str>,
    pub history: bool,
    pub windows_safe: bool,
    pub email: Option<&'a str>,
    pub yes: bool,
    pub json: bool,
}

pub async fn create(config: &Path, a: &CreateArgs<'_>) -> Result<bool> {
    // Before the quote reads the data types' states: what it frees must go back too.
    crate::util::give_back_large_blocks();
    let (cfg, vault) = open(config).await?;
    let at = archive::at_of(&cfg, a.org, a.at)?;
    let req = Request {
        org: a.org.to_string(),
        name: a.name.to_string(),
        description: a.description.map(str::to_string),
        at,
        at_text: a.at.map(str::to_string),
        history: a.history,
        windows_safe: a.windows_safe || cfg.archive.windows_safe_names,
        email: a.email.map(str::to_string),
    };
    let q = archive::quote::quote(&vault, &cfg.archive, &cfg.pricing, a.org, at, a.history).await?;
    if !a.json {
        print_quote(&q);
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("confirm the price with --yes (no terminal to ask on)");
        }
        eprint!("build it? [y/N] ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            eprintln!("not built");
            return Ok(false);
        }
    }
    let progress = if std::io::stderr().is_terminal() && !a.json {
        let p = indicatif::ProgressBar::new(q.versions + q.files);
        p.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries, {elapsed} ({eta} left)")
                .expect("a valid template"),
        );
        p
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (id, lease) = archive::start(&vault, &cfg, &req).await?;
    let out = archive::run_build(&vault, &cfg, id, at, lease, progress.clone()).await?;
    progress.finish_and_clear();
    let ok = out.archive.status == "ready";
    if a.json {
        super::print_json(&out)?;
    } else if ok {
        let x = &out.archive;
        println!(
            "archive {} is ready: {} versions, {} files, {} in {} part(s); charged {:.2} {}",
            x.id,
            x.versions,
            x.files,
            human_bytes(x.file_size as u64),
            x.parts.len(),
            x.price,
            x.currency
        );
        for l in &out.links {
            println!("{l}");
        }
    }
    if out.emailed {
        eprintln!("emailed {}", out.archive.requested_by.as_deref().unwrap_or_default());
    } else if let Some(e) = &out.email_error {
        eprintln!("note: {e}");
    }
    if !ok {
        eprintln!("error: archive {} failed: {}", out.archive.id, out.archive.error.as_deref().unwrap_or("unknown"));
    }
    Ok(ok)
}

fn rows(list: &[ArchiveInfo]) -> Vec<Vec<String>> {
    list.iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.name.clone(),
                a.description.clone().unwrap_or_default(),
                a.status.clone(),
                a.versions.to_string(),
                a.files.to_string(),
                if a.file_size > 0 { human_bytes(a.file_size as u64) } else { "-".into() },
                a.link.clone().unwrap_or_else(|| "-".into()),
                a.created_at.clone(),
                format!("{:.2} {}", a.price, a.currency),
            ]
        })
        .collect()
}

const HEADER: &[&str] =
    &["ID", "Name", "Description", "Status", "Versions", "Files", "File Size", "File Path", "Date Created", "Price"];

pub async fn list(config: &Path, org: &str, json: bool) -> Result<()> {
    let (cfg, vault) = open(config).await?;
    let list = archive::list(&vault, &cfg, org).await?;
    if json {
        return super::print_json(&list);
    }
    print_table(HEADER, &rows(&list));
    Ok(())
}

pub async fn show(config: &Path, id: i64, json: bool) -> Result<()> {
    let (cfg, vault) = open(config).await?;
    let a = archive::show(&vault, &cfg, id).await?;
    if json {
        return super::print_json(&a);
    }
    print_table(HEADER, &rows(std::slice::from_ref(&a)));
    println!(
        "org {}, {}{}, content {}",
        a.org,
        a.at.as_deref().map_or("latest snapshots".to_string(), |t| format!("at {t}")),
        if a.history { ", with history" } else { "" },
        human_bytes(a.content_bytes as u64)
    );
    for p in &a.parts {
        println!("part {}: {} ({}), sha256 {}", p.part, p.file_name, human_bytes(p.size as u64), p.sha256);
    }
    if let Some(e) = &a.error {
        println!("failed: {e}");
    }
    Ok(())
}

pub async fn rename(config: &Path, id: i64, name: &str, description: Option<&str>) -> Result<()> {
    let (_, vault) = open(config).await?;
    archive::rename(&vault, id, name, description).await?;
    println!("archive {id} is now {name:?}");
    Ok(())
}

pub async fn link(config: &Path, id: i64, expires: Option<&str>) -> Result<()> {
    let (cfg, vault) = open(config).await?;
    let secs = match expires {
        Some(e) => archive::parse_duration(e)?,
        None => cfg.archive.link_days as i64 * 86_400,
    };
    for l in archive::link(&vault, &cfg, id, secs).await? {
        println!("{l}");
    }
    Ok(())
}

pub async fn revoke(config: &Path, id: i64) -> Result<()> {
    let (_, vault) = open(config).await?;
    archive::revoke(&vault, id).await?;
    println!("every link to archive {id} is revoked (`daybook archive link {id}` makes a new one)");
    Ok(())
}

pub async fn download(config: &Path, id: i64, to: &Path) -> Result<()> {
    let (cfg, vault) = open(config).await?;
    for p in archive::download(&vault, &cfg, id, to).await? {
        println!("{}", p.display());
    }
    Ok(())
}

pub async fn delete(config: &Path, id: i64) -> Result<()> {
    let (_, vault) = open(config).await?;
    archive::delete(&vault, id).await?;
    println!("archive {id} is deleted: its links stop working and its storage is no longer charged");
    Ok(())
}
