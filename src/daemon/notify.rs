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

/// A cycle failed for good (its retries used up): the org's admin hears of it.
///
/// WIRE: the email part (src/email.rs, `[email]`) sends `message` to `admin_email` here with
/// `crate::email::send` when `[email]` is set. Until then the failure is in the daemon's log,
/// the job's log and `daybook status`.
pub async fn cycle_failed(admin_email: Option<&str>, message: &str) {
    let _ = message;
    match admin_email {
        Some(to) => tracing::warn!("a cycle failed; no email is sent to {to} (this daybook sends no email yet)"),
        None => tracing::warn!("a cycle failed; the org has no admin_email to tell"),
    }
}
