//! Google Gemini: `generateContent` and `streamGenerateContent`.

use serde_json::{json, Value};

pub const DOMAIN: &str = "generativelanguage.googleapis.com";

/// `{"error": {"code", "message", "status"}}`: Google's API error shape.
pub fn error_body(status: u16, _code: &str, message: &str) -> Value {
    let grpc = match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 421 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message, "status": grpc}})
}

/// `contents[].parts[].text`; the model and the stream flag are in the path
/// (`/v1beta/models/{model}:streamGenerateContent`).
pub fn request_facts(body: &Value, path: &str) -> crate::facts::Parsed {
    let path = path.split('?').next().unwrap_or("");
    let model = path
        .split("/models/")
        .nth(1)
        .and_then(|m| m.split(':').next())
        .filter(|m| !m.is_empty());
    let mut p = crate::facts::Parsed {
        model: model.map(str::to_string),
        stream: path.contains(":streamGenerateContent"),
        ..Default::default()
    };
    if let Some(contents) = body.get("contents").and_then(Value::as_array) {
        crate::facts::from_messages(contents.iter(), "role", "user", "parts", &mut p);
    }
    p
}

/// `usageMetadata` repeats in every stream chunk with growing totals: the last one wins.
pub fn absorb_usage(v: &Value, u: &mut crate::usage::Usage) {
    if let Some(m) = v.get("usageMetadata") {
        if let Some(n) = m.get("promptTokenCount").and_then(Value::as_u64) {
            u.prompt = Some(n);
        }
        if let Some(n) = m.get("candidatesTokenCount").and_then(Value::as_u64) {
            u.completion = Some(n);
        }
    }
    if let Some(cands) = v.get("candidates").and_then(Value::as_array) {
        for c in cands {
            if let Some(parts) = c.pointer("/content/parts").and_then(Value::as_array) {
                u.output_chars += parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(|t| t.chars().count())
                    .sum::<usize>();
            }
        }
    }
}
