//! Header rules that hold on either side of the gateway: hop-by-hop fields stay on their hop
//! (RFC 9110 section 7.6.1), HTTP/2 cookie fields become one field for HTTP/1.1 (RFC 9113 section
//! 8.2.3), an HTTP/1.0 device gets an answer framed for HTTP/1.0, and upgrades are recognised so
//! that they can be refused.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

/// Fields that describe one connection, never the message.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Fields whose removal would change how the message is framed or routed; `Connection` may not
/// nominate them away (Pingora frames each hop itself).
const FRAMING: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// The hop-by-hop fields present: the fixed ones and every field `Connection` nominates.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .filter(|n| headers.contains_key(*n))
        .cloned()
        .collect();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for token in value.split(',') {
            let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) else {
                continue;
            };
            if !FRAMING.contains(&name) && headers.contains_key(&name) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Removes the hop-by-hop fields of a request before it goes to the vendor.
pub(super) fn strip_request(req: &mut RequestHeader) {
    for name in hop_by_hop(&req.headers) {
        req.remove_header(&name);
    }
}

/// Removes the hop-by-hop fields of a vendor's answer before it goes to the device.
pub(super) fn strip_response(resp: &mut ResponseHeader) {
    for name in hop_by_hop(&resp.headers) {
        resp.remove_header(&name);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 allows one, joined with `; `.
pub(super) fn join_cookies(req: &mut RequestHeader) -> Result<()> {
    let values: Vec<HeaderValue> = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if values.len() < 2 {
        return Ok(());
    }
    let mut joined = Vec::with_capacity(values.iter().map(|v| v.len() + 2).sum());
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    let joined = HeaderValue::from_bytes(&joined).map_err(|e| {
        pingora_core::Error::because(
            pingora_core::ErrorType::InvalidHTTPHeader,
            "joined cookie",
            e,
        )
    })?;
    req.insert_header(header::COOKIE, joined)
}

/// An answer for an HTTP/1.0 device: no chunked framing (HTTP/1.0 has none), so a body of
/// unknown length is delimited by closing the connection (the caller turns keep-alive off).
pub(super) fn frame_for_http10(resp: &mut ResponseHeader) {
    if resp.headers.contains_key(header::TRANSFER_ENCODING) {
        resp.remove_header(&header::TRANSFER_ENCODING);
        // with both gone, Pingora writes the body as it comes and closes at its end
        resp.remove_header(&header::CONTENT_LENGTH);
    }
}

/// Whether the request asks to switch protocols (WebSocket over HTTP/1.1, or an HTTP/2
/// extended CONNECT): YORI cannot audit what would flow after the switch, so it refuses.
pub(super) fn is_upgrade(req: &RequestHeader) -> bool {
    req.headers.contains_key(header::UPGRADE)
        || req.method == http::Method::CONNECT
        || req.headers.get(header::CONNECTION).is_some_and(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None).expect("req");
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).expect("header");
        }
        req
    }

    fn names(headers: &HeaderMap) -> Vec<String> {
        let mut n: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn hop_by_hop_fields_and_nominated_ones_go() {
        let mut req = request(&[
            ("Connection", "keep-alive, X-Hop, content-length"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "x-checksum"),
            ("Upgrade", "h2c"),
            ("X-Hop", "secret"),
            ("Content-Length", "2"),
            ("Authorization", "Bearer k"),
        ]);
        strip_request(&mut req);
        assert_eq!(names(&req.headers), ["authorization", "content-length"]);

        let mut resp = ResponseHeader::build(200, None).expect("resp");
        for (k, v) in [
            ("Connection", "X-Vendor-Hop"),
            ("Keep-Alive", "timeout=5, max=100"),
            ("X-Vendor-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/event-stream"),
        ] {
            resp.append_header(k.to_string(), v).expect("header");
        }
        strip_response(&mut resp);
        assert_eq!(names(&resp.headers), ["content-type", "transfer-encoding"]);
    }

    #[test]
    fn split_cookies_join_in_order() {
        let mut req = request(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut req).expect("join");
        let all: Vec<_> = req.headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, [HeaderValue::from_static("a=1; b=2; c=3")]);
        let mut one = request(&[("cookie", "a=1")]);
        join_cookies(&mut one).expect("join");
        assert_eq!(
            one.headers.get(header::COOKIE).map(|v| v.as_bytes()),
            Some(&b"a=1"[..])
        );
    }

    #[test]
    fn http10_answers_lose_chunked_framing() {
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        resp.append_header("Transfer-Encoding", "chunked")
            .expect("te");
        frame_for_http10(&mut resp);
        assert!(!resp.headers.contains_key(header::TRANSFER_ENCODING));
        let mut sized = ResponseHeader::build(200, None).expect("resp");
        sized.append_header("Content-Length", "12").expect("cl");
        frame_for_http10(&mut sized);
        assert!(sized.headers.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn upgrades_are_recognised() {
        assert!(is_upgrade(&request(&[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade")
        ])));
        assert!(is_upgrade(&request(&[(
            "Connection",
            "keep-alive, upgrade"
        )])));
        assert!(!is_upgrade(&request(&[("Connection", "keep-alive")])));
        let connect = RequestHeader::build("CONNECT", b"/", None).expect("req");
        assert!(is_upgrade(&connect));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_connection_value_strips_without_panicking(value in "[ -~]{0,60}", extra in "[a-z-]{1,12}") {
            let mut req = RequestHeader::build("GET", b"/", None).expect("req");
            if let Ok(v) = HeaderValue::from_str(&value) {
                req.insert_header(header::CONNECTION, v).expect("h");
            }
            req.insert_header(extra, "1").expect("h");
            req.insert_header(header::HOST, "api.openai.com").expect("h");
            strip_request(&mut req);
            proptest::prop_assert!(!req.headers.contains_key(header::CONNECTION));
            proptest::prop_assert!(req.headers.contains_key(header::HOST));
        }
    }
}
