//! Every Prometheus metric YORI exports, defined once. Served by a Pingora service on
//! `metrics.listen` from the default registry. Labels are bounded: vendor ids, outcomes, status
//! classes, policy file names, error codes; never models, IPs or prompts.

use crate::kinds::Outcome;
use crate::report::Report;
use once_cell::sync::Lazy;
use prometheus::{
    register_counter_vec, register_histogram, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, CounterVec, Histogram,
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];
/// From 5 us: a policy evaluation or YORI's own time is a few microseconds.
const FAST_BUCKETS: &[f64] = &[
    0.000005, 0.0000075, 0.00001, 0.000015, 0.00002, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

#[allow(clippy::panic)]
fn must<T>(r: prometheus::Result<T>, name: &str) -> T {
    // registration only fails on a duplicate name, which is a programming error caught by tests
    r.unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

pub(crate) static BUILD_INFO: Lazy<IntGaugeVec> = Lazy::new(|| {
    must(
        register_int_gauge_vec!(
            "yori_build_info",
            "YORI build information (always 1)",
            &["version"]
        ),
        "build_info",
    )
});

pub(crate) static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_requests_total",
            "Vendor requests by vendor, outcome (forwarded, blocked, refused, failed) and status class",
            &["vendor", "outcome", "status_class"]
        ),
        "requests",
    )
});

pub(crate) static REQUEST_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    must(
        register_histogram_vec!(
            "yori_request_duration_seconds",
            "Whole exchange as the client saw it",
            &["vendor"],
            LATENCY_BUCKETS.to_vec()
        ),
        "duration",
    )
});

pub(crate) static OVERHEAD: Lazy<HistogramVec> = Lazy::new(|| {
    must(
        register_histogram_vec!(
            "yori_overhead_seconds",
            "YORI's own time per forwarded exchange: total minus the time spent waiting on the vendor",
            &["vendor"],
            FAST_BUCKETS.to_vec()
        ),
        "overhead",
    )
});

pub(crate) static FIRST_BYTE: Lazy<HistogramVec> = Lazy::new(|| {
    must(
        register_histogram_vec!(
            "yori_time_to_first_byte_seconds",
            "From request start to the vendor's response header",
            &["vendor"],
            LATENCY_BUCKETS.to_vec()
        ),
        "first_byte",
    )
});

pub(crate) static TOKENS: Lazy<CounterVec> = Lazy::new(|| {
    must(
        register_counter_vec!(
            "yori_tokens_total",
            "Tokens by vendor and direction (prompt, response)",
            &["vendor", "direction"]
        ),
        "tokens",
    )
});

pub(crate) static UPSTREAM_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_upstream_errors_total",
            "Exchanges the vendor side failed, by vendor and kind (upstream_unreachable, upstream_timeout, upstream_broken)",
            &["vendor", "kind"]
        ),
        "upstream_errors",
    )
});

pub(crate) static CONNECTIONS_OPEN: Lazy<IntGauge> = Lazy::new(|| {
    must(
        register_int_gauge!(
            "yori_connections_open",
            "Device connections open now (both listeners)"
        ),
        "connections_open",
    )
});

pub(crate) static CONNECTIONS_REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_connections_refused_total",
            "Device connections closed at once, by the cap they would pass (max_connections, max_connections_per_client)",
            &["cap"]
        ),
        "connections_refused",
    )
});

pub(crate) static DEVICE_TIMEOUTS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_device_timeouts_total",
            "Connections closed because a device was too slow, by phase (first_bytes, header, body)",
            &["phase"]
        ),
        "device_timeouts",
    )
});

pub(crate) static SEND_PATHS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_vendor_sends_total",
            "Requests sent to a vendor, by path (one_pass: body up to 64 KiB through Pingora's own path; subrequest: longer bodies replayed)",
            &["path"]
        ),
        "send_paths",
    )
});

pub(crate) static REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_requests_refused_total",
            "Vendor requests YORI refused itself, by vendor and kind (request_too_large, bad_request)",
            &["vendor", "kind"]
        ),
        "refused",
    )
});

pub(crate) static POLICY_DECISIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_policy_decisions_total",
            "Winning policy verdicts by policy and action",
            &["policy", "action"]
        ),
        "policy_decisions",
    )
});

pub(crate) static POLICY_EVAL: Lazy<Histogram> = Lazy::new(|| {
    must(
        register_histogram!(
            "yori_policy_evaluation_seconds",
            "Time to evaluate all policies for one request",
            FAST_BUCKETS.to_vec()
        ),
        "policy_eval",
    )
});

