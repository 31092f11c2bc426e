//! The audit log: one row per exchange, handed off the request path to a bounded queue and
//! written in batches by a background service that owns the SQLite connection.
//!
//! `row` derives the row from the exchange's report, `sender` queues it without blocking,
//! `writer` batches it into the database, `store` is the SQL (schema, inserts, purges, the
//! tallies the policy counters start from) and `query` the reads for the admin API.

pub mod query;
pub mod row;
pub mod sender;
pub mod store;
pub mod writer;

pub use row::AuditRow;
pub use sender::AuditSender;
pub use writer::{channel, AuditService};

use std::sync::atomic::AtomicUsize;

/// Requests (parent or subrequest contexts) still alive: their rows may yet be queued. The
/// writer waits for them at shutdown.
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
