//! Who may read the vault through the web: users (an org's admins, or operators of every
//! org), their sessions, failed sign-ins (for the limiter), per-org API tokens and the audit
//! log. Passwords are Argon2id hashes; session and API tokens are kept only as SHA-256 hashes
//! (they are long random strings, so a fast hash is enough); TOTP secrets and audit details
//! arrive sealed. Kept here, not in memory, so any of several daemons serves any request.

use anyhow::Result;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Catalog;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    /// None for an operator (every org).
    pub org_id: Option<i64>,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    /// Sealed: the TOTP secret, once enrolled; and one being enrolled.
    pub totp: Option<Vec<u8>>,
    pub totp_pending: Option<Vec<u8>>,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: i64,
    pub created_at: String,
    pub seen_at: String,
    pub expires_at: String,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub created_at: String,
    pub used_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub org_id: Option<i64>,
    pub at: String,
    pub actor: String,
    pub action: String,
    /// Sealed with the org's key (the master key for operators' entries).
    pub detail: Vec<u8>,
}

const USER: &str = "SELECT id, org_id, email, role, password_hash, totp, totp_pending, created_at FROM users";

fn user(r: &AnyRow) -> UserRow {
    UserRow {
        id: r.get(0),
        org_id: r.get(1),
        email: r.get(2),
        role: r.get(3),
        password_hash: r.get(4),
        totp: r.get(5),
        totp_pending: r.get(6),
        created_at: r.get(7),
    }
}

impl Catalog {
    /// A new user; false if the email is taken.
    pub async fn add_user(&self, org_id: Option<i64>, email: &str, role: &str, password_hash: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO users (org_id, email, role, password_hash, created_at) VALUES ($1,$2,$3,$4,$5) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(org_id)
        .bind(email)
        .bind(role)
        .bind(password_hash)
        .bind(crate::util::now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        let r = sqlx::query(&format!("{USER} WHERE email = $1")).bind(email).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(user))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        let r = sqlx::query(&format!("{USER} WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(user))
    }

    /// Users of an org (None: every user), by email.
    pub async fn users(&self, org_id: Option<i64>) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(&format!("{USER} WHERE ($1 < 0 OR org_id = $1) ORDER BY email"))
            .bind(org_id.unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user).collect())
    }

    /// Removes a user and their sessions; false if there was none.
    pub async fn remove_user(&self, id: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// A new password ends every session of the user.
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a TOTP code of time step `step` was accepted for the user, unless that
    /// step (or a later one) already was: false then, and the code must be refused, as RFC
    /// 6238 section 5.2 asks. One statement, so two daemons given the same code accept it once.
    pub async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET totp_step = $1 WHERE id = $2 AND (totp_step IS NULL OR totp_step < $1)")
            .bind(step)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets the enrolled and the pending TOTP secrets (sealed).
    pub async fn set_totp(&self, id: i64, totp: Option<&[u8]>, pending: Option<&[u8]>) -> Result<()> {
        sqlx::query("UPDATE users SET totp = $1, totp_pending = $2 WHERE id = $3")
            .bind(totp)
            .bind(pending)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Catalog {
    pub async fn add_session(&self, token_hash: &str, user_id: i64, expires_at: &str) -> Result<()> {
        let now = crate::util::now_rfc3339();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, seen_at, expires_at) VALUES ($1,$2,$3,$3,$4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(&now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let r = sqlx::query("SELECT user_id, created_at, seen_at, expires_at FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| SessionRow { user_id: r.get(0), created_at: r.get(1), seen_at: r.get(2), expires_at: r.get(3) }))
    }

    pub async fn touch_session(&self, token_hash: &str, seen_at: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET seen_at = $1 WHERE token_hash = $2")
            .bind(seen_at)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Drops sessions past their end and failed sign-ins older than `attempts_before`.
    pub async fn prune_sessions(&self, now: &str, attempts_before: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(&self.pool).await?;
        sqlx::query("DELETE FROM login_attempts WHERE at < $1").bind(attempts_before).execute(&self.pool).await?;
        Ok(())
    }

    /// Records a failed sign-in against each subject (hashed account and address).
    pub async fn add_login_failure(&self, subjects: &[&str]) -> Result<()> {
        let now = crate::util::now_rfc3339();
        for s in subjects {
            sqlx::query("INSERT INTO login_attempts (subject, at) VALUES ($1, $2)")
                .bind(*s)
                .bind(&now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Failed sign-ins of a subject since a time, and the oldest of them.
    pub async fn login_failures(&self, subject: &str, since: &str) -> Result<(i64, Option<String>)> {
        let r = sqlx::query("SELECT COUNT(*), MIN(at) FROM login_attempts WHERE subject = $1 AND at >= $2")
            .bind(subject)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    pub async fn clear_login_failures(&self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE subject = $1").bind(subject).execute(&self.pool).await?;
        Ok(())
    }
}

impl Catalog {
    pub async fn add_token(&self, org_id: i64, token_hash: &str, name: &str) -> Result<i64> {
        let r =
            sqlx::query("INSERT INTO tokens (org_id, token_hash, name, created_at) VALUES ($1,$2,$3,$4) RETURNING id")
                .bind(org_id)
                .bind(token_hash)
                .bind(name)
                .bind(crate::util::now_rfc3339())
                .fetch_one(&self.pool)
                .await?;
        Ok(r.get(0))
    }

    /// The token with this hash, marked as used now.
    pub async fn use_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let Some(r) = sqlx::query("SELECT id, org_id, name, created_at, used_at FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let t = TokenRow { id: r.get(0), org_id: r.get(1), name: r.get(2), created_at: r.get(3), used_at: r.get(4) };
        sqlx::query("UPDATE tokens SET used_at = $1 WHERE id = $2")
            .bind(crate::util::now_rfc3339())
            .bind(t.id)
            .execute(&self.pool)
            .await?;
        Ok(Some(t))
    }

    pub async fn tokens(&self, org_id: Option<i64>) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, created_at, used_at FROM tokens WHERE ($1 < 0 OR org_id = $1) ORDER BY id",
        )
        .bind(org_id.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TokenRow {
                id: r.get(0),
                org_id: r.get(1),
                name: r.get(2),
                created_at: r.get(3),
                used_at: r.get(4),
            })
            .collect())
    }

    pub async fn revoke_token(&self, id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM tokens WHERE id = $1").bind(id).execute(&self.pool).await?.rows_affected() == 1)
    }
}

impl Catalog {
    pub async fn add_audit(&self, org_id: Option<i64>, actor: &str, action: &str, detail: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO audit (org_id, at, actor, action, detail) VALUES ($1,$2,$3,$4,$5)")
            .bind(org_id)
            .bind(crate::util::now_rfc3339())
            .bind(actor)
            .bind(action)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An org's audit entries, newest first, before an entry id (a page's cursor).
    pub async fn audit(&self, org_id: i64, before: Option<i64>, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, at, actor, action, detail FROM audit WHERE org_id = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(org_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                org_id: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }
}
