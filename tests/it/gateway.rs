//! Gateway core through the real binary: routing, byte-identical forwarding, streaming, errors.

use crate::common::*;
use crate::mock;
use std::time::Duration;

const KEY: &str = "sk-test-DO-NOT-STORE-5f2b9c";

fn key_value(v: &VendorCase) -> String {
    if v.key_header == "authorization" {
        format!("Bearer {KEY}")
    } else {
        KEY.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_json_is_forwarded_unchanged_with_prefix_stripped() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    for (i, v) in VENDORS.iter().enumerate() {
        let body = v.body("what is 2+2?", false);
        let key = key_value(v);
        let resp = post(
            yori.port,
            &format!("/{}{}", v.name, v.path),
            &[(v.key_header, &key), ("user-agent", "test-sdk/1.0")],
            body.clone(),
        )
        .await;
        assert_eq!(resp.status, 200, "{}: {}", v.name, resp.text());
        let got = resp.json();
        assert!(
            got.to_string().contains("hello"),
            "{}: vendor answer reached the client: {got}",
            v.name
        );

        let seen = mock.requests();
        assert_eq!(
            seen.len(),
            i + 1,
            "{}: exactly one request reached the mock",
            v.name
        );
        let r = &seen[i];
        assert_eq!(r.method, "POST", "{}: method unchanged", v.name);
        assert_eq!(
            r.path, v.path,
            "{}: prefix stripped, path otherwise unchanged",
            v.name
        );
        assert_eq!(
            r.host, v.domain,
            "{}: Host rewritten to the vendor domain",
            v.name
        );
        assert_eq!(
            r.header(v.key_header),
            Some(key.as_str()),
            "{}: auth header forwarded",
            v.name
        );
        assert_eq!(r.header("user-agent"), Some("test-sdk/1.0"));
        assert_eq!(
            r.body_sha256,
            mock::sha256_hex(body.as_bytes()),
            "{}: identical body",
            v.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_streams_events_as_they_come() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    for v in VENDORS.iter() {
        // 5 deltas, 150 ms before each event: a buffering proxy would deliver all at the end
        let resp = post(
            yori.port,
            &format!("/{}{}", v.name, v.stream_path),
            &[("x-mock-delay-ms", "150"), ("x-mock-events", "5")],
            v.body("count to five", true),
        )
        .await;
        assert_eq!(resp.status, 200, "{}: {}", v.name, resp.text());
        assert!(resp
            .headers
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/event-stream")));
        let text = resp.text();
        assert_eq!(
            text.matches("hello").count(),
            5,
            "{}: all deltas arrived: {text}",
            v.name
        );
        let first = resp.chunks.first().map(|c| c.0).unwrap_or_default();
        let last = resp.chunks.last().map(|c| c.0).unwrap_or_default();
        assert!(
            resp.chunks.len() >= 3,
            "{}: the stream arrived in pieces, got {}",
            v.name,
            resp.chunks.len()
        );
        // the shortest stream (Gemini: 5 events, 150 ms apart) spans 600 ms from first to last
        // event; a buffering proxy would deliver them together (~0 ms)
        assert!(
            last - first >= Duration::from_millis(400),
            "{}: first event at {first:?}, last at {last:?}",
            v.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_host_and_default_vendor_route_without_prefix() {
    let mock = start_mock().await;
    let yori = Yori::start(&format!(
        "{}default_vendor: mistral\n",
        endpoints_to(&mock.url())
    ));
    let v = &VENDORS[1];
    let resp = post(
        yori.port,
        v.path,
        &[("host", "api.anthropic.com")],
        v.body("hi", false),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = post(
        yori.port,
        "/v1/chat/completions",
        &[],
        VENDORS[3].body("hi", false),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = mock.requests();
    assert_eq!(
        (seen[0].host.as_str(), seen[0].path.as_str()),
        ("api.anthropic.com", "/v1/messages")
    );
    assert_eq!(
        (seen[1].host.as_str(), seen[1].path.as_str()),
        ("api.mistral.ai", "/v1/chat/completions")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_megabyte_body_arrives_byte_identical() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u32 = 12345;
    while big.len() < 3 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push((x >> 16) as u8);
    }
    let sum = mock::sha256_hex(&big);
    let resp = post(yori.port, "/openai/v1/chat/completions", &[], big).await;
    assert_eq!(resp.status, 200);
    let seen = mock.requests();
    assert_eq!(seen[0].body_len, 3 << 20);
    assert_eq!(seen[0].body_sha256, sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_and_paths_are_refused_and_never_forwarded() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    for (host, path) in [
        ("evil.example.com", "/v2/anything"),
        ("169.254.169.254", "/latest/meta-data/"),
        ("127.0.0.1", "/"),
    ] {
        let resp = send(yori.port, "GET", path, &[("host", host)], "").await;
        assert_eq!(resp.status, 404, "{host}{path}");
        assert!(resp.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not an open proxy")));
    }
    // an absolute-form request (forward proxy style) is not proxied either
    let resp = send(yori.port, "GET", "http://example.com/", &[], "").await;
    assert!(matches!(resp.status, 400 | 404), "got {}", resp.status);
    assert!(mock.requests().is_empty(), "the mock saw nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_vendor_host_gets_421() {
    let mock = start_mock().await;
    let yori = Yori::start(&format!(
        "endpoints:\n  - vendor: openai\n    enabled: false\n  - vendor: anthropic\n    upstream: {}\n",
        mock.url()
    ));
    let resp = post(
        yori.port,
        "/v1/chat/completions",
        &[("host", "api.openai.com")],
        VENDORS[0].body("hi", false),
    )
    .await;
    assert_eq!(resp.status, 421);
    assert!(mock.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_above_limit_gets_413_in_vendor_shape() {
    let mock = start_mock().await;
    let yori = Yori::start(&format!(
        "{}limits:\n  max_body_bytes: 1000\n",
        endpoints_to(&mock.url())
    ));
    let big = "x".repeat(1001);
    let r = post(yori.port, "/anthropic/v1/messages", &[], big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    let r = post(yori.port, "/openai/v1/chat/completions", &[], big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    // exactly at the limit still passes
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[],
        "y".repeat(1000),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mock.requests().len(),
        1,
        "only the in-limit request reached the mock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_vendor_is_502_in_each_vendor_shape() {
    // a port with nothing listening
    let dead = format!("http://127.0.0.1:{}", free_port());
    let yori = Yori::start(&endpoints_to(&dead));
    for v in VENDORS.iter() {
        let r = post(
            yori.port,
            &format!("/{}{}", v.name, v.path),
            &[],
            v.body("hi", false),
        )
        .await;
        assert_eq!(r.status, 502, "{}", v.name);
        let j = r.json();
        match v.name {
            "anthropic" => assert_eq!(
                (j["type"].as_str(), j["error"]["type"].as_str()),
                (Some("error"), Some("api_error"))
            ),
            "gemini" => assert_eq!(
                (j["error"]["code"].as_u64(), j["error"]["status"].as_str()),
                (Some(502), Some("UNAVAILABLE"))
            ),
            _ => assert_eq!(j["error"]["code"], "upstream_unreachable"),
        }
        assert!(
            j["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("could not be reached")),
            "{}: {j}",
            v.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_vendor_is_504_after_read_timeout() {
    let mock = start_mock().await;
    let yori = Yori::start(&format!(
        "{}limits:\n  read_timeout_ms: 500\n",
        endpoints_to(&mock.url())
    ));
    for v in [&VENDORS[0], &VENDORS[2]] {
        let r = post(
            yori.port,
            &format!("/{}{}", v.name, v.path),
            &[("x-mock-fail", "hang")],
            v.body("hi", false),
        )
        .await;
        assert_eq!(r.status, 504, "{}", v.name);
        let j = r.json();
        if v.name == "gemini" {
            assert_eq!(j["error"]["status"], "DEADLINE_EXCEEDED");
        } else {
            assert_eq!(j["error"]["code"], "upstream_timeout");
        }
    }
    // the proxy still serves afterwards
    assert_eq!(send(yori.port, "GET", "/health", &[], "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_errors_pass_through_unchanged() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[("x-mock-fail", "429")],
        VENDORS[0].body("hi", false),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["message"], "mock rate limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_and_expect_continue_work() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    let body = VENDORS[0].body("over h2c", false);
    let (code, out, err) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &yori.url("/openai/v1/chat/completions"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("chat.completion"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    let big = format!(
        "{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(200_000)
    );
    std::fs::write(&file, &big).unwrap();
    let data = format!("@{}", file.display());
    let (code, out, err) = curl(&[
        "-H",
        "Expect: 100-continue",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &data,
        "-w",
        "\n%{http_code}",
        &yori.url("/mistral/v1/chat/completions"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("200"), "{out}");
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body_sha256, mock::sha256_hex(body.as_bytes()));
    assert_eq!(seen[1].body_sha256, mock::sha256_hex(big.as_bytes()));
    assert_eq!(
        seen[1].header("expect"),
        None,
        "yori answered 100-continue itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_responses_reach_the_client_intact() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[("x-mock-gzip", "1"), ("accept-encoding", "gzip")],
        VENDORS[0].body("hi", false),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("")),
        Some("gzip")
    );
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain)
        .expect("valid gzip");
    assert!(plain.contains("chat.completion"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_stream_and_vendor_cutting_the_stream_do_not_hurt_the_proxy() {
    let mock = start_mock().await;
    let yori = Yori::start(&endpoints_to(&mock.url()));
    // client hangs up after the first bytes of a slow stream
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = VENDORS[1].body("long story", true);
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", yori.port))
            .await
            .unwrap();
        let req = format!("POST /anthropic/v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-mock-delay-ms: 100\r\nx-mock-events: 50\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
    }
    // the vendor cuts its stream half way
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[
            ("x-mock-fail", "close"),
            ("x-mock-events", "6"),
            ("x-mock-delay-ms", "30"),
        ],
        VENDORS[0].body("hi", true),
    )
    .await;
    assert_eq!(r.status, 200, "the header had gone out before the cut");
    assert!(
        !r.text().contains("[DONE]"),
        "the client sees the stream end early"
    );
    // and the proxy keeps serving
    for _ in 0..3 {
        let r = openai_chat(yori.port, "hi").await;
        assert_eq!(r.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_on_any_host() {
    let yori = Yori::start("");
    for host in ["api.openai.com", "router.lan"] {
        let r = send(yori.port, "GET", "/health", &[("host", host)], "").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            serde_json::json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_openai_compatible_endpoint_by_prefix_and_host_with_base_path() {
    let mock = start_mock().await;
    let yori = Yori::start(&format!(
        "endpoints:\n  - vendor: openai_compatible\n    name: ollama\n    domain: ollama.home.lan\n    upstream: {}/proxy-base\n",
        mock.url()
    ));
    let r = post(
        yori.port,
        "/ollama/v1/chat/completions",
        &[],
        VENDORS[0].body("hi", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(yori.port, "/v1/models", &[("host", "ollama.home.lan")], "").await;
    assert_eq!(r.status, 200);
    let seen = mock.requests();
    assert_eq!(seen[0].path, "/proxy-base/v1/chat/completions");
    assert_eq!(seen[0].host, "ollama.home.lan");
    assert_eq!(seen[1].path, "/proxy-base/v1/models");
}

/// A chat body of exactly `n` bytes.
fn body_of(n: usize) -> String {
    let shell = r#"{"model":"m","messages":[{"role":"user","content":""}]}"#;
    let pad = "p".repeat(n - shell.len());
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{pad}"}}]}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_at_the_retry_buffer_edge_take_the_right_path_byte_identical() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}audit:\n  database: {}/audit.db\n  flush_interval_ms: 20\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    let yori = Yori::start(&conf);
    let file = dir.path().join("body.json");
    let url = yori.url("/openai/v1/chat/completions");
    // each size, with Content-Length, chunked, over h2c, and with Expect: 100-continue
    let ways: [&[&str]; 4] = [
        &[],
        &["-H", "Transfer-Encoding: chunked"],
        &["--http2-prior-knowledge"],
        &["-H", "Expect: 100-continue"],
    ];
    let mut sent = 0;
    for n in [65_535, 65_536, 65_537] {
        let body = body_of(n);
        assert_eq!(body.len(), n);
        std::fs::write(&file, &body).unwrap();
        let data = format!("@{}", file.display());
        for way in ways {
            let mut args: Vec<&str> = way.to_vec();
            args.extend([
                "-H",
                "content-type: application/json",
                "--data-binary",
                &data,
            ]);
            args.extend(["-w", "\n%{http_code}", &url]);
            let (code, out, err) = curl(&args);
            assert_eq!(code, 0, "{n} {way:?}: {err}");
            assert!(out.ends_with("200"), "{n} {way:?}: {out}");
            sent += 1;
            let seen = mock.requests();
            assert_eq!(seen.len(), sent);
            let r = &seen[sent - 1];
            assert_eq!(r.body_len, n, "{way:?}");
            assert_eq!(
                r.body_sha256,
                mock::sha256_hex(body.as_bytes()),
                "{n} {way:?}"
            );
            assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
            assert_eq!(
                r.header("transfer-encoding"),
                None,
                "exact framing upstream"
            );
            assert_eq!(
                r.header("expect"),
                None,
                "yori answered 100-continue itself"
            );
            assert_eq!(r.host, "api.openai.com");
        }
    }
    let text = scrape_after_rows(yori.metrics_port, 12.0).await;
    assert_eq!(
        value(&text, r#"yori_vendor_sends_total{path="one_pass"}"#),
        8.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"yori_vendor_sends_total{path="subrequest"}"#),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_limits_hold_on_both_paths_and_the_vendor_sees_nothing() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}mode: enforce\nenforcement:\n  consent_accepted: true\nlimits:\n  max_body_bytes: 100000\naudit:\n  database: {}/audit.db\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    );
    // the shipped bedtime rule blocks at night
    let yori = Yori::start_at(&conf, LATE);
    for n in [1_000, 65_536, 65_537, 99_999] {
        let r = post(yori.port, "/openai/v1/chat/completions", &[], body_of(n)).await;
        assert_eq!(r.status, 403, "{n}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "policy_blocked");
    }
    let r = post(
        yori.port,
        "/openai/v1/chat/completions",
        &[],
        body_of(100_001),
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(mock.requests().is_empty(), "nothing reached the vendor");
}
