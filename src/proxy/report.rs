//! The exchange's report, built from the request's ctx once, in `logging()`: by the subrequest
//! for forwarded requests, by the parent for vendor requests it answered itself.

use super::{RequestCtx, Shared};
use crate::kinds::Outcome;
use crate::policy::gate::Gated;
use crate::report::{PolicyOutcome, Report};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Unique across restarts: start time and pid of this process, then a counter.
pub(super) fn request_id() -> String {
    use once_cell::sync::Lazy;
    static BOOT: Lazy<String> = Lazy::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs:x}-{:x}", std::process::id())
    });
    format!("{}-{:x}", *BOOT, SEQ.fetch_add(1, Ordering::Relaxed))
}

fn policy_outcome(g: &Gated) -> PolicyOutcome {
    PolicyOutcome {
        name: g.verdict.policy.clone(),
        action: g.verdict.action,
        reason: g.recorded_reason(),
    }
}

/// The report of a vendor exchange; `None` for requests that were not vendor traffic.
pub(super) fn build(shared: &Shared, ctx: &RequestCtx, client_closed: bool) -> Option<Report> {
    let req = ctx.request.as_ref()?;
    let endpoint = shared.config.endpoint(req.endpoint);
    let facts = ctx
        .exchange
        .as_ref()
        .map(|x| x.facts.clone())
        .or_else(|| ctx.facts.clone());
    let policy = ctx
        .exchange
        .as_ref()
        .and_then(|x| x.policy.get())
        .or(ctx.policy.as_ref())
        .map(policy_outcome)
        .unwrap_or_default();
    let tokens = ctx
        .usage
        .as_ref()
        .map(|t| t.tokens(facts.as_ref().map_or(0, |f| f.text_chars)));
    let outcome = if ctx.blocked {
        Outcome::Blocked
    } else if let Some(e) = &ctx.error {
        Outcome::from_error(e.kind())
    } else if client_closed {
        Outcome::ClientClosed
    } else {
        Outcome::Forwarded
    };
    let vendor_wait = ctx.upstream_sent.map(|sent| {
        ctx.upstream_done
            .unwrap_or_else(Instant::now)
            .duration_since(sent)
    });
    Some(Report {
        request_id: req.request_id.clone(),
        started_at: req.started_at,
        duration: req.started.elapsed(),
        first_byte: ctx.first_byte.map(|t| t.duration_since(req.started)),
        vendor_wait,
        client_ip: ctx.client_ip,
        device: ctx
            .client_ip
            .and_then(|ip| shared.devices.get(&ip).cloned()),
        vendor: endpoint.vendor,
        endpoint: endpoint.domain.clone(),
        method: req.method.clone(),
        path: req.path.split('?').next().unwrap_or("").to_string(),
        user_agent: req.user_agent.clone(),
        facts,
        tokens,
        status: ctx
            .status
            .or_else(|| ctx.error.as_ref().map(|e| e.status())),
        outcome,
        policy,
        mode: shared.config.mode,
        request_bytes: req.request_bytes as u64,
        response_bytes: ctx.response_bytes,
    })
}
