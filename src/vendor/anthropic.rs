//! Anthropic: the Messages API.

use serde_json::{json, Value};

pub const DOMAIN: &str = "api.anthropic.com";

/// `{"type": "error", "error": {"type", "message"}}`: what the anthropic SDKs parse.
pub fn error_body(status: u16, _code: &str, message: &str) -> Value {
    let kind = match status {
        400 | 404 | 421 => "invalid_request_error",
        413 => "request_too_large",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        504 => "timeout_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Messages API: `messages[].content` as a string or blocks; `system` counts toward the text.
pub fn request_facts(body: &Value) -> crate::facts::Parsed {
    let mut p = crate::facts::Parsed {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        crate::facts::from_messages(msgs.iter(), "role", "user", "content", &mut p);
    }
    if let Some(s) = body.get("system") {
        p.text_chars += crate::facts::content_text(s).chars().count();
    }
    p
}

/// Usage: `message_start` carries `message.usage.input_tokens`; the final `message_delta`
/// carries the cumulative `usage.output_tokens` (a non-streaming answer has `usage`).
pub fn absorb_usage(v: &Value, u: &mut crate::usage::Usage) {
    for usage in [v.get("usage"), v.pointer("/message/usage")]
        .into_iter()
        .flatten()
    {
        if let Some(n) = usage.get("input_tokens").and_then(Value::as_u64) {
            u.prompt = Some(n);
        }
        if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
            u.completion = Some(n);
        }
    }
    if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
        u.output_chars += t.chars().count();
    }
    if let Some(blocks) = v.get("content").and_then(Value::as_array) {
        u.output_chars += blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum::<usize>();
    }
}
