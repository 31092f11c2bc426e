//! The one `ProxyHttp`: each phase calls one stage and does nothing else.
//!
//! `route` says where a request goes; `capture` reads its body; `forward` decides and sends a
//! vendor request on (in one pass, or as a subrequest for a long body); `upstream` resolves the
//! vendor and makes its peer; `respond` writes the answers YORI gives itself; `report` turns the
//! finished exchange into the report that the audit row, the metrics and the counters come from.
//! `ctx` holds which leg a context is and how its exchange ended.

mod capture;
mod ctx;
mod error;
mod forward;
mod guard;
mod headers;
mod offload;
mod report;
mod respond;
pub(crate) mod route;
mod upstream;

pub(crate) use capture::BodyBudget;
pub(crate) use ctx::RequestCtx;
pub(crate) use error::ProxyError;
pub(crate) use guard::Edge;
pub(crate) use offload::Offload;
pub(crate) use upstream::Resolver;

use crate::admin::{self, AdminState};
use crate::alerts::AlertSender;
use crate::audit::{AuditRow, AuditSender};
use crate::config::Config;
use crate::inspect::usage::UsageTap;
use crate::kinds::Outcome;
use crate::metrics;
use crate::policy::decide::Decider;
use crate::providers::Vendor;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{Exchange, Leg};
use http::header;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use route::{Route, Router};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every request may read: built once at start.
pub(crate) struct Shared {
    pub config: Config,
    pub router: Router,
    pub resolver: Resolver,
    pub audit: AuditSender,
    pub decider: Arc<Decider>,
    pub alerts: AlertSender,
    pub admin: AdminState,
    /// Where observe- and advisory-mode inspections run.
    pub offload: Offload,
    /// Request bytes held at once.
    pub body_budget: Arc<BodyBudget>,
}

/// Records a finished exchange once: its report, then the counters, the metrics and the row.
fn record(shared: &Shared, ctx: &mut RequestCtx) {
    if ctx.recorded {
        return;
    }
    ctx.recorded = true;
    if let Some(r) = report::build(shared, ctx) {
        if let Some(ip) = r.client_ip {
            shared.decider.counters.record(
                ip,
                shared.decider.clock.now(),
                r.tokens_total(),
                r.cost_usd,
            );
        }
        metrics::exchange(&r);
        shared
            .audit
            .send(AuditRow::from_report(&r, &shared.config.audit));
    }
}

pub(crate) struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub(crate) fn new(shared: Arc<Shared>) -> Gateway {
        Gateway { shared }
    }
}

/// The server name of a connection on the TLS listener (see `tls::Sni`); `None` on plain HTTP.
fn connection_sni(session: &Session) -> Option<String> {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|s| s.extension.get::<crate::tls::Sni>())
        .map(|s| s.0.clone())
}

fn request_host(session: &Session) -> Option<String> {
    let req = session.req_header();
    req.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
}

