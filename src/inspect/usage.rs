//! Token usage from the vendor's response, read from a copy of each chunk as it passes.
//!
//! The client always gets the original bytes. Compressed bodies (gzip, deflate, br, zstd) are
//! inflated into the copy incrementally; SSE is split into events on blank lines (`\n\n` or
//! `\r\n\r\n`) from a small tail buffer, so a stream is never held whole. A JSON answer is kept up
//! to `MAX_JSON_BYTES` to be parsed at the end.

use super::inflate::Inflate;
use serde_json::Value;

/// Folds one response document or stream event into the running usage: each provider's
/// knowledge of where its vendor puts the token counts (`providers::Provider::absorb_usage`).
pub type Absorb = fn(&Value, &mut Usage);

const MAX_JSON_BYTES: usize = 8 << 20;
/// An SSE event larger than this is skipped (never a usage event).
const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Usage {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
    /// Characters of generated text seen, for the estimate when the vendor sends no usage.
    pub output_chars: usize,
}

/// Final token counts for the audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    pub prompt: u64,
    pub response: u64,
    pub estimated: bool,
}

/// About four characters per token, never zero for non-empty text.
pub(crate) fn estimate(chars: usize) -> u64 {
    if chars == 0 {
        0
    } else {
        (chars as u64).div_ceil(4)
    }
}

/// The inflated copy of one body, at most; past it usage is estimated, not read (a small
/// compressed chunk can inflate to gigabytes).
pub(crate) const MAX_INFLATED_BYTES: usize = 16 << 20;

/// Watches one response body.
pub struct UsageTap {
    absorb: Absorb,
    sse: bool,
    inflate: Inflate,
    /// SSE: the unfinished event; JSON: the answer so far.
    buf: Vec<u8>,
    /// SSE: where the search for the next event's end resumes (nothing before it ends one).
    scanned: usize,
    skipping_event: bool,
    /// Usage could not be read whole (corrupt or over-large body): it is estimated.
    pub unread: bool,
    pub usage: Usage,
}

