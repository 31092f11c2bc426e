//! Hardening through the real binary: secrets in query strings, the admin Host check, hop-by-hop
//! fields, HTTP/2 cookies, HTTP/1.0 devices, protocol upgrades, cut answers, hostile paths.

use crate::common::*;
use rusqlite::Connection;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GEMINI_KEY: &str = "AIzaSyD-TEST-KEY-NEVER-LOGGED-41c9";

fn config(mock: &Mock, dir: &tempfile::TempDir, extra: &str) -> String {
    format!(
        "{}audit:\n  database: {}/audit.db\n  flush_interval_ms: 20\n{extra}",
        endpoints_to(&mock.url()),
        dir.path().display()
    )
}

/// (http_path, status, error_kind, policy_reason, event_type) of every row, once there are `n`.
type Row = (
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
);

fn rows(dir: &tempfile::TempDir, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Row> = Connection::open(dir.path().join("audit.db"))
            .and_then(|c| {
                let mut s = c.prepare(
                    "SELECT http_path, response_status, error_kind, policy_reason, event_type FROM audit_events ORDER BY id",
                )?;
                let r = s
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect();
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

/// Writes `request` on a fresh connection and reads until the server closes it (10 s at most).
async fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

fn head_of(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_query_reaches_the_vendor_and_nothing_else() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = tempfile::tempdir().unwrap();
    // a policy that echoes the path it is given into its reason
    std::fs::write(
        pol.path().join("echo.rego"),
        "package yori.echo\nimport rego.v1\ndecision := {\"action\": \"alert\", \"reason\": sprintf(\"path %s\", [input.request.path])}\n",
    )
    .unwrap();
    let conf = config(
        &mock,
        &dir,
        &format!(
            "mode: advisory\npolicies:\n  directory: {}\n",
            pol.path().display()
        ),
    );
    let yori = Yori::start_env(&conf, &[("RUST_LOG", "debug")]);
    let gemini = &VENDORS[2];
    let ok = format!("/gemini{}?key={GEMINI_KEY}", gemini.path);
    let r = post(yori.port, &ok, &[], gemini.body("hello", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // a stream the vendor cuts: Pingora's "Fail to proxy" line names the request
    let cut = format!("/gemini{}&key={GEMINI_KEY}", gemini.stream_path);
    let _ = post(
        yori.port,
        &cut,
        &[("x-mock-fail", "close")],
        gemini.body("hello", true),
    )
    .await;
    let got = rows(&dir, 2);
    let reason = got[0].3.clone().unwrap_or_default();
    assert!(reason.contains("key=REDACTED"), "{reason}");
    let seen = mock.requests();
    assert!(
        seen.iter().all(|r| r.path.contains(GEMINI_KEY)),
        "the vendor gets the real key: {seen:?}"
    );
    // the writer has flushed both rows; what the process logged so far is all it logs of them
    let log = yori.log();
    assert!(
        log.contains("key=REDACTED"),
        "Pingora's error line names the request, redacted:\n{log}"
    );
    for (what, text) in [("database", db_text(&dir)), ("log", log)] {
        assert!(!text.contains(GEMINI_KEY), "the key is in the {what}");
    }
}

/// Every text the database holds, as one string.
fn db_text(dir: &tempfile::TempDir) -> String {
    let c = Connection::open(dir.path().join("audit.db")).unwrap();
    let mut s = c
        .prepare("SELECT quote(http_path) || quote(policy_reason) || quote(notes) || quote(user_agent) || quote(prompt_preview) FROM audit_events")
        .unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_only_to_the_routers_own_names() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, "admin:\n  hosts: [yori.lan]\n"));
    let status = |host: &'static str, path: &'static str| {
        let port = yori.port;
        async move { send(port, "GET", path, &[("host", host)], "").await }
    };
    for host in ["127.0.0.1", "localhost:8080", "yori.lan", "[::1]"] {
        assert_eq!(status(host, "/api/stats").await.status, 200, "{host}");
    }
    for path in ["/api/stats", "/api/audit.csv", "/ca.crt"] {
        let r = status("rebind.attacker.example", path).await;
        assert_eq!(r.status, 421, "{path}");
        assert!(r.text().contains("admin.hosts"), "{}", r.text());
    }
    // vendor traffic does not care
    assert_eq!(openai_chat(yori.port, "hi").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_stay_on_their_hop_both_ways() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let body = VENDORS[0].body("hi", true);
    let request = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close, X-Device-Hop\r\nX-Device-Hop: 1\r\nKeep-Alive: timeout=30\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Mock-Hop: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = raw(yori.port, request.as_bytes()).await;
    let head = head_of(&response);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    for gone in ["keep-alive:", "x-vendor-hop", "connection: x-vendor-hop"] {
        assert!(!head.contains(gone), "{gone} reached the device:\n{head}");
    }
    let seen = mock.requests();
    let sent = &seen[0];
    for gone in ["x-device-hop", "keep-alive", "proxy-connection", "te"] {
        assert_eq!(sent.header(gone), None, "{gone} reached the vendor");
    }
    assert!(
        sent.header("connection")
            .is_none_or(|v| !v.contains("X-Device-Hop")),
        "{:?}",
        sent.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookie_fields_reach_the_vendor_as_one() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let body = VENDORS[0].body("hi", false);
    let (code, _, err) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "-H",
        "cookie: a=1",
        "-H",
        "cookie: b=2",
        "-d",
        &body,
        &yori.url("/openai/v1/chat/completions"),
    ]);
    assert_eq!(code, 0, "{err}");
    let seen = mock.requests();
    let cookies: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_device_gets_an_answer_framed_for_http10() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let body = VENDORS[0].body("hi", true);
    let request = format!(
        "POST /openai/v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // read_to_end returns: the end of the body is the end of the connection
    let response = raw(yori.port, request.as_bytes()).await;
    let head = head_of(&response);
    assert!(head.starts_with("http/1."), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    let text = String::from_utf8_lossy(&response);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.starts_with("data: "), "no chunk sizes: {body:?}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body:?}");
    assert_eq!(rows(&dir, 1)[0].1, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_refused_and_recorded() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let request = "GET /openai/v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let response = raw(yori.port, request.as_bytes()).await;
    let head = head_of(&response);
    assert!(head.starts_with("http/1.1 501"), "{head}");
    assert!(
        String::from_utf8_lossy(&response).contains("upgrade_refused"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(mock.requests().is_empty(), "nothing tunnels to the vendor");
    let got = rows(&dir, 1);
    assert_eq!(
        (got[0].1, got[0].2.as_deref()),
        (Some(501), Some("upgrade_refused"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_answer_never_looks_complete() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let files = tempfile::tempdir().unwrap();
    let mut n = 0;
    for stream in [false, true] {
        // a short body goes in one pass; a long one (> 64 KiB) through the subrequest
        for pad in [0usize, 70_000] {
            let body = VENDORS[0].body(&"x".repeat(pad), stream);
            let file = files.path().join(format!("body-{stream}-{pad}.json"));
            std::fs::write(&file, &body).unwrap();
            let data = format!("@{}", file.display());
            for way in [&[][..], &["--http2-prior-knowledge"][..]] {
                // -f: an error status is a failure too; only a 200 with a clean end is "whole"
                let mut args = way.to_vec();
                args.extend([
                    "-f",
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "x-mock-fail: close",
                    "--data-binary",
                    &data,
                ]);
                let url = yori.url("/openai/v1/chat/completions");
                args.push(&url);
                let (code, out, err) = curl(&args);
                assert_ne!(
                    code, 0,
                    "stream={stream} pad={pad} {way:?}: curl took a cut answer for whole: {out}"
                );
                assert!(!err.is_empty(), "curl says why");
                n += 1;
            }
            // on the wire (HTTP/1.1): a header, part of the body, and no final chunk
            let request = format!(
                "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Mock-Fail: close\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let response = raw(yori.port, request.as_bytes()).await;
            let head = head_of(&response);
            assert!(head.starts_with("http/1.1 "), "{head}");
            assert!(
                !head.starts_with("http/1.1 200") || !response.ends_with(b"0\r\n\r\n"),
                "stream={stream} pad={pad}: the cut answer ends with a clean terminator"
            );
            n += 1;
        }
    }
    let got = rows(&dir, n);
    for r in &got {
        assert_eq!(r.2.as_deref(), Some("upstream_broken"), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leading_slashes_collapse_and_dot_segments_are_refused() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    let body = VENDORS[0].body("hi", false);
    let r = post(yori.port, "//openai/v1/chat/completions", &[], body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
    for bad in [
        "/openai/v1/../v1/chat/completions",
        "/openai/v1/%2e%2e/chat/completions",
        "/openai/v1/.%2E%2fchat/completions",
    ] {
        let r = post(yori.port, bad, &[], body.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("dot-segment"), "{}", r.text());
    }
    assert_eq!(
        mock.requests().len(),
        1,
        "nothing with a dot-segment is sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_devices_with_the_allowlist_that_names_them() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = tempfile::tempdir().unwrap();
    std::fs::write(
        pol.path().join("gate.rego"),
        "package yori.gate\nimport rego.v1\ndecision := {\"action\": \"block\", \"reason\": \"closed\"}\n",
    )
    .unwrap();
    let before = format!(
        "mode: enforce\nenforcement:\n  consent_accepted: true\npolicies:\n  directory: {}\ndevices:\n  - ip: 127.0.0.1\n    name: old-laptop\n",
        pol.path().display()
    );
    let yori = Yori::start(&config(&mock, &dir, &before));
    assert_eq!(openai_chat(yori.port, "hi").await.status, 403);
    let after = std::fs::read_to_string(&yori.config).unwrap().replace(
        "consent_accepted: true\n",
        "consent_accepted: true\n  allowlist: [parents-mac]\n",
    );
    let after = after.replace("name: old-laptop", "name: parents-mac");
    std::fs::write(&yori.config, after).unwrap();
    yori.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while openai_chat(yori.port, "hi").await.status != 200 {
        assert!(Instant::now() < deadline, "never reloaded:\n{}", yori.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = Connection::open(dir.path().join("audit.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let devices: Vec<Option<String>> = c
            .prepare("SELECT client_device FROM audit_events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        if devices.last() == Some(&Some("parents-mac".into())) {
            assert_eq!(devices[0].as_deref(), Some("old-laptop"));
            break;
        }
        assert!(Instant::now() < deadline, "{devices:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    crate::mock::gzip_bytes(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_request_body_is_read_for_the_rules_and_forwarded_as_sent() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let pol = tempfile::tempdir().unwrap();
    std::fs::write(
        pol.path().join("words.rego"),
        "package yori.words\nimport rego.v1\ndecision := {\"action\": \"block\", \"reason\": \"forbidden topic\"} if contains(input.request.prompt, \"forbidden-topic\")\n",
    )
    .unwrap();
    let conf = config(
        &mock,
        &dir,
        &format!(
            "mode: enforce\nenforcement:\n  consent_accepted: true\npolicies:\n  directory: {}\n",
            pol.path().display()
        ),
    );
    let yori = Yori::start(&conf);
    let path = "/openai/v1/chat/completions";
    let gz = |h: &'static str| [("content-encoding", h)];
    // the rule sees through gzip: blocked, and the vendor gets nothing
    let packed = gzip(
        VENDORS[0]
            .body("tell me about forbidden-topic", false)
            .as_bytes(),
    );
    let r = post(yori.port, path, &gz("gzip"), packed).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(mock.requests().is_empty());
    // an allowed compressed body goes to the vendor byte for byte, still compressed
    let packed = gzip(VENDORS[0].body("what is rain", false).as_bytes());
    let r = post(yori.port, path, &gz("gzip"), packed.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.requests();
    assert_eq!(seen[0].body_sha256, crate::mock::sha256_hex(&packed));
    assert_eq!(seen[0].header("content-encoding"), Some("gzip"));
    // a body that cannot be read (a list of codings, a truncated stream) cannot be decided on
    for (enc, body) in [
        ("gzip, br", packed.clone()),
        ("gzip", packed[..packed.len() / 2].to_vec()),
    ] {
        let r = post(yori.port, path, &[("content-encoding", enc)], body).await;
        assert_eq!(r.status, 415, "{enc}: {}", r.text());
        assert!(r.text().contains("unreadable_body"), "{}", r.text());
    }
    assert_eq!(mock.requests().len(), 1);
    let got = rows(&dir, 4);
    assert_eq!(got[3].2.as_deref(), Some("unreadable_body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_listener_records_ipv4_clients_as_ipv4() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(
        &mock,
        &dir,
        "listen: \"[::]:{PORT}\"\ndevices:\n  - ip: 127.0.0.1\n    name: kids-laptop\n",
    ));
    assert_eq!(openai_chat(yori.port, "hi").await.status, 200);
    rows(&dir, 1);
    let c = Connection::open(dir.path().join("audit.db")).unwrap();
    let (ip, device): (String, Option<String>) = c
        .query_row(
            "SELECT client_ip, client_device FROM audit_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (ip.as_str(), device.as_deref()),
        ("127.0.0.1", Some("kids-laptop"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_prompts_are_scanned_within_bounds_and_recorded() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let yori = Yori::start(&config(&mock, &dir, ""));
    // 2 MiB of addresses: the scan stops at its bound, the row says so, the call goes through
    let flood = "a@b.cd ".repeat(300_000);
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[],
        VENDORS[0].body(&flood, false),
    )
    .await;
    assert_eq!(r.status, 200);
    rows(&dir, 1);
    // Arabic-Indic and fullwidth digits shaped like an SSN: text, not a crash
    let r = openai_chat(
        yori.port,
        "١٢٣-٤٥-٦٧٨٩ and １２３-４５-６７８９ and ١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    rows(&dir, 2);
    let c = Connection::open(dir.path().join("audit.db")).unwrap();
    let got: Vec<(Option<String>, Option<String>)> = c
        .prepare("SELECT notes, sensitive_kinds FROM audit_events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        got[0]
            .0
            .as_deref()
            .is_some_and(|n| n.contains("pii_scan_cut")),
        "{got:?}"
    );
    assert_eq!(got[0].1.as_deref(), Some("email"));
    assert_eq!(got[1].1, None, "non-ASCII digits are not an SSN: {got:?}");
    assert!(!yori.log().contains("panicked"), "{}", yori.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_shutdown_still_gets_its_row() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut yori = Yori::start(&config(&mock, &dir, ""));
    let port = yori.port;
    let stream = tokio::spawn(async move {
        post(
            port,
            "/openai/v1/chat/completions",
            &[("x-mock-delay-ms", "300"), ("x-mock-events", "100")],
            VENDORS[0].body("a long story", true),
        )
        .await
    });
    // the stream is under way
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stream never reached the vendor"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(openai_chat(port, "short").await.status, 200);
    yori.signal(libc::SIGTERM);
    assert_eq!(
        yori.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        yori.log()
    );
    let _ = stream.await;
    let got = rows(&dir, 2);
    let kinds: Vec<_> = got.iter().map(|r| r.2.as_deref()).collect();
    assert!(kinds.contains(&None), "the short call: {got:?}");
    assert!(
        kinds.contains(&Some("interrupted")),
        "the stream cut by the shutdown: {got:?}"
    );
}
