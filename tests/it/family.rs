//! Family features through the real binary: what each call cost, in rows, stats and policies.

use crate::common::*;
use crate::mock::{COMPLETION_TOKENS_PER_EVENT, PROMPT_TOKENS};
use rusqlite::Connection;
use std::time::{Duration, Instant};

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"what is rain"}}]}}"#)
}

/// (model, cost_usd, policy_name, policy_reason) of a row.
type CostRow = (Option<String>, Option<f64>, Option<String>, Option<String>);

/// Every row, once there are `n`.
fn rows(dir: &tempfile::TempDir, n: usize) -> Vec<CostRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<_> = Connection::open(dir.path().join("audit.db"))
            .and_then(|c| {
                let mut s = c.prepare("SELECT model, cost_usd, policy_name, policy_reason FROM audit_events ORDER BY id")?;
                let r = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect();
                r
            })
            .unwrap_or_default();
        if got.len() >= n || Instant::now() > deadline {
            assert_eq!(got.len(), n, "{got:?}");
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_gets_a_cost_and_a_budget_rule_reads_it() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}audit:\n  database: {}/audit.db\n  flush_interval_ms: 20\ndevices:\n  - ip: 127.0.0.1\n    name: kids-laptop\nmode: advisory\npricing:\n  openai:\n    house-model: {{input: 1000, output: 2000}}\npolicies:\n  data:\n    budget:\n      max_cost_per_day: 0.02\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    let yori = Yori::start(&conf);
    let path = "/openai/v1/chat/completions";
    let models = [
        "gpt-4o-2024-08-06",
        "unpriced-model",
        "house-model",
        "gpt-4o",
    ];
    for (i, model) in models.into_iter().enumerate() {
        let r = post(yori.port, path, &[], chat(model)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // a call is counted (cost included) just before its row is written: once the row is
        // in, the next call's policies see it
        rows(&dir, i + 1);
    }
    let got = rows(&dir, 4);
    let completion = (3 * COMPLETION_TOKENS_PER_EVENT) as f64;
    let gpt4o = (PROMPT_TOKENS as f64 * 2.5 + completion * 10.0) / 1e6;
    let house = (PROMPT_TOKENS as f64 * 1000.0 + completion * 2000.0) / 1e6;
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
    assert!(
        close(got[0].1, gpt4o),
        "a dated snapshot is priced: {got:?}"
    );
    assert_eq!(
        got[1].1, None,
        "an unpriced model is unknown, not free: {got:?}"
    );
    assert!(
        close(got[2].1, house),
        "a config entry prices a model: {got:?}"
    );
    // by the fourth call the device has spent more than $0.02 today: the budget rule says so
    assert_eq!(got[3].2.as_deref(), Some("budget"), "{got:?}");
    assert!(
        got[3]
            .3
            .as_deref()
            .is_some_and(|r| r.starts_with("budget: kids-laptop spent $0.03")),
        "{got:?}"
    );
    let stats = send(yori.port, "GET", "/api/stats", &[], "").await.json();
    let total = stats["totals"]["cost_usd"].as_f64().unwrap();
    assert!((total - (2.0 * gpt4o + house)).abs() < 1e-9, "{stats}");
    assert_eq!(stats["totals"]["unpriced"], 1);
    assert!(
        (stats["by_device"][0]["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9,
        "{stats}"
    );
    assert_eq!(
        stats["last_31d_by_device_and_day"][0]["device"],
        "kids-laptop"
    );
    assert_eq!(stats["last_31d_by_day"][0]["requests"], 4);
}
