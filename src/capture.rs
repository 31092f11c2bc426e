//! Reads the whole request body before any byte goes to the vendor, bounded by
//! `limits.max_body_bytes`: policy decides on the body, and a blocked request must not reach
//! the vendor at all.

use crate::error::ProxyError;
use bytes::{Bytes, BytesMut};
use http::header;
use pingora_proxy::Session;

/// Reads the body, answering `Expect: 100-continue` first. Oversized bodies are refused from the
/// declared Content-Length when there is one (without reading them), or as soon as the running
/// total passes the limit.
pub async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, ProxyError> {
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
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(ProxyError::BodyTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(ProxyError::BadRequest(e.etype().as_str().to_lowercase())),
        }
    }
    Ok(body.freeze())
}
