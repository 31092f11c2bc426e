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
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The background service that owns the writer thread.
pub struct AuditService {
    rx: Mutex<Option<Receiver<Box<AuditRow>>>>,
    config: AuditConfig,
    stats: Arc<AuditStats>,
    /// After SIGTERM, how long the writer may keep waiting for in-flight exchanges' rows: the
    /// grace period plus Pingora's runtime shutdown, less a margin. Past it rows are lost.
    drain_limit: Duration,
}

/// Creates the queue: the sender for the proxy, the service for the server.
pub fn channel(config: &AuditConfig, drain_limit: Duration) -> (AuditSender, AuditService) {
    let (tx, rx) = sync_channel(config.queue_capacity);
    let stats = Arc::new(AuditStats::default());
    let service = AuditService {
        rx: Mutex::new(Some(rx)),
        config: config.clone(),
        stats: stats.clone(),
        drain_limit,
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
        let mut writer = Writer::new(rx, self.config.clone(), self.stats.clone(), stop.clone());
        writer.drain_limit = self.drain_limit;
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
        // From now on the writer drains: it goes on writing while exchanges finish (during the
        // grace period, and as Pingora drops what is left, each with a row of its own), and stops
        // once none is in flight and the queue is empty. The join is a blocking task, which the
        // runtime's shutdown waits for, so the process does not exit under the writer.
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
    /// When the database's size was last checked against `max_database_mb`.
    last_size_check: Instant,
    last_error_log: Option<Instant>,
    /// See `AuditService::drain_limit`; counted from when the writer saw the stop.
    drain_limit: Duration,
    stopping_since: Option<Instant>,
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
            last_size_check: Instant::now(),
            last_error_log: None,
            drain_limit: Duration::from_secs(5),
            stopping_since: None,
        }
    }

    fn run(mut self) {
        // The writer polls the queue instead of sleeping in recv: a sender then never has to wake
        // this thread (a futex call and a context switch per row on the request path).
        let tick = self.config.flush_interval.min(Duration::from_millis(50));
        let bound = self.config.batch_size * 4;
        let mut backlog = false;
        loop {
            if !backlog {
                std::thread::sleep(if self.stop.load(Ordering::Acquire) {
                    Duration::from_millis(5)
                } else {
                    tick
                });
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

    /// Commits `pending` in one transaction. A batch refused for one of its rows (a constraint,
    /// a value SQLite will not take) is written row by row: the bad row is dropped and counted,
    /// the others go in. A batch the database cannot take at all (locked, full, read-only) is
    /// kept for the next try.
    fn flush(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            let t = Instant::now();
            let mut result = store::insert_batch(c, &self.pending);
            if result.as_ref().is_err_and(store::is_row_error) {
                let before = self.pending.len();
                let (kept, bad) = store::insert_each(c, std::mem::take(&mut self.pending));
                self.pending = kept;
                let written = before - self.pending.len() - bad;
                if bad > 0 {
                    self.lose(bad as u64);
                    log::error!("audit rows refused by the database, dropped rows={bad}");
                }
                self.count_written(written as u64);
                result = if self.pending.is_empty() {
                    Ok(())
                } else {
                    result
                };
            }
            match result {
                Ok(()) => {
                    self.count_written(self.pending.len() as u64);
                    metrics::AUDIT_WRITE.observe(t.elapsed().as_secs_f64());
                    self.pending.clear();
                    self.keep_under_cap();
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

    /// The size cap holds as rows are written, not only at the hourly purge: checked at most
    /// once a second (three pragmas), shrunk at once when passed.
    fn keep_under_cap(&mut self) {
        if self.last_size_check.elapsed() < SIZE_CHECK_EVERY {
            return;
        }
        self.last_size_check = Instant::now();
        let Some(c) = self.conn.as_ref() else {
            return;
        };
        let max = self.config.max_database_bytes;
        match store::over(c, max).and_then(|over| if over { store::shrink(c, max) } else { Ok(0) }) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "audit database at its size cap (audit.max_database_mb), oldest rows of the busiest device purged rows={n}"
            ),
            Err(e) => log::warn!("audit size check failed error={e}"),
        }
    }

    fn count_written(&self, n: u64) {
        self.stats.written.fetch_add(n, Ordering::Relaxed);
        metrics::AUDIT_WRITTEN.inc_by(n);
        metrics::AUDIT_QUEUE.sub(n as i64);
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

    /// While stopping: whether the writer is done. It is when no exchange is in flight any more
    /// and everything queued is written, or when the drain limit has passed (what is left then
    /// is counted lost).
    fn drained(&mut self) -> bool {
        let since = *self.stopping_since.get_or_insert_with(Instant::now);
        let out_of_time = since.elapsed() >= self.drain_limit;
        if !out_of_time {
            if IN_FLIGHT.load(Ordering::Acquire) > 0 {
                return false;
            }
            if !self.pending.is_empty() && self.conn.is_some() {
                return false;
            }
            if let Ok(row) = self.rx.try_recv() {
                self.pending.push(*row);
                return false;
            }
        }
        while let Ok(row) = self.rx.try_recv() {
            self.pending.push(*row);
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
