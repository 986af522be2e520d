//! Email over SMTP (`[email]` in the config): archives say when they are ready, and later the
//! daemon's jobs. Without `[email]` the callers print and log what they would have sent.

use anyhow::{Context, Result, anyhow};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only for a relay on the same machine.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: Tls,
    /// Login user, if the server wants one.
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password (never the password itself).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The From address: `daybook <backups@example.com>` or `backups@example.com`.
    pub from: String,
}

fn default_port() -> u16 {
    587
}

fn default_tls() -> Tls {
    Tls::Starttls
}

/// How long a server may take to answer before the send gives up.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends one plain-text message.
pub async fn send(cfg: &EmailConfig, to: &str, subject: &str, text_body: &str) -> Result<()> {
    let from: Mailbox = cfg.from.parse().with_context(|| format!("email.from {:?} is not an address", cfg.from))?;
    let to_box: Mailbox = to.parse().with_context(|| format!("{to:?} is not an email address"))?;
    let msg = Message::builder()
        .from(from)
        .to(to_box)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text_body.to_string())?;
    let builder = match cfg.tls {
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)?,
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)?,
        Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
    };
    let mut builder = builder.port(cfg.port).timeout(Some(TIMEOUT));
    if let Some(user) = &cfg.user {
        let var =
            cfg.password_env.as_deref().ok_or_else(|| anyhow!("email.user is set but email.password_env is not"))?;
        let pass = std::env::var(var).map_err(|_| anyhow!("email.password_env: {var} is not set"))?;
        builder = builder.credentials(Credentials::new(user.clone(), pass));
    }
    builder.build().send(msg).await.map_err(|e| {
        // lettre's error names the server and the step, never the credentials.
        anyhow!("cannot send email to {to} through {}:{}: {e}", cfg.host, cfg.port)
    })?;
    Ok(())
}