impl UsageTap {
    pub fn new(
        absorb: Absorb,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> UsageTap {
        let sse =
            content_type.is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        UsageTap {
            absorb,
            sse,
            inflate: Inflate::new(content_encoding, MAX_INFLATED_BYTES),
            buf: Vec::new(),
            scanned: 0,
            skipping_event: false,
            unread: false,
            usage: Usage::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let mut inflate = std::mem::replace(&mut self.inflate, Inflate::Failed);
        let readable = inflate.feed(chunk, |plain| self.take(plain));
        self.inflate = inflate;
        if !readable {
            self.unread = true;
            self.buf = Vec::new();
        }
    }

    fn take(&mut self, plain: &[u8]) {
        if self.unread {
            return;
        }
        if !self.sse {
            if self.buf.len() + plain.len() <= MAX_JSON_BYTES {
                self.buf.extend_from_slice(plain);
            } else {
                self.unread = true;
                self.buf = Vec::new();
            }
            return;
        }
        self.buf.extend_from_slice(plain);
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&self.buf[start..], self.scanned - start) {
            let event = &self.buf[start..start + end];
            if !self.skipping_event {
                absorb_event(self.absorb, event, &mut self.usage);
            }
            self.skipping_event = false;
            start += end + sep;
            self.scanned = start;
        }
        self.buf.drain(..start);
        // a separator may straddle the next chunk: resume two bytes back
        self.scanned = self.buf.len().saturating_sub(2);
        if self.buf.len() > MAX_EVENT_BYTES {
            self.buf.clear();
            self.scanned = 0;
            self.skipping_event = true;
        }
    }

    /// Call once at the end of the body (or when the exchange ends early).
    pub fn finish(&mut self) {
        if self.unread {
            return;
        }
        if self.sse {
            let rest = std::mem::take(&mut self.buf);
            if !self.skipping_event {
                absorb_event(self.absorb, &rest, &mut self.usage);
            }
        } else if let Ok(v) = serde_json::from_slice::<Value>(&self.buf) {
            (self.absorb)(&v, &mut self.usage);
        }
        self.buf = Vec::new();
    }

    /// Tokens as reported, or estimated from text (flagged) where the vendor sent none.
    pub fn tokens(&self, request_text_chars: usize) -> Tokens {
        let u = &self.usage;
        Tokens {
            prompt: u.prompt.unwrap_or_else(|| estimate(request_text_chars)),
            response: u.completion.unwrap_or_else(|| estimate(u.output_chars)),
            estimated: u.prompt.is_none() || u.completion.is_none(),
        }
    }
}

/// The end of the first event in `b` (a blank line: `\n\n` or `\n\r\n`), searching from
/// `from`: (where the event ends, the separator's length).
fn find_event_end(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'\n' {
            if b[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if b[i + 1] == b'\r' && b.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// One SSE event: its `data:` lines joined, parsed as JSON (`[DONE]` and pings are skipped).
fn absorb_event(absorb: Absorb, event: &[u8], usage: &mut Usage) {
    let mut data: Vec<u8> = Vec::new();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    if data.is_empty() || data == b"[DONE]" {
        return;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&data) {
        absorb(&v, usage);
    }
}

/// Feeds `body` to a tap in small odd-sized pieces, as a network would, and finishes it: the
/// providers' fixture tests read their recorded answers through this.
#[cfg(test)]
pub(crate) fn tap_pieces(
    absorb: Absorb,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> UsageTap {
    let mut t = UsageTap::new(absorb, Some(content_type), encoding);
    for piece in body.chunks(7) {
        t.feed(piece);
    }
    t.finish();
    t
}

/// A recorded answer from `tests/fixtures/`.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A vendor-neutral reader for these tests: `{"usage": {"in", "out"}}` and `{"text"}`.
    fn absorb(v: &Value, u: &mut Usage) {
        if let Some(n) = v.pointer("/usage/in").and_then(Value::as_u64) {
            u.prompt = Some(n);
        }
        if let Some(n) = v.pointer("/usage/out").and_then(Value::as_u64) {
            u.completion = Some(n);
        }
        if let Some(t) = v.get("text").and_then(Value::as_str) {
            u.output_chars += t.chars().count();
        }
    }

    const STREAM: &[u8] = b"event: a\ndata: {\"text\": \"hello \"}\n\n: ping\n\ndata: {\"text\": \"world\"}\r\n\r\ndata: {\"usage\": {\"in\": 12, \"out\": 5}}\n\ndata: [DONE]\n\n";

    #[test]
    fn sse_events_are_read_across_any_split() {
        let t = tap_pieces(absorb, "text/event-stream", None, STREAM);
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 12,
                response: 5,
                estimated: false
            }
        );
        assert_eq!(t.usage.output_chars, 11);
    }

    #[test]
    fn without_usage_tokens_are_estimated_never_zero() {
        let t = tap_pieces(
            absorb,
            "text/event-stream",
            None,
            b"data: {\"text\": \"abc\"}\n\n",
        );
        let tok = t.tokens(40);
        assert!(tok.estimated);
        assert_eq!((tok.prompt, tok.response), (10, 1));
    }

    #[test]
    fn compressed_bodies_are_read_from_an_inflated_copy() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(STREAM).unwrap();
        let t = tap_pieces(
            absorb,
            "text/event-stream",
            Some("gzip"),
            &gz.finish().unwrap(),
        );
        assert_eq!(t.tokens(0).response, 5);
        let z = zstd::encode_all(STREAM, 3).unwrap();
        let t = tap_pieces(absorb, "text/event-stream", Some("zstd"), &z);
        assert_eq!(t.tokens(0).response, 5);
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(STREAM).unwrap();
        let t = tap_pieces(
            absorb,
            "text/event-stream",
            Some("deflate"),
            &zl.finish().unwrap(),
        );
        assert_eq!(t.tokens(0).response, 5);
    }

    #[test]
    fn corrupt_or_unknown_encoding_gives_estimates_not_errors() {
        let t = tap_pieces(
            absorb,
            "application/json",
            Some("gzip"),
            b"definitely not gzip",
        );
        assert!(t.tokens(8).estimated);
        let t = tap_pieces(absorb, "application/json", Some("compress"), b"x");
        assert_eq!(t.tokens(8).prompt, 2);
    }

    #[test]
    fn a_json_answer_is_read_at_the_end() {
        let t = tap_pieces(
            absorb,
            "application/json",
            None,
            b"{\"usage\": {\"in\": 3, \"out\": 4}}",
        );
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 3,
                response: 4,
                estimated: false
            }
        );
    }

    fn compressed(kind: &str, data: &[u8]) -> Vec<u8> {
        match kind {
            "gzip" => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zstd" => zstd::encode_all(data, 3).unwrap(),
            _ => data.to_vec(),
        }
    }

    #[test]
    fn every_split_point_gives_the_same_usage_for_every_encoding() {
        for enc in ["identity", "gzip", "deflate", "zstd"] {
            let body = compressed(enc, STREAM);
            let whole = {
                let mut t = UsageTap::new(absorb, Some("text/event-stream"), Some(enc));
                t.feed(&body);
                t.finish();
                (t.usage.clone(), t.tokens(0))
            };
            assert_eq!(whole.1.response, 5, "{enc}");
            for k in 0..=body.len() {
                let mut t = UsageTap::new(absorb, Some("text/event-stream"), Some(enc));
                t.feed(&body[..k]);
                t.feed(&body[k..]);
                t.finish();
                assert_eq!((t.usage.clone(), t.tokens(0)), whole, "{enc} split at {k}");
            }
        }
    }

    #[test]
    fn a_compression_bomb_is_capped_and_usage_estimated() {
        // 64 MiB of zeros, zstd-compressed to a few KiB: four times the cap
        let bomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let t = tap_pieces(absorb, "application/json", Some("zstd"), &bomb);
        assert!(t.unread);
        assert!(t.tokens(8).estimated);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..64 {
            gz.write_all(&vec![b'a'; 1 << 20]).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let mut t = UsageTap::new(absorb, Some("text/event-stream"), Some("gzip"));
        for piece in bomb.chunks(64 << 10) {
            t.feed(piece);
        }
        t.finish();
        assert!(
            t.unread && t.buf.capacity() == 0,
            "nothing kept past the cap"
        );
    }

    #[test]
    fn one_huge_event_in_small_pieces_is_read_in_linear_time() {
        // 4 MiB without a blank line, then a usage event: skipped, then read
        let mut body = b"data: ".to_vec();
        body.extend(std::iter::repeat_n(b'x', 4 << 20));
        body.extend_from_slice(b"\n\ndata: {\"usage\": {\"in\": 1, \"out\": 2}}\n\n");
        let mut t = UsageTap::new(absorb, Some("text/event-stream"), None);
        for piece in body.chunks(512) {
            t.feed(piece);
        }
        t.finish();
        assert_eq!(t.tokens(0).response, 2);
        assert!(t.buf.len() <= MAX_EVENT_BYTES);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            cut in 1usize..64,
            sse in proptest::prelude::any::<bool>(),
            enc in proptest::sample::select(vec!["identity", "gzip", "deflate", "br", "zstd", "bogus"]),
        ) {
            let ct = if sse { "text/event-stream" } else { "application/json" };
            let mut t = UsageTap::new(absorb, Some(ct), Some(enc));
            for piece in body.chunks(cut) {
                t.feed(piece);
            }
            t.finish();
            let _ = t.tokens(body.len());
        }

        #[test]
        fn sse_events_split_anywhere_read_the_same(cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (STREAM.len() + 1)).collect();
            points.sort_unstable();
            let mut t = UsageTap::new(absorb, Some("text/event-stream"), None);
            let mut at = 0;
            for p in points {
                t.feed(&STREAM[at..p]);
                at = p;
            }
            t.feed(&STREAM[at..]);
            t.finish();
            proptest::prop_assert_eq!(t.tokens(0), Tokens { prompt: 12, response: 5, estimated: false });
        }
    }
}
