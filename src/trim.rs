//! Gives freed memory back to the system after a wave of connections has closed. glibc's
//! allocator keeps what a thousand connections used (about 40 KiB each) in its free lists, so
//! the resident set of a router that survived a flood would stay at its peak; `malloc_trim`
//! returns it. Other allocators (FreeBSD's jemalloc) give memory back by themselves, and this
//! does nothing there.

use crate::metrics;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::time::Duration;

/// How often the open-connection count is looked at.
const EVERY: Duration = Duration::from_secs(10);
/// Connections that must have closed since the last look before a trim is worth its time.
const WAVE: i64 = 64;

pub(crate) struct Trim;

#[async_trait]
impl BackgroundService for Trim {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut peak = metrics::CONNECTIONS_OPEN.get();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
            let open = metrics::CONNECTIONS_OPEN.get();
            if peak - open >= WAVE {
                let released = trim();
                log::debug!("memory given back after connections closed from={peak} to={open} released={released}");
                peak = open;
            } else {
                peak = peak.max(open);
            }
        }
    }
}

/// Returns free heap pages to the system; whether any were.
fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is passed.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}
