//! Per-request state. Which leg of the request this context belongs to is one enum (`Leg`), and
//! how the exchange ended is one value, set once (`RequestCtx::end`).

use crate::audit::IN_FLIGHT;
use crate::config::EndpointId;
use crate::inspect::facts::RequestFacts;
use crate::inspect::usage::UsageTap;
use crate::kinds::Outcome;
use crate::policy::gate::Gated;
use crate::providers::Vendor;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::oneshot;

/// A vendor request as it arrived, for its audit row.
#[derive(Debug, Clone)]
pub(crate) struct VendorRequest {
    pub endpoint: EndpointId,
    pub vendor: Vendor,
    /// Vendor-side path (prefix stripped).
    pub path: String,
    pub method: String,
    pub user_agent: Option<String>,
    pub started: Instant,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub request_bytes: usize,
    pub request_id: String,
    /// The device speaks HTTP/1.0: its answer is framed without chunks and closes.
    pub http10: bool,
}

/// A vendor request that was read and decided, on its way to the vendor. Shared by the parent
/// and the subrequest on the long-body path.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub request: VendorRequest,
    /// Path sent upstream: the endpoint's `upstream` base path + the vendor path.
    pub upstream_path: String,
    /// Host header sent upstream.
    pub domain: String,
    /// Resolved upstream address.
    pub addr: SocketAddr,
    /// What the request asked and the verdict after the mode gate (not blocked, or it would not
    /// be forwarded): known at once in enforce mode, worked out meanwhile in the others.
    pub inspection: InspectionSlot,
    /// How the exchange ended: the first word wins. On the long-body path the parent says
    /// `ClientClosed` before the subrequest can see the broken pipe it leaves behind.
    outcome: OnceLock<Outcome>,
}

impl Exchange {
    pub(crate) fn new(
        request: VendorRequest,
        upstream_path: String,
        domain: String,
        addr: SocketAddr,
    ) -> Exchange {
        Exchange {
            request,
            upstream_path,
            domain,
            addr,
            inspection: InspectionSlot::default(),
            outcome: OnceLock::new(),
        }
    }

    /// Records how the exchange ended; the first word wins.
    pub(crate) fn end(&self, outcome: Outcome) {
        let _ = self.outcome.set(outcome);
    }
}

/// A request's facts and its verdict.
#[derive(Debug)]
pub(crate) struct Inspection {
    pub facts: Arc<RequestFacts>,
    pub verdict: Gated,
}

/// An inspection known at once, or still being worked out elsewhere (`offload`).
#[derive(Debug, Default)]
pub(crate) struct InspectionSlot {
    done: OnceLock<Inspection>,
    pending: Mutex<Option<oneshot::Receiver<Inspection>>>,
}

impl InspectionSlot {
    pub(crate) fn set(&self, i: Inspection) {
        let _ = self.done.set(i);
    }

    pub(crate) fn defer(&self, pending: oneshot::Receiver<Inspection>) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(pending);
        }
    }

    /// Takes a deferred inspection if it is done by now, without waiting.
    pub(crate) fn settle_now(&self) {
        let pending = self.pending.lock().ok().and_then(|mut p| p.take());
        if let Some(mut pending) = pending {
            if let Ok(i) = pending.try_recv() {
                self.set(i);
            }
        }
    }

    /// Waits for a deferred inspection (at once when it is known).
    pub(crate) async fn settle(&self) {
        let pending = self.pending.lock().ok().and_then(|mut p| p.take());
        if let Some(pending) = pending {
            let i = pending.await.unwrap_or_else(|_| {
                log::error!("request inspection failed, request recorded as allowed");
                Inspection {
                    facts: Arc::default(),
                    verdict: Gated::failed("inspection failed".into()),
                }
            });
            self.set(i);
        }
    }

    /// The inspection, once known (after `settle`).
    pub(crate) fn get(&self) -> Option<&Inspection> {
        self.done.get()
    }
}

/// A vendor request being read and decided, or answered by YORI itself (refused, blocked,
/// vendor unreachable).
#[derive(Debug)]
pub(crate) struct Local {
    pub request: VendorRequest,
    /// Known once the body was read.
    pub facts: Option<Arc<RequestFacts>>,
    /// Known once the policies ran.
    pub policy: Option<Gated>,
    outcome: Option<Outcome>,
}

/// Which leg of a request a context is.
#[derive(Debug)]
pub(crate) enum Leg {
    /// Health, admin, or a route refused before it named a vendor: no exchange, no row.
    Edge,
    /// A vendor request YORI is reading or answered itself; its row comes from this context.
    Local(Box<Local>),
    /// A vendor exchange in one pass: the body fitted Pingora's retry buffer, and Pingora's
    /// own proxy path sends it; its row comes from this context.
    OnePass(Arc<Exchange>),
    /// The long-body path's parent: it replays the request as a subrequest, which records it.
    Parent(Arc<Exchange>),
    /// The long-body path's subrequest, talking to the vendor; its row comes from here.
    Subrequest(Arc<Exchange>),
}

