//! The exchange's report, built from the request's ctx once, in `logging()`: by the subrequest
//! for forwarded requests, by the parent for vendor requests it answered itself.

use super::ctx::{Leg, RequestCtx};
use super::Shared;
use crate::kinds::Outcome;
use crate::policy::gate::Gated;
use crate::report::{PolicyOutcome, Report, SendPath};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Unique across restarts: 64 random bits drawn when the process starts, then a counter. (Start
/// time and pid were not: a restart within the same second can get the same pid back.)
pub(super) fn request_id() -> String {
    use once_cell::sync::Lazy;
    static BOOT: Lazy<String> = Lazy::new(boot_id);
    format!("{}-{:x}", *BOOT, SEQ.fetch_add(1, Ordering::Relaxed))
}

/// 64 random bits as hex (the system's random source, through OpenSSL); the clock and the pid
/// if it fails.
fn boot_id() -> String {
    let mut b = [0u8; 8];
    if openssl::rand::rand_bytes(&mut b).is_ok() {
        return format!("{:016x}", u64::from_le_bytes(b));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

fn policy_outcome(g: &Gated) -> PolicyOutcome {
    PolicyOutcome {
        name: g.verdict.policy.clone(),
        action: g.verdict.action,
        reason: g.recorded_reason(),
    }
}

/// The report of a vendor exchange, once `ctx.end` was called; `None` for contexts that do not
/// record one (edges, the long-body parent).
pub(crate) fn build(shared: &Shared, ctx: &RequestCtx) -> Option<Report> {
    if !ctx.records() {
        return None;
    }
    let req = ctx.request()?;
    let endpoint = shared.config.endpoint(req.endpoint);
    let (facts, policy) = match &ctx.leg {
        Leg::Local(l) => (l.facts.clone(), l.policy.as_ref()),
        _ => match ctx.exchange() {
            Some(x) => match x.inspection.get() {
                Some(i) => (Some(i.facts.clone()), Some(&i.verdict)),
                None => (None, None),
            },
            None => (None, None),
        },
    };
    let tokens = ctx
        .usage
        .as_ref()
        .map(|t| t.tokens(facts.as_ref().map_or(0, |f| f.text_chars)));
    let cost_usd = tokens.and_then(|t| {
        shared.config.pricing.cost(
            endpoint.vendor.as_str(),
            facts.as_ref().and_then(|f| f.model.as_deref()),
            t.prompt,
            t.response,
        )
    });
    let outcome = ctx.outcome().unwrap_or(Outcome::Forwarded);
    let mut notes = Vec::new();
    if facts.as_ref().is_some_and(|f| f.scan_cut) {
        notes.push("pii_scan_cut");
    }
    if facts.as_ref().is_some_and(|f| f.body_unread) {
        notes.push("request_unread");
    }
    if ctx.usage.as_ref().is_some_and(|t| t.unread) {
        notes.push("usage_unread");
    }
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
            .and_then(|ip| shared.decider.live.get().devices.get(&ip).cloned()),
        vendor: endpoint.vendor,
        endpoint: endpoint.domain.clone(),
        method: req.method.clone(),
        path: req.path.split('?').next().unwrap_or("").to_string(),
        user_agent: req.user_agent.clone(),
        facts,
        tokens,
        cost_usd,
        status: ctx.status,
        outcome,
        send_path: match ctx.leg {
            Leg::OnePass(_) => Some(SendPath::OnePass),
            Leg::Subrequest(_) => Some(SendPath::Subrequest),
            _ => None,
        },
        policy: policy.map(policy_outcome).unwrap_or_default(),
        mode: shared.config.mode,
        request_bytes: req.request_bytes as u64,
        response_bytes: ctx.response_bytes,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_never_repeat_within_or_across_processes() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert_eq!(
            a.split('-').next(),
            b.split('-').next(),
            "one prefix per process"
        );
        // what a restart draws: a fresh random prefix every time
        let boots: std::collections::HashSet<String> = (0..64).map(|_| boot_id()).collect();
        assert_eq!(boots.len(), 64);
        assert_eq!(boot_id().len(), 16);
    }
}
