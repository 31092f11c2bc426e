//! The per-exchange report: what happened to one vendor exchange, in typed form. The proxy
//! builds it once, where the exchange ends (`logging`); the audit row (`audit::row`), the
//! metrics (`metrics::exchange`) and the usage counters are each derived from it, so none of
//! them reads the proxy's context.

use crate::inspect::facts::RequestFacts;
use crate::inspect::usage::Tokens;
use crate::kinds::{Action, Mode, Outcome};
use crate::providers::Vendor;
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The winning policy verdict, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyOutcome {
    /// The policy whose decision won (`None` when every policy allowed without a reason).
    pub name: Option<String>,
    pub action: Action,
    /// The policy's reason, with exemptions and evaluation failures.
    pub reason: Option<String>,
}

impl Default for PolicyOutcome {
    fn default() -> Self {
        PolicyOutcome {
            name: None,
            action: Action::Allow,
            reason: None,
        }
    }
}

/// How a forwarded request went to the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendPath {
    /// Pingora's own proxy path, the body from its retry buffer (bodies up to 64 KiB).
    OnePass,
    /// A subrequest with the body preset (longer bodies).
    Subrequest,
}

impl SendPath {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SendPath::OnePass => "one_pass",
            SendPath::Subrequest => "subrequest",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub request_id: String,
    /// When the request arrived (wall clock, UTC).
    pub started_at: DateTime<Utc>,
    /// The whole exchange as the device saw it.
    pub duration: Duration,
    /// From the request's arrival to the vendor's response header.
    pub first_byte: Option<Duration>,
    /// Waiting on the vendor: from sending the request to the answer's last byte. The
    /// exchange's duration minus this is YORI's own time.
    pub vendor_wait: Option<Duration>,
    pub client_ip: Option<IpAddr>,
    pub device: Option<String>,
    pub vendor: Vendor,
    /// The endpoint's domain.
    pub endpoint: String,
    pub method: String,
    /// The vendor path, without the query.
    pub path: String,
    pub user_agent: Option<String>,
    /// What the request asked; `None` when the body was never read (too large, unreadable).
    pub facts: Option<Arc<RequestFacts>>,
    pub tokens: Option<Tokens>,
    /// What the call cost in US dollars, from `pricing`; `None` when the model is not priced.
    pub cost_usd: Option<f64>,
    /// The status the device got (or would have got, had it stayed).
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// `None` when YORI answered the request itself.
    pub send_path: Option<SendPath>,
    pub policy: PolicyOutcome,
    pub mode: Mode,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// What the inspection could not do whole: `request_unread` (a compressed request body that
    /// could not be inflated within the bound), `pii_scan_cut` (the personal-data scan stopped at
    /// its bound), `usage_unread` (the answer's usage could not be read; tokens are estimated).
    pub notes: Vec<&'static str>,
}

impl Report {
    /// Tokens both ways, for the daily counters.
    pub(crate) fn tokens_total(&self) -> u64 {
        self.tokens
            .map_or(0, |t| t.prompt.saturating_add(t.response))
    }

    /// YORI's own time: the exchange minus the wait on the vendor (forwarded exchanges only).
    pub(crate) fn overhead(&self) -> Option<Duration> {
        self.vendor_wait
            .map(|wait| self.duration.saturating_sub(wait))
    }
}
