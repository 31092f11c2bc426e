//! The one `ProxyHttp`: each phase calls one stage and does nothing else.
//!
//! A vendor request runs twice through these phases. The *parent* (the device's real request)
//! routes it, reads the whole body, and then replays it as a Pingora subrequest with the body
//! preset; the *subrequest* connects to the vendor and streams the answer back through the
//! parent. Nothing reaches the vendor before the parent has the whole body and has decided.
//! The subrequest records the exchange; the parent records only what it answered itself.

mod ctx;

pub use ctx::{Exchange, PolicySlot, RequestCtx, VendorRequest};

use crate::alerts::AlertSender;
use crate::audit::AuditSender;
use crate::capture;
use crate::config::{Config, Mode};
use crate::error::ProxyError;
use crate::facts;
use crate::live::LiveSettings;
use crate::metrics;
use crate::policy::gate::{gate, Gated};
use crate::policy::input::{document, InputParts, UsageCounters};
use crate::record;
use crate::respond;
use crate::route::{Route, Router};
use crate::upstream::{self, Resolver};
use crate::usage::UsageTap;
use crate::vendor::Vendor;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Version};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::subrequest::pipe::{
    pipe_subrequest, InputBody, InputBodyType, PipeSubrequestState,
};
use pingora_proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every request may read: built once at start.
pub struct Shared {
    pub config: Config,
    pub router: Router,
    pub resolver: Resolver,
    pub audit: AuditSender,
    pub devices: HashMap<IpAddr, String>,
    pub counters: UsageCounters,
    pub clock: Clock,
    /// Policies and enforcement switches, replaced on SIGHUP.
    pub live: Arc<LiveSettings>,
    pub alerts: AlertSender,
}

/// The policy side of a request, usable from the request task or a task of its own.
#[derive(Clone)]
struct Decider(Arc<Shared>);

impl Decider {
    /// Runs the household policies on this request and gates the verdict by mode.
    fn decide(
        &self,
        client_ip: Option<IpAddr>,
        endpoint: usize,
        request: &VendorRequest,
        facts: &facts::RequestFacts,
    ) -> Gated {
        let shared = &self.0;
        let config = &shared.config;
        let ep = &config.endpoints[endpoint];
        let now = shared.clock.now();
        let device = client_ip
            .and_then(|ip| shared.devices.get(&ip))
            .map(String::as_str);
        let input = document(&InputParts {
            vendor: ep.vendor.as_str(),
            endpoint: &ep.domain,
            method: &request.method,
            path: &request.path,
            facts,
            client_ip,
            device,
            now,
            usage: client_ip
                .map(|ip| shared.counters.get(ip, now))
                .unwrap_or_default(),
            mode: config.mode.as_str(),
        });
        let live = shared.live.get();
        let timer = Instant::now();
        let mut verdict = live.policies.set.evaluate(&input, None);
        metrics::POLICY_EVAL.observe(timer.elapsed().as_secs_f64());
        metrics::POLICY_ERRORS.inc_by(verdict.errors.len() as u64);
        if verdict.policy.is_none() && verdict.action < live.policies.default {
            verdict.action = live.policies.default;
        }
        for e in &verdict.errors {
            log::warn!("policy evaluation failed, request allowed error={e:?}");
        }
        let allowlisted = client_ip.is_some_and(|ip| live.enforcement.allowlist.contains(&ip));
        let g = gate(config.mode, verdict, allowlisted, live.enforcement.disabled);
        if g.alert || g.block {
            log::warn!(
                "policy {} policy={} client={} device={} vendor={} reason={:?}",
                if g.block { "block" } else { "alert" },
                g.verdict.policy.as_deref().unwrap_or("-"),
                client_ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
                device.unwrap_or("-"),
                ep.vendor,
                g.recorded_reason().unwrap_or_default()
            );
        }
        if g.alert {
            shared.alerts.raise(serde_json::json!({
                "type": "yori.alert",
                "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                "action": g.verdict.action.as_str(),
                "policy": g.verdict.policy,
                "reason": g.recorded_reason(),
                "mode": config.mode.as_str(),
                "client_ip": client_ip.map(|ip| ip.to_string()),
                "device": device,
                "vendor": ep.vendor.as_str(),
                "model": facts.model,
                "request_id": request.request_id,
            }));
        }
        g
    }
}

