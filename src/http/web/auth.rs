//! Who is asking, and what they may do: passwords (Argon2id), sessions in the catalog behind
//! an `HttpOnly`, `SameSite` (and behind TLS, `Secure`) cookie, CSRF tokens derived from the
//! session, the sign-in limiter (per account and per address, in the catalog, so every daemon
//! behind a proxy counts the same), per-org API tokens, and identity verification (TOTP or
//! the password again) before a restore.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use chrono::{Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::WebError;
use crate::http::HttpState;
use crate::vault::Org;
use crate::vault::catalog::UserRow;

pub const SESSION_COOKIE: &str = "daybook_session";
/// Before sign-in: the cookie the sign-in form's CSRF token is derived from.
pub const PRE_COOKIE: &str = "daybook_pre";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const MIN_PASSWORD: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees one org.
    Admin,
    /// Sees every org.
    Operator,
    /// A script with an org's API token.
    Token,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            _ => Err(anyhow!("unknown role {s:?} (known: admin, operator)")),
        }
    }
}

/// The one making a request.
#[derive(Debug, Clone)]
pub struct Who {
    /// The user (None for an API token).
    pub user_id: Option<i64>,
    /// For the audit log: an email, or "token NAME".
    pub actor: String,
    pub role: Role,
    /// The org they belong to (None: an operator, every org).
    pub org: Option<String>,
    /// The session's own token (from the cookie), which the CSRF token derives from.
    session: Option<Zeroizing<String>>,
    pub totp_enrolled: bool,
}

impl Who {
    pub fn may_see(&self, org: &str) -> bool {
        self.role == Role::Operator || self.org.as_deref() == Some(org)
    }

    /// The token every form and state-changing call of this session must carry.
    pub fn csrf(&self) -> String {
        self.session.as_ref().map(|s| derive(s, "csrf")).unwrap_or_default()
    }

    /// A state-changing request is the session's own: its CSRF token matches. A request with
    /// an API token carries no ambient credential, so needs none.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), WebError> {
        match &self.session {
            None => Ok(()),
            Some(s) => match given {
                Some(g) if constant_eq(g.as_bytes(), derive(s, "csrf").as_bytes()) => Ok(()),
                _ => Err(WebError::Csrf),
            },
        }
    }
}

fn derive(secret: &str, what: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(what.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A new random token (160 bits, base32).
pub fn random_token() -> Zeroizing<String> {
    Zeroizing::new(crate::util::base32(crate::vault::crypto::random_bytes::<20>().as_ref()).to_lowercase())
}

/// An Argon2id hash of a password (PHC string), off the async threads.
pub async fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD {
        anyhow::bail!("the password is too short: use at least {MIN_PASSWORD} characters");
    }
    let p = Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(p.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("cannot hash the password: {e}"))
    })
    .await?
}

/// Whether a password matches a stored hash (None: no user; the same work is done, so the
/// answer's time does not tell whether the account exists).
async fn password_matches(hash: Option<String>, password: &str) -> Result<bool> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let p = Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let h = match hash {
            Some(h) => h,
            None => DUMMY
                .get_or_init(|| {
                    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
                    argon2::Argon2::default().hash_password(b"no such user", &salt).expect("hashes").to_string()
                })
                .clone(),
        };
        let parsed = PasswordHash::new(&h).map_err(|e| anyhow!("a stored password hash is damaged: {e}"))?;
        Ok(known && argon2::Argon2::default().verify_password(p.as_bytes(), &parsed).is_ok())
    })
    .await?
}

pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: never readable by scripts, sent only with same-site requests (and
/// top-level navigation), only over HTTPS when behind TLS.
pub fn set_cookie(state: &HttpState, name: &str, value: &str, max_age_seconds: i64) -> String {
    let secure = if state.config.web.behind_tls { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}")
}

/// The CSRF token of the sign-in form, derived from the pre-sign-in cookie.
pub fn login_csrf(pre: &str) -> String {
    derive(pre, "login")
}

pub fn check_login_csrf(headers: &HeaderMap, given: &str) -> Result<(), WebError> {
    match cookie(headers, PRE_COOKIE) {
        Some(pre) if !pre.is_empty() && constant_eq(given.as_bytes(), login_csrf(pre).as_bytes()) => Ok(()),
        _ => Err(WebError::Csrf),
    }
}

/// The client's address: the peer's, or behind a trusted proxy the last X-Forwarded-For
/// entry, the one that proxy added: the entries before it are whatever the client sent, so
/// taking the first would let anyone sign in from a new address at every try.
pub fn client_addr(state: &HttpState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if state.config.web.trust_forwarded_for
        && let Some(f) = headers.get_all("x-forwarded-for").iter().next_back().and_then(|v| v.to_str().ok())
        && let Some(last) = f.rsplit(',').next().map(str::trim).filter(|s| !s.is_empty())
    {
        return last.chars().take(64).collect();
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

fn account_subject(email: &str) -> String {
    format!("account:{}", sha256_hex(&email.to_lowercase()))
}

fn address_subject(addr: &str) -> String {
    format!("address:{}", sha256_hex(addr))
}

/// Refuses while a subject has used up its failures in the window.
async fn check_limit(state: &HttpState, subject: &str, limit: u32) -> Result<(), WebError> {
    let window = Duration::minutes(state.config.web.limit_window_minutes as i64);
    let since = rfc3339(Utc::now() - window);
    let (n, oldest) = state.vault.catalog.login_failures(subject, &since).await?;
    if n >= limit as i64 {
        let free_at = oldest
            .and_then(|o| chrono::DateTime::parse_from_rfc3339(&o).ok())
            .map(|o| o.with_timezone(&Utc) + window)
            .unwrap_or_else(|| Utc::now() + window);
        let minutes = ((free_at - Utc::now()).num_seconds().max(1) as u64).div_ceil(60);
        return Err(WebError::Limited(minutes));
    }
    Ok(())
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Signs in: checks the limiter, then the password. Returns the new session's token (for
/// the cookie) and the user.
pub async fn sign_in(
    state: &HttpState,
    email: &str,
    password: &str,
    addr: &str,
) -> Result<(Zeroizing<String>, UserRow), WebError> {
    let email = email.trim().to_lowercase();
    let (acct, place) = (account_subject(&email), address_subject(addr));
    let w = &state.config.web;
    check_limit(state, &place, w.failures_per_address).await?;
    check_limit(state, &acct, w.failures_per_account).await?;
    let user = state.vault.catalog.user_by_email(&email).await?;
    if !password_matches(user.as_ref().map(|u| u.password_hash.clone()), password).await? {
        state.vault.catalog.add_login_failure(&[&acct, &place]).await?;
        if let Some(u) = &user {
            let org = org_sid(state, u).await?;
            super::audit(state, org.as_deref(), &u.email, "sign-in-failed", &format!("from {addr}")).await;
        }
        return Err(WebError::Forbidden("wrong email or password".into()));
    }
    let user = user.expect("a password matched");
    state.vault.catalog.clear_login_failures(&acct).await?;
    let token = random_token();
    let expires = rfc3339(Utc::now() + Duration::hours(w.session_hours as i64));
    state.vault.catalog.add_session(&sha256_hex(&token), user.id, &expires).await?;
    let now = rfc3339(Utc::now());
    let stale = rfc3339(Utc::now() - Duration::minutes(w.limit_window_minutes as i64));
    state.vault.catalog.prune_sessions(&now, &stale).await?;
    let org = org_sid(state, &user).await?;
    super::audit(state, org.as_deref(), &user.email, "sign-in", &format!("from {addr}")).await;
    Ok((token, user))
}

pub async fn sign_out(state: &HttpState, headers: &HeaderMap) -> Result<()> {
    if let Some(t) = cookie(headers, SESSION_COOKIE) {
        state.vault.catalog.end_session(&sha256_hex(t)).await?;
    }
    Ok(())
}

async fn org_sid(state: &HttpState, u: &UserRow) -> Result<Option<String>> {
    match u.org_id {
        Some(id) => Ok(Some(state.vault.catalog.org_sid(id).await?)),
        None => Ok(None),
    }
}

/// Who is asking: a bearer API token, or a live session cookie.
pub async fn who(state: &HttpState, headers: &HeaderMap) -> Result<Who, WebError> {
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
        let t = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")).ok_or(WebError::SignIn)?;
        let row = state.vault.catalog.use_token(&sha256_hex(t.trim())).await?.ok_or(WebError::SignIn)?;
        let org = state.vault.catalog.org_sid(row.org_id).await?;
        return Ok(Who {
            user_id: None,
            actor: format!("token {}", row.name),
            role: Role::Token,
            org: Some(org),
            session: None,
            totp_enrolled: false,
        });
    }
    let token = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()).ok_or(WebError::SignIn)?;
    let hash = sha256_hex(token);
    let s = state.vault.catalog.session(&hash).await?.ok_or(WebError::SignIn)?;
    let now = Utc::now();
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)).ok();
    let idle = Duration::minutes(state.config.web.idle_minutes as i64);
    let ended = at(&s.expires_at).is_none_or(|e| e <= now) || at(&s.seen_at).is_none_or(|t| t + idle <= now);
    if ended {
        state.vault.catalog.end_session(&hash).await?;
        return Err(WebError::SignIn);
    }
    // A write per minute at most, not per request.
    if at(&s.seen_at).is_some_and(|t| t + Duration::minutes(1) <= now) {
        state.vault.catalog.touch_session(&hash, &rfc3339(now)).await?;
    }
    let u = state.vault.catalog.user_by_id(s.user_id).await?.ok_or(WebError::SignIn)?;
    let role = Role::parse(&u.role).context("a user's role in the catalog")?;
    Ok(Who {
        user_id: Some(u.id),
        actor: u.email.clone(),
        role,
        org: org_sid(state, &u).await?,
        session: Some(Zeroizing::new(token.to_string())),
        totp_enrolled: u.totp.is_some(),
    })
}

