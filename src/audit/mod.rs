//! The audit log: one row per exchange, handed off the request path to a bounded queue and
//! written in batches by a background service that owns the SQLite connection.
//!
//! `logging()` calls `AuditSender::send`, which never blocks: when the queue is full the row is
//! counted as dropped. The writer thread batches by size and time, keeps a failed batch (locked,
//! full or read-only disk) and retries it, and on SIGTERM waits for in-flight requests, then
//! drains the queue before the process exits.

pub mod query;
pub mod store;

use crate::config::AuditConfig;
use crate::metrics;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const EVENT_REQUEST: &str = "request";
pub const EVENT_BLOCK: &str = "block";

/// One `audit_events` row, as the writer inserts it.
#[derive(Debug, Clone, Default)]
pub struct AuditRow {
    pub timestamp: String,
    pub event_type: &'static str,
    pub client_ip: Option<String>,
    pub client_device: Option<String>,
    pub endpoint: Option<String>,
    pub vendor: Option<&'static str>,
    pub http_method: String,
    pub http_path: String,
    pub model: Option<String>,
    pub stream: bool,
    pub message_count: Option<i64>,
    pub prompt_preview: Option<String>,
    pub prompt_chars: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub contains_sensitive: bool,
    pub sensitive_kinds: Option<String>,
    pub response_status: Option<i64>,
    pub response_tokens: Option<i64>,
    pub tokens_estimated: bool,
    pub response_duration_ms: i64,
    pub first_byte_ms: Option<i64>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub policy_name: Option<String>,
    pub policy_result: &'static str,
    pub policy_reason: Option<String>,
    pub mode: &'static str,
    pub error_kind: Option<&'static str>,
    pub user_agent: Option<String>,
    pub request_id: String,
}

/// Counters the metrics and the admin API read.
#[derive(Debug, Default)]
pub struct AuditStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// Rows in the queue or held by the writer, not yet in the database.
    pub pending: AtomicU64,
    pub write_micros_total: AtomicU64,
    pub batches: AtomicU64,
}

/// Requests (parent or subrequest contexts) still alive: their rows may yet be queued.
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone)]
pub struct AuditSender {
    tx: SyncSender<Box<AuditRow>>,
    pub stats: Arc<AuditStats>,
    last_drop_log: Arc<Mutex<Option<Instant>>>,
}

impl AuditSender {
    /// Queues a row without blocking; a full queue drops it (counted, logged once a minute).
    pub fn send(&self, row: AuditRow) {
        // boxed: the bounded channel preallocates its slots, so keep them pointer-sized
        match self.tx.try_send(Box::new(row)) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                self.stats.pending.fetch_add(1, Ordering::Relaxed);
                metrics::AUDIT_QUEUE.inc();
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::AUDIT_DROPPED.inc();
                if let Ok(mut last) = self.last_drop_log.lock() {
                    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        *last = Some(Instant::now());
                        log::error!(
                            "audit queue full or writer gone, row dropped dropped_total={n}"
                        );
                    }
                }
            }
        }
    }
}

/// The background service that owns the writer thread.
pub struct AuditService {
    rx: Mutex<Option<Receiver<Box<AuditRow>>>>,
    config: AuditConfig,
    stats: Arc<AuditStats>,
    /// How long to wait for in-flight requests after SIGTERM before the final flush.
    drain_wait: Duration,
}

/// Creates the queue: the sender for the proxy, the service for the server.
pub fn channel(config: &AuditConfig, drain_wait: Duration) -> (AuditSender, AuditService) {
    let (tx, rx) = sync_channel(config.queue_capacity);
    let stats = Arc::new(AuditStats::default());
    let sender = AuditSender {
        tx,
        stats: stats.clone(),
        last_drop_log: Arc::default(),
    };
    let service = AuditService {
        rx: Mutex::new(Some(rx)),
        config: config.clone(),
        stats,
        drain_wait,
    };
    (sender, service)
}

#[async_trait]
impl BackgroundService for AuditService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            config: self.config.clone(),
            stats: self.stats.clone(),
            stop: stop.clone(),
        };
        let thread = match std::thread::Builder::new()
            .name("yori-audit".into())
            .spawn(move || writer.run())
        {
            Ok(t) => t,
            Err(e) => {
                log::error!("cannot start the audit writer thread: {e}");
                return;
            }
        };
        let _ = shutdown.changed().await;
        let started = Instant::now();
        while IN_FLIGHT.load(Ordering::Acquire) > 0 && started.elapsed() < self.drain_wait {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Release);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        log::info!(
            "audit writer stopped written={} dropped={}",
            self.stats.written.load(Ordering::Relaxed),
            self.stats.dropped.load(Ordering::Relaxed)
        );
    }
}

struct Writer {
    rx: Receiver<Box<AuditRow>>,
    config: AuditConfig,
    stats: Arc<AuditStats>,
    stop: Arc<AtomicBool>,
}