/// Local time for policies; fixed by `YORI_TEST_NOW` (RFC 3339) so tests do not depend on the
/// wall clock.
#[derive(Debug, Default, Clone)]
pub struct Clock {
    fixed: Option<chrono::DateTime<chrono::Local>>,
}

impl Clock {
    pub const ENV: &'static str = "YORI_TEST_NOW";

    pub fn from_env() -> Clock {
        let fixed = std::env::var(Self::ENV)
            .ok()
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&chrono::Local));
        if let Some(t) = fixed {
            log::warn!("clock fixed by {} for testing now={t}", Self::ENV);
        }
        Clock { fixed }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Local> {
        self.fixed.unwrap_or_else(chrono::Local::now)
    }
}

pub struct Gateway {
    pub shared: Arc<Shared>,
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Gateway {
        Gateway { shared }
    }

    async fn answer_error(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        vendor: Option<Vendor>,
        e: ProxyError,
    ) {
        let body = vendor
            .unwrap_or(Vendor::OpenAi)
            .error_body(e.status(), e.code(), &e.message());
        log::log!(
            e.log_level(),
            "request refused status={} code={} vendor={} client={} detail={:?}",
            e.status(),
            e.code(),
            vendor.map_or("-", Vendor::as_str),
            ctx.client_ip
                .map_or_else(|| "-".into(), |ip| ip.to_string()),
            e
        );
        if matches!(
            e,
            ProxyError::BodyTooLarge { .. } | ProxyError::BadRequest(_)
        ) {
            // the rest of the body is unread: this connection cannot carry another request
            session.set_keepalive(None);
        } else {
            // a refusal before the body was read: take it first, or an HTTP/2 client still
            // uploading may see its stream reset before it reads the answer
            capture::discard_body(session, self.shared.config.limits.max_body_bytes).await;
        }
        ctx.status = Some(e.status());
        ctx.error = Some(e.clone());
        respond::json(session, e.status(), body).await;
    }

    /// 403 in the vendor's own error shape (a small page for browsers); the vendor gets nothing.
    async fn answer_block(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        vendor: Vendor,
        gated: Gated,
    ) {
        let policy = gated
            .verdict
            .policy
            .clone()
            .unwrap_or_else(|| "default".into());
        let reason = gated
            .verdict
            .reason
            .clone()
            .unwrap_or_else(|| "not allowed right now".into());
        let message = format!("yori: blocked by household policy `{policy}`: {reason}");
        ctx.status = Some(403);
        ctx.policy = Some(gated);
        let wants_html = session
            .req_header()
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html {
            respond::send(
                session,
                403,
                "text/html; charset=utf-8",
                Bytes::from(block_page(&policy, &reason)),
            )
            .await;
        } else {
            respond::json(
                session,
                403,
                vendor.error_body(403, "policy_blocked", &message),
            )
            .await;
        }
    }

