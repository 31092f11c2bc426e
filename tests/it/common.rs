//! Shared test harness: runs the real `yori` binary with a temp config against the in-process
//! mock vendor, and a small HTTP/1.1 client that timestamps every body chunk it receives.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mock;
pub(crate) use crate::mock::{Mock, MockOptions};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_yori");
/// Tests run at noon unless they say otherwise: the shipped bedtime rule must not depend on
/// when CI happens to run.
pub(crate) const NOON: &str = "2026-12-01T12:00:00Z";
pub(crate) const LATE: &str = "2026-12-01T22:30:00Z";

/// The four built-in vendors: name (path prefix), a request path, and the header that carries
/// the API key in that vendor's SDKs.
pub(crate) struct VendorCase {
    pub name: &'static str,
    pub domain: &'static str,
    pub path: &'static str,
    pub stream_path: &'static str,
    pub key_header: &'static str,
}

pub(crate) const VENDORS: [VendorCase; 4] = [
    VendorCase {
        name: "openai",
        domain: "api.openai.com",
        path: "/v1/chat/completions",
        stream_path: "/v1/chat/completions",
        key_header: "authorization",
    },
    VendorCase {
        name: "anthropic",
        domain: "api.anthropic.com",
        path: "/v1/messages",
        stream_path: "/v1/messages",
        key_header: "x-api-key",
    },
    VendorCase {
        name: "gemini",
        domain: "generativelanguage.googleapis.com",
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        stream_path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        key_header: "x-goog-api-key",
    },
    VendorCase {
        name: "mistral",
        domain: "api.mistral.ai",
        path: "/v1/chat/completions",
        stream_path: "/v1/chat/completions",
        key_header: "authorization",
    },
];

impl VendorCase {
    /// A request body in this vendor's format.
    pub(crate) fn body(&self, prompt: &str, stream: bool) -> String {
        let p = serde_json::to_string(prompt).unwrap_or_default();
        match self.name {
            "anthropic" => format!(
                r#"{{"model":"claude-sonnet-4","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":{p}}}]}}"#
            ),
            "gemini" => format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":{p}}}]}}]}}"#),
            _ => format!(
                r#"{{"model":"test-model","stream":{stream},"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":{p}}}]}}"#
            ),
        }
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub(crate) async fn start_mock() -> Mock {
    mock::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .expect("mock starts")
}

/// YAML routing all four vendors to `upstream`.
pub(crate) fn endpoints_to(upstream: &str) -> String {
    let mut s = String::from("endpoints:\n");
    for v in ["openai", "anthropic", "gemini", "mistral"] {
        s.push_str(&format!("  - vendor: {v}\n    upstream: {upstream}\n"));
    }
    s
}

pub(crate) struct Yori {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Yori {
    /// Starts yori with `extra` YAML (which must not set `listen` or `server`) and waits for
    /// /health. Panics with yori's output if it does not come up.
    pub(crate) fn start(extra: &str) -> Yori {
        Yori::start_at(extra, NOON)
    }

    /// Like `start`, with the policies' clock fixed at `now` (RFC 3339, local zone UTC).
    pub(crate) fn start_at(extra: &str, now: &str) -> Yori {
        Yori::launch(extra, now, &[])
    }

    /// Like `start`, with more environment for the binary (`RUST_LOG=debug`, say).
    pub(crate) fn start_env(extra: &str, env: &[(&str, &str)]) -> Yori {
        Yori::launch(extra, NOON, env)
    }

    fn launch(extra: &str, now: &str, env: &[(&str, &str)]) -> Yori {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let metrics_port = free_port();
        // each instance gets its own audit log unless the test names one
        let audit = if extra.contains("audit:") {
            String::new()
        } else {
            format!("audit:\n  database: {}/audit.db\n", dir.path().display())
        };
        // a test may bind its own listener (`listen: "[::]:{PORT}"`) on the port picked here
        let extra = extra.replace("{PORT}", &port.to_string());
        let listen = if extra.lines().any(|l| l.starts_with("listen:")) {
            String::new()
        } else {
            format!("listen: 127.0.0.1:{port}\n")
        };
        let yaml = format!(
            "{listen}metrics:\n  listen: 127.0.0.1:{metrics_port}\n{audit}{extra}\nserver:\n  pid_file: {d}/yori.pid\n  upgrade_sock: {d}/upgrade.sock\n  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 2\n",
            d = dir.path().display()
        );
        let config = dir.path().join("yori.conf");
        std::fs::write(&config, yaml).expect("write config");
        let log = std::fs::File::create(dir.path().join("yori.log")).expect("log file");
        let child = Command::new(BIN)
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("YORI_TEST_NOW", now)
            .env("TZ", "UTC")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn yori");
        let mut y = Yori {
            child,
            port,
            metrics_port,
            dir,
            config,
        };
        y.wait_ready();
        y
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("yori exited early ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("yori did not listen on {}:\n{}", self.port, self.log());
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("yori.log")).unwrap_or_default()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit and returns its code.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Yori {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGINT);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// A response as the client saw it, with when each body chunk arrived.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub chunks: Vec<(Duration, Bytes)>,
}

impl Resp {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request to 127.0.0.1:port and reads the whole response.
pub(crate) async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", format!("127.0.0.1:{port}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let started = Instant::now();
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut chunks = Vec::new();
    let mut all = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
            chunks.push((started.elapsed(), data));
        }
    }
    Resp {
        status,
        headers,
        body: Bytes::from(all),
        chunks,
    }
}

pub(crate) async fn post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    send(port, "POST", path, &h, body).await
}

/// A JSON chat in OpenAI's format through the `/openai` prefix, without extra headers.
pub(crate) async fn openai_chat(port: u16, prompt: &str) -> Resp {
    post(
        port,
        "/openai/v1/chat/completions",
        &[],
        VENDORS[0].body(prompt, false),
    )
    .await
}

/// Runs curl (for h2c and 100-continue, which the test client does not speak).
pub(crate) fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of one series (`name{labels}` as Prometheus prints it) in a metrics page; 0 when
/// absent.
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The metrics page once `series` reaches `at_least` (or after 10 s).
pub(crate) async fn scrape_when(port: u16, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = send(port, "GET", "/metrics", &[], "").await.text();
        if value(&t, series) >= at_least || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The metrics page once the audit writer has written `rows` rows (or after 10 s).
pub(crate) async fn scrape_after_rows(port: u16, rows: f64) -> String {
    scrape_when(port, "yori_audit_rows_written_total", rows).await
}
