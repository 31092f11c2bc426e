//! The device side through the real binary: idle sockets and slow senders are closed at their
//! deadlines, connection caps hold, and the shared body budget refuses what would pass it, while
//! ordinary calls go on.

use crate::common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn config(mock: &Mock, limits: &str) -> String {
    format!("{}limits:\n{limits}", endpoints_to(&mock.url()))
}

/// A connection from `source` (any 127.0.0.0/8 address) to YORI.
async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse::<SocketAddr>().expect("addr"))
        .expect("bind");
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect")
}

/// Whether the server closes `s` within `limit`: a read that ends (EOF or reset).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn calls(port: u16, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = openai_chat(port, "what is rain").await;
        assert_eq!(r.status, 200, "{}", r.text());
        took.push(t.elapsed());
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_sockets_and_a_slowloris_are_closed_while_calls_go_on() {
    let mock = start_mock().await;
    let yori = Yori::start(&config(
        &mock,
        "  header_timeout_ms: 1500\n  keepalive_timeout_ms: 1000\n  max_connections: 1100\n  max_connections_per_client: 1100\n",
    ));
    let before = median(calls(yori.port, 20).await);

    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(connect_from("127.0.0.1", yori.port).await);
    }
    // one byte of a header every 200 ms: never a whole header
    let mut slow = connect_from("127.0.0.1", yori.port).await;
    slow.write_all(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let slowloris = tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                return Some(started.elapsed());
            }
            let mut buf = [0u8; 256];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
            {
                return Some(started.elapsed());
            }
        }
        None
    });
    // a kept-alive connection that goes quiet after one request
    let mut kept = TcpStream::connect(("127.0.0.1", yori.port)).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();

    // ordinary calls meanwhile: they all succeed (their latency is printed, not asserted)
    let during = median(calls(yori.port, 20).await);
    eprintln!("median call latency: before {before:?}, with 1000 idle sockets {during:?}");

    let deadline = Duration::from_secs(15);
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, deadline).await,
            "idle socket {i} still open"
        );
    }
    assert!(closed_within(&mut kept, deadline).await, "keep-alive idle");
    let slow_closed = slowloris.await.unwrap();
    assert!(slow_closed.is_some(), "the slowloris sender was never cut");

    let text = scrape_when(
        yori.metrics_port,
        r#"yori_device_timeouts_total{phase="first_bytes"}"#,
        1000.0,
    )
    .await;
    assert!(
        value(&text, r#"yori_device_timeouts_total{phase="header"}"#) >= 1.0,
        "{text}"
    );
    // and the gateway still answers
    assert_eq!(calls(yori.port, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_refuse_the_excess_and_recover() {
    let mock = start_mock().await;
    let yori = Yori::start(&config(
        &mock,
        "  max_connections: 5\n  max_connections_per_client: 3\n",
    ));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", yori.port).await);
    }
    // give the accept loop time to count them before the next one is judged
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = connect_from("127.0.0.2", yori.port).await;
    assert!(
        closed_within(&mut fourth, Duration::from_secs(5)).await,
        "a fourth connection from one client is refused"
    );
    for _ in 0..2 {
        held.push(connect_from("127.0.0.3", yori.port).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sixth = connect_from("127.0.0.4", yori.port).await;
    assert!(
        closed_within(&mut sixth, Duration::from_secs(5)).await,
        "a sixth connection in all is refused"
    );
    let text = scrape_when(
        yori.metrics_port,
        r#"yori_connections_refused_total{cap="max_connections"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(
            &text,
            r#"yori_connections_refused_total{cap="max_connections_per_client"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, "yori_connections_open"), 5.0, "{text}");
    drop(held);
    // the slots come back
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = partial_post(yori.port, 0, 0).await;
        if status_of(&mut s).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a header and `sent` of `declared` body bytes; returns the connection.
async fn partial_post(port: u16, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    if declared == 0 {
        // a whole small call
        let body = VENDORS[0].body("hi", false);
        let head = format!(
            "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        return s;
    }
    let head = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

async fn status_of(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_budget_and_the_body_timeout_hold() {
    let mock = start_mock().await;
    let yori = Yori::start(&config(
        &mock,
        "  max_buffered_body_bytes: 100000\n  body_timeout_ms: 3000\n",
    ));
    // JSON with leading spaces: a valid body once whole
    let body = VENDORS[0].body("hi", false);
    let declared = 95_000;
    let pad = declared - body.len();
    let mut first = partial_post(yori.port, declared, 60_000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 60 000 held: a second body of 50 000 would pass 100 000
    let mut second = partial_post(yori.port, 50_000, 0).await;
    second
        .write_all(format!("{}{body}", " ".repeat(50_000 - body.len())).as_bytes())
        .await
        .unwrap();
    let answer = status_of(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("gateway_busy"), "{answer}");
    // the first one finishes inside the budget
    first
        .write_all(format!("{}{body}", " ".repeat(pad - 60_000)).as_bytes())
        .await
        .unwrap();
    let answer = status_of(&mut first).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // a body that stops coming: 408 at the body timeout
    let mut stalled = partial_post(yori.port, 1000, 10).await;
    let answer = status_of(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let text = scrape_when(
        yori.metrics_port,
        r#"yori_device_timeouts_total{phase="body"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(&text, r#"yori_device_timeouts_total{phase="body"}"#),
        1.0
    );
}

/// A finished TLS handshake with YORI as `api.openai.com` (certificate not checked: this is
/// about the connection, not trust), or why it failed.
fn tls_handshake(port: u16) -> Result<openssl::ssl::SslStream<std::net::TcpStream>, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    b.build()
        .connect("api.openai.com", tcp)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_holds_the_same_caps_and_deadline_before_the_handshake() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let yori = Yori::start(&format!(
        "{}tls:\n  listen: 127.0.0.1:{tls_port}\n  ca_dir: {}/ca\nlimits:\n  header_timeout_ms: 1000\n  max_connections_per_client: 3\n",
        endpoints_to(&mock.url()),
        dir.path().display()
    ));
    // a socket that never sends its ClientHello: closed at the header timeout, not after
    // Pingora's 60 s handshake wait
    let mut silent = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(15)).await,
        "a silent TLS socket is held"
    );
    // three handshakes fit the per-client cap; the fourth connection is refused
    let held = tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..3).map(|_| tls_handshake(tls_port)).collect();
        (held, tls_handshake(tls_port))
    })
    .await
    .unwrap();
    for h in &held.0 {
        assert!(h.is_ok(), "{:?}", h.as_ref().err());
    }
    assert!(held.1.is_err(), "a fourth TLS connection from one client");
    let text = scrape_when(
        yori.metrics_port,
        r#"yori_connections_refused_total{cap="max_connections_per_client"}"#,
        1.0,
    )
    .await;
    assert!(
        value(&text, r#"yori_device_timeouts_total{phase="first_bytes"}"#) >= 1.0,
        "{text}"
    );
    // the held connections count as open, once each
    assert_eq!(value(&text, "yori_connections_open"), 3.0, "{text}");
}