    /// Parent side of a vendor request: read, decide, then replay to the vendor.
    async fn forward(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        host: Option<&str>,
        endpoint: usize,
        path: String,
    ) {
        let ep = &self.shared.config.endpoints[endpoint];
        ctx.vendor = Some(ep.vendor);
        let req = session.req_header();
        ctx.request = Some(VendorRequest {
            endpoint,
            method: req.method.as_str().to_string(),
            user_agent: req
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            path,
            started: ctx.started,
            started_at: chrono::Utc::now(),
            request_bytes: 0,
            request_id: record::request_id(),
        });
        let body = match capture::read_body(session, self.shared.config.limits.max_body_bytes).await
        {
            Ok(b) => b,
            Err(e) => return self.answer_error(session, ctx, Some(ep.vendor), e).await,
        };
        let Some(request) = ctx.request.as_mut().map(|r| {
            r.request_bytes = body.len();
            r.clone()
        }) else {
            return;
        };
        let facts = facts::extract(ep.vendor, &request.path, &body);
        let decider = Decider(self.shared.clone());
        // Only enforce mode can stop a request. In observe and advisory modes the verdict is
        // worked out in a task of its own while the vendor answers, so the policies add nothing
        // before the request goes out; the audit row waits for it (`PolicySlot::settle`).
        let mut gated = (self.shared.config.mode == Mode::Enforce)
            .then(|| decider.decide(ctx.client_ip, endpoint, &request, &facts));
        if let Some(g) = gated.take_if(|g| g.block) {
            ctx.facts = Some(facts);
            ctx.blocked = true;
            return self.answer_block(session, ctx, ep.vendor, g).await;
        }
        let addr = match self
            .shared
            .resolver
            .resolve(&ep.upstream.host, ep.upstream.port)
            .await
        {
            Ok(a) => a,
            Err(why) => {
                ctx.policy =
                    Some(gated.unwrap_or_else(|| {
                        decider.decide(ctx.client_ip, endpoint, &request, &facts)
                    }));
                ctx.facts = Some(facts);
                return self
                    .answer_error(
                        session,
                        ctx,
                        Some(ep.vendor),
                        ProxyError::UpstreamUnreachable(why),
                    )
                    .await;
            }
        };
        if let Err(e) = h1_compatible(session, host) {
            ctx.policy = Some(
                gated.unwrap_or_else(|| decider.decide(ctx.client_ip, endpoint, &request, &facts)),
            );
            ctx.facts = Some(facts);
            return self
                .answer_error(
                    session,
                    ctx,
                    Some(ep.vendor),
                    ProxyError::BadRequest(e.to_string()),
                )
                .await;
        }
        let exchange = Arc::new(Exchange {
            upstream_path: format!("{}{}", ep.upstream.base_path, request.path),
            domain: ep.domain.clone(),
            vendor: ep.vendor,
            request,
            facts,
            addr,
            client_gone: AtomicBool::new(false),
            policy: PolicySlot::default(),
        });
        match gated {
            Some(g) => exchange.policy.set(g),
            None => {
                let x = exchange.clone();
                let client_ip = ctx.client_ip;
                exchange.policy.defer(tokio::spawn(async move {
                    decider.decide(client_ip, x.request.endpoint, &x.request, &x.facts)
                }));
            }
        }
        ctx.forwarded = true;
        ctx.exchange = Some(exchange.clone());
        match replay(session, exchange, body).await {
            Ok(()) => {}
            Err((e, header_sent))
                if !header_sent && e.esource() != &pingora_core::ErrorSource::Downstream =>
            {
                let e = ProxyError::from_upstream(&e);
                let body = ep.vendor.error_body(e.status(), e.code(), &e.message());
                respond::json(session, e.status(), body).await;
            }
            Err((e, _)) => log::debug!("exchange ended early vendor={} error={e}", ep.vendor),
        }
    }
}

/// The request the vendor sees: its own Host, the vendor path, HTTP/1.1 framing with an exact
/// Content-Length (the body is known whole), everything else as the device sent it.
fn rewrite_for_vendor(req: &mut RequestHeader, x: &Exchange) -> Result<()> {
    let had_body = req.headers.contains_key(header::CONTENT_LENGTH)
        || req.headers.contains_key(header::TRANSFER_ENCODING)
        || x.request.request_bytes > 0;
    let uri = x
        .upstream_path
        .parse::<http::Uri>()
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "vendor path", e))?;
    req.set_uri(uri);
    req.insert_header(header::HOST, x.domain.as_str())?;
    req.remove_header(&header::TRANSFER_ENCODING);
    req.remove_header(&header::EXPECT);
    if had_body {
        req.insert_header(header::CONTENT_LENGTH, x.request.request_bytes.to_string())?;
    }
    Ok(())
}

