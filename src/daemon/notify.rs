//! What the daemon tells the outside: systemd (READY, STATUS, WATCHDOG, STOPPING through
//! sd_notify; nothing when not run by systemd), an org's admin when its cycle failed, and
//! the one who asked for a restore when it ended.

use std::time::Duration;

/// Tells systemd the daemon is up (`Type=notify`).
pub fn ready() {
    send(&[sd_notify::NotifyState::Ready]);
}

pub fn status(text: &str) {
    send(&[sd_notify::NotifyState::Status(text)]);
}

pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

pub fn watchdog() {
    send(&[sd_notify::NotifyState::Watchdog]);
}

/// How often to pet systemd's watchdog (half its timeout), when the unit has one.
pub fn watchdog_every() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

fn send(state: &[sd_notify::NotifyState]) {
    // Without NOTIFY_SOCKET (not under systemd) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// A cycle failed for good (its retries used up): the org's admin hears of it by email when
/// `[email]` is set; the failure is in the daemon's log, the job's log and `daybook status`
/// whatever happens to the mail.
pub async fn cycle_failed(email: Option<&crate::email::EmailConfig>, admin_email: Option<&str>, message: &str) {
    match (email, admin_email) {
        (Some(cfg), Some(to)) => {
            if let Err(e) = crate::email::send(cfg, to, "daybook: a backup failed", message).await {
                tracing::error!("a cycle failed, and the email to {to} could not be sent: {e:#}");
            }
        }
        (None, Some(to)) => tracing::warn!("a cycle failed; no [email] is configured to tell {to}"),
        (_, None) => tracing::warn!("a cycle failed; the org has no admin_email to tell"),
    }
}

/// How a restore ended, as the one who asked it reads it: ids only, never the record's
/// content.
pub enum RestoreEnd<'a> {
    Done { new_id: &'a str, files_uploaded: usize },
    Failed { why: &'a str },
}

/// A restore asked for on the dashboard or queued for the daemon has ended: the one who asked
/// hears of it by email when `[email]` is set (else the daemon's log says it). Returns the
/// address emailed, or why none was.
pub async fn restore_finished(
    email: Option<&crate::email::EmailConfig>,
    to: Option<&str>,
    sid: &str,
    source: &str,
    end: RestoreEnd<'_>,
) -> Result<String, String> {
    let (subject, body) = match end {
        RestoreEnd::Done { new_id, files_uploaded } => (
            format!("daybook: record {sid} was restored"),
            format!(
                "The record {sid} was restored as a copy in {source}: its new id there is {new_id} \
                 ({files_uploaded} file(s) uploaded again). Nothing else in the app was changed.\n"
            ),
        ),
        RestoreEnd::Failed { why } => (
            format!("daybook: record {sid} could not be restored"),
            format!(
                "The record {sid} could not be restored into {source}, and nothing was created there.\n\nReason: {why}\n"
            ),
        ),
    };
    let Some(to) = to else {
        tracing::info!("{subject} (no one to email: the request named no address)");
        return Err("no address to email".into());
    };
    let Some(cfg) = email else {
        tracing::info!("{subject}; no [email] is configured to tell {to}");
        return Err("no [email] in the config".into());
    };
    match crate::email::send(cfg, to, &subject, &body).await {
        Ok(()) => Ok(to.to_string()),
        Err(e) => {
            tracing::error!("{subject}, and the email to {to} could not be sent: {e:#}");
            Err(format!("{e:#}"))
        }
    }
}
