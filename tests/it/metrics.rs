//! Prometheus metrics through the real binary: each request counted once, bounded labels.

use crate::common::*;
use crate::mock;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_departed_clients_are_not_upstream_errors() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}limits:\n  max_body_bytes: 100\naudit:\n  database: {}/audit.db\n  flush_interval_ms: 20\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    let yori = Yori::start(&conf);
    let big = VENDORS[0].body(&"x".repeat(500), false);
    let r = post(yori.port, "/openai/v1/chat/completions", &[], big).await;
    assert_eq!(r.status, 413);
    let text = scrape_after_rows(yori.metrics_port, 1.0).await;
    assert_eq!(
        value(
            &text,
            r#"yori_requests_refused_total{kind="request_too_large",vendor="openai"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"yori_requests_total{outcome="refused",status_class="4xx",vendor="openai"}"#
        ),
        1.0
    );
    assert!(
        !text.contains("yori_upstream_errors_total{"),
        "no vendor failure was counted: {text}"
    );
}
