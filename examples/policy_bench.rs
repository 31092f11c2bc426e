//! Policy evaluation cost per request, with the shipped set (5 policies).
//!
//!   cargo run --release --example policy_bench [-- ITERATIONS]
//!   THRASH_MB=32 cargo run --release --example policy_bench   # caches cold, as inside a busy proxy
//!
//! Times what the proxy does per request: build the input document, convert it for regorus, and
//! evaluate every policy and combine (median, p99, max over ITERATIONS, default 20,000), for a
//! plain prompt and for one that triggers alerts.

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use yori::kinds::Mode;
use yori::policy::counters::ClientUsage;
use yori::policy::input::{document, InputParts};
use yori::policy::{PolicySet, Source};
use yori::providers::Vendor;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let clock = yori::policy::clock::Clock::default();
    // ONLY=homework times one policy
    let only = std::env::var("ONLY").ok();
    let set =
        PolicySet::load(&Source::BuiltIn, None, &serde_json::json!({})).expect("shipped policies");
    let filler = "please summarise the water cycle for a school project. ".repeat(16);
    for (label, prompt) in [
        ("plain 1 KB prompt", filler.clone()),
        (
            "homework + e-mail prompt",
            format!("{filler} my homework, mail me at kid@example.com"),
        ),
    ] {
        let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are a tutor."}, {"role": "user", "content": prompt}]}).to_string();
        let facts = Vendor::OpenAi.request_facts("/v1/chat/completions", body.as_bytes());
        let mut times: Vec<Duration> = Vec::with_capacity(n);
        let mut last = None;
        let thrash = std::env::var("THRASH_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        let mut junk = vec![0u8; thrash.unwrap_or(0) << 20];
        for i in 0..n {
            if thrash.is_some() {
                // what the rest of a request does to the caches between two evaluations
                for j in (0..junk.len()).step_by(64) {
                    junk[j] = junk[j].wrapping_add(i as u8);
                }
            }
            let t = Instant::now();
            let input = document(
                &InputParts {
                    vendor: "openai",
                    endpoint: "api.openai.com",
                    method: "POST",
                    path: "/v1/chat/completions",
                    facts: &facts,
                    client_ip: Some("192.168.1.23".parse().unwrap()),
                    device: Some("kids-laptop"),
                    now: clock.now(),
                    usage: ClientUsage {
                        // a different count every time, as in a day of requests
                        requests_today: (i % 40) as u64,
                        requests_last_hour: 3,
                        tokens_today: 4000,
                        cost_today: 0.42,
                        cost_month: 7.5,
                    },
                    mode: Mode::Enforce,
                },
                set.reads(),
            );
            let v = set.evaluate(&input, only.as_deref());
            times.push(t.elapsed());
            last = Some(v);
        }
        std::hint::black_box(&junk);
        times.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{label:<26} {} policies: median {:.1} us  p99 {:.1} us  max {:.1} us  (n={n}; verdict {:?} by {:?})",
            set.names().len(),
            us(times[n / 2]),
            us(times[n * 99 / 100]),
            us(times[n - 1]),
            last.as_ref().map(|v| v.action),
            last.as_ref().and_then(|v| v.policy.clone())
        );
    }
}
