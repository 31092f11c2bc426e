//! Token usage from the vendor's response, read from a copy of each chunk as it passes.
//!
//! The client always gets the original bytes. Compressed bodies (gzip, deflate, br, zstd) are
//! inflated into the copy incrementally; SSE is split into events on blank lines (`\n\n` or
//! `\r\n\r\n`) from a small tail buffer, so a stream is never held whole. A JSON answer is kept up
//! to `MAX_JSON_BYTES` to be parsed at the end.

use serde_json::Value;
use std::io::Write;

/// Folds one response document or stream event into the running usage: each provider's
/// knowledge of where its vendor puts the token counts (`providers::Provider::absorb_usage`).
pub(crate) type Absorb = fn(&Value, &mut Usage);

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
pub(crate) struct Tokens {
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

enum Inflate {
    Identity,
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
    /// Unknown encoding or a corrupt stream: stop reading, keep forwarding.
    Failed,
}

impl Inflate {
    fn new(encoding: Option<&str>) -> Inflate {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Inflate::Identity,
            Some("gzip") | Some("x-gzip") => {
                Inflate::Gzip(flate2::write::GzDecoder::new(Vec::new()))
            }
            Some("deflate") => Inflate::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            Some("br") => Inflate::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                4096,
            ))),
            Some("zstd") => {
                zstd::stream::write::Decoder::new(Vec::new()).map_or(Inflate::Failed, Inflate::Zstd)
            }
            Some(_) => Inflate::Failed,
        }
    }

    /// Plain bytes for `chunk`, or `None` when this body cannot be read.
    fn feed(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        fn run<W: Write>(w: &mut W, chunk: &[u8]) -> bool {
            w.write_all(chunk).and_then(|_| w.flush()).is_ok()
        }
        let ok = match self {
            Inflate::Identity => return Some(chunk.to_vec()),
            Inflate::Failed => return None,
            Inflate::Gzip(d) => run(d, chunk),
            Inflate::Deflate(d) => run(d, chunk),
            Inflate::Brotli(d) => run(d.as_mut(), chunk),
            Inflate::Zstd(d) => run(d, chunk),
        };
        if !ok {
            *self = Inflate::Failed;
            return None;
        }
        Some(match self {
            Inflate::Gzip(d) => std::mem::take(d.get_mut()),
            Inflate::Deflate(d) => std::mem::take(d.get_mut()),
            Inflate::Brotli(d) => std::mem::take(d.get_mut()),
            Inflate::Zstd(d) => std::mem::take(d.get_mut()),
            Inflate::Identity | Inflate::Failed => Vec::new(),
        })
    }
}

/// Watches one response body.
pub(crate) struct UsageTap {
    absorb: Absorb,
    sse: bool,
    inflate: Inflate,
    buf: Vec<u8>,
    skipping_event: bool,
    pub usage: Usage,
}

impl UsageTap {
    pub(crate) fn new(
        absorb: Absorb,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> UsageTap {
        let sse =
            content_type.is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        UsageTap {
            absorb,
            sse,
            inflate: Inflate::new(content_encoding),
            buf: Vec::new(),
            skipping_event: false,
            usage: Usage::default(),
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let Some(plain) = self.inflate.feed(chunk) else {
            return;
        };
        if !self.sse {
            if self.buf.len() + plain.len() <= MAX_JSON_BYTES {
                self.buf.extend_from_slice(&plain);
            }
            return;
        }
        self.buf.extend_from_slice(&plain);
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&self.buf[start..]) {
            let event = &self.buf[start..start + end];
            if !self.skipping_event {
                absorb_event(self.absorb, event, &mut self.usage);
            }
            self.skipping_event = false;
            start += end + sep;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_EVENT_BYTES {
            self.buf.clear();
            self.skipping_event = true;
        }
    }

    /// Call once at the end of the body (or when the exchange ends early).
    pub(crate) fn finish(&mut self) {
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
    pub(crate) fn tokens(&self, request_text_chars: usize) -> Tokens {
        let u = &self.usage;
        Tokens {
            prompt: u.prompt.unwrap_or_else(|| estimate(request_text_chars)),
            response: u.completion.unwrap_or_else(|| estimate(u.output_chars)),
            estimated: u.prompt.is_none() || u.completion.is_none(),
        }
    }
}

fn find_event_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
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
}
