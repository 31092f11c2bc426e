//! `audit`: where the audit log lives, what a row keeps, and how rows are batched.

use super::reader::{Problems, Section};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `database`: the SQLite file (its folder is created).
    pub database: PathBuf,
    /// `retention_days`: rows older than this are purged hourly.
    pub retention_days: u32,
    /// `prompt_preview_chars`: characters of the prompt kept in `prompt_preview`; 0 stores none.
    pub prompt_preview_chars: usize,
    /// `redact_preview`: replace detected personal data in the preview with `[kind]`.
    pub redact_preview: bool,
    /// `batch_size`: rows per transaction at most.
    pub batch_size: usize,
    /// `flush_interval_ms`: a partial batch is written after this long.
    pub flush_interval: Duration,
    /// `queue_capacity`: rows waiting for the writer; beyond it rows are dropped and counted.
    pub queue_capacity: usize,
    /// `max_database_mb`: above it the oldest rows are purged.
    pub max_database_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            database: "/var/db/yori/audit.db".into(),
            retention_days: 365,
            prompt_preview_chars: 200,
            redact_preview: false,
            batch_size: 512,
            flush_interval: Duration::from_millis(200),
            queue_capacity: 50_000,
            max_database_bytes: 1024 << 20,
        }
    }
}

impl AuditConfig {
    pub fn read(s: &Section<'_>, p: &mut Problems) -> AuditConfig {
        let d = AuditConfig::default();
        AuditConfig {
            database: s.path("database", p).unwrap_or(d.database),
            retention_days: s
                .uint("retention_days", 1, 36500, p)
                .map_or(d.retention_days, |n| n as u32),
            prompt_preview_chars: s
                .uint("prompt_preview_chars", 0, 100_000, p)
                .map_or(d.prompt_preview_chars, |n| n as usize),
            redact_preview: s.boolean("redact_preview", p).unwrap_or(d.redact_preview),
            batch_size: s
                .uint("batch_size", 1, 100_000, p)
                .map_or(d.batch_size, |n| n as usize),
            flush_interval: s
                .uint("flush_interval_ms", 1, 60_000, p)
                .map_or(d.flush_interval, Duration::from_millis),
            queue_capacity: s
                .uint("queue_capacity", 1, 10_000_000, p)
                .map_or(d.queue_capacity, |n| n as usize),
            max_database_bytes: s
                .uint("max_database_mb", 1, 1 << 20, p)
                .map_or(d.max_database_bytes, |mb| mb << 20),
        }
    }
}