pub(crate) static POLICY_ERRORS: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_policy_errors_total",
            "Policy evaluations that failed (the request was allowed)"
        ),
        "policy_errors",
    )
});

pub(crate) static APPROVED: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_approved_requests_total",
            "Requests a block verdict would have stopped, let through by a parent's approval"
        ),
        "approved",
    )
});

pub(crate) static ALERTS: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!("yori_alerts_total", "Alerts raised"),
        "alerts",
    )
});

pub(crate) static ALERT_WEBHOOK: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_alert_webhook_total",
            "Webhook deliveries by result (delivered, failed, dropped)",
            &["result"]
        ),
        "webhook",
    )
});

pub(crate) static AUDIT_WRITTEN: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_audit_rows_written_total",
            "Audit rows committed to SQLite"
        ),
        "audit_written",
    )
});

pub(crate) static AUDIT_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_audit_rows_dropped_total",
            "Audit rows lost (queue full, or database unusable)"
        ),
        "audit_dropped",
    )
});

pub(crate) static AUDIT_QUEUE: Lazy<IntGauge> = Lazy::new(|| {
    must(
        register_int_gauge!("yori_audit_queue_rows", "Audit rows waiting to be written"),
        "audit_queue",
    )
});

pub(crate) static AUDIT_WRITE: Lazy<Histogram> = Lazy::new(|| {
    must(
        register_histogram!(
            "yori_audit_batch_write_seconds",
            "Time to commit one batch of audit rows",
            FAST_BUCKETS.to_vec()
        ),
        "audit_write",
    )
});

pub(crate) static AUDIT_ERRORS: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_audit_write_errors_total",
            "Failed audit batch writes (rows kept for retry)"
        ),
        "audit_errors",
    )
});

pub(crate) static RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_config_reloads_total",
            "SIGHUP reloads by result (ok, failed)",
            &["result"]
        ),
        "reloads",
    )
});

pub(crate) static TLS_REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    must(
        register_int_counter_vec!(
            "yori_tls_handshakes_refused_total",
            "TLS handshakes refused by reason (unknown_name: SNI is not an enabled endpoint, no_sni)",
            &["reason"]
        ),
        "tls_refused",
    )
});

pub(crate) static TLS_ISSUED: Lazy<IntCounter> = Lazy::new(|| {
    must(
        register_int_counter!(
            "yori_tls_certificates_issued_total",
            "Leaf certificates issued by the local CA (at start and on renewal)"
        ),
        "tls_issued",
    )
});

/// Registers every metric so a scrape shows them all from the start (zeros included).
pub(crate) fn init(version: &str) {
    BUILD_INFO.with_label_values(&[version]).set(1);
    Lazy::force(&REQUESTS);
    Lazy::force(&REQUEST_DURATION);
    Lazy::force(&OVERHEAD);
    Lazy::force(&FIRST_BYTE);
    Lazy::force(&TOKENS);
    Lazy::force(&UPSTREAM_ERRORS);
    Lazy::force(&REFUSED);
    Lazy::force(&SEND_PATHS);
    Lazy::force(&CONNECTIONS_OPEN);
    Lazy::force(&CONNECTIONS_REFUSED);
    Lazy::force(&DEVICE_TIMEOUTS);
    Lazy::force(&POLICY_DECISIONS);
    Lazy::force(&POLICY_EVAL);
    Lazy::force(&POLICY_ERRORS);
    Lazy::force(&ALERTS);
    Lazy::force(&APPROVED);
    Lazy::force(&ALERT_WEBHOOK);
    Lazy::force(&AUDIT_WRITTEN);
    Lazy::force(&AUDIT_DROPPED);
    Lazy::force(&AUDIT_QUEUE);
    Lazy::force(&AUDIT_WRITE);
    Lazy::force(&AUDIT_ERRORS);
    Lazy::force(&RELOADS);
    Lazy::force(&TLS_REFUSED);
    Lazy::force(&TLS_ISSUED);
}

