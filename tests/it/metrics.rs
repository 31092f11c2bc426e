//! Prometheus metrics through the real binary: each request counted once, bounded labels.

use crate::common::*;
use crate::mock;
use std::time::{Duration, Instant};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The metrics page once the audit writer has written `rows` rows (or after 10 s).
async fn scrape_after_rows(port: u16, rows: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = send(port, "GET", "/metrics", &[], "").await.text();
        if value(&t, "yori_audit_rows_written_total") >= rows || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_counted_once_with_bounded_labels() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}mode: enforce\nenforcement:\n  consent_accepted: true\naudit:\n  database: {}/audit.db\n  flush_interval_ms: 20\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    // the bedtime block, at night
    let yori = Yori::start_at(&conf, LATE);
    assert_eq!(
        post(
            yori.port,
            "/gemini/v1beta/models/g:generateContent",
            &[],
            VENDORS[2].body("hi", false)
        )
        .await
        .status,
        403
    );
    let text = scrape_after_rows(yori.metrics_port, 1.0).await;
    assert_eq!(
        value(
            &text,
            r#"yori_requests_total{outcome="blocked",status_class="4xx",vendor="gemini"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"yori_policy_decisions_total{action="block",policy="bedtime"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "yori_audit_rows_written_total"), 1.0);
    assert_eq!(value(&text, r#"yori_build_info{version="0.1.0"}"#), 1.0);
    assert!(
        !text.contains("127.0.0.1") && !text.contains("test-model"),
        "no IPs or model names in labels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_failed_tokens_and_overhead_are_counted() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}mode: advisory\nlimits:\n  read_timeout_ms: 300\naudit:\n  database: {}/audit.db\n  flush_interval_ms: 20\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    let yori = Yori::start(&conf);
    for _ in 0..2 {
        assert_eq!(openai_chat(yori.port, "hi").await.status, 200);
    }
    assert_eq!(
        post(
            yori.port,
            "/anthropic/v1/messages",
            &[],
            VENDORS[1].body("my homework please", true)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            yori.port,
            "/openai/v1/chat/completions",
            &[("x-mock-fail", "hang")],
            VENDORS[0].body("hi", false)
        )
        .await
        .status,
        504
    );
    let text = scrape_after_rows(yori.metrics_port, 4.0).await;
    assert_eq!(
        value(
            &text,
            r#"yori_requests_total{outcome="forwarded",status_class="2xx",vendor="openai"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"yori_requests_total{outcome="forwarded",status_class="2xx",vendor="anthropic"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"yori_requests_total{outcome="failed",status_class="5xx",vendor="openai"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"yori_upstream_errors_total{kind="upstream_timeout",vendor="openai"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"yori_tokens_total{direction="prompt",vendor="openai"}"#
        ),
        2.0 * mock::PROMPT_TOKENS as f64
    );
    assert_eq!(
        value(
            &text,
            r#"yori_policy_decisions_total{action="alert",policy="homework"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "yori_alerts_total"), 1.0);
    assert_eq!(
        value(&text, r#"yori_overhead_seconds_count{vendor="openai"}"#),
        3.0
    );
    assert_eq!(value(&text, "yori_policy_evaluation_seconds_count"), 4.0);
    assert_eq!(value(&text, "yori_audit_rows_written_total"), 4.0);
}