/// The asker, if they may see `org` (which must exist in the vault): else `NotFound`, as if
/// there were no such org.
pub async fn org_access(state: &HttpState, headers: &HeaderMap, org: &str) -> Result<(Who, Arc<Org>), WebError> {
    let who = who(state, headers).await?;
    if !who.may_see(org) || !crate::util::is_safe_sid(org) {
        return Err(WebError::NotFound);
    }
    let o = state.vault.existing_org(org).await?.ok_or(WebError::NotFound)?;
    Ok((who, o))
}

/// What proves it is really the user before a restore or an archive's deletion: the current TOTP code when a second
/// factor is enrolled, else the password again. Failures count against the account's limit.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Proof {
    pub code: Option<String>,
    pub password: Option<String>,
}

pub async fn verify_identity(state: &HttpState, who: &Who, proof: &Proof, act: &str) -> Result<(), WebError> {
    let Some(uid) = who.user_id else {
        return Err(WebError::Forbidden(format!(
            "to {act}, sign in to the dashboard: it needs a person's second factor (API tokens cannot {act})"
        )));
    };
    let u = state.vault.catalog.user_by_id(uid).await?.ok_or(WebError::SignIn)?;
    let acct = account_subject(&u.email);
    check_limit(state, &acct, state.config.web.failures_per_account).await?;
    let refused = match &u.totp {
        Some(sealed) => {
            let code = proof
                .code
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| WebError::BadRequest("enter the 6-digit code from your authenticator app".into()))?;
            let secret = state.vault.open_user_secret(uid, sealed)?;
            match totp(&secret, &u.email)?.check_current(code) {
                None => Some("that code is not the current one: check your authenticator app's clock and try again"),
                // A code is good once: one seen before (here or by another daemon) proves nothing.
                Some(step) => (!state.vault.catalog.use_totp_step(uid, step as i64).await?)
                    .then_some("that code was used already: wait for the next one your authenticator app shows"),
            }
        }
        None => {
            let p = proof
                .password
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| WebError::BadRequest("enter your password again to confirm it is you".into()))?;
            (!password_matches(Some(u.password_hash.clone()), p).await?).then_some("wrong password")
        }
    };
    if let Some(why) = refused {
        state.vault.catalog.add_login_failure(&[&acct]).await?;
        return Err(WebError::Forbidden(why.into()));
    }
    Ok(())
}

/// A TOTP generator (RFC 6238: SHA-1, 6 digits, 30 s, one step of clock skew either way).
pub fn totp(secret: &[u8], email: &str) -> Result<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .with_account_name(email)
        .with_issuer(Some("daybook"))
        .build()
        .map_err(|e| anyhow!("a second-factor secret is unusable: {e}"))
}
