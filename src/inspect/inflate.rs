//! Content-Encoding decoders for the copies YORI reads (a request body before policies see it,
//! an answer's usage), with the output capped: a small compressed chunk can inflate to
//! gigabytes. What is forwarded is always the original bytes.

use std::borrow::Cow;
use std::io::Write;

/// A writer that takes at most `room` bytes in all, then fails, which stops a decoder mid-chunk.
pub(crate) struct Capped {
    buf: Vec<u8>,
    room: usize,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.room {
            self.room = 0;
            return Err(std::io::Error::other("inflated copy over its cap"));
        }
        self.room -= data.len();
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capped(room: usize) -> Capped {
    Capped {
        buf: Vec::new(),
        room,
    }
}

/// An incremental decoder for one body's `Content-Encoding`, whose output is capped.
pub(crate) enum Inflate {
    Identity,
    Gzip(flate2::write::GzDecoder<Capped>),
    Deflate(flate2::write::ZlibDecoder<Capped>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Capped>>),
    Zstd(zstd::stream::write::Decoder<'static, Capped>),
    /// Unknown encoding, a corrupt stream, or over the cap: stop reading, keep forwarding.
    Failed,
}

impl Inflate {
    /// A decoder for `encoding` (one coding; a list of them is not read) that yields at most
    /// `cap` bytes in all.
    pub(crate) fn new(encoding: Option<&str>, cap: usize) -> Inflate {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Inflate::Identity,
            Some("gzip") | Some("x-gzip") => {
                Inflate::Gzip(flate2::write::GzDecoder::new(capped(cap)))
            }
            Some("deflate") => Inflate::Deflate(flate2::write::ZlibDecoder::new(capped(cap))),
            Some("br") => Inflate::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                capped(cap),
                4096,
            ))),
            Some("zstd") => zstd::stream::write::Decoder::new(capped(cap))
                .map_or(Inflate::Failed, Inflate::Zstd),
            Some(_) => Inflate::Failed,
        }
    }

    /// Runs `f` on the plain bytes of `chunk`; `false` when this body cannot be read (any more).
    pub(crate) fn feed(&mut self, chunk: &[u8], f: impl FnOnce(&[u8])) -> bool {
        fn run<W: Write>(w: &mut W, chunk: &[u8]) -> bool {
            w.write_all(chunk).and_then(|_| w.flush()).is_ok()
        }
        let ok = match self {
            Inflate::Identity => {
                f(chunk);
                return true;
            }
            Inflate::Failed => return false,
            Inflate::Gzip(d) => run(d, chunk),
            Inflate::Deflate(d) => run(d, chunk),
            Inflate::Brotli(d) => run(d.as_mut(), chunk),
            Inflate::Zstd(d) => run(d, chunk),
        };
        if !ok {
            *self = Inflate::Failed;
            return false;
        }
        let out = match self {
            Inflate::Gzip(d) => &mut d.get_mut().buf,
            Inflate::Deflate(d) => &mut d.get_mut().buf,
            Inflate::Brotli(d) => &mut d.get_mut().buf,
            Inflate::Zstd(d) => &mut d.get_mut().buf,
            Inflate::Identity | Inflate::Failed => return true,
        };
        f(out);
        out.clear();
        true
    }
}

/// A whole request body as the vendor will read it.
#[derive(Debug, PartialEq, Eq)]
pub enum Plain<'a> {
    /// Not encoded, or inflated whole within the cap.
    Read(Cow<'a, [u8]>),
    /// An encoding YORI does not read (a list of codings, an unknown one), a corrupt stream,
    /// or more than the cap once inflated.
    Unread,
}

/// Inflates a whole body sent with `Content-Encoding: encoding`, to at most `cap` bytes. A body
/// that ends inside a compressed frame is not whole, so it is not read.
pub fn whole<'a>(encoding: Option<&str>, body: &'a [u8], cap: usize) -> Plain<'a> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> =
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => return Plain::Read(Cow::Borrowed(body)),
            Some("gzip") | Some("x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(body)),
            Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(body)),
            Some("br") => Box::new(brotli_decompressor::Decompressor::new(body, 4096)),
            Some("zstd") => match zstd::stream::read::Decoder::with_buffer(body) {
                Ok(d) => Box::new(d.single_frame()),
                Err(_) => return Plain::Unread,
            },
            Some(_) => return Plain::Unread,
        };
    let mut out = Vec::new();
    match reader.take(cap as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() <= cap => Plain::Read(Cow::Owned(out)),
        _ => Plain::Unread,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(kind: &str, data: &[u8]) -> Vec<u8> {
        match kind {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "br" => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    w.write_all(data).unwrap();
                }
                out
            }
            "zstd" => zstd::encode_all(data, 1).unwrap(),
            _ => data.to_vec(),
        }
    }

    #[test]
    fn every_encoding_inflates_whole_and_a_bomb_is_unread() {
        let text = b"{\"messages\":[{\"role\":\"user\",\"content\":\"homework\"}]}".repeat(50);
        for kind in ["gzip", "deflate", "br", "zstd"] {
            let packed = encode(kind, &text);
            assert_eq!(
                whole(Some(kind), &packed, 1 << 20),
                Plain::Read(Cow::Owned(text.clone())),
                "{kind}"
            );
            // cut short, corrupt, or past the cap: not read
            assert_eq!(
                whole(Some(kind), &packed[..packed.len() / 2], 1 << 20),
                Plain::Unread,
                "{kind} cut"
            );
            assert_eq!(whole(Some(kind), &packed, 100), Plain::Unread, "{kind} cap");
            let zeros = encode(kind, &vec![0u8; 8 << 20]);
            assert_eq!(
                whole(Some(kind), &zeros, 1 << 20),
                Plain::Unread,
                "{kind} bomb"
            );
        }
        assert_eq!(
            whole(None, b"abc", 1),
            Plain::Read(Cow::Borrowed(&b"abc"[..]))
        );
        assert_eq!(whole(Some("gzip, br"), b"abc", 100), Plain::Unread);
        assert_eq!(whole(Some("compress"), b"abc", 100), Plain::Unread);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        #[test]
        fn any_bytes_under_any_encoding_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            kind in "(gzip|deflate|br|zstd|identity|x-gzip)",
        ) {
            if let Plain::Read(p) = whole(Some(&kind), &body, 1 << 16) {
                proptest::prop_assert!(p.len() <= (1 << 16).max(body.len()));
            }
        }
    }
}
