//! What the daemon tells the outside: systemd (READY, STATUS, WATCHDOG, STOPPING through
//! sd_notify; nothing when not run by systemd), and an org's admin when its cycle failed.

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
