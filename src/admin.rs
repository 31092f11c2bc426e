//! The admin API on the proxy listener: `/api/stats`, `/api/audit`, `/api/audit.csv`, and the
//! local CA certificate at `/ca.crt`.
//!
//! Only clients in `admin.allow` (default loopback) or with `Authorization: Bearer <admin.token>`
//! get in; everyone else gets 403. Reads run on the blocking pool with their own read-only
//! connection, so they never hold up the proxy or the audit writer (WAL).

use crate::audit::query::{self, Filter};
use crate::proxy::Shared;
use crate::respond;
use bytes::Bytes;
use http::{header, Method};
use pingora_proxy::Session;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;

fn allowed(shared: &Shared, session: &Session, ip: Option<IpAddr>) -> bool {
    let admin = &shared.config.admin;
    if ip.is_some_and(|ip| admin.allow.iter().any(|c| c.contains(ip))) {
        return true;
    }
    let Some(token) = admin.token.as_deref() else {
        return false;
    };
    let given = session
        .req_header()
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn error(session: &mut Session, status: u16, message: &str) -> u16 {
    respond::json(
        session,
        status,
        json!({"error": {"code": status, "message": message}})
            .to_string()
            .into_bytes(),
    )
    .await;
    status
}

/// `GET /ca.crt` (PEM, or DER with `?format=der`): the local CA for parents to install on devices.
/// Read at each request, so a `yori ca init --force` is served at once.
async fn ca_certificate(shared: &Shared, session: &mut Session, query: &str) -> u16 {
    let tls = &shared.config.tls;
    if tls.cert.is_some() {
        return error(
            session,
            404,
            "yori: the TLS listener presents your own certificate (tls.cert); there is no local CA to install",
        )
        .await;
    }
    let der = query.split('&').any(|kv| kv == "format=der");
    let cert = crate::tls::ca::Ca::certificate(&tls.ca_dir)
        .map_err(|e| e.to_string())
        .and_then(|c| if der { c.to_der() } else { c.to_pem() }.map_err(|e| e.to_string()));
    match cert {
        Ok(bytes) => {
            respond::send(
                session,
                200,
                "application/x-x509-ca-cert",
                Bytes::from(bytes),
            )
            .await;
            200
        }
        Err(e) => {
            log::warn!("ca certificate not served error={e}");
            error(
                session,
                404,
                "yori: no local CA yet (`yori ca init`, or enable tls)",
            )
            .await
        }
    }
}

/// Answers one admin request; returns the status sent.
pub async fn handle(shared: &Arc<Shared>, session: &mut Session, ip: Option<IpAddr>) -> u16 {
    if !allowed(shared, session, ip) {
        return error(session, 403, "yori: this client may not use the admin API").await;
    }
    let req = session.req_header();
    if req.method != Method::GET {
        return error(session, 405, "yori: the admin API is read-only (GET)").await;
    }
    let path = req.uri.path().to_string();
    let query_string = req.uri.query().unwrap_or("").to_string();
    if path == "/ca.crt" {
        return ca_certificate(shared, session, &query_string).await;
    }
    enum Kind {
        Stats,
        Page,
        Csv,
    }
    let kind = match path.as_str() {
        "/api/stats" => Kind::Stats,
        "/api/audit" => Kind::Page,
        "/api/audit.csv" => Kind::Csv,
        _ => {
            return error(
                session,
                404,
                "yori: unknown admin route (see docs/openapi.yaml)",
            )
            .await
        }
    };
    let filter = match kind {
        Kind::Stats => Ok(Filter::default()),
        Kind::Page => Filter::from_query(&query_string, 50, query::MAX_PAGE),
        Kind::Csv => Filter::from_query(&query_string, query::MAX_CSV_ROWS, query::MAX_CSV_ROWS),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return error(session, 400, &format!("yori: {e}")).await,
    };
    let db = shared.config.audit.database.clone();
    let result = tokio::task::spawn_blocking(move || {
        let conn = crate::audit::store::open_reader(&db)?;
        match kind {
            Kind::Stats => query::stats(&conn).map(|v| (respond::JSON, v.to_string())),
            Kind::Page => query::audit_page(&conn, &filter).map(|v| (respond::JSON, v.to_string())),
            Kind::Csv => query::audit_csv(&conn, &filter).map(|v| ("text/csv; charset=utf-8", v)),
        }
    })
    .await;
    match result {
        Ok(Ok((ct, body))) => {
            respond::send(session, 200, ct, Bytes::from(body)).await;
            200
        }
        Ok(Err(e)) => {
            log::warn!("admin query failed path={path} error={e}");
            error(
                session,
                503,
                "yori: the audit database cannot be read right now",
            )
            .await
        }
        Err(e) => {
            log::error!("admin query task failed path={path} error={e}");
            error(session, 500, "yori: internal error").await
        }
    }
}
