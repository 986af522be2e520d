//! `daybook user add|list|remove|reset-password`: the dashboard's users. A password is read
//! from DAYBOOK_USER_PASSWORD or asked on the terminal, never taken as an argument (it would
//! stay in the shell's history and the process list).

use anyhow::{Result, bail};
use std::path::Path;

use crate::http::web::users;

fn password() -> Result<zeroize::Zeroizing<String>> {
    if let Ok(p) = std::env::var("DAYBOOK_USER_PASSWORD") {
        return Ok(zeroize::Zeroizing::new(p));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let a = zeroize::Zeroizing::new(rpassword::prompt_password("the user's password: ")?);
        let b = zeroize::Zeroizing::new(rpassword::prompt_password("again: ")?);
        if a != b {
            bail!("the two passwords differ; nothing was changed");
        }
        return Ok(a);
    }
    bail!("no password: set DAYBOOK_USER_PASSWORD (or run on a terminal to be asked)")
}

pub async fn add(config: &Path, org: Option<&str>, email: &str, role: &str) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let p = password()?;
    users::add(&vault, &cfg, org, email, role, &p).await?;
    println!("added {role} {}{}", email.trim().to_lowercase(), org.map(|o| format!(" of org {o}")).unwrap_or_default());
    Ok(())
}

pub async fn list(config: &Path, org: Option<&str>, json: bool) -> Result<()> {
    let (_, vault) = super::open(config).await?;
    let all = users::list(&vault, org).await?;
    if json {
        return super::print_json(&all);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|u| {
            vec![
                u.email.clone(),
                u.role.clone(),
                u.org.clone().unwrap_or_else(|| "(every org)".into()),
                if u.second_factor { "TOTP".into() } else { "password".into() },
                u.created_at.clone(),
            ]
        })
        .collect();
    crate::util::print_table(&["email", "role", "org", "verifies with", "created"], &rows);
    Ok(())
}

pub async fn remove(config: &Path, email: &str) -> Result<()> {
    let (_, vault) = super::open(config).await?;
    users::remove(&vault, email).await?;
    println!("removed {} and ended their sessions", email.trim().to_lowercase());
    Ok(())
}

pub async fn reset_password(config: &Path, email: &str, clear_second_factor: bool) -> Result<()> {
    let (_, vault) = super::open(config).await?;
    let p = password()?;
    users::reset_password(&vault, email, &p, clear_second_factor).await?;
    println!(
        "new password for {}; their sessions ended{}",
        email.trim().to_lowercase(),
        if clear_second_factor { "; their second factor was removed" } else { "" }
    );
    Ok(())
}

pub async fn create_token(config: &Path, org: &str, name: &str) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let token = users::create_token(&vault, &cfg, org, name).await?;
    eprintln!("API token {name:?} for org {org} (shown this once; daybook keeps only its hash):");
    println!("{}", token.as_str());
    Ok(())
}
