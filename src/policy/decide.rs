//! One request through the household policies: the input document, the policy set, the default
//! verdict, then the mode gate. Usable from the request task or a task of its own.

use super::approvals::Approvals;
use super::clock::Clock;
use super::counters::UsageCounters;
use super::gate::{gate, Gated};
use super::input::{document, InputParts};
use super::live::LiveSettings;
use crate::inspect::facts::RequestFacts;
use crate::kinds::{Action, Mode};
use crate::metrics;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What the policies are asked about.
pub struct Request<'a> {
    /// Vendor id (`openai`, ...).
    pub vendor: &'a str,
    /// The endpoint's domain.
    pub endpoint: &'a str,
    pub method: &'a str,
    /// The vendor path.
    pub path: &'a str,
    pub facts: &'a RequestFacts,
    pub client_ip: Option<IpAddr>,
    pub device: Option<&'a str>,
}

pub struct Decider {
    pub mode: Mode,
    pub live: Arc<LiveSettings>,
    pub counters: UsageCounters,
    pub clock: Arc<Clock>,
    /// The parents' active approvals (refreshed by the audit side).
    pub approvals: Arc<Approvals>,
}

impl Decider {
    /// Runs the live policy set on `r` and gates the verdict by mode.
    pub fn decide(&self, r: &Request<'_>) -> Gated {
        let now = self.clock.now();
        let live = self.live.get();
        let input = document(
            &InputParts {
                vendor: r.vendor,
                endpoint: r.endpoint,
                method: r.method,
                path: r.path,
                facts: r.facts,
                client_ip: r.client_ip,
                device: r.device,
                now,
                usage: r
                    .client_ip
                    .map(|ip| self.counters.get(ip, now))
                    .unwrap_or_default(),
                mode: self.mode,
            },
            live.policies.reads(),
        );
        let timer = Instant::now();
        let mut verdict = live.policies.evaluate(&input, None);
        metrics::POLICY_EVAL.observe(timer.elapsed().as_secs_f64());
        metrics::POLICY_ERRORS.inc_by(verdict.errors.len() as u64);
        if verdict.policy.is_none() && verdict.action < live.default {
            verdict.action = live.default;
        }
        for e in &verdict.errors {
            log::warn!("policy evaluation failed, request allowed error={e:?}");
        }
        let allowlisted = r.client_ip.is_some_and(|ip| live.allowlist.contains(&ip));
        let mut g = gate(self.mode, verdict, allowlisted, live.disabled);
        if g.block {
            let approval =
                self.approvals
                    .active(r.device, r.client_ip, g.verdict.policy.as_deref(), now);
            if let Some(a) = approval {
                g.approve(a.id, a.expires_at.format("%H:%M").to_string());
                metrics::APPROVED.inc();
            }
        }
        if g.alert || g.block {
            log::warn!(
                "policy {} policy={} client={} device={} vendor={} reason={:?}",
                if g.block {
                    Action::Block
                } else {
                    Action::Alert
                },
                g.verdict.policy.as_deref().unwrap_or("-"),
                r.client_ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
                r.device.unwrap_or("-"),
                r.vendor,
                g.recorded_reason().unwrap_or_default()
            );
        }
        g
    }
}
