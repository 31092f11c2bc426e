//! Running it for real: graceful stop under load and Pingora's zero-downtime upgrade, through
//! the real binary. Both check the audit log: every answered request has its row.

use crate::common::*;
use rusqlite::Connection;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(mock: &Mock, dir: &std::path::Path) -> String {
    format!(
        "{}audit:\n  database: {}/audit.db\n  flush_interval_ms: 5000\n  batch_size: 100000\n",
        endpoints_to(&mock.url()),
        dir.display()
    )
}

/// Rows of exchanges answered 200 without an error.
fn answered_rows(db: &std::path::Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit_events WHERE response_status = 200 AND error_kind IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Clients that keep sending JSON and streamed chats until `stop`; counts complete 200 answers
/// in `ok` and everything else in `failed`.
fn load(
    port: u16,
    clients: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let v = &VENDORS[i % 4];
                    let stream = i % 3 == 0;
                    let path =
                        format!("/{}{}", v.name, if stream { v.stream_path } else { v.path });
                    let headers: &[(&str, &str)] = if stream {
                        &[("x-mock-delay-ms", "60"), ("x-mock-events", "4")]
                    } else {
                        &[]
                    };
                    let done = tokio::time::timeout(
                        Duration::from_secs(10),
                        try_post(port, &path, headers, v.body("keep going", stream)),
                    )
                    .await;
                    match done {
                        Ok(Some(200)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // refused or cut while a listener goes away: no answer
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    i += clients;
                }
            })
        })
        .collect()
}

/// One request on a new connection; `None` if the connection or the answer failed.
async fn try_post(port: u16, path: &str, headers: &[(&str, &str)], body: String) -> Option<u16> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(bytes::Bytes::from(body))).ok()?)
        .await
        .ok()?;
    let status = resp.status().as_u16();
    // the whole body, or it does not count as answered
    resp.into_body().collect().await.ok()?;
    Some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_under_load_loses_no_audit_row() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut yori = Yori::start(&config(&mock, dir.path()));
    let (stop, ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients = load(yori.port, 12, stop.clone(), ok.clone(), Arc::default());
    let started = Instant::now();
    while ok.load(Ordering::Relaxed) < 150 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGTERM with requests and streams in flight, and rows still queued (5 s flush interval)
    yori.signal(libc::SIGTERM);
    assert_eq!(
        yori.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        yori.log()
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answered = ok.load(Ordering::Relaxed) as i64;
    assert!(answered >= 150, "the load ran: {answered}");
    let good = answered_rows(&dir.path().join("audit.db"));
    assert_eq!(
        good,
        answered,
        "one row for every answered request:\n{}",
        yori.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hands_over_the_listener_and_the_old_process_finishes_its_streams() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut old = Yori::start(&config(&mock, dir.path()));
    let port = old.port;
    // a long stream on the old process, still flowing when the handover starts: 12 events 250 ms
    // apart. (After sending the sockets, Pingora lets the old process serve 5 s more, then
    // closes its listeners and gives in-flight requests the grace period.)
    let v = &VENDORS[1];
    let long = tokio::spawn(async move {
        post(
            port,
            &format!("/{}{}", v.name, v.stream_path),
            &[("x-mock-delay-ms", "250"), ("x-mock-events", "12")],
            v.body("a long story", true),
        )
        .await
    });
    let (stop, ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let failed = Arc::new(AtomicUsize::new(0));
    let clients = load(port, 4, stop.clone(), ok.clone(), failed.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // the new binary waits for the sockets; SIGQUIT makes the old one send them and stop
    let log = std::fs::File::create(dir.path().join("new.log")).unwrap();
    let mut new = Command::new(BIN)
        .arg("-c")
        .arg(&old.config)
        .arg("-u")
        .env("RUST_LOG", "info")
        .env("YORI_TEST_NOW", NOON)
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::Relaxed);
    old.signal(libc::SIGQUIT);
    assert_eq!(
        old.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        old.log()
    );
    let after_old = ok.load(Ordering::Relaxed);
    // the new process keeps answering on the same port after the old one is gone
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok.load(Ordering::Relaxed) < after_old + 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let new_log = std::fs::read_to_string(dir.path().join("new.log")).unwrap_or_default();
    assert!(
        ok.load(Ordering::Relaxed) >= after_old + 40,
        "the new process serves the port (answered {before} before, {after_old} at the handover):\n{new_log}"
    );
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new process runs:\n{new_log}"
    );

    let streamed = long.await.unwrap();
    assert_eq!(streamed.status, 200);
    let last = streamed.chunks.last().map(|c| c.0).unwrap_or_default();
    assert!(
        last >= Duration::from_millis(2500),
        "the stream spanned the handover: {last:?}"
    );
    assert_eq!(
        streamed
            .text()
            .matches("event: content_block_delta")
            .count(),
        12,
        "the old process finished the stream it had: {}",
        streamed.text()
    );

    // the old process flushed its rows on the way out; the new one flushes at its stop
    unsafe { libc::kill(new.id() as i32, libc::SIGTERM) };
    let code = new.wait().unwrap().code();
    assert_eq!(code, Some(0), "{new_log}");
    let good = answered_rows(&dir.path().join("audit.db"));
    assert_eq!(
        good,
        ok.load(Ordering::Relaxed) as i64 + 1,
        "a row for every answered request and the long stream, across both processes"
    );
}

#[test]
fn daemon_mode_writes_the_pid_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = dir.path().join("yori.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmetrics:\n  listen: 127.0.0.1:{metrics}\naudit:\n  database: {d}/audit.db\nserver:\n  pid_file: {d}/yori.pid\n  upgrade_sock: {d}/up.sock\n  error_log: {d}/error.log\n  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 2\n"
        ),
    )
    .unwrap();
    // the launching process returns once the daemon is on its own (rc.d relies on this)
    let status = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .arg("-d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid_file = dir.path().join("yori.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no daemon with a pid file came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // a failing assertion below must not leave the daemon running
    struct StopOnDrop(i32);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0, libc::SIGINT) };
        }
    }
    let _guard = StopOnDrop(pid);
    assert_eq!(
        unsafe { libc::kill(pid, 0) },
        0,
        "the pid file names a live process"
    );
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
