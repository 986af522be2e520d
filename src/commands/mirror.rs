//! `daybook mirror`, `mirror status` and `mirror login`.

use anyhow::{Result, bail};
use std::path::Path;

use crate::config::Config;
use crate::mirror::{self, Options, Report, StatusRow};
use crate::util::print_table;
use crate::vault::Vault;

pub async fn run(config: &Path, opts: &Options, json: bool) -> Result<bool> {
    let (cfg, vault) = super::open(config).await?;
    let report = run_with(&vault, &cfg, opts, None).await?;
    if json {
        super::print_json(&report)?
    } else {
        print(&report)
    }
    Ok(report.failed() == 0)
}

/// Mirrors, and puts each failure in the org's backup log (of `cycle`, or of the latest
/// cycle the failed data type has).
pub async fn run_with(vault: &Vault, cfg: &Config, opts: &Options, cycle: Option<i64>) -> Result<Report> {
    let report = mirror::run(vault, cfg, opts).await?;
    for t in &report.targets {
        let Some(org) = vault.existing_org(&t.org).await? else { continue };
        let failures = t
            .types
            .iter()
            .filter_map(|x| x.error.as_ref().map(|e| (x.source.as_str(), x.data_type.as_str(), e.as_str())))
            .chain(t.error.as_deref().map(|e| ("*", "*", e)));
        for (source, ty, err) in failures {
            let c = match cycle {
                Some(c) => c,
                None => vault.snapshots(None).await?.iter().map(|s| s.cycle.0).max().unwrap_or(0),
            };
            let type_id = vault
                .types(Some(&t.org))
                .await?
                .into_iter()
                .find(|x| x.source == source && x.name == ty)
                .map(|x| x.id.0);
            let msg = format!("mirror {} ({}): {ty}: {err}", t.target, t.kind);
            vault.log(&org, c, "error", source, type_id, &format!("mirror {} failed", t.target), &msg).await?;
        }
    }
    Ok(report)
}

pub fn print(r: &Report) {
    for t in &r.targets {
        println!("mirror {} ({}) of org {}: {}", t.target, t.kind, t.org, t.root);
        let rows: Vec<Vec<String>> = t
            .types
            .iter()
            .map(|x| {
                vec![
                    x.place.clone(),
                    x.status.to_string(),
                    x.cycle.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    x.rows_written.to_string(),
                    x.rows_deleted.to_string(),
                    x.write_requests.to_string(),
                    x.cells.to_string(),
                ]
            })
            .collect();
        print_table(&["place", "status", "cycle", "rows written", "rows deleted", "writes", "cells"], &rows);
        println!("{} requests ({} writes), {} cells, {:.1} s", t.requests, t.write_requests, t.cells, t.seconds);
        if let Some(e) = &t.error {
            eprintln!("error: mirror {} of org {}: {e}", t.target, t.org);
        }
        for x in t.types.iter().filter(|x| x.error.is_some()) {
            eprintln!(
                "error: mirror {}: {}: {} (the vault is untouched; the next mirror tries again)",
                t.target,
                x.place,
                x.error.as_deref().unwrap_or_default()
            );
        }
    }
}

pub async fn status(config: &Path, org: Option<&str>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let rows = mirror::status(&vault, &cfg, org).await?;
    if json {
        return super::print_json(&rows);
    }
    print_status(&rows);
    Ok(())
}

fn print_status(rows: &[StatusRow]) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let opt = |c: Option<i64>| c.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
            vec![
                r.org.clone(),
                r.target.clone(),
                format!("{}/{}", r.source, r.data_type),
                opt(r.cycle),
                opt(r.latest),
                r.mirrored_at.clone().unwrap_or_else(|| "never".into()),
                r.requests.to_string(),
                r.cells.to_string(),
                if r.error.is_some() { "FAILED".into() } else { "ok".into() },
            ]
        })
        .collect();
    print_table(&["org", "target", "data type", "mirrored", "latest", "when", "requests", "cells", "status"], &table);
    for r in rows.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "error: {}/{}: {}/{}: {}",
            r.org,
            r.target,
            r.source,
            r.data_type,
            r.error.as_deref().unwrap_or_default()
        );
    }
}

/// The installed-app flow for a `google` target with an OAuth client: opens a local redirect,
/// prints the address to open, and keeps the token in the target's token cache.
pub async fn login(config: &Path, org: Option<&str>, target: Option<&str>) -> Result<()> {
    let cfg = super::load_config(config)?;
    let found: Vec<_> = cfg
        .orgs
        .iter()
        .filter(|o| org.is_none_or(|s| o.sid.get_ref() == s))
        .flat_map(|o| o.mirrors.iter().map(move |m| (o, m)))
        .filter(|(_, m)| m.kind.get_ref() == "google" && target.is_none_or(|t| m.name.get_ref() == t))
        .collect();
    let [(o, m)] = found.as_slice() else {
        if found.is_empty() {
            bail!(
                "no mirror of kind \"google\" in the config{}",
                target.map(|t| format!(" named {t:?}")).unwrap_or_default()
            );
        }
        bail!("several google mirrors: name one with --org and --target");
    };
    let path = mirror::google::login(m).await?;
    println!(
        "signed in for mirror {} of org {}; token kept in {} (readable by this user only)",
        m.name.get_ref(),
        o.sid.get_ref(),
        path.display()
    );
    Ok(())
}
