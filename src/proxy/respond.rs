//! Answers YORI writes itself (health, refusals, errors, blocks, admin): status, headers, body,
//! keep-alive.

use crate::admin::Answer;
use bytes::Bytes;
use http::header;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

pub(super) const JSON: &str = "application/json";

/// Writes a complete response. Failures mean the client is gone; there is nothing left to do.
pub(super) async fn send(session: &mut Session, status: u16, content_type: &str, body: Bytes) {
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

pub(super) async fn json(session: &mut Session, status: u16, body: Vec<u8>) {
    send(session, status, JSON, Bytes::from(body)).await;
}

/// Writes an admin answer; returns its status.
pub(super) async fn answer(session: &mut Session, a: Answer) -> u16 {
    send(session, a.status, a.content_type, a.body).await;
    a.status
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page a browser gets for a blocked request.
pub(super) fn block_page(policy: &str, reason: &str, code: Option<&str>) -> String {
    let ask = code.map_or_else(String::new, |c| {
        format!(
            "<p>To ask a parent, give them this code: <b style=\"font-size:1.5em;letter-spacing:.1em\">{}</b></p>",
            html_escape(c)
        )
    });
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Blocked by YORI</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>Not right now</h1>\
         <p>This AI request was blocked by your household's <b>{}</b> rule.</p><p>{}</p>{ask}\
         <p style=\"color:#666\">YORI home gateway</p></body></html>",
        html_escape(policy),
        html_escape(reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_page_escapes_what_policies_say() {
        let page = block_page("bed<time>", "no \"AI\" & no <script>", Some("K7M2QX"));
        assert!(page.contains("K7M2QX"));
        assert!(page.contains("bed&lt;time&gt;"));
        assert!(page.contains("no &quot;AI&quot; &amp; no &lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
