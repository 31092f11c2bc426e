//! Per-request state, one typed struct for both the parent request and its subrequest.

use crate::error::ProxyError;
use crate::vendor::Vendor;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// What the parent decided about a vendor request; handed to the subrequest.
#[derive(Debug)]
pub struct Exchange {
    /// Index into `Config::endpoints`.
    pub endpoint: usize,
    pub vendor: Vendor,
    /// Vendor-side path (prefix stripped), as recorded in the audit log.
    pub path: String,
    /// Path sent upstream: the endpoint's `upstream` base path + `path`.
    pub upstream_path: String,
    /// Host header sent upstream.
    pub domain: String,
    /// Resolved upstream address.
    pub addr: SocketAddr,
    pub request_bytes: usize,
    pub client_ip: Option<IpAddr>,
}

pub struct RequestCtx {
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub vendor: Option<Vendor>,
    pub exchange: Option<Arc<Exchange>>,
    /// This ctx belongs to the subrequest that talks to the vendor.
    pub is_subrequest: bool,
    /// The parent handed this request to a subrequest (which records it).
    pub forwarded: bool,
    pub status: Option<u16>,
    pub error: Option<ProxyError>,
    pub first_byte: Option<Instant>,
    pub response_bytes: u64,
}

impl RequestCtx {
    pub fn new() -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            client_ip: None,
            vendor: None,
            exchange: None,
            is_subrequest: false,
            forwarded: false,
            status: None,
            error: None,
            first_byte: None,
            response_bytes: 0,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