pub(crate) struct RequestCtx {
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub leg: Leg,
    /// The status the device got.
    pub status: Option<u16>,
    pub first_byte: Option<Instant>,
    /// When the request went to the vendor, and when the vendor's answer ended.
    pub upstream_sent: Option<Instant>,
    pub upstream_done: Option<Instant>,
    pub response_bytes: u64,
    pub usage: Option<UsageTap>,
    /// The upstream socket held back until the body is written (see `upstream::cork`).
    pub corked: Option<std::os::unix::io::RawFd>,
    /// The request body's share of the memory budget, given back with the context.
    pub body_share: Option<super::capture::Share>,
    /// Where the exchange's row goes if the context is dropped before `logging` (the gateway
    /// shutting down drops what is still running).
    pub(crate) shared: Option<Arc<super::Shared>>,
    /// `logging` has recorded the exchange.
    pub(crate) recorded: bool,
}

impl RequestCtx {
    pub(crate) fn new(shared: Option<Arc<super::Shared>>) -> RequestCtx {
        // counted until dropped: the audit writer waits for in-flight rows at shutdown
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        RequestCtx {
            started: Instant::now(),
            client_ip: None,
            leg: Leg::Edge,
            status: None,
            first_byte: None,
            upstream_sent: None,
            upstream_done: None,
            response_bytes: 0,
            usage: None,
            corked: None,
            body_share: None,
            shared,
            recorded: false,
        }
    }

    /// Starts a vendor request on this context.
    pub(crate) fn begin(&mut self, request: VendorRequest) {
        self.leg = Leg::Local(Box::new(Local {
            request,
            facts: None,
            policy: None,
            outcome: None,
        }));
    }

    pub(crate) fn local(&mut self) -> Option<&mut Local> {
        match &mut self.leg {
            Leg::Local(l) => Some(l),
            _ => None,
        }
    }

    /// The exchange on its way to (or back from) the vendor.
    pub(crate) fn exchange(&self) -> Option<&Arc<Exchange>> {
        match &self.leg {
            Leg::OnePass(x) | Leg::Parent(x) | Leg::Subrequest(x) => Some(x),
            Leg::Edge | Leg::Local(_) => None,
        }
    }

    /// The vendor request, on every leg but `Edge`.
    pub(crate) fn request(&self) -> Option<&VendorRequest> {
        match &self.leg {
            Leg::Local(l) => Some(&l.request),
            Leg::OnePass(x) | Leg::Parent(x) | Leg::Subrequest(x) => Some(&x.request),
            Leg::Edge => None,
        }
    }

    pub(crate) fn vendor(&self) -> Option<Vendor> {
        self.request().map(|r| r.vendor)
    }

    /// Whether this context's `logging` records the exchange (the parent leaves it to its
    /// subrequest; edges are not exchanges).
    pub(crate) fn records(&self) -> bool {
        matches!(
            self.leg,
            Leg::Local(_) | Leg::OnePass(_) | Leg::Subrequest(_)
        )
    }

    /// Records how the exchange ended; the first call wins, later ones are ignored.
    pub(crate) fn end(&mut self, outcome: Outcome) {
        match &mut self.leg {
            Leg::Local(l) => {
                l.outcome.get_or_insert(outcome);
            }
            Leg::OnePass(x) | Leg::Parent(x) | Leg::Subrequest(x) => x.end(outcome),
            Leg::Edge => {}
        }
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        match &self.leg {
            Leg::Local(l) => l.outcome,
            Leg::OnePass(x) | Leg::Parent(x) | Leg::Subrequest(x) => x.outcome.get().copied(),
            Leg::Edge => None,
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if !self.recorded && self.records() {
            // never logged: cut short (the gateway is shutting down); one row says so
            self.end(Outcome::Failed(crate::kinds::ErrorKind::Interrupted));
            if let Some(x) = self.exchange() {
                x.inspection.settle_now();
            }
            if let Some(shared) = self.shared.clone() {
                super::record(&shared, self);
            }
        }
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ErrorKind;

    fn request() -> VendorRequest {
        VendorRequest {
            endpoint: crate::config::parse_str("", None)
                .unwrap()
                .default_endpoint
                .unwrap(),
            vendor: Vendor::OpenAi,
            path: "/v1/chat/completions".into(),
            method: "POST".into(),
            user_agent: None,
            started: Instant::now(),
            started_at: chrono::Utc::now(),
            request_bytes: 0,
            request_id: "t".into(),
            http10: false,
        }
    }

    #[test]
    fn the_first_outcome_wins_on_every_leg() {
        let mut ctx = RequestCtx::new(None);
        ctx.end(Outcome::Forwarded);
        assert_eq!(ctx.outcome(), None, "an edge has no exchange to end");
        ctx.begin(request());
        ctx.end(Outcome::Refused(ErrorKind::RequestTooLarge));
        ctx.end(Outcome::Forwarded);
        assert_eq!(
            ctx.outcome(),
            Some(Outcome::Refused(ErrorKind::RequestTooLarge))
        );

        let x = Arc::new(Exchange::new(
            request(),
            "/".into(),
            "api.openai.com".into(),
            "127.0.0.1:1".parse().unwrap(),
        ));
        let mut parent = RequestCtx::new(None);
        parent.leg = Leg::Parent(x.clone());
        let mut sub = RequestCtx::new(None);
        sub.leg = Leg::Subrequest(x);
        parent.end(Outcome::ClientClosed);
        sub.end(Outcome::Failed(ErrorKind::UpstreamBroken));
        assert_eq!(
            sub.outcome(),
            Some(Outcome::ClientClosed),
            "the parent spoke first"
        );
        assert!(sub.records() && !parent.records());
    }
}
