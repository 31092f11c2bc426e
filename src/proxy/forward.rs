//! The vendor leg of a request: read the whole body, have the policies decide, then send it to
//! the vendor. Nothing reaches the vendor before the body is read whole and decided on.
//!
//! A body that fits Pingora's retry buffer (64 KiB: nearly every LLM call) goes in one pass:
//! `request_filter` returns `Ok(false)` and Pingora's own proxy path connects and sends the
//! header and the buffered body. A longer body (images, documents) is replayed as a Pingora
//! subrequest with the body preset; the subrequest connects to the vendor and streams the answer
//! back through the parent.

use super::ctx::{Exchange, Inspection, Leg, RequestCtx, VendorRequest};
use super::error::ProxyError;
use super::{capture, headers, report, respond, route, Shared};
use crate::config::EndpointId;
use crate::inspect::facts::RequestFacts;
use crate::kinds::{Mode, Outcome};
use crate::policy::decide;
use crate::policy::gate::Gated;
use crate::providers::Vendor;
use bytes::Bytes;
use http::{header, Version};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::subrequest::pipe::{
    pipe_subrequest, InputBody, InputBodyType, PipeSubrequestState,
};
use pingora_proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora_proxy::Session;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The facts of a request body (`None`: an encoding that could not be read) and the policies'
/// verdict on them.
fn inspect(
    shared: &Shared,
    client_ip: Option<IpAddr>,
    request: &VendorRequest,
    body: Option<&[u8]>,
) -> Inspection {
    let mut facts = request
        .vendor
        .request_facts(&request.path, body.unwrap_or_default());
    facts.body_unread = body.is_none();
    let facts = Arc::new(facts);
    let verdict = decide(shared, client_ip, request, &facts);
    Inspection { facts, verdict }
}

/// Whether enforce mode may stop this client's requests now: not when the emergency switch is
/// on, nor for a client on the allowlist.
fn may_block(shared: &Shared, client_ip: Option<IpAddr>) -> bool {
    let live = shared.decider.live.get();
    !live.disabled && !client_ip.is_some_and(|ip| live.allowlist.contains(&ip))
}

/// Runs the policies on a request and raises the alert the verdict calls for.
fn decide(
    shared: &Shared,
    client_ip: Option<IpAddr>,
    request: &VendorRequest,
    facts: &RequestFacts,
) -> Gated {
    let ep = shared.config.endpoint(request.endpoint);
    let live = shared.decider.live.get();
    let device = client_ip
        .and_then(|ip| live.devices.get(&ip))
        .map(String::as_str);
    let g = shared.decider.decide(&decide::Request {
        vendor: ep.vendor.as_str(),
        endpoint: &ep.domain,
        method: &request.method,
        path: &request.path,
        facts,
        client_ip,
        device,
    });
    if g.alert {
        shared.alerts.raise(serde_json::json!({
            "type": "yori.alert",
            "time": shared.decider.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "action": g.verdict.action.as_str(),
            "policy": g.verdict.policy,
            "reason": g.recorded_reason(),
            "mode": shared.config.mode.as_str(),
            "client_ip": client_ip.map(|ip| ip.to_string()),
            "device": device,
            "vendor": ep.vendor.as_str(),
            "model": facts.model,
            "request_id": request.request_id,
        }));
    }
    g
}

/// An error answer in the vendor's shape (OpenAI's when the vendor is not known yet).
pub(super) async fn answer_error(
    shared: &Shared,
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
        ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequest(_)
            | ProxyError::BodyTimeout
            | ProxyError::Busy
            | ProxyError::Upgrade
    ) {
        // the rest of the body is unread (or, for an upgrade, the device may go on in the
        // protocol it asked for): this connection cannot carry another request
        session.set_keepalive(None);
    } else {
        // a refusal before the body was read: take it first, or an HTTP/2 client still
        // uploading may see its stream reset before it reads the answer
        capture::discard_body(session, shared.config.limits.max_body_bytes).await;
    }
    ctx.status = Some(e.status());
    ctx.end(Outcome::from_error(e.kind()));
    respond::json(session, e.status(), body).await;
}

