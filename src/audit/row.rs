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
    /// Comma list of what the inspection could not do whole (`request_unread`, `pii_scan_cut`,
    /// `usage_unread`).
    pub notes: Option<String>,
    /// US dollars, from the price table; `None`: the model is not priced (or nothing was sent).
    pub cost_usd: Option<f64>,
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
            notes: None,
            cost_usd: None,
        }
    }
}

/// Longest stored texts, in characters: whatever a device sends, a row stays small.
pub(crate) const MAX_MODEL_CHARS: usize = 128;
pub(crate) const MAX_USER_AGENT_CHARS: usize = 256;
pub(crate) const MAX_PATH_CHARS: usize = 1024;
pub(crate) const MAX_REASON_CHARS: usize = 1024;
pub(crate) const MAX_NAME_CHARS: usize = 128;

/// `text` cut to `max` characters (on a character boundary).
fn bounded(text: &str, max: usize) -> String {
    preview(text, max).to_string()
}

fn bounded_opt(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| bounded(t, max))
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
            client_device: bounded_opt(r.device.as_deref(), MAX_NAME_CHARS),
            endpoint: Some(r.endpoint.clone()),
            vendor: Some(r.vendor),
            http_method: bounded(&r.method, MAX_NAME_CHARS),
            http_path: bounded(&r.path, MAX_PATH_CHARS),
            model: bounded_opt(facts.and_then(|f| f.model.as_deref()), MAX_MODEL_CHARS),
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
            policy_name: bounded_opt(r.policy.name.as_deref(), MAX_NAME_CHARS),
            policy_result: r.policy.action,
            policy_reason: bounded_opt(r.policy.reason.as_deref(), MAX_REASON_CHARS),
            mode: r.mode,
            error_kind: r.outcome.error_kind(),
            user_agent: bounded_opt(r.user_agent.as_deref(), MAX_USER_AGENT_CHARS),
            request_id: r.request_id.clone(),
            notes: (!r.notes.is_empty()).then(|| r.notes.join(",")),
            cost_usd: r.cost_usd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::facts::RequestFacts;
    use crate::inspect::usage::Tokens;
    use crate::kinds::Outcome;
    use crate::report::PolicyOutcome;
    use std::sync::Arc;
    use std::time::Duration;

    fn report() -> Report {
        Report {
            request_id: "r".into(),
            started_at: chrono::Utc::now(),
            duration: Duration::from_millis(5),
            first_byte: None,
            vendor_wait: None,
            client_ip: None,
            device: None,
            vendor: Vendor::OpenAi,
            endpoint: "api.openai.com".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            user_agent: Some("ü".repeat(10_000)),
            facts: Some(Arc::new(RequestFacts {
                model: Some("m".repeat(16 << 20)),
                ..RequestFacts::default()
            })),
            tokens: Some(Tokens {
                prompt: u64::MAX,
                response: u64::MAX - 1,
                estimated: false,
            }),
            cost_usd: None,
            status: Some(200),
            outcome: Outcome::Forwarded,
            send_path: None,
            policy: PolicyOutcome {
                name: Some("p".into()),
                action: Action::Alert,
                reason: Some("r".repeat(50_000)),
            },
            mode: Mode::Observe,
            request_bytes: u64::MAX,
            response_bytes: 1,
            notes: vec!["pii_scan_cut", "usage_unread"],
        }
    }

    #[test]
    fn device_texts_are_bounded_and_counts_saturate() {
        let row = AuditRow::from_report(&report(), &AuditConfig::default());
        assert_eq!(row.model.as_deref().map(str::len), Some(MAX_MODEL_CHARS));
        assert_eq!(
            row.user_agent.as_deref().map(|u| u.chars().count()),
            Some(MAX_USER_AGENT_CHARS)
        );
        assert_eq!(
            row.policy_reason.as_deref().map(str::len),
            Some(MAX_REASON_CHARS)
        );
        assert_eq!(
            row.prompt_tokens,
            Some(i64::MAX),
            "saturates, never wraps negative"
        );
        assert_eq!(row.response_tokens, Some(i64::MAX));
        assert_eq!(row.request_bytes, i64::MAX);
        assert_eq!(row.notes.as_deref(), Some("pii_scan_cut,usage_unread"));
    }
}
