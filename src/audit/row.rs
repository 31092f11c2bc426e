//! One `audit_events` row, derived from an exchange's report and the `audit` settings (what the
//! preview keeps).

use crate::config::AuditConfig;
use crate::inspect::facts::preview;
use crate::inspect::pii;
use crate::kinds::{Action, ErrorKind, EventType, Mode};
use crate::providers::Vendor;
use crate::report::Report;

/// One `audit_events` row, as the writer inserts it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub timestamp: String,
    pub event_type: EventType,
    pub client_ip: Option<String>,
    pub client_device: Option<String>,
    pub endpoint: Option<String>,
    pub vendor: Option<Vendor>,
    pub http_method: String,
    pub http_path: String,
    pub model: Option<String>,
    pub stream: bool,
    pub message_count: Option<i64>,
    pub prompt_preview: Option<String>,
    pub prompt_chars: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub contains_sensitive: bool,
    pub sensitive_kinds: Option<String>,
    pub response_status: Option<i64>,
    pub response_tokens: Option<i64>,
    pub tokens_estimated: bool,
    pub response_duration_ms: i64,
    pub first_byte_ms: Option<i64>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub policy_name: Option<String>,
    pub policy_result: Action,
    pub policy_reason: Option<String>,
    pub mode: Mode,
    pub error_kind: Option<ErrorKind>,
    pub user_agent: Option<String>,
    pub request_id: String,
}

impl Default for AuditRow {
    fn default() -> Self {
        AuditRow {
            timestamp: String::new(),
            event_type: EventType::Request,
            client_ip: None,
            client_device: None,
            endpoint: None,
            vendor: None,
            http_method: String::new(),
            http_path: String::new(),
            model: None,
            stream: false,
            message_count: None,
            prompt_preview: None,
            prompt_chars: None,
            prompt_tokens: None,
            contains_sensitive: false,
            sensitive_kinds: None,
            response_status: None,
            response_tokens: None,
            tokens_estimated: false,
            response_duration_ms: 0,
            first_byte_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            policy_name: None,
            policy_result: Action::Allow,
            policy_reason: None,
            mode: Mode::Observe,
            error_kind: None,
            user_agent: None,
            request_id: String::new(),
        }
    }
}

/// A count as SQLite's INTEGER, saturating instead of wrapping.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AuditRow {
    pub(crate) fn from_report(r: &Report, config: &AuditConfig) -> AuditRow {
        let facts = r.facts.as_deref();
        let chars = config.prompt_preview_chars;
        let prompt_preview = facts.filter(|_| chars > 0).map(|f| {
            if config.redact_preview && !f.sensitive_kinds.is_empty() {
                // redact before cutting, so an item cut by the preview boundary is hidden
                pii::redacted_preview(&f.prompt, chars)
            } else {
                preview(&f.prompt, chars).to_string()
            }
        });
        let sensitive = facts.is_some_and(|f| !f.sensitive_kinds.is_empty());
        AuditRow {
            timestamp: r
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event_type: r.outcome.event_type(),
            client_ip: r.client_ip.map(|ip| ip.to_string()),
            client_device: r.device.clone(),
            endpoint: Some(r.endpoint.clone()),
            vendor: Some(r.vendor),
            http_method: r.method.clone(),
            http_path: r.path.clone(),
            model: facts.and_then(|f| f.model.clone()),
            stream: facts.is_some_and(|f| f.stream),
            message_count: facts.map(|f| int(f.message_count as u64)),
            prompt_preview,
            prompt_chars: facts.map(|f| int(f.prompt_chars() as u64)),
            prompt_tokens: r.tokens.map(|t| int(t.prompt)),
            contains_sensitive: sensitive,
            sensitive_kinds: facts
                .filter(|_| sensitive)
                .map(|f| f.sensitive_kinds.join(",")),
            response_status: r.status.map(i64::from),
            response_tokens: r.tokens.map(|t| int(t.response)),
            tokens_estimated: r.tokens.is_some_and(|t| t.estimated),
            response_duration_ms: millis(r.duration),
            first_byte_ms: r.first_byte.map(millis),
            request_bytes: int(r.request_bytes),
            response_bytes: int(r.response_bytes),
            policy_name: r.policy.name.clone(),
            policy_result: r.policy.action,
            policy_reason: r.policy.reason.clone(),
            mode: r.mode,
            error_kind: r.outcome.error_kind(),
            user_agent: r.user_agent.clone(),
            request_id: r.request_id.clone(),
        }
    }
}