/// An HTTP/2 request is replayed through an HTTP/1 rendering of its header, which needs a
/// version and a Host (HTTP/2 carries the authority instead).
fn h1_compatible(session: &mut Session, host: Option<&str>) -> Result<()> {
    let req = session.req_header_mut();
    if req.version != Version::HTTP_11 {
        req.set_version(Version::HTTP_11);
    }
    if !req.headers.contains_key(header::HOST) {
        if let Some(h) = host {
            req.insert_header(header::HOST, h)?;
        }
    }
    Ok(())
}

/// Runs the real proxy pipeline as a subrequest with the body preset, piping its response to the
/// device as it arrives. On failure, says whether the device already got a response header.
async fn replay(
    session: &mut Session,
    exchange: Arc<Exchange>,
    body: Bytes,
) -> std::result::Result<(), (Box<Error>, bool)> {
    let Some(spawner) = session.subrequest_spawner.as_ref() else {
        return Err((
            Error::explain(ErrorType::InternalError, "subrequests are not enabled"),
            false,
        ));
    };
    let sub_ctx = SubrequestCtx::builder()
        .body_mode(BodyMode::ExpectBody)
        .user_ctx(Box::new(exchange.clone()))
        .build();
    let (sub, handle) = spawner.create_subrequest(session.as_downstream(), sub_ctx);
    let input = if body.is_empty() {
        InputBody::NoBody
    } else {
        InputBody::Bytes(vec![body])
    };
    match pipe_subrequest(
        session,
        sub,
        handle,
        |task| Ok(Some(task)),
        InputBodyType::Preset(input),
    )
    .await
    {
        Ok(state) => {
            finish_subrequest(state).await;
            Ok(())
        }
        Err(e) => {
            if !e.from_subreq {
                // the device is gone; flag it before the pipe (held by `e`) is dropped
                exchange.client_gone.store(true, Ordering::Release);
            }
            Err((e.error, e.state.header_received))
        }
    }
}

