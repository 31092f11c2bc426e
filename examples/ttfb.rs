//! Time to the first streamed event, as a device sees it: sends COUNT streamed chat requests one
//! after another (a new connection each, `Connection: close`) and times from the request's last
//! byte to the first `data:` byte of the answer. Used by `loadtest/compare.sh`, direct vs YORI.
//!
//!   cargo run --release --example ttfb -- ADDR PATH HOST [COUNT]
//!
//! Prints `p50_us p95_us p99_us max_us count`.

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ttfb ADDR PATH HOST [COUNT]");
        std::process::exit(2);
    }
    let (addr, path, host) = (&args[1], &args[2], &args[3]);
    let count: usize = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(200);
    let filler = "please summarise the water cycle for a school project. ".repeat(16);
    let body = format!(
        r#"{{"model":"gpt-4o-mini","stream":true,"messages":[{{"role":"user","content":"{filler}"}}]}}"#
    );
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nauthorization: Bearer sk-loadtest\r\nx-mock-delay-ms: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut times = Vec::with_capacity(count);
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..count {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.write_all(request.as_bytes()).expect("send");
        let sent = Instant::now();
        let mut seen = Vec::new();
        let mut first = None;
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if first.is_none() {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(5).any(|w| w == b"data:") {
                    first = Some(sent.elapsed());
                }
            }
        }
        match first {
            Some(t) => times.push(t),
            None => eprintln!("ttfb: an answer without a data: event"),
        }
    }
    times.sort();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "{} {} {} {} {}",
        at(0.50),
        at(0.95),
        at(0.99),
        times.last().map_or(0, |d| d.as_micros()),
        times.len()
    );
}
