//! Crash points for tests: `DAYBOOK_FAULT=<point>[:<n>]` kills the process with SIGKILL
//! (exactly as `kill -9` would) the n-th time (default 1st) it passes `point`. Lets the
//! tests prove that a crash at any stage of a backup loses and duplicates nothing.

use std::sync::atomic::{AtomicU32, Ordering};

static PASSES: AtomicU32 = AtomicU32::new(0);

pub fn point(name: &str) {
    let Ok(spec) = std::env::var("DAYBOOK_FAULT") else {
        return;
    };
    let (p, n) =
        spec.split_once(':').map(|(p, n)| (p.to_string(), n.parse().unwrap_or(1))).unwrap_or((spec.clone(), 1));
    if p == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == n {
        // SAFETY: raising a signal on our own process has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
