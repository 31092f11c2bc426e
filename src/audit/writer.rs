//! The background service that owns the SQLite connection: an OS thread that batches queued rows
//! by size and time, keeps a failed batch (locked, full or read-only disk) and retries it,
//! purges by age and size hourly, and on SIGTERM waits for in-flight requests, then drains the
//! queue before the process exits.

use super::row::AuditRow;
use super::sender::{AuditSender, AuditStats};
use super::{store, IN_FLIGHT};
use crate::config::AuditConfig;
use crate::metrics;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REOPEN_EVERY: Duration = Duration::from_secs(5);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

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
    let service = AuditService {
        rx: Mutex::new(Some(rx)),
        config: config.clone(),
        stats: stats.clone(),
        drain_wait,
    };
    (AuditSender::new(tx, stats), service)
}

#[async_trait]
impl BackgroundService for AuditService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let writer = Writer::new(rx, self.config.clone(), self.stats.clone(), stop.clone());
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
    conn: Option<Connection>,
    last_open_try: Instant,
    /// Rows taken from the queue and not yet committed.
    pending: Vec<AuditRow>,
    last_flush: Instant,
    last_purge: Option<Instant>,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn new(
        rx: Receiver<Box<AuditRow>>,
        config: AuditConfig,
        stats: Arc<AuditStats>,
        stop: Arc<AtomicBool>,
    ) -> Writer {
        let conn = open(&config);
        Writer {
            pending: Vec::with_capacity(config.batch_size),
            rx,
            config,
            stats,
            stop,
            conn,
            last_open_try: Instant::now(),
            last_flush: Instant::now(),
            last_purge: None,
            last_error_log: None,
        }
    }

    fn run(mut self) {
        // The writer polls the queue instead of sleeping in recv: a sender then never has to wake
        // this thread (a futex call and a context switch per row on the request path).
        let tick = self.config.flush_interval.min(Duration::from_millis(50));
        let bound = self.config.batch_size * 4;
        let mut backlog = false;
        loop {
            if !self.stop.load(Ordering::Acquire) && !backlog {
                std::thread::sleep(tick);
            }
            let (received, disconnected) = self.receive(bound);
            backlog = received >= bound;
            if disconnected && self.pending.is_empty() {
                return;
            }
            let stopping = self.stop.load(Ordering::Acquire);
            self.reopen_if_due();
            let due = self.pending.len() >= self.config.batch_size
                || self.last_flush.elapsed() >= self.config.flush_interval
                || stopping;
            if due && !self.pending.is_empty() {
                self.flush();
            }
            if !stopping {
                self.purge_if_due();
            } else if self.drained() {
                return;
            }
        }
    }

    /// Moves up to `bound` queued rows into `pending`; says how many, and whether the senders
    /// are all gone.
    fn receive(&mut self, bound: usize) -> (usize, bool) {
        let mut n = 0;
        while n < bound {
            match self.rx.try_recv() {
                Ok(row) => {
                    self.pending.push(*row);
                    n += 1;
                }
                Err(TryRecvError::Empty) => return (n, false),
                Err(TryRecvError::Disconnected) => return (n, true),
            }
        }
        (n, false)
    }

    fn reopen_if_due(&mut self) {
        if self.conn.is_none() && self.last_open_try.elapsed() >= REOPEN_EVERY {
            self.last_open_try = Instant::now();
            self.conn = open(&self.config);
            if self.conn.is_some() {
                log::info!(
                    "audit database usable again path={}",
                    self.config.database.display()
                );
            }
        }
    }

    /// Commits `pending` in one transaction; on failure keeps it for the next try.
    fn flush(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            let t = Instant::now();
            match store::insert_batch(c, &self.pending) {
                Ok(()) => {
                    let n = self.pending.len() as u64;
                    self.stats.written.fetch_add(n, Ordering::Relaxed);
                    metrics::AUDIT_WRITTEN.inc_by(n);
                    metrics::AUDIT_QUEUE.sub(n as i64);
                    metrics::AUDIT_WRITE.observe(t.elapsed().as_secs_f64());
                    self.pending.clear();
                }
                Err(e) => {
                    metrics::AUDIT_ERRORS.inc();
                    if self
                        .last_error_log
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(30))
                    {
                        self.last_error_log = Some(Instant::now());
                        log::error!(
                            "audit write failed, rows kept for retry path={} rows={} error={e}",
                            self.config.database.display(),
                            self.pending.len()
                        );
                    }
                }
            }
        }
        self.last_flush = Instant::now();
        self.shed();
    }

    /// Keeps memory bounded while the database is failing: the oldest rows go first.
    fn shed(&mut self) {
        let cap = self.config.queue_capacity;
        if self.pending.len() > cap {
            let extra = self.pending.len() - cap;
            self.pending.drain(..extra);
            self.lose(extra as u64);
        }
    }

    fn lose(&self, n: u64) {
        self.stats.drop_rows(n);
        metrics::AUDIT_QUEUE.sub(n as i64);
    }

    fn purge_if_due(&mut self) {
        let Some(c) = self.conn.as_ref() else {
            return;
        };
        if self.last_purge.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
            return;
        }
        self.last_purge = Some(Instant::now());
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

    /// While stopping: whether everything that can be written is (what cannot, is counted lost).
    fn drained(&mut self) -> bool {
        if !self.pending.is_empty() && self.conn.is_some() {
            return false;
        }
        if let Ok(row) = self.rx.try_recv() {
            self.pending.push(*row);
            return false;
        }
        let lost = self.pending.len() as u64;
        if lost > 0 {
            self.lose(lost);
            log::error!("audit database unusable at shutdown, rows lost rows={lost}");
        }
        true
    }
}

fn open(config: &AuditConfig) -> Option<Connection> {
    match store::open_writer(&config.database) {
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