/// The admin API's view of the request, answered and written.
async fn admin_request(shared: &Shared, session: &mut Session, client_ip: Option<IpAddr>) -> u16 {
    let host = request_host(session);
    let req = session.req_header();
    let (method, path, query) = (
        req.method.clone(),
        req.uri.path().to_string(),
        req.uri.query().unwrap_or("").to_string(),
    );
    let authorization = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = admin::handle(
        &shared.admin,
        admin::Request {
            method: &method,
            path: &path,
            query: &query,
            authorization: authorization.as_deref(),
            host: host.as_deref(),
            client_ip,
        },
    )
    .await;
    respond::answer(session, answer).await
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(Some(self.shared.clone()))
    }

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &RequestCtx) -> bool {
        true
    }

    async fn early_request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        guard::mark_header_read();
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| crate::config::types::canonical_ip(a.ip()));
        if let Some(sub) = session.subrequest_ctx.as_ref() {
            // the subrequest: the parent has decided; carry its exchange and go to the vendor
            let exchange = sub
                .user_ctx()
                .and_then(|u| u.downcast_ref::<Arc<Exchange>>())
                .cloned();
            return match exchange {
                Some(x) => {
                    ctx.leg = Leg::Subrequest(x);
                    Ok(false)
                }
                None => Error::e_explain(ErrorType::InternalError, "subrequest without exchange"),
            };
        }
        let host = request_host(session);
        let path = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let route = match connection_sni(session) {
            Some(sni) => self.shared.router.route_tls(&sni, host.as_deref(), &path),
            None => self.shared.router.route(host.as_deref(), &path),
        };
        let shared = &self.shared;
        match route {
            Route::Health => {
                ctx.status = Some(200);
                let body = serde_json::json!({"status": "healthy", "version": VERSION});
                respond::json(session, 200, body.to_string().into_bytes()).await;
            }
            Route::Admin => ctx.status = Some(admin_request(shared, session, ctx.client_ip).await),
            Route::Misdirected => {
                forward::answer_error(shared, session, ctx, None, ProxyError::Misdirected).await;
            }
            Route::HostMismatch => {
                forward::answer_error(shared, session, ctx, None, ProxyError::HostMismatch).await;
            }
            Route::NotFound => {
                forward::answer_error(shared, session, ctx, None, ProxyError::NotFound).await;
            }
            Route::DotSegment => {
                let e = ProxyError::BadRequest("the path has a dot-segment (`.` or `..`)".into());
                forward::answer_error(shared, session, ctx, None, e).await;
            }
            Route::Vendor { endpoint, path } => {
                let send = forward::forward(shared, session, ctx, host.as_deref(), endpoint, path);
                // true: Pingora sends the request on itself, in one pass
                return send.await.map(|sent_by_pingora| !sent_by_pingora);
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(x) = ctx.exchange() else {
            return Error::e_explain(ErrorType::InternalError, "no exchange for upstream_peer");
        };
        let ep = self.shared.config.endpoint(x.request.endpoint);
        Ok(upstream::peer(
            x.addr,
            &ep.upstream,
            &self.shared.config.limits,
        ))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // one pass with a body: Pingora flushes the header, then writes the body from its retry
        // buffer; corked, both leave together (released in `request_body_filter`)
        if let Leg::OnePass(x) = &ctx.leg {
            if x.request.request_bytes > 0 {
                upstream::cork(fd, true);
                ctx.corked = Some(fd);
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if end_of_stream {
            if let Some(fd) = ctx.corked.take() {
                // the body is written right after this filter, in the same poll of the same
                // task; a task spawned now runs after it (the worker's next task)
                tokio::spawn(async move { upstream::cork(fd, false) });
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_sent = Some(Instant::now());
        match ctx.exchange() {
            Some(x) => forward::rewrite_for_vendor(req, x),
            None => Error::e_explain(ErrorType::InternalError, "no exchange for upstream request"),
        }
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = Some(resp.status.as_u16());
        headers::strip_response(resp);
        if ctx.request().is_some_and(|r| r.http10) {
            headers::frame_for_http10(resp);
            session.set_keepalive(None);
        }
        ctx.first_byte.get_or_insert_with(Instant::now);
        if let Some(vendor) = ctx.vendor() {
            let header = |name| {
                resp.headers
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
            };
            ctx.usage = Some(UsageTap::new(
                vendor.absorb_usage(),
                header(header::CONTENT_TYPE),
                header(header::CONTENT_ENCODING),
            ));
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(b) = body {
            ctx.response_bytes += b.len() as u64;
            if let Some(tap) = ctx.usage.as_mut() {
                tap.feed(b);
            }
        }
        if end_of_stream {
            ctx.upstream_done = Some(Instant::now());
            ctx.end(Outcome::Forwarded);
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if let Some(fd) = ctx.corked.take() {
            upstream::cork(fd, false);
        }
        let answered = session.response_written().is_some();
        let from_device = e.esource() == &pingora_core::ErrorSource::Downstream;
        let pe = if from_device {
            ProxyError::BadRequest(e.etype().as_str().to_lowercase())
        } else {
            ProxyError::from_upstream(e)
        };
        match &ctx.leg {
            Leg::Subrequest(_) => {
                // the parent writes the vendor-shaped answer (it knows whether a header went out)
                if !answered {
                    ctx.status = Some(pe.status());
                }
                ctx.end(Outcome::from_error(pe.kind()));
            }
            Leg::OnePass(_) if from_device => ctx.end(Outcome::ClientClosed),
            _ if answered || from_device => ctx.end(Outcome::from_error(pe.kind())),
            _ => {
                let vendor = ctx.vendor();
                forward::answer_error(&self.shared, session, ctx, vendor, pe).await;
            }
        }
        FailToProxy {
            error_code: if answered { 0 } else { ctx.status.unwrap_or(0) },
            can_reuse_downstream: false,
        }
    }

    /// What Pingora's own error lines say about a request: no secret query parameter.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        format!(
            "{} {}, Host: {}",
            req.method,
            route::redact_query(path),
            request_host(session).as_deref().unwrap_or("-")
        )
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if !ctx.records() {
            return;
        }
        if let Some(tap) = ctx.usage.as_mut() {
            tap.finish();
        }
        // how it ended, unless a phase already said so: an error seen here, or an answer that
        // started and never finished (the device went away), or a whole answer
        let ended = match e {
            Some(e) if e.esource() == &pingora_core::ErrorSource::Downstream => {
                Outcome::ClientClosed
            }
            Some(e) => Outcome::from_error(ProxyError::from_upstream(e).kind()),
            None if ctx.status.is_some() => Outcome::ClientClosed,
            None => Outcome::Forwarded,
        };
        ctx.end(ended);
        if let Some(x) = ctx.exchange() {
            x.inspection.settle().await;
        }
        record(&self.shared, ctx);
        log::debug!(
            "request done vendor={} status={} outcome={} duration_ms={}",
            ctx.vendor().map_or("-", Vendor::as_str),
            ctx.status.unwrap_or(0),
            ctx.outcome().map_or("-", Outcome::as_str),
            ctx.started.elapsed().as_millis()
        );
    }
}