/// Lets the subrequest task finish its logging (the audit row) before the parent moves on.
async fn finish_subrequest(mut state: PipeSubrequestState) {
    let (Some(mut join), Some(mut rx)) = (state.join_handle.take(), state.pipe_rx.take()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut join => return,
            task = rx.recv() => if task.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(5), join).await;
                return;
            },
        }
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

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &RequestCtx) -> bool {
        true
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(sub) = session.subrequest_ctx.as_ref() {
            // the subrequest: the parent has decided; carry its exchange and go to the vendor
            let exchange = sub
                .user_ctx()
                .and_then(|u| u.downcast_ref::<Arc<Exchange>>())
                .cloned();
            ctx.vendor = exchange.as_ref().map(|x| x.vendor);
            ctx.request = exchange.as_ref().map(|x| x.request.clone());
            ctx.exchange = exchange;
            ctx.is_subrequest = true;
            return match ctx.exchange {
                Some(_) => Ok(false),
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
        match route {
            Route::Health => {
                ctx.status = Some(200);
                let body = serde_json::json!({"status": "healthy", "version": VERSION});
                respond::json(session, 200, body.to_string().into_bytes()).await;
            }
            Route::Admin => {
                ctx.status = Some(crate::admin::handle(&self.shared, session, ctx.client_ip).await);
            }
            Route::Misdirected => {
                self.answer_error(session, ctx, None, ProxyError::Misdirected)
                    .await
            }
            Route::HostMismatch => {
                self.answer_error(session, ctx, None, ProxyError::HostMismatch)
                    .await
            }
            Route::NotFound => {
                self.answer_error(session, ctx, None, ProxyError::NotFound)
                    .await
            }
            Route::Vendor { endpoint, path } => {
                self.forward(session, ctx, host.as_deref(), endpoint, path)
                    .await
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(x) = ctx.exchange.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no exchange for upstream_peer");
        };
        let ep = &self.shared.config.endpoints[x.request.endpoint];
        Ok(upstream::peer(
            x.addr,
            &ep.upstream,
            &self.shared.config.limits,
        ))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_sent = Some(Instant::now());
        match ctx.exchange.as_ref() {
            Some(x) => rewrite_for_vendor(req, x),
            None => Error::e_explain(ErrorType::InternalError, "no exchange for upstream request"),
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = Some(resp.status.as_u16());
        ctx.first_byte.get_or_insert_with(Instant::now);
        if let Some(vendor) = ctx.vendor {
            let header = |name| {
                resp.headers
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
            };
            ctx.usage = Some(UsageTap::new(
                vendor,
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
            ctx.response_done = true;
            ctx.upstream_done = Some(Instant::now());
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if ctx.is_subrequest {
            // the parent writes the vendor-shaped answer (it knows whether a header went out)
            let pe = ProxyError::from_upstream(e);
            let code = if session.response_written().is_some() {
                0
            } else {
                pe.status()
            };
            ctx.error = Some(pe);
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let pe = ProxyError::BadRequest(e.etype().as_str().to_lowercase());
        if session.response_written().is_none()
            && e.esource() != &pingora_core::ErrorSource::Downstream
        {
            self.answer_error(session, ctx, ctx.vendor, pe.clone())
                .await;
        }
        ctx.error = Some(pe);
        FailToProxy {
            error_code: ctx.status.unwrap_or(0),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.forwarded {
            return; // the subrequest records this exchange
        }
        let mut client_closed = false;
        if let Some(e) = e {
            if e.esource() == &pingora_core::ErrorSource::Downstream {
                client_closed = true;
            } else if ctx.error.is_none() {
                ctx.error = Some(ProxyError::from_upstream(e));
            }
        }
        if ctx
            .exchange
            .as_ref()
            .is_some_and(|x| x.client_gone.load(Ordering::Acquire))
        {
            // what looked like a broken pipe to the vendor side was the device leaving
            client_closed = true;
            ctx.error = None;
        }
        if let Some(tap) = ctx.usage.as_mut() {
            tap.finish();
        }
        if let Some(x) = ctx.exchange.as_ref() {
            x.policy.settle().await;
        }
        // an answer that started but never finished, with no error seen, also lost its client
        let unfinished =
            ctx.is_subrequest && !ctx.response_done && ctx.error.is_none() && ctx.status.is_some();
        if let Some(row) = record::audit_row(&self.shared, ctx, client_closed || unfinished) {
            if let Some(ip) = ctx.client_ip {
                let tokens = row.prompt_tokens.unwrap_or(0) + row.response_tokens.unwrap_or(0);
                self.shared
                    .counters
                    .record(ip, self.shared.clock.now(), tokens.max(0) as u64);
            }
            let vendor_wait = ctx.upstream_sent.map(|sent| {
                ctx.upstream_done
                    .unwrap_or_else(Instant::now)
                    .duration_since(sent)
            });
            metrics::exchange(&row, ctx.blocked, ctx.is_subrequest, vendor_wait);
            self.shared.audit.send(row);
        }
        log::debug!(
            "request done vendor={} status={} error={} duration_ms={}",
            ctx.vendor.map_or("-", Vendor::as_str),
            ctx.status.unwrap_or(0),
            ctx.error.as_ref().map_or("-", ProxyError::code),
            ctx.started.elapsed().as_millis()
        );
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn block_page(policy: &str, reason: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Blocked by YORI</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>Not right now</h1>\
         <p>This AI request was blocked by your household's <b>{}</b> rule.</p><p>{}</p>\
         <p style=\"color:#666\">YORI home gateway</p></body></html>",
        html_escape(policy),
        html_escape(reason)
    )
}