/// 403 in the vendor's own error shape (a small page for browsers); the vendor gets nothing.
/// It carries the approval code a parent can pass to `yori allow` for this device and policy.
async fn answer_block(
    shared: &Shared,
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
    let live = shared.decider.live.get();
    let device = ctx.client_ip.map(|ip| {
        live.devices
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| ip.to_string())
    });
    let code = device
        .as_deref()
        .filter(|_| gated.verdict.policy.is_some())
        .map(|d| crate::policy::approvals::code(d, &policy));
    let ask = code.as_deref().map_or_else(String::new, |c| {
        format!(
            " To ask a parent, give them the code {c} (on the router: `yori allow {c} --for 30m`)."
        )
    });
    let message = format!("yori: blocked by household policy `{policy}`: {reason}.{ask}");
    ctx.status = Some(403);
    ctx.end(Outcome::Blocked);
    if let Some(l) = ctx.local() {
        l.policy = Some(gated);
    }
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
            Bytes::from(respond::block_page(&policy, &reason, code.as_deref())),
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

/// A vendor request: read, decide, then either leave the sending to Pingora (`Ok(false)` from
/// `request_filter`: returns true) or answer it here (refused, blocked, long-body replay:
/// returns false). An error: the vendor's answer was cut after its header reached the device;
/// the connection must end without a clean end of body (see `replay`).
#[must_use = "true: Pingora sends the request on; false: it was answered here"]
pub(super) async fn forward(
    shared: &Arc<Shared>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    host: Option<&str>,
    endpoint: EndpointId,
    path: String,
) -> Result<bool> {
    let ep = shared.config.endpoint(endpoint);
    let upgrade = headers::is_upgrade(session.req_header());
    begin(session, ctx, endpoint, ep.vendor, &path);
    if upgrade {
        answer_error(shared, session, ctx, Some(ep.vendor), ProxyError::Upgrade).await;
        return Ok(false);
    }
    let Some((body, plain)) = read(shared, session, ctx, ep.vendor).await else {
        return Ok(false);
    };
    let one_pass = !session.as_ref().retry_buffer_truncated();
    let Some(local) = ctx.local() else {
        return Ok(false);
    };
    local.request.request_bytes = body.len();
    let request = local.request.clone();
    let inline =
        match decide_inline(shared, session, ctx, ep.vendor, &request, plain.as_deref()).await {
            Inline::Answered => return Ok(false),
            Inline::Go(inline) => inline,
        };
    let addr = shared
        .resolver
        .resolve(&ep.upstream.host, ep.upstream.port)
        .await;
    let refusal = match &addr {
        Err(why) => Some(ProxyError::UpstreamUnreachable(why.to_string())),
        Ok(_) if one_pass => None,
        Ok(_) => h1_compatible(session, host)
            .err()
            .map(|e| ProxyError::BadRequest(e.to_string())),
    };
    if let Some(e) = refusal {
        let i =
            inline.unwrap_or_else(|| inspect(shared, ctx.client_ip, &request, plain.as_deref()));
        if let Some(l) = ctx.local() {
            l.facts = Some(i.facts);
            l.policy = Some(i.verdict);
        }
        answer_error(shared, session, ctx, Some(ep.vendor), e).await;
        return Ok(false);
    }
    let Ok(addr) = addr else {
        return Ok(false);
    };
    let upstream_path = format!("{}{}", ep.upstream.base_path, path);
    let exchange = Arc::new(Exchange::new(
        request,
        upstream_path,
        ep.domain.clone(),
        addr,
    ));
    match inline {
        Some(i) => exchange.inspection.set(i),
        None => {
            let (request, shared2, client_ip) =
                (exchange.request.clone(), shared.clone(), ctx.client_ip);
            exchange.inspection.defer(
                shared
                    .offload
                    .run(move || inspect(&shared2, client_ip, &request, plain.as_deref())),
            );
        }
    }
    if one_pass {
        ctx.leg = Leg::OnePass(exchange);
        return Ok(true);
    }
    ctx.leg = Leg::Parent(exchange.clone());
    relay(session, ep.vendor, exchange, body).await?;
    Ok(false)
}

/// Starts the exchange in the context: the request as the row, the policies and the logs see it.
fn begin(
    session: &Session,
    ctx: &mut RequestCtx,
    endpoint: EndpointId,
    vendor: Vendor,
    path: &str,
) {
    let req = session.req_header();
    ctx.begin(VendorRequest {
        endpoint,
        vendor,
        method: req.method.as_str().to_string(),
        user_agent: req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        // what logs, policies, rows and webhooks see; the vendor gets `path` itself
        path: route::redact_query(path).into_owned(),
        http10: req.version == Version::HTTP_10,
        started: ctx.started,
        started_at: chrono::Utc::now(),
        request_bytes: 0,
        request_id: report::request_id(),
    });
}

