//! The admin API on the proxy listener: `/api/stats`, `/api/audit`, `/api/audit.csv`, and the
//! local CA certificate at `/ca.crt`.
//!
//! Only clients in `admin.allow` (default loopback) or with `Authorization: Bearer <admin.token>`
//! get in; everyone else gets 403. The admin side is handed what it needs (access rules, a
//! reader of the audit database, where the CA is) and answers with an `Answer` the proxy writes.

use crate::audit::query::{self, Filter, Reader};
use crate::config;
use bytes::Bytes;
use http::Method;
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;

const JSON: &str = "application/json";

/// What the admin API reads from.
pub(crate) struct AdminState {
    pub access: config::Admin,
    pub audit: Reader,
    /// The local CA's folder; `None` when the TLS listener presents the user's own certificate.
    pub ca_dir: Option<PathBuf>,
}

impl AdminState {
    pub(crate) fn new(config: &config::Config) -> AdminState {
        AdminState {
            access: config.admin.clone(),
            audit: Reader::new(config.audit.database.clone()),
            ca_dir: config.tls.cert.is_none().then(|| config.tls.ca_dir.clone()),
        }
    }
}

/// An admin request, as far as the admin API looks at it.
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The Host header (or HTTP/2 authority), port included.
    pub host: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// A whole response for the proxy to write.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Answer {
    fn error(status: u16, message: &str) -> Answer {
        Answer {
            status,
            content_type: JSON,
            body: Bytes::from(json!({"error": {"code": status, "message": message}}).to_string()),
        }
    }

    fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Answer {
        Answer {
            status: 200,
            content_type,
            body: body.into(),
        }
    }
}

fn allowed(access: &config::Admin, req: &Request<'_>) -> bool {
    if req
        .client_ip
        .is_some_and(|ip| access.allow.iter().any(|c| c.contains(ip)))
    {
        return true;
    }
    let Some(token) = access.token.as_deref() else {
        return false;
    };
    let given = req
        .authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Whether the request names the router the way a parent does: an IP literal, `localhost`, or a
/// name in `admin.hosts`. A page that DNS-rebinds its own name to the router names that name,
/// and gets 421 before anything is read.
fn host_allowed(access: &config::Admin, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || access.hosts.contains(&name)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /ca.crt` (PEM, or DER with `?format=der`): the local CA for parents to install on devices.
/// Read at each request, so a `yori ca init --force` is served at once.
fn ca_certificate(state: &AdminState, query: &str) -> Answer {
    let Some(dir) = state.ca_dir.as_deref() else {
        return Answer::error(
            404,
            "yori: the TLS listener presents your own certificate (tls.cert); there is no local CA to install",
        );
    };
    let der = query.split('&').any(|kv| kv == "format=der");
    let cert = crate::tls::ca::Ca::certificate(dir)
        .map_err(|e| e.to_string())
        .and_then(|c| if der { c.to_der() } else { c.to_pem() }.map_err(|e| e.to_string()));
    match cert {
        Ok(bytes) => Answer::ok("application/x-x509-ca-cert", bytes),
        Err(e) => {
            log::warn!("ca certificate not served error={e}");
            Answer::error(404, "yori: no local CA yet (`yori ca init`, or enable tls)")
        }
    }
}

/// Answers one admin request.
pub(crate) async fn handle(state: &AdminState, req: Request<'_>) -> Answer {
    if !host_allowed(&state.access, req.host) {
        return Answer::error(
            421,
            "yori: the admin API answers to the router's address, localhost, or a name in admin.hosts",
        );
    }
    if !allowed(&state.access, &req) {
        return Answer::error(403, "yori: this client may not use the admin API");
    }
    if req.method != Method::GET {
        return Answer::error(405, "yori: the admin API is read-only (GET)");
    }
    if req.path == "/ca.crt" {
        return ca_certificate(state, req.query);
    }
    enum Kind {
        Stats,
        Page,
        Csv,
    }
    let kind = match req.path {
        "/api/stats" => Kind::Stats,
        "/api/audit" => Kind::Page,
        "/api/audit.csv" => Kind::Csv,
        _ => return Answer::error(404, "yori: unknown admin route (see docs/openapi.yaml)"),
    };
    let filter = match kind {
        Kind::Stats => Ok(Filter::default()),
        Kind::Page => Filter::from_query(req.query, 50, query::MAX_PAGE),
        Kind::Csv => Filter::from_query(req.query, query::MAX_CSV_ROWS, query::MAX_CSV_ROWS),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return Answer::error(400, &format!("yori: {e}")),
    };
    let result = state
        .audit
        .read(move |conn| match kind {
            Kind::Stats => query::stats(conn).map(|v| (JSON, v.to_string())),
            Kind::Page => query::audit_page(conn, &filter).map(|v| (JSON, v.to_string())),
            Kind::Csv => query::audit_csv(conn, &filter).map(|v| ("text/csv; charset=utf-8", v)),
        })
        .await;
    match result {
        Ok((ct, body)) => Answer::ok(ct, body),
        Err(query::ReadError::Sql(e)) => {
            log::warn!("admin query failed path={} error={e}", req.path);
            Answer::error(503, "yori: the audit database cannot be read right now")
        }
        Err(e) => {
            log::error!("admin query task failed path={} error={e}", req.path);
            Answer::error(500, "yori: internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_takes_ip_literals_localhost_and_listed_names_only() {
        let access = config::Admin {
            hosts: vec!["yori.lan".into()],
            ..config::Admin::default()
        };
        for ok in [
            "192.168.1.1",
            "192.168.1.1:8443",
            "[::1]:8443",
            "[fe80::1]",
            "localhost",
            "LOCALHOST:8443",
            "yori.lan",
            "Yori.Lan.:8443",
        ] {
            assert!(host_allowed(&access, Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8443",
            "yori.lan.evil.example",
            "localhost.evil.example",
            "192.168.1.1.nip.io",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!host_allowed(&access, Some(bad)), "{bad}");
        }
        assert!(!host_allowed(&access, None));
    }
}
