//! Reads the whole request body before any byte goes to the vendor, bounded by
//! `limits.max_body_bytes`: policy decides on the body, and a blocked request must not reach
//! the vendor at all.

use super::error::ProxyError;
use crate::config::Limits;
use bytes::{Bytes, BytesMut};
use http::header;
use pingora_proxy::Session;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Request bytes held in memory at once, all requests together (`limits.max_buffered_body_bytes`).
pub(crate) struct BodyBudget {
    held: AtomicUsize,
    cap: usize,
}

impl BodyBudget {
    pub(crate) fn new(cap: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            held: AtomicUsize::new(0),
            cap,
        })
    }

    /// An empty share of the budget, to grow as the body arrives.
    pub(crate) fn share(self: &Arc<Self>) -> Share {
        Share {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// One request's share of the `BodyBudget`; given back when it is dropped (with the request).
pub(crate) struct Share {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Share {
    /// Takes `n` more bytes, or says the budget is spent.
    pub(super) fn grow(&mut self, n: usize) -> Result<(), ProxyError> {
        let before = self.budget.held.fetch_add(n, Ordering::AcqRel);
        if before + n > self.budget.cap {
            self.budget.held.fetch_sub(n, Ordering::AcqRel);
            return Err(ProxyError::Busy);
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A body grows by at most this much at first: a declared Content-Length is not trusted with a
/// preallocation (a device could declare 16 MiB a thousand times and send nothing).
const INITIAL_CAPACITY: usize = 64 << 10;

/// Reads the body, answering `Expect: 100-continue` first. Oversized bodies are refused from the
/// declared Content-Length when there is one (without reading them), or as soon as the running
/// total passes the limit; the bytes held count against the shared `share` of the budget, and the
/// whole body must arrive within `limits.body_timeout`.
pub(super) async fn read_body(
    session: &mut Session,
    limits: &Limits,
    share: &mut Share,
) -> Result<Bytes, ProxyError> {
    let limit = limits.max_body_bytes;
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.req_header_mut().remove_header(&header::EXPECT);
        session
            .write_continue_response()
            .await
            .map_err(|e| ProxyError::BadRequest(format!("cannot answer 100-continue: {e}")))?;
    }
    let mut body = BytesMut::with_capacity((declared.unwrap_or(0) as usize).min(INITIAL_CAPACITY));
    let reading = async {
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(ProxyError::BodyTooLarge { limit });
                    }
                    share.grow(chunk.len())?;
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(ProxyError::BadRequest(e.etype().as_str().to_lowercase())),
            }
        }
    };
    match tokio::time::timeout(limits.body_timeout, reading).await {
        Ok(read) => read?,
        Err(_) => {
            super::guard::timed_out("body");
            return Err(ProxyError::BodyTimeout);
        }
    }
    Ok(body.freeze())
}

/// The body as the vendor will read it, for the policies: inflated when the device sent a
/// Content-Encoding (at most `limits.max_body_bytes`, held against the budget too), `None` when
/// it cannot be read. The device's bytes are what is forwarded either way.
pub(super) fn plain_copy(
    session: &Session,
    body: &Bytes,
    limits: &Limits,
    share: &mut Share,
) -> Result<Option<Bytes>, ProxyError> {
    use crate::inspect::inflate::{whole, Plain};
    use std::borrow::Cow;
    let encoding = session
        .req_header()
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("unreadable"));
    match whole(encoding, body, limits.max_body_bytes) {
        Plain::Read(Cow::Borrowed(_)) => Ok(Some(body.clone())),
        Plain::Read(Cow::Owned(plain)) => {
            share.grow(plain.len())?;
            Ok(Some(Bytes::from(plain)))
        }
        Plain::Unread => Ok(None),
    }
}

/// Reads and drops a request body YORI refuses without looking at it (404, 421), so an HTTP/2
/// client is not reset mid-upload and an HTTP/1.1 connection can be reused. Past `limit` bytes,
/// 5 s, or with `Expect: 100-continue` (the client waits for us), it gives up and closes instead.
pub(super) async fn discard_body(session: &mut Session, limit: usize) {
    if session.is_body_done() {
        return;
    }
    let expects_continue = session.req_header().headers.contains_key(header::EXPECT);
    let drained = !expects_continue
        && tokio::time::timeout(Duration::from_secs(5), async {
            let mut seen = 0usize;
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        seen += chunk.len();
                        if seen > limit {
                            return false;
                        }
                    }
                    Ok(None) => return true,
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
    if !drained {
        session.set_keepalive(None);
    }
}
