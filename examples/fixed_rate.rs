//! A fixed-rate load generator that does not omit delayed requests (latency-corrected, like
//! `oha -q RATE --latency-correction`): request i is due at start + i/RATE, and its latency is
//! measured from when it was due, not from when a connection was free to send it. So a stall
//! shows in the percentiles instead of slowing the generator down.
//!
//!   cargo run --release --example fixed_rate -- URL RATE SECONDS [CONNS] [HOST] [STREAM]
//!   cargo run --release --example fixed_rate -- http://127.0.0.1:8443/openai/v1/chat/completions 200 10
//!
//! Sends the ~1 KB chat POST of `loadtest/post.lua` over CONNS (default 10) keep-alive
//! connections and prints `p50_us p90_us p99_us p999_us max_us sent ok errors`.

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Option<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: fixed_rate URL RATE SECONDS [CONNS] [HOST] [STREAM]");
        std::process::exit(2);
    }
    let uri: http::Uri = args[1].parse().expect("URL");
    let rate: f64 = args[2].parse().expect("RATE");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let conns: usize = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(10);
    let addr = uri.authority().expect("URL with host:port").to_string();
    let host = args
        .get(5)
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or_else(|| addr.clone());
    let stream = args.get(6).is_some_and(|s| s == "1");
    let filler = "please summarise the water cycle for a school project. ".repeat(16);
    let body = Bytes::from(format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"messages":[{{"role":"system","content":"You are a tutor."}},{{"role":"user","content":"{filler}"}}]}}"#
    ));
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..conns {
        if let Some(s) = connect(&addr).await {
            pool.lock().await.push(s);
        }
    }
    let free = Arc::new(tokio::sync::Semaphore::new(conns));
    let total = (rate * seconds) as usize;
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    // the schedule is kept by a thread of its own (tokio's timer ticks in milliseconds, too
    // coarse for sub-millisecond latencies); each request is then due at its slot
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
    let std_start = start.into_std();
    std::thread::spawn(move || {
        for i in 0..total {
            let due = std_start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send(Instant::from_std(due)).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(total);
    while let Some(due) = due_rx.recv().await {
        let (pool, free, errors, body, host, path, addr) = (
            pool.clone(),
            free.clone(),
            errors.clone(),
            body.clone(),
            host.clone(),
            uri.path().to_string(),
            addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = free.acquire().await.unwrap();
            let mut sender = match pool.lock().await.pop() {
                Some(s) if !s.is_closed() => s,
                _ => match connect(&addr).await {
                    Some(s) => s,
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                },
            };
            let req = http::Request::post(&path)
                .header("host", &host)
                .header("content-type", "application/json")
                .header("authorization", "Bearer sk-loadtest-not-a-real-key")
                .body(Full::new(body))
                .unwrap();
            let ok = match sender.send_request(req).await {
                Ok(resp) => {
                    let good = resp.status().is_success();
                    good && resp.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            };
            let took = due.elapsed();
            if ok {
                pool.lock().await.push(sender);
                Some(took)
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(total);
    for t in tasks {
        if let Ok(Some(d)) = t.await {
            lat.push(d);
        }
    }
    lat.sort();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "{} {} {} {} {} {} {} {}",
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        lat.last().map_or(0, |d| d.as_micros()),
        total,
        lat.len(),
        errors.load(Ordering::Relaxed)
    );
}
