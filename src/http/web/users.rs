//! Users and API tokens: what `daybook user ...` and `daybook token create` do, and the
//! second factor's enrollment the account page does.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use zeroize::Zeroizing;

use super::auth::{self, Role};
use crate::config::Config;
use crate::vault::Vault;

#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub email: String,
    pub role: String,
    /// None for an operator.
    pub org: Option<String>,
    pub second_factor: bool,
    pub created_at: String,
}

fn check_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        bail!("{email:?} is not an email address (name@example.com)");
    }
    Ok(e)
}

/// The org's id in the vault, adding the org (its keys) if it is configured but has had no
/// backup yet.
async fn org_id(vault: &Vault, cfg: &Config, sid: &str) -> Result<i64> {
    let o = cfg.orgs.iter().find(|o| o.sid.get_ref() == sid).ok_or_else(|| {
        anyhow!(
            "no org {sid:?} in the config (known: {})",
            cfg.orgs.iter().map(|o| o.sid.get_ref().as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(vault.org(sid, &o.name).await?.id)
}

pub async fn add(
    vault: &Vault,
    cfg: &Config,
    org: Option<&str>,
    email: &str,
    role: &str,
    password: &str,
) -> Result<()> {
    let email = check_email(email)?;
    let role = Role::parse(role)?;
    let org_id = match (role, org) {
        (Role::Operator, None) => None,
        (Role::Operator, Some(_)) => bail!("an operator sees every org: leave out --org"),
        (_, Some(sid)) => Some(org_id(vault, cfg, sid).await?),
        (_, None) => bail!("an admin belongs to one org: pass --org SID"),
    };
    let hash = auth::hash_password(password).await?;
    let name = if role == Role::Operator { "operator" } else { "admin" };
    if !vault.catalog.add_user(org_id, &email, name, &hash).await? {
        bail!("a user {email} exists already (remove it first, or reset its password)");
    }
    Ok(())
}

pub async fn list(vault: &Vault, org: Option<&str>) -> Result<Vec<UserInfo>> {
    let org_id = match org {
        Some(sid) => match vault.existing_org(sid).await? {
            Some(o) => Some(o.id),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let mut out = Vec::new();
    for u in vault.catalog.users(org_id).await? {
        let org = match u.org_id {
            Some(id) => Some(vault.catalog.org_sid(id).await?),
            None => None,
        };
        out.push(UserInfo {
            email: u.email,
            role: u.role,
            org,
            second_factor: u.totp.is_some(),
            created_at: u.created_at,
        });
    }
    Ok(out)
}

async fn user(vault: &Vault, email: &str) -> Result<crate::vault::catalog::UserRow> {
    let e = email.trim().to_lowercase();
    vault.catalog.user_by_email(&e).await?.ok_or_else(|| anyhow!("no user {e} (see `daybook user list`)"))
}

pub async fn remove(vault: &Vault, email: &str) -> Result<()> {
    let u = user(vault, email).await?;
    vault.catalog.remove_user(u.id).await?;
    Ok(())
}

/// A new password; the user's sessions end, and with `clear_second_factor` the second factor
/// goes too (a lost phone).
pub async fn reset_password(vault: &Vault, email: &str, password: &str, clear_second_factor: bool) -> Result<()> {
    let u = user(vault, email).await?;
    let hash = auth::hash_password(password).await?;
    vault.catalog.set_password(u.id, &hash).await?;
    if clear_second_factor {
        vault.catalog.set_totp(u.id, None, None).await?;
    }
    Ok(())
}

/// A new API token for an org: returned once, stored as its hash only.
pub async fn create_token(vault: &Vault, cfg: &Config, org: &str, name: &str) -> Result<Zeroizing<String>> {
    let org_id = org_id(vault, cfg, org).await?;
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        bail!("a token's name is 1-64 printable characters (it names the script in the audit log)");
    }
    let token = Zeroizing::new(format!("dbk_{}", auth::random_token().as_str()));
    vault.catalog.add_token(org_id, &auth::sha256_hex(&token), name).await?;
    vault.add_audit(Some(org), "operator (CLI)", "token-create", &format!("token {name}")).await?;
    Ok(token)
}

/// A second factor being enrolled: the secret (kept sealed as pending until confirmed with a
/// code), as an otpauth:// URL and its QR code (SVG).
pub struct Enrollment {
    pub secret_base32: String,
    pub url: String,
    pub qr_svg: String,
}

pub async fn start_totp(vault: &Vault, user_id: i64) -> Result<Enrollment> {
    let u = vault.catalog.user_by_id(user_id).await?.ok_or_else(|| anyhow!("the user is gone"))?;
    let secret = match &u.totp_pending {
        Some(p) => vault.open_user_secret(u.id, p)?,
        None => {
            let s = Zeroizing::new(crate::vault::crypto::random_bytes::<20>().to_vec());
            vault.catalog.set_totp(u.id, u.totp.as_deref(), Some(&vault.seal_user_secret(u.id, &s))).await?;
            s
        }
    };
    let t = auth::totp(&secret, &u.email)?;
    let url = t.to_url().map_err(|e| anyhow!("cannot make the otpauth URL: {e}"))?;
    let qr_svg = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| anyhow!("cannot draw the QR code: {e}"))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrollment { secret_base32: t.secret().to_base32(), url, qr_svg })
}

/// Confirms the pending second factor with a code from the app; false if the code is wrong
/// (or was used already: its time step then counts as used, as a restore's code does).
pub async fn confirm_totp(vault: &Vault, user_id: i64, code: &str) -> Result<bool> {
    let u = vault.catalog.user_by_id(user_id).await?.ok_or_else(|| anyhow!("the user is gone"))?;
    let Some(p) = &u.totp_pending else { bail!("no second factor is being enrolled: open the account page first") };
    let secret = vault.open_user_secret(u.id, p)?;
    let Some(step) = auth::totp(&secret, &u.email)?.check_current(code.trim()) else { return Ok(false) };
    if !vault.catalog.use_totp_step(u.id, step as i64).await? {
        return Ok(false);
    }
    vault.catalog.set_totp(u.id, Some(p), None).await?;
    Ok(true)
}
