//! OpenAI (and Mistral, and custom OpenAI-compatible servers): Chat Completions and Responses.

use serde_json::{json, Value};

pub const DOMAIN: &str = "api.openai.com";
pub const MISTRAL_DOMAIN: &str = "api.mistral.ai";

/// `{"error": {"message", "type", "code"}}`: what the openai and mistral SDKs parse.
pub fn error_body(status: u16, code: &str, message: &str) -> Value {
    let kind = match status {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 | 421 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Chat Completions (`messages`), Responses (`input`) and legacy Completions (`prompt`).
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
    } else if let Some(input) = body.get("input") {
        match input {
            Value::Array(items) => {
                crate::facts::from_messages(items.iter(), "role", "user", "content", &mut p)
            }
            other => {
                p.prompt = crate::facts::content_text(other);
                p.text_chars = p.prompt.chars().count();
                p.message_count = 1;
            }
        }
    } else if let Some(prompt) = body.get("prompt") {
        p.prompt = crate::facts::content_text(prompt);
        p.text_chars = p.prompt.chars().count();
        p.message_count = 1;
    }
    if let Some(s) = body.get("instructions").and_then(Value::as_str) {
        p.text_chars += s.chars().count();
    }
    p
}

/// Usage from a response document or one stream event: Chat `usage` (final chunk with
/// `stream_options.include_usage`; Mistral always), Responses `usage` / `response.usage`.
pub fn absorb_usage(v: &Value, u: &mut crate::usage::Usage) {
    for usage in [v.get("usage"), v.pointer("/response/usage")]
        .into_iter()
        .flatten()
    {
        if let Some(n) = usage
            .get("prompt_tokens")
            .or_else(|| usage.get("input_tokens"))
            .and_then(Value::as_u64)
        {
            u.prompt = Some(n);
        }
        if let Some(n) = usage
            .get("completion_tokens")
            .or_else(|| usage.get("output_tokens"))
            .and_then(Value::as_u64)
        {
            u.completion = Some(n);
        }
    }
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            let text = c
                .pointer("/delta/content")
                .or_else(|| c.pointer("/message/content"))
                .and_then(Value::as_str);
            u.output_chars += text.map_or(0, |t| t.chars().count());
        }
    }
    if v.get("type").and_then(Value::as_str) == Some("response.output_text.delta") {
        u.output_chars += v
            .get("delta")
            .and_then(Value::as_str)
            .map_or(0, |t| t.chars().count());
    }
}
