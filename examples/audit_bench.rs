//! Audit benchmark: batch writer throughput and admin-query latency on 1,000 and 100,000 rows.
//!
//!   cargo run --release --example audit_bench [-- ROWS]
//!
//! Writes ROWS (default 200,000) realistic rows through the same `insert_batch` the writer
//! service uses, in its default 512-row transactions, in a temp folder, and prints rows/s and
//! the cost per row; then times `/api/stats`' and `/api/audit`'s queries (median and max of 20).

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use yori::audit::query::{self, Filter};
use yori::audit::{store, AuditRow};
use yori::providers::Vendor;

fn row(i: u64) -> AuditRow {
    let vendors = [
        ("api.openai.com", Vendor::OpenAi),
        ("api.anthropic.com", Vendor::Anthropic),
        ("generativelanguage.googleapis.com", Vendor::Gemini),
        ("api.mistral.ai", Vendor::Mistral),
    ];
    let (endpoint, vendor) = vendors[(i % 4) as usize];
    let minute = i % (60 * 24 * 30);
    AuditRow {
        timestamp: format!("2026-11-{:02}T{:02}:{:02}:00.000Z", 1 + minute / 1440, (minute / 60) % 24, minute % 60),
        client_ip: Some(format!("192.168.1.{}", 10 + i % 6)),
        client_device: Some(format!("device-{}", i % 6)),
        endpoint: Some(endpoint.into()),
        vendor: Some(vendor),
        http_method: "POST".into(),
        http_path: "/v1/chat/completions".into(),
        model: Some("gpt-4o-mini".into()),
        stream: i.is_multiple_of(2),
        message_count: Some(3),
        prompt_preview: Some(format!("please help me with my homework question number {i}, it is about the water cycle and how clouds form over the ocean")),
        prompt_chars: Some(120),
        prompt_tokens: Some(30),
        response_status: Some(200),
        response_tokens: Some(250),
        response_duration_ms: 900,
        first_byte_ms: Some(120),
        request_bytes: 1024,
        response_bytes: 4096,
        user_agent: Some("OpenAI/Python 1.55.0".into()),
        request_id: format!("bench-{i:x}"),
        ..AuditRow::default()
    }
}

fn time_query(label: &str, mut f: impl FnMut() -> usize) {
    let mut t: Vec<Duration> = (0..20)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f());
            s.elapsed()
        })
        .collect();
    t.sort();
    println!(
        "  {label:<38} median {:>8.3} ms   max {:>8.3} ms",
        t[10].as_secs_f64() * 1e3,
        t[19].as_secs_f64() * 1e3
    );
}

fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("yori-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("audit.db");
    let mut conn = store::open_writer(&path).expect("open");
    let batch: Vec<AuditRow> = (0..512).map(row).collect();
    let start = Instant::now();
    let mut written = 0;
    let mut marks = Vec::new();
    while written < rows {
        let n = (rows - written).min(512) as usize;
        let mut b = batch[..n].to_vec();
        for (k, r) in b.iter_mut().enumerate() {
            *r = row(written + k as u64);
        }
        store::insert_batch(&mut conn, &b).expect("insert");
        written += n as u64;
        if written == 1000 || written == 1024 || written == 100_352 {
            marks.push(written);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("writer: {rows} rows in {secs:.2} s = {:.0} rows/s, {:.2} us per row (512-row transactions, WAL, synchronous=NORMAL)", rows as f64 / secs, secs * 1e6 / rows as f64);
    drop(conn);

    for n in [1_000u64, 100_000] {
        if n > rows {
            continue;
        }
        let sub = dir.join(format!("audit-{n}.db"));
        let mut c = store::open_writer(&sub).expect("open");
        for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
            let b: Vec<AuditRow> = chunk.iter().map(|i| row(*i)).collect();
            store::insert_batch(&mut c, &b).expect("insert");
        }
        drop(c);
        let r = store::open_reader(&sub).expect("reader");
        println!("queries on {n} rows:");
        time_query("/api/stats", || {
            query::stats(&r).map(|v| v.to_string().len()).unwrap_or(0)
        });
        let page = Filter::from_query("limit=50", 50, 1000).unwrap();
        time_query("/api/audit?limit=50", || {
            query::audit_page(&r, &page)
                .map(|v| v.to_string().len())
                .unwrap_or(0)
        });
        let filt =
            Filter::from_query("vendor=gemini&client_ip=192.168.1.12&limit=50", 50, 1000).unwrap();
        time_query("/api/audit?vendor&client_ip", || {
            query::audit_page(&r, &filt)
                .map(|v| v.to_string().len())
                .unwrap_or(0)
        });
        let q = Filter::from_query("q=number%2042&limit=50", 50, 1000).unwrap();
        time_query("/api/audit?q=text (LIKE scan)", || {
            query::audit_page(&r, &q)
                .map(|v| v.to_string().len())
                .unwrap_or(0)
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
