//! Google Gemini on `generativelanguage.googleapis.com`: `generateContent` and
//! `streamGenerateContent`, with the model and the stream flag in the path.

use super::Provider;
use crate::inspect::facts::{from_messages, Parsed};
use crate::inspect::usage::Usage;
use serde_json::{json, Value};

pub const PROVIDER: Provider = Provider {
    id: "gemini",
    default_domain: Some("generativelanguage.googleapis.com"),
    request_facts,
    absorb_usage,
    error_body,
};

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
pub fn request_facts(body: &Value, path: &str) -> Parsed {
    let path = path.split('?').next().unwrap_or("");
    let model = path
        .split("/models/")
        .nth(1)
        .and_then(|m| m.split(':').next())
        .filter(|m| !m.is_empty());
    let mut p = Parsed {
        model: model.map(str::to_string),
        stream: path.contains(":streamGenerateContent"),
        ..Default::default()
    };
    if let Some(contents) = body.get("contents").and_then(Value::as_array) {
        from_messages(contents.iter(), "role", "user", "parts", &mut p);
    }
    p
}

/// `usageMetadata` repeats in every stream chunk with growing totals: the last one wins.
pub fn absorb_usage(v: &Value, u: &mut Usage) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::usage::{fixture, tap_pieces, Tokens};
    use crate::providers::fixture_json;

    #[test]
    fn parts_of_the_last_user_content_and_the_model_from_the_path() {
        let p = request_facts(
            &fixture_json("gemini/generate_request.json"),
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        );
        assert_eq!(
            (p.model.as_deref(), p.stream, p.prompt.as_str(), p.message_count),
            (Some("gemini-2.0-flash"), true, "c1\nc2", 3)
        );
        let p = request_facts(&json!({}), "/v1beta/models/gemini-pro:generateContent");
        assert_eq!((p.model.as_deref(), p.stream), (Some("gemini-pro"), false));
    }

    #[test]
    fn stream_takes_the_last_usage_not_the_sum() {
        let t = tap_pieces(absorb_usage, "text/event-stream", None, &fixture("gemini/stream.sse"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 8,
                response: 9,
                estimated: false
            }
        );
    }

    #[test]
    fn json_answer_usage() {
        let t = tap_pieces(absorb_usage, "application/json", None, &fixture("gemini/generate.json"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 8,
                response: 7,
                estimated: false
            }
        );
    }

    #[test]
    fn error_body_is_googles_shape() {
        assert_eq!(
            error_body(403, "policy_blocked", "no"),
            json!({"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}})
        );
    }
}