/// The whole body as sent, and the copy the policies read (`None`: an encoding that could not
/// be read); `None` when the request was answered here (too large, too slow, the budget spent).
async fn read(
    shared: &Shared,
    session: &mut Session,
    ctx: &mut RequestCtx,
    vendor: Vendor,
) -> Option<(Bytes, Option<Bytes>)> {
    // Pingora keeps a copy of what is read, up to 64 KiB, and sends it itself when
    // `request_filter` lets the request through
    session.as_mut().enable_retry_buffering();
    let mut share = shared.body_budget.share();
    let read = capture::read_body(session, &shared.config.limits, &mut share)
        .await
        .and_then(|body| {
            let plain = capture::plain_copy(session, &body, &shared.config.limits, &mut share)?;
            Ok((body, plain))
        });
    ctx.body_share = Some(share);
    match read {
        Ok(b) => Some(b),
        Err(e) => {
            answer_error(shared, session, ctx, Some(vendor), e).await;
            None
        }
    }
}

/// What enforce mode decided before the request goes on.
enum Inline {
    /// Blocked, or refused: the device has its answer.
    Answered,
    /// On to the vendor, with the inspection when it was done here (enforce mode).
    Go(Option<Inspection>),
}

/// Only enforce mode can stop a request, so only there are the facts and the verdict worked out
/// before the request goes on. In observe and advisory modes they are worked out off the proxy
/// thread while the vendor answers (`offload`); the audit row waits for them.
async fn decide_inline(
    shared: &Shared,
    session: &mut Session,
    ctx: &mut RequestCtx,
    vendor: Vendor,
    request: &VendorRequest,
    plain: Option<&[u8]>,
) -> Inline {
    if shared.config.mode != Mode::Enforce {
        return Inline::Go(None);
    }
    let i = inspect(shared, ctx.client_ip, request, plain);
    if i.verdict.block {
        if let Some(l) = ctx.local() {
            l.facts = Some(i.facts.clone());
        }
        answer_block(shared, session, ctx, vendor, i.verdict).await;
        return Inline::Answered;
    }
    if i.facts.body_unread && may_block(shared, ctx.client_ip) {
        // enforce mode cannot decide on a body it cannot read: an encoding must not be a way
        // around the household's rules
        if let Some(l) = ctx.local() {
            l.facts = Some(i.facts);
        }
        answer_error(
            shared,
            session,
            ctx,
            Some(vendor),
            ProxyError::UnreadableBody,
        )
        .await;
        return Inline::Answered;
    }
    Inline::Go(Some(i))
}

/// A long body's exchange: replayed through a subrequest whose answer is piped to the device. An
/// error: the answer was cut after its header reached the device.
async fn relay(
    session: &mut Session,
    vendor: Vendor,
    exchange: Arc<Exchange>,
    body: Bytes,
) -> Result<()> {
    match replay(session, exchange, body).await {
        Ok(()) => {}
        Err((e, header_sent))
            if !header_sent && e.esource() != &pingora_core::ErrorSource::Downstream =>
        {
            let e = ProxyError::from_upstream(&e);
            let body = vendor.error_body(e.status(), e.code(), &e.message());
            respond::json(session, e.status(), body).await;
        }
        Err((e, true)) if e.esource() != &pingora_core::ErrorSource::Downstream => {
            // the device has a header and part of the body: an error from `request_filter`
            // drops the connection (HTTP/1.1: no final chunk) or resets the stream (h2), so the
            // SDK sees a cut answer, never a complete one
            return Error::e_because(ErrorType::ReadError, "the vendor's answer was cut", e);
        }
        Err((e, _)) => log::debug!("exchange ended early vendor={vendor} error={e}"),
    }
    Ok(())
}

/// The request the vendor sees: its own Host, the vendor path, HTTP/1.1 framing with an exact
/// Content-Length (the body is known whole), everything else as the device sent it.
pub(super) fn rewrite_for_vendor(req: &mut RequestHeader, x: &Exchange) -> Result<()> {
    let had_body = req.headers.contains_key(header::CONTENT_LENGTH)
        || req.headers.contains_key(header::TRANSFER_ENCODING)
        || x.request.request_bytes > 0;
    let uri = x
        .upstream_path
        .parse::<http::Uri>()
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "vendor path", e))?;
    req.set_uri(uri);
    req.insert_header(header::HOST, x.domain.as_str())?;
    headers::strip_request(req);
    headers::join_cookies(req)?;
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
                // the device is gone; say so before the pipe (held by `e`) is dropped, so the
                // subrequest does not take the broken pipe for the vendor's failure
                exchange.end(Outcome::ClientClosed);
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
