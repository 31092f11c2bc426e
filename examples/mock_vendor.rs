//! A runnable mock of OpenAI, Anthropic, Gemini and Mistral for demos and load tests.
//!
//!   cargo run --release --example mock_vendor -- [--listen 127.0.0.1:9999] [--delay-ms N] [--events N]
//!   cargo run --release -- -c examples/demo.yaml        # YORI routing every vendor to it
//!   curl -s localhost:8443/openai/v1/chat/completions -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
//!   curl -sN localhost:8443/anthropic/v1/messages -H 'x-mock-delay-ms: 200' \
//!        -d '{"model":"claude-sonnet-4","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
//!
//! Per-request headers steer it: x-mock-delay-ms, x-mock-events, x-mock-fail (500, 429, close,
//! hang), x-mock-gzip. See tests/it/mock.rs.

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// the demo serves the mock; the tests alone read what it recorded
#[allow(dead_code)]
#[path = "../tests/it/mock.rs"]
mod mock;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: mock_vendor [--listen ADDR] [--delay-ms N] [--events N]");
        return;
    }
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:9999".into());
    let options = mock::MockOptions {
        delay_ms: arg(&args, "--delay-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        events: arg(&args, "--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        keep_bodies: false,
    };
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("mock_vendor: `{listen}` is not an ip:port address");
            std::process::exit(2);
        }
    };
    let threads = arg(&args, "--threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        eprintln!("mock_vendor: cannot start a tokio runtime");
        std::process::exit(1);
    };
    rt.block_on(async move {
        match mock::start(addr, options).await {
            Ok(m) => {
                println!("mock vendor listening on {}", m.addr);
                // keep the record small in long runs: this binary never reads it
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if let Ok(mut r) = m.received.lock() {
                        r.clear();
                    }
                }
            }
            Err(e) => {
                eprintln!("mock_vendor: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    });
}