const REOPEN_EVERY: Duration = Duration::from_secs(5);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

impl Writer {
    fn run(self) {
        let mut conn = self.open();
        let mut last_open_try = Instant::now();
        let mut pending: Vec<AuditRow> = Vec::with_capacity(self.config.batch_size);
        let mut last_flush = Instant::now();
        let mut last_purge: Option<Instant> = None;
        let mut last_error_log: Option<Instant> = None;
        let interval = self.config.flush_interval;
        // The writer polls the queue instead of sleeping in recv: a sender then never has to wake
        // this thread (a futex call and a context switch per row on the request path).
        let tick = interval.min(Duration::from_millis(50));
        let bound = self.config.batch_size * 4;
        let mut backlog = false;
        loop {
            if !self.stop.load(Ordering::Acquire) && !backlog {
                std::thread::sleep(tick);
            }
            let before = pending.len();
            let mut disconnected = false;
            while pending.len() - before < bound {
                match self.rx.try_recv() {
                    Ok(row) => pending.push(*row),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            backlog = pending.len() - before >= bound;
            if disconnected && pending.is_empty() {
                return;
            }
            let stopping = self.stop.load(Ordering::Acquire);
            let due = pending.len() >= self.config.batch_size
                || last_flush.elapsed() >= interval
                || stopping;
            if conn.is_none() && last_open_try.elapsed() >= REOPEN_EVERY {
                last_open_try = Instant::now();
                conn = self.open();
                if conn.is_some() {
                    log::info!(
                        "audit database usable again path={}",
                        self.config.database.display()
                    );
                }
            }
            if due && !pending.is_empty() {
                if let Some(c) = conn.as_mut() {
                    let t = Instant::now();
                    match store::insert_batch(c, &pending) {
                        Ok(()) => {
                            let n = pending.len() as u64;
                            self.stats.written.fetch_add(n, Ordering::Relaxed);
                            self.stats.pending.fetch_sub(n, Ordering::Relaxed);
                            self.stats.batches.fetch_add(1, Ordering::Relaxed);
                            self.stats
                                .write_micros_total
                                .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                            metrics::AUDIT_WRITTEN.inc_by(n);
                            metrics::AUDIT_QUEUE.sub(n as i64);
                            metrics::AUDIT_WRITE.observe(t.elapsed().as_secs_f64());
                            pending.clear();
                        }
                        Err(e) => {
                            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                            metrics::AUDIT_ERRORS.inc();
                            if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30))
                            {
                                last_error_log = Some(Instant::now());
                                log::error!(
                                    "audit write failed, rows kept for retry path={} rows={} error={e}",
                                    self.config.database.display(),
                                    pending.len()
                                );
                            }
                        }
                    }
                }
                last_flush = Instant::now();
                self.shed(&mut pending);
            }
            if let Some(c) = conn.as_ref() {
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) && !stopping {
                    last_purge = Some(Instant::now());
                    match store::purge(
                        c,
                        self.config.retention_days,
                        self.config.max_database_bytes,
                    ) {
                        Ok(0) => {}
                        Ok(n) => log::info!("audit retention purged rows={n}"),
                        Err(e) => log::warn!("audit retention failed error={e}"),
                    }
                }
            }
            if stopping
                && (pending.is_empty() || conn.is_none())
                && self.rx.try_recv().map(|r| pending.push(*r)).is_err()
            {
                let lost = pending.len() as u64;
                if lost > 0 {
                    self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
                    self.stats.pending.fetch_sub(lost, Ordering::Relaxed);
                    metrics::AUDIT_DROPPED.inc_by(lost);
                    metrics::AUDIT_QUEUE.sub(lost as i64);
                    log::error!("audit database unusable at shutdown, rows lost rows={lost}");
                }
                return;
            }
        }
    }

    /// Keeps memory bounded while the database is failing: the oldest rows go first.
    fn shed(&self, pending: &mut Vec<AuditRow>) {
        let cap = self.config.queue_capacity;
        if pending.len() > cap {
            let extra = pending.len() - cap;
            pending.drain(..extra);
            self.stats
                .dropped
                .fetch_add(extra as u64, Ordering::Relaxed);
            self.stats
                .pending
                .fetch_sub(extra as u64, Ordering::Relaxed);
            metrics::AUDIT_DROPPED.inc_by(extra as u64);
            metrics::AUDIT_QUEUE.sub(extra as i64);
        }
    }

    fn open(&self) -> Option<rusqlite::Connection> {
        match store::open_writer(&self.config.database) {
            // the server already said "ready" at start; recovery is logged by the caller
            Ok(c) => Some(c),
            Err(e) => {
                log::error!(
                    "audit database unusable, rows are held then dropped until it is fixed: {e}"
                );
                None
            }
        }
    }
}
