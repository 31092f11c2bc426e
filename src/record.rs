//! Builds the audit row for a finished exchange from the request's ctx. Called once per
//! exchange from `logging()`: by the subrequest for forwarded requests, by the parent for vendor
//! requests it answered itself.

use crate::audit::{AuditRow, EVENT_BLOCK, EVENT_REQUEST};
use crate::facts::preview;
use crate::pii;
use crate::proxy::{RequestCtx, Shared};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Unique across restarts: start time and pid of this process, then a counter.
pub fn request_id() -> String {
    use once_cell::sync::Lazy;
    static BOOT: Lazy<String> = Lazy::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs:x}-{:x}", std::process::id())
    });
    format!("{}-{:x}", *BOOT, SEQ.fetch_add(1, Ordering::Relaxed))
}

pub fn audit_row(shared: &Shared, ctx: &RequestCtx, client_closed: bool) -> Option<AuditRow> {
    let req = ctx.request.as_ref()?;
    let config = &shared.config;
    let endpoint = &config.endpoints[req.endpoint];
    let facts = ctx
        .exchange
        .as_ref()
        .map(|x| &x.facts)
        .or(ctx.facts.as_ref());
    let preview_text = facts
        .filter(|_| config.audit.prompt_preview_chars > 0)
        .map(|f| {
            let cut = preview(&f.prompt, config.audit.prompt_preview_chars);
            if config.audit.redact_preview && !f.sensitive_kinds.is_empty() {
                // redact on the full prompt first, so an item cut by the preview boundary is still hidden
                preview(&pii::redact(&f.prompt), config.audit.prompt_preview_chars).to_string()
            } else {
                cut.to_string()
            }
        });
    let policy = ctx
        .exchange
        .as_ref()
        .and_then(|x| x.policy.get())
        .or(ctx.policy.as_ref());
    let tokens = ctx
        .usage
        .as_ref()
        .map(|t| t.tokens(facts.map_or(0, |f| f.text_chars)));
    let status = ctx
        .status
        .or_else(|| ctx.error.as_ref().map(|e| e.status()));
    let error_kind = match &ctx.error {
        Some(e) => Some(e.code()),
        None if client_closed => Some("client_closed"),
        None => None,
    };
    Some(AuditRow {
        timestamp: req
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_type: if ctx.blocked {
            EVENT_BLOCK
        } else {
            EVENT_REQUEST
        },
        client_ip: ctx.client_ip.map(|ip| ip.to_string()),
        client_device: ctx
            .client_ip
            .and_then(|ip| shared.devices.get(&ip).cloned()),
        endpoint: Some(endpoint.domain.clone()),
        vendor: Some(endpoint.vendor.as_str()),
        http_method: req.method.clone(),
        http_path: req.path.split('?').next().unwrap_or("").to_string(),
        model: facts.and_then(|f| f.model.clone()),
        stream: facts.is_some_and(|f| f.stream),
        message_count: facts.map(|f| f.message_count as i64),
        prompt_preview: preview_text,
        prompt_chars: facts.map(|f| f.prompt_chars() as i64),
        prompt_tokens: tokens.map(|t| t.prompt as i64),
        contains_sensitive: facts.is_some_and(|f| !f.sensitive_kinds.is_empty()),
        sensitive_kinds: facts
            .filter(|f| !f.sensitive_kinds.is_empty())
            .map(|f| f.sensitive_kinds.join(",")),
        response_status: status.map(i64::from),
        response_tokens: tokens.map(|t| t.response as i64),
        tokens_estimated: tokens.is_some_and(|t| t.estimated),
        response_duration_ms: req.started.elapsed().as_millis() as i64,
        first_byte_ms: ctx
            .first_byte
            .map(|t| t.duration_since(req.started).as_millis() as i64),
        request_bytes: req.request_bytes as i64,
        response_bytes: ctx.response_bytes as i64,
        policy_name: policy.and_then(|g| g.verdict.policy.clone()),
        policy_result: policy.map_or("allow", |g| g.verdict.action.as_str()),
        policy_reason: policy.and_then(|g| g.recorded_reason()),
        mode: config.mode.as_str(),
        error_kind,
        user_agent: req.user_agent.clone(),
        request_id: req.request_id.clone(),
    })
}
