//! Household policies through the real binary: the same bedtime rule in each mode, blocks in each
//! vendor's shape, allowlist, consent, broken policies, counters that survive a restart.

use crate::common::*;
use rusqlite::Connection;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(mock: &Mock, dir: &tempfile::TempDir, extra: &str) -> String {
    format!(
        "{}audit:\n  database: {}/audit.db\n  flush_interval_ms: 20\ndevices:\n  - ip: 127.0.0.1\n    name: kids-laptop\n{extra}",
        endpoints_to(&mock.url()),
        dir.path().display()
    )
}

/// (event_type, policy_name, policy_result, policy_reason, response_status) of every row.
type PolicyRow = (String, Option<String>, String, Option<String>, i64);

fn rows(dir: &tempfile::TempDir, n: usize) -> Vec<PolicyRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<PolicyRow> = Connection::open(dir.path().join("audit.db"))
            .and_then(|c| {
                let mut s = c.prepare("SELECT event_type, policy_name, policy_result, policy_reason, response_status FROM audit_events ORDER BY id")?;
                let r = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect();
                r
            })
            .unwrap_or_default();
        if got.len() >= n || Instant::now() > deadline {
            assert_eq!(got.len(), n, "rows: {got:?}");
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_forwards_and_records_the_block_verdict() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start_at(&config(&mock, &dir, "mode: observe\n"), LATE);
    let r = openai_chat(yori.port, "hi").await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.requests().len(), 1);
    let got = rows(&dir, 1);
    assert_eq!(got[0].0, "request");
    assert_eq!(
        (got[0].1.as_deref(), got[0].2.as_str()),
        (Some("bedtime"), "block")
    );
    assert_eq!(
        got[0].3.as_deref(),
        Some("bedtime: no AI between 21:00 and 06:00")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_forwards_and_records_alerts() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start_at(&config(&mock, &dir, "mode: advisory\n"), NOON);
    let r = openai_chat(yori.port, "please do my homework").await;
    assert_eq!(r.status, 200);
    // the row is written once the inspection (on its own thread) is done: the next request's
    // row could otherwise come first
    rows(&dir, 1);
    let r = post(
        yori.port,
        "/anthropic/v1/messages",
        &[],
        VENDORS[1].body("my email is kid@example.com", false),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.requests().len(), 2);
    let got = rows(&dir, 2);
    assert_eq!(
        (got[0].1.as_deref(), got[0].2.as_str()),
        (Some("homework"), "alert")
    );
    assert_eq!(
        (got[1].1.as_deref(), got[1].2.as_str()),
        (Some("privacy"), "alert")
    );
    assert_eq!(
        got[1].3.as_deref(),
        Some("privacy: the prompt contains email")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_blocks_in_each_vendors_shape_and_the_vendor_sees_nothing() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start_at(
        &config(
            &mock,
            &dir,
            "mode: enforce\nenforcement:\n  consent_accepted: true\n",
        ),
        LATE,
    );
    for v in VENDORS.iter() {
        for stream in [false, true] {
            let path = if stream { v.stream_path } else { v.path };
            let r = post(
                yori.port,
                &format!("/{}{path}", v.name),
                &[],
                v.body("hi", stream),
            )
            .await;
            assert_eq!(r.status, 403, "{} stream={stream}", v.name);
            assert!(
                r.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "no stream started"
            );
            let j = r.json();
            let message = match v.name {
                "anthropic" => {
                    assert_eq!(
                        (j["type"].as_str(), j["error"]["type"].as_str()),
                        (Some("error"), Some("permission_error"))
                    );
                    j["error"]["message"].as_str()
                }
                "gemini" => {
                    assert_eq!(
                        (j["error"]["code"].as_u64(), j["error"]["status"].as_str()),
                        (Some(403), Some("PERMISSION_DENIED"))
                    );
                    j["error"]["message"].as_str()
                }
                _ => {
                    assert_eq!(
                        (j["error"]["type"].as_str(), j["error"]["code"].as_str()),
                        (Some("permission_error"), Some("policy_blocked"))
                    );
                    j["error"]["message"].as_str()
                }
            };
            // the device has a name (kids-laptop): the code names it and the policy
            let code = yori::policy::approvals::code("kids-laptop", "bedtime");
            assert_eq!(message, Some(format!("yori: blocked by household policy `bedtime`: bedtime: no AI between 21:00 and 06:00. To ask a parent, give them the code {code} (on the router: `yori allow {code} --for 30m`).").as_str()));
        }
    }
    assert!(
        mock.requests().is_empty(),
        "the vendor received nothing of a blocked request"
    );
    let got = rows(&dir, 8);
    assert!(
        got.iter()
            .all(|r| r.0 == "block" && r.2 == "block" && r.4 == 403),
        "{got:?}"
    );
    // a browser gets a page, not JSON
    let r = send(
        yori.port,
        "POST",
        "/openai/v1/chat/completions",
        &[("accept", "text/html,application/xhtml+xml")],
        VENDORS[0].body("hi", false),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("<b>bedtime</b>"), "{}", r.text());
    // the connection stays usable after a block
    assert_eq!(send(yori.port, "GET", "/health", &[], "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_devices_and_the_emergency_switch_are_forwarded_and_audited() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start_at(
        &config(
            &mock,
            &dir,
            "mode: enforce\nenforcement:\n  consent_accepted: true\n  allowlist: [kids-laptop]\n",
        ),
        LATE,
    );
    let r = openai_chat(yori.port, "hi").await;
    assert_eq!(r.status, 200);
    let got = rows(&dir, 1);
    drop(yori);
    assert_eq!((got[0].0.as_str(), got[0].2.as_str()), ("request", "block"));
    assert!(
        got[0]
            .3
            .as_deref()
            .unwrap_or("")
            .ends_with("not blocked: allowlisted device"),
        "{got:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start_at(
        &config(
            &mock,
            &dir,
            "mode: enforce\nenforcement:\n  consent_accepted: true\n  disabled: true\n",
        ),
        LATE,
    );
    assert_eq!(openai_chat(yori.port, "hi").await.status, 200);
    let got = rows(&dir, 1);
    assert!(
        got[0]
            .3
            .as_deref()
            .unwrap_or("")
            .ends_with("not blocked: enforcement disabled"),
        "{got:?}"
    );
    assert_eq!(mock.requests().len(), 2);
}

fn run_yori(args: &[&str], config_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("yori.conf");
    std::fs::write(&f, config_text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("-c").arg(&f).env("RUST_LOG", "off");
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enforce_without_consent_refuses_to_start() {
    let (code, err) = run_yori(
        &[],
        &format!("mode: enforce\nlisten: 127.0.0.1:{}\n", free_port()),
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("enforcement.consent_accepted: enforce mode blocks requests"),
        "{err}"
    );
}

#[test]
fn a_broken_policy_is_reported_with_file_and_line_by_check_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("curfew.rego"), "package yori.curfew\nimport rego.v1\n\ndecision := {\"action\": \"block\" \"reason\": \"x\"}\n").unwrap();
    let conf = format!(
        "policies:\n  directory: {}\nlisten: 127.0.0.1:{}\n",
        dir.path().display(),
        free_port()
    );
    for args in [&["check"][..], &[][..]] {
        let (code, err) = run_yori(args, &conf);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("curfew.rego:4"), "{args:?}: {err}");
    }
}

#[test]
fn policy_test_prints_the_decision_for_an_input_document() {
    let out = Command::new(BIN)
        .args([
            "policy",
            "test",
            "--input",
            "tests/fixtures/policy/homework_at_bedtime.json",
            "--policy",
            "homework",
        ])
        .env("YORI_CONFIG", "examples/yori.conf.example")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "alert");
    assert_eq!(v["policy"], "homework");
    let out = Command::new(BIN)
        .args(["policy", "test", "--input", "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_counters_survive_a_restart() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &mock,
        &dir,
        "mode: advisory\npolicies:\n  data:\n    high_usage:\n      max_requests_per_day: 3\n",
    );
    let yori = Yori::start(&conf);
    for _ in 0..3 {
        assert_eq!(openai_chat(yori.port, "what is rain").await.status, 200);
    }
    rows(&dir, 3);
    drop(yori);
    let yori = Yori::start(&conf);
    assert_eq!(openai_chat(yori.port, "what is snow").await.status, 200);
    let got = rows(&dir, 4);
    assert!(got[..3].iter().all(|r| r.2 == "allow"), "{got:?}");
    assert_eq!(
        (got[3].1.as_deref(), got[3].2.as_str()),
        (Some("high_usage"), "alert")
    );
    assert_eq!(
        got[3].3.as_deref(),
        Some("high usage: 4 requests today from kids-laptop (limit 3)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_alerts_reach_a_webhook_without_the_prompt() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = receiver.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = receiver.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // read until the whole JSON body is in
            while !String::from_utf8_lossy(&got).trim_end().ends_with('}') {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned()).await;
        }
    });
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &mock,
        &dir,
        &format!("mode: advisory\nalerts:\n  webhook_url: http://{hook}/hooks/yori\n"),
    );
    let yori = Yori::start(&conf);
    let r = openai_chat(yori.port, "finish my homework about SECRET-TOPIC-42").await;
    assert_eq!(r.status, 200);
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook called")
        .unwrap();
    assert!(got.starts_with("POST /hooks/yori HTTP/1.1"), "{got}");
    let body: serde_json::Value =
        serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        (
            body["type"].as_str(),
            body["policy"].as_str(),
            body["action"].as_str()
        ),
        (Some("yori.alert"), Some("homework"), Some("alert"))
    );
    assert_eq!(body["device"], "kids-laptop");
    assert!(
        !got.contains("SECRET-TOPIC-42"),
        "the prompt never leaves in an alert"
    );
    let delivered = r#"yori_alert_webhook_total{result="delivered"}"#;
    let text = scrape_when(yori.metrics_port, delivered, 1.0).await;
    assert_eq!(value(&text, delivered), 1.0, "{text}");
    assert_eq!(
        value(&text, r#"yori_alert_webhook_total{result="failed"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_alert_is_counted_as_failed() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &mock,
        &dir,
        &format!(
            "mode: advisory\nalerts:\n  webhook_url: http://127.0.0.1:{}/\n  retries: 0\n  timeout_ms: 200\n",
            free_port()
        ),
    );
    let yori = Yori::start(&conf);
    assert_eq!(openai_chat(yori.port, "homework help").await.status, 200);
    let failed = r#"yori_alert_webhook_total{result="failed"}"#;
    let text = scrape_when(yori.metrics_port, failed, 1.0).await;
    assert_eq!(value(&text, failed), 1.0, "{text}");
    assert_eq!(
        value(&text, r#"yori_alert_webhook_total{result="delivered"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_never_slows_or_fails_traffic() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &mock,
        &dir,
        &format!(
            "mode: advisory\nalerts:\n  webhook_url: http://127.0.0.1:{}/\n  retries: 10\n",
            free_port()
        ),
    );
    let yori = Yori::start(&conf);
    for _ in 0..5 {
        assert_eq!(openai_chat(yori.port, "homework help").await.status, 200);
    }
    assert_eq!(mock.requests().len(), 5);
}

fn write_policy(dir: &std::path::Path, action: &str) {
    std::fs::write(
        dir.join("gate.rego"),
        format!("package yori.gate\nimport rego.v1\ndecision := {{\"action\": \"{action}\", \"reason\": \"gate says {action}\"}}\n"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_policies_and_a_broken_one_keeps_the_old_set() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = tempfile::tempdir().unwrap();
    write_policy(pol.path(), "allow");
    let conf = config(
        &mock,
        &dir,
        &format!(
            "mode: enforce\nenforcement:\n  consent_accepted: true\npolicies:\n  directory: {}\n",
            pol.path().display()
        ),
    );
    let yori = Yori::start(&conf);
    let status = |port| async move { openai_chat(port, "hi").await.status };
    assert_eq!(status(yori.port).await, 200);

    write_policy(pol.path(), "block");
    yori.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(yori.port).await != 403 {
        assert!(
            Instant::now() < deadline,
            "reload never took effect:\n{}",
            yori.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // a syntax error: the running (blocking) set stays in force, and yori keeps running
    std::fs::write(
        pol.path().join("gate.rego"),
        "package yori.gate\ndecision := {\n",
    )
    .unwrap();
    yori.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(yori.port).await, 403);
    assert!(
        yori.log()
            .contains("reload failed, the running policies stay in force"),
        "{}",
        yori.log()
    );
    assert!(
        yori.log().contains("gate.rego:"),
        "the error names the file and line"
    );

    // the emergency switch is reloadable too
    write_policy(pol.path(), "block");
    std::fs::write(
        &yori.config,
        std::fs::read_to_string(&yori.config).unwrap().replace(
            "consent_accepted: true",
            "consent_accepted: true\n  disabled: true",
        ),
    )
    .unwrap();
    yori.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(yori.port).await != 200 {
        assert!(
            Instant::now() < deadline,
            "emergency switch never took effect:\n{}",
            yori.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `yori allow ...` with the config and the fixed clock `now`; (exit code, stdout + stderr).
fn allow(conf: &std::path::Path, now: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("-c")
        .arg(conf)
        .arg("allow")
        .args(args)
        .env("YORI_TEST_NOW", now)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parents_approval_unblocks_a_device_for_a_while_and_is_audited() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &mock,
        &dir,
        "mode: enforce\nenforcement:\n  consent_accepted: true\n",
    );
    let yori = Yori::start_at(&conf, LATE);
    let blocked = openai_chat(yori.port, "hi").await;
    assert_eq!(blocked.status, 403);
    let message = blocked.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let code = yori::policy::approvals::code("kids-laptop", "bedtime");
    assert!(message.contains(&code), "{message}");
    rows(&dir, 1);

    // a word that is neither a device, an IP nor a code
    let (status, text) = allow(&yori.config, LATE, &["XXXXXX", "--for", "30m"]);
    assert_eq!(status, Some(2), "{text}");
    let (status, text) = allow(&yori.config, LATE, &[&code, "--for", "30m"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains("kids-laptop may pass policy `bedtime` until 2026-12-01 23:00"),
        "{text}"
    );

    // within a few seconds the device passes, and the row says why
    until_status(&yori, 200, "never approved").await;
    let got = rows_until(&dir, |r| r.0 == "request");
    let approval = got
        .iter()
        .find(|r| r.0 == "approval")
        .expect("an approval row");
    assert_eq!(approval.1.as_deref(), Some("bedtime"));
    let passed = got.iter().find(|r| r.0 == "request").unwrap();
    assert_eq!(passed.0, "request");
    // the verdict stays on record (block), with why it was not enforced, as for the allowlist
    assert_eq!(passed.2, "block", "{got:?}");
    assert!(
        passed
            .3
            .as_deref()
            .is_some_and(|r| r.contains("approved by a parent (approval #1 until 23:00)")),
        "{got:?}"
    );
    let (_, listed) = allow(&yori.config, LATE, &["--list"]);
    assert!(
        listed.contains("kids-laptop") && listed.contains("active"),
        "{listed}"
    );
    drop(yori);

    // after its time, the block is back; a restart keeps approvals (they are in the database)
    let yori = Yori::start_at(&conf, "2026-12-01T22:45:00Z");
    until_status(&yori, 200, "the approval did not survive a restart").await;
    drop(yori);
    let yori = Yori::start_at(&conf, "2026-12-01T23:01:00Z");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(openai_chat(yori.port, "hi").await.status, 403, "expired");
    let (_, listed) = allow(&yori.config, "2026-12-01T23:01:00Z", &["--list"]);
    assert!(listed.contains("expired"), "{listed}");

    // revoked: at once blocked again (a fresh approval for every policy, then revoked)
    let (status, text) = allow(
        &yori.config,
        "2026-12-01T23:01:00Z",
        &["kids-laptop", "--for", "1h"],
    );
    assert_eq!(status, Some(0), "{text}");
    until_status(&yori, 200, "the second approval never took effect").await;
    let (status, text) = allow(&yori.config, "2026-12-01T23:01:00Z", &["--revoke", "2"]);
    assert_eq!(status, Some(0), "{text}");
    until_status(&yori, 403, "the revocation never took effect").await;
    let (status, _) = allow(&yori.config, "2026-12-01T23:01:00Z", &["--revoke", "2"]);
    assert_eq!(status, Some(2), "revoked once");
}

/// Every row, once one matches `wanted`.
/// Calls until one gets `want`, for at most 10 s (an approval is read every 2 s).
async fn until_status(yori: &Yori, want: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while openai_chat(yori.port, "hi").await.status != want {
        assert!(Instant::now() < deadline, "{what}:\n{}", yori.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rows_until(dir: &tempfile::TempDir, wanted: impl Fn(&PolicyRow) -> bool) -> Vec<PolicyRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<PolicyRow> = Connection::open(dir.path().join("audit.db"))
            .and_then(|c| {
                let mut s = c.prepare("SELECT event_type, policy_name, policy_result, policy_reason, response_status FROM audit_events ORDER BY id")?;
                let r = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, Option<i64>>(4)?.unwrap_or(0))))?.collect();
                r
            })
            .unwrap_or_default();
        if got.iter().any(&wanted) || Instant::now() > deadline {
            assert!(got.iter().any(&wanted), "rows: {got:?}");
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
