//! Per-request state, one typed struct for both the parent request and its subrequest.

use super::error::ProxyError;
use crate::audit::IN_FLIGHT;
use crate::config::EndpointId;
use crate::inspect::facts::RequestFacts;
use crate::inspect::usage::UsageTap;
use crate::policy::gate::Gated;
use crate::providers::Vendor;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::task::JoinHandle;

/// A vendor request as it arrived, for its audit row.
#[derive(Debug, Clone)]
pub(crate) struct VendorRequest {
    pub endpoint: EndpointId,
    /// Vendor-side path (prefix stripped).
    pub path: String,
    pub method: String,
    pub user_agent: Option<String>,
    pub started: Instant,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub request_bytes: usize,
    pub request_id: String,
}

/// What the parent decided about a vendor request; handed to the subrequest.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub request: VendorRequest,
    pub vendor: Vendor,
    pub facts: Arc<RequestFacts>,
    /// Path sent upstream: the endpoint's `upstream` base path + the vendor path.
    pub upstream_path: String,
    /// Host header sent upstream.
    pub domain: String,
    /// Resolved upstream address.
    pub addr: SocketAddr,
    /// Set by the parent when the device went away mid-answer (before the subrequest is cut off),
    /// so the row says `client_closed` rather than an upstream failure.
    pub client_gone: AtomicBool,
    /// The policy verdict after the mode gate (not blocked, or it would not be forwarded).
    pub policy: PolicySlot,
}

/// A verdict known at once (enforce mode) or still being worked out by its own task.
#[derive(Debug, Default)]
pub(crate) struct PolicySlot {
    done: OnceLock<Gated>,
    pending: Mutex<Option<JoinHandle<Gated>>>,
}

impl PolicySlot {
    pub(crate) fn set(&self, g: Gated) {
        let _ = self.done.set(g);
    }

    pub(crate) fn defer(&self, task: JoinHandle<Gated>) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(task);
        }
    }

    /// Waits for a deferred verdict (at once when it is known).
    pub(crate) async fn settle(&self) {
        let task = self.pending.lock().ok().and_then(|mut p| p.take());
        if let Some(task) = task {
            let g = task.await.unwrap_or_else(|e| {
                log::error!("policy task failed, request recorded as allowed error={e}");
                Gated::failed(format!("policy task failed: {e}"))
            });
            self.set(g);
        }
    }

    /// The verdict, once known (after `settle`).
    pub(crate) fn get(&self) -> Option<&Gated> {
        self.done.get()
    }
}

pub(crate) struct RequestCtx {
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub vendor: Option<Vendor>,
    /// Set once the request is known to be vendor traffic.
    pub request: Option<VendorRequest>,
    /// Facts of a request the parent answered itself (the subrequest reads the exchange's).
    pub facts: Option<Arc<RequestFacts>>,
    pub exchange: Option<Arc<Exchange>>,
    /// This ctx belongs to the subrequest that talks to the vendor.
    pub is_subrequest: bool,
    /// The parent handed this request to a subrequest (which records it).
    pub forwarded: bool,
    pub status: Option<u16>,
    pub error: Option<ProxyError>,
    pub first_byte: Option<Instant>,
    /// When the request went to the vendor, and when the vendor's answer ended.
    pub upstream_sent: Option<Instant>,
    pub upstream_done: Option<Instant>,
    pub response_bytes: u64,
    pub response_done: bool,
    pub usage: Option<UsageTap>,
    /// Verdict of a request the parent answered itself (blocked, or refused after facts).
    pub policy: Option<Gated>,
    /// The request was blocked by policy (`event_type = 'block'`).
    pub blocked: bool,
}

impl RequestCtx {
    pub(crate) fn new() -> RequestCtx {
        // counted until dropped: the audit writer waits for in-flight rows at shutdown
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        RequestCtx {
            started: Instant::now(),
            client_ip: None,
            vendor: None,
            request: None,
            facts: None,
            exchange: None,
            is_subrequest: false,
            forwarded: false,
            status: None,
            error: None,
            first_byte: None,
            upstream_sent: None,
            upstream_done: None,
            response_bytes: 0,
            response_done: false,
            usage: None,
            policy: None,
            blocked: false,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}
