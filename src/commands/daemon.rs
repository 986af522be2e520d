use anyhow::Result;
use std::path::Path;

use crate::daemon::worker::Handlers;

/// Runs the daemon with daybook's job handlers (the archive and restore parts register
/// theirs on `handlers` here).
pub async fn run(config: &Path) -> Result<()> {
    let mut handlers = Handlers::standard();
    crate::archive::job::register(&mut handlers);
    crate::daemon::run(config, handlers).await
}
