//! The proxy's side of the audit queue: `send` never blocks; a full queue drops the row, counted
//! and logged once a minute.

use super::row::AuditRow;
use crate::metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows written and lost, for the log line at shutdown.
#[derive(Debug, Default)]
pub struct AuditStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

impl AuditStats {
    /// Counts `n` rows lost (queue full, database unusable).
    pub fn drop_rows(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        metrics::AUDIT_DROPPED.inc_by(n);
    }
}

#[derive(Clone)]
pub struct AuditSender {
    pub(super) tx: SyncSender<Box<AuditRow>>,
    pub(super) stats: Arc<AuditStats>,
    last_drop_log: Arc<Mutex<Option<Instant>>>,
}

impl AuditSender {
    pub(super) fn new(tx: SyncSender<Box<AuditRow>>, stats: Arc<AuditStats>) -> AuditSender {
        AuditSender {
            tx,
            stats,
            last_drop_log: Arc::default(),
        }
    }

    /// Queues a row without blocking; a full queue drops it (counted, logged once a minute).
    pub fn send(&self, row: AuditRow) {
        // boxed: the bounded channel preallocates its slots, so keep them pointer-sized
        match self.tx.try_send(Box::new(row)) {
            Ok(()) => metrics::AUDIT_QUEUE.inc(),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.drop_rows(1);
                if let Ok(mut last) = self.last_drop_log.lock() {
                    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        *last = Some(Instant::now());
                        log::error!(
                            "audit queue full or writer gone, row dropped dropped_total={}",
                            self.stats.dropped.load(Ordering::Relaxed)
                        );
                    }
                }
            }
        }
    }
}