pub(crate) fn status_class(status: Option<u16>) -> &'static str {
    match status.unwrap_or(0) {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Counts one finished vendor exchange from its report (called once per exchange).
pub(crate) fn exchange(r: &Report) {
    let vendor = r.vendor.as_str();
    REQUESTS
        .with_label_values(&[vendor, r.outcome.as_str(), status_class(r.status)])
        .inc();
    REQUEST_DURATION
        .with_label_values(&[vendor])
        .observe(r.duration.as_secs_f64());
    if let Some(fb) = r.first_byte {
        FIRST_BYTE
            .with_label_values(&[vendor])
            .observe(fb.as_secs_f64());
    }
    if let Some(own) = r.overhead() {
        OVERHEAD
            .with_label_values(&[vendor])
            .observe(own.as_secs_f64());
    }
    if let Some(t) = r.tokens {
        TOKENS
            .with_label_values(&[vendor, "prompt"])
            .inc_by(t.prompt as f64);
        TOKENS
            .with_label_values(&[vendor, "response"])
            .inc_by(t.response as f64);
    }
    if let Some(path) = r.send_path {
        SEND_PATHS.with_label_values(&[path.as_str()]).inc();
    }
    match r.outcome {
        Outcome::Failed(kind) => UPSTREAM_ERRORS
            .with_label_values(&[vendor, kind.as_str()])
            .inc(),
        Outcome::Refused(kind) => REFUSED.with_label_values(&[vendor, kind.as_str()]).inc(),
        Outcome::Forwarded | Outcome::Blocked | Outcome::ClientClosed => {}
    }
    POLICY_DECISIONS
        .with_label_values(&[
            r.policy.name.as_deref().unwrap_or("none"),
            r.policy.action.as_str(),
        ])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{ErrorKind, Mode};
    use crate::providers::Vendor;
    use crate::report::PolicyOutcome;
    use std::time::Duration;

    fn report(outcome: Outcome, duration_us: u64, wait_us: u64) -> Report {
        Report {
            request_id: "t".into(),
            started_at: chrono::Utc::now(),
            duration: Duration::from_micros(duration_us),
            first_byte: None,
            vendor_wait: Some(Duration::from_micros(wait_us)),
            client_ip: None,
            device: None,
            // only this test counts openai_compatible exchanges
            vendor: Vendor::OpenAiCompatible,
            endpoint: "llm.lan".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            user_agent: None,
            facts: None,
            tokens: None,
            cost_usd: None,
            status: Some(200),
            outcome,
            send_path: None,
            policy: PolicyOutcome::default(),
            mode: Mode::Observe,
            request_bytes: 0,
            response_bytes: 0,
            notes: Vec::new(),
        }
    }

    #[test]
    fn overhead_below_a_millisecond_is_measured_and_outcomes_are_labelled_once() {
        let v = Vendor::OpenAiCompatible.as_str();
        exchange(&report(Outcome::Forwarded, 1_200, 900));
        exchange(&report(Outcome::ClientClosed, 800, 500));
        let h = OVERHEAD.with_label_values(&[v]);
        assert_eq!(h.get_sample_count(), 2);
        // 300 us + 300 us: sub-millisecond durations are not truncated to 0 or 1 ms
        assert!(
            (h.get_sample_sum() - 0.0006).abs() < 1e-9,
            "{}",
            h.get_sample_sum()
        );
        let count = |o: &str| REQUESTS.with_label_values(&[v, o, "2xx"]).get();
        assert_eq!((count("forwarded"), count("client_closed")), (1, 1));
        assert_eq!(
            UPSTREAM_ERRORS
                .with_label_values(&[v, ErrorKind::ClientClosed.as_str()])
                .get(),
            0,
            "a device leaving is not a vendor failure"
        );
    }

    /// The example Grafana dashboard queries only metrics YORI defines, and shows every one.
    #[test]
    fn grafana_dashboard_matches_the_metrics() {
        let re = regex::Regex::new(r#""(yori_[a-z_]+)""#).unwrap();
        let defined: std::collections::BTreeSet<String> = re
            .captures_iter(include_str!("metrics.rs"))
            .map(|c| c[1].to_string())
            .collect();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../examples/grafana-dashboard.json")).unwrap();
        let used_re = regex::Regex::new(r"yori_[a-z_]+").unwrap();
        let mut used = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                for m in used_re.find_iter(t["expr"].as_str().unwrap()) {
                    let name = m.as_str();
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s).filter(|b| defined.contains(*b)))
                        .unwrap_or(name);
                    assert!(defined.contains(base), "dashboard queries unknown {name}");
                    used.insert(base.to_string());
                }
            }
        }
        let unused: Vec<_> = defined.difference(&used).collect();
        // issued certificates are a start-up count: the README table covers it
        assert_eq!(
            unused,
            ["yori_tls_certificates_issued_total"],
            "not on the dashboard"
        );
    }
}
