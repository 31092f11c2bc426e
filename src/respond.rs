//! Answers YORI writes itself (health, refusals, errors, admin): status, headers, body, keep-alive.

use bytes::Bytes;
use http::header;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

pub const JSON: &str = "application/json";

/// Writes a complete response. Failures mean the client is gone; there is nothing left to do.
pub async fn send(session: &mut Session, status: u16, content_type: &str, body: Bytes) {
    let result = async {
        let mut resp = ResponseHeader::build(status, Some(4))?;
        resp.insert_header(header::CONTENT_TYPE, content_type)?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }
    .await;
    if let Err(e) = result {
        log::debug!("client left before the answer was written status={status} error={e}");
    }
}

pub async fn json(session: &mut Session, status: u16, body: Vec<u8>) {
    send(session, status, JSON, Bytes::from(body)).await
}
