//! Anthropic on `api.anthropic.com`: the Messages API, content as a string or blocks, streams of
//! named events.

use super::Provider;
use crate::inspect::facts::{content_text, from_messages, Parsed};
use crate::inspect::usage::Usage;
use serde_json::{json, Value};

pub const PROVIDER: Provider = Provider {
    id: "anthropic",
    default_domain: Some("api.anthropic.com"),
    request_facts,
    absorb_usage,
    error_body,
};

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
pub fn request_facts(body: &Value, _path: &str) -> Parsed {
    let mut p = Parsed {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        from_messages(msgs.iter(), "role", "user", "content", &mut p);
    }
    if let Some(s) = body.get("system") {
        p.text_chars += content_text(s).chars().count();
    }
    p
}

/// Usage: `message_start` carries `message.usage.input_tokens`; the final `message_delta`
/// carries the cumulative `usage.output_tokens` (a non-streaming answer has `usage`).
pub fn absorb_usage(v: &Value, u: &mut Usage) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::usage::{fixture, tap_pieces, Tokens};
    use crate::providers::fixture_json;

    #[test]
    fn blocks_of_the_last_user_message() {
        let p = request_facts(&fixture_json("anthropic/messages_request.json"), "/v1/messages");
        assert_eq!(p.prompt, "my email is a@b.co");
        assert_eq!((p.message_count, p.stream), (3, false));
        assert_eq!(p.model.as_deref(), Some("claude-sonnet-4-20250514"));
        assert_eq!(p.text_chars, "earlier".len() + "ok".len() + p.prompt.len() + "sys".len());
    }

    #[test]
    fn stream_takes_message_start_and_the_final_delta() {
        let t = tap_pieces(absorb_usage, "text/event-stream; charset=utf-8", None, &fixture("anthropic/messages_stream.sse"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 25,
                response: 15,
                estimated: false
            }
        );
    }

    #[test]
    fn json_answer_usage() {
        let t = tap_pieces(absorb_usage, "application/json", None, &fixture("anthropic/messages.json"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 21,
                response: 7,
                estimated: false
            }
        );
    }

    #[test]
    fn error_body_is_what_the_sdk_parses() {
        assert_eq!(
            error_body(504, "upstream_timeout", "slow"),
            json!({"type": "error", "error": {"type": "timeout_error", "message": "slow"}})
        );
    }
}
