//! Throughput of what YORI reads on the proxy thread, plain and adversarial, at 1 and 16 MiB:
//! the personal-data scan of a prompt, and the usage tap over an SSE answer fed in 1 KiB pieces.
//!
//!   cargo run --release --example inspect_bench
//!
//! Prints MB/s per case (the median of 5 runs) and whether the scan was cut at its bound. A scan
//! reads at most `pii::MAX_SCAN_BYTES` and stops at `pii::MAX_ITEMS` items, so its time per
//! request is bounded whatever the prompt's size.

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use yori::inspect::{pii, usage::UsageTap};
use yori::providers::Vendor;

fn median(mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[2]
}

/// `unit` repeated to about `bytes` (cut on a character boundary).
fn sized(unit: &str, bytes: usize) -> String {
    let mut s = unit.repeat(bytes / unit.len() + 1);
    let mut end = bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn report(label: &str, bytes: usize, took: Duration, note: &str) {
    println!(
        "{label:<46} {:>5} MiB  {:>9.1} MB/s  {:>9.2} ms  {note}",
        bytes >> 20,
        bytes as f64 / took.as_secs_f64() / 1e6,
        took.as_secs_f64() * 1e3
    );
}

fn main() {
    for mib in [1, 16] {
        let n = mib << 20;
        let cases = [
            (
                "pii plain prose",
                sized("please summarise the water cycle for a school project. ", n),
            ),
            ("pii adversarial: a@b.cd repeated", sized("a@b.cd ", n)),
            (
                "pii adversarial: digit runs 4111 1111 1111 111",
                sized("4111 1111 1111 111 ", n),
            ),
            ("pii adversarial: sk- prefixes", sized("sk-sk-sk-", n)),
            (
                "pii adversarial: non-ASCII digits ١٢٣-٤٥-٦٧٨٩",
                sized("١٢٣-٤٥-٦٧٨٩ ", n),
            ),
        ];
        for (label, text) in cases {
            let mut cut = false;
            let took = median(|| {
                let s = pii::scan(std::hint::black_box(&text));
                cut = s.cut;
            });
            report(
                label,
                text.len(),
                took,
                if cut { "(scan cut at its bound)" } else { "" },
            );
        }
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"hello \"}}]}\n\n";
        let stream = sized(event, n);
        let one_event = format!("data: {}\n\n", "x".repeat(n));
        for (label, body) in [
            ("usage tap, SSE events", stream.as_bytes()),
            (
                "usage tap adversarial: one event, no blank line",
                one_event.as_bytes(),
            ),
        ] {
            let took = median(|| {
                let mut t = UsageTap::new(
                    Vendor::OpenAi.absorb_usage(),
                    Some("text/event-stream"),
                    None,
                );
                for piece in body.chunks(1024) {
                    t.feed(piece);
                }
                t.finish();
                std::hint::black_box(t.tokens(0));
            });
            report(label, body.len(), took, "");
        }
    }
}
