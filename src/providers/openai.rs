//! OpenAI on `api.openai.com`: Chat Completions (`messages`), Responses (`input`) and legacy
//! Completions (`prompt`). Mistral and custom `openai_compatible` servers speak these formats
//! too; their files reuse the functions here.

use super::Provider;
use crate::inspect::facts::{content_text, from_messages, Parsed};
use crate::inspect::usage::Usage;
use serde_json::{json, Value};

pub const PROVIDER: Provider = Provider {
    id: "openai",
    default_domain: Some("api.openai.com"),
    request_facts,
    absorb_usage,
    error_body,
};

/// `{"error": {"message", "type", "param", "code"}}`: what the openai and mistral SDKs parse.
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
    } else if let Some(input) = body.get("input") {
        match input {
            Value::Array(items) => from_messages(items.iter(), "role", "user", "content", &mut p),
            other => single_prompt(other, &mut p),
        }
    } else if let Some(prompt) = body.get("prompt") {
        single_prompt(prompt, &mut p);
    }
    if let Some(s) = body.get("instructions").and_then(Value::as_str) {
        p.text_chars += s.chars().count();
    }
    p
}

/// A request whose whole prompt is one value (`input: "..."`, legacy `prompt`).
fn single_prompt(v: &Value, p: &mut Parsed) {
    p.prompt = content_text(v);
    p.text_chars = p.prompt.chars().count();
    p.message_count = 1;
}

/// Usage from a response document or one stream event: Chat `usage` (final chunk with
/// `stream_options.include_usage`; Mistral always), Responses `usage` / `response.usage`.
pub fn absorb_usage(v: &Value, u: &mut Usage) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::usage::{fixture, tap_pieces, Tokens};
    use crate::providers::fixture_json;

    #[test]
    fn chat_takes_the_last_user_message_and_its_text_parts() {
        let p = request_facts(&fixture_json("openai/chat_request.json"), "/v1/chat/completions");
        assert_eq!(p.model.as_deref(), Some("gpt-4o"));
        assert!(p.stream);
        assert_eq!(p.prompt, "second\npart two");
        assert_eq!(p.message_count, 4);
    }

    #[test]
    fn responses_input_as_items_or_a_string() {
        let p = request_facts(&fixture_json("openai/responses_request.json"), "/v1/responses");
        assert_eq!((p.prompt.as_str(), p.message_count), ("hello items", 1));
        assert_eq!(p.text_chars, "hello items".len() + "answer briefly".len());
        let p = request_facts(&json!({"model": "o4", "input": "just a string"}), "/v1/responses");
        assert_eq!((p.prompt.as_str(), p.message_count), ("just a string", 1));
        let p = request_facts(&json!({"model": "davinci", "prompt": "legacy"}), "/v1/completions");
        assert_eq!(p.prompt, "legacy");
    }

    #[test]
    fn stream_usage_with_include_usage_and_without() {
        let t = tap_pieces(absorb_usage, "text/event-stream", None, &fixture("openai/chat_stream_usage.sse"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 12,
                response: 5,
                estimated: false
            }
        );
        let t = tap_pieces(absorb_usage, "text/event-stream", None, &fixture("openai/chat_stream_no_usage.sse"));
        let tok = t.tokens(40);
        assert!(tok.estimated);
        assert_eq!(tok.prompt, 10);
        assert!(tok.response > 0, "never zero for a non-empty answer");
    }

    #[test]
    fn json_answer_usage() {
        let t = tap_pieces(absorb_usage, "application/json", None, &fixture("openai/chat.json"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 19,
                response: 10,
                estimated: false
            }
        );
    }

    #[test]
    fn error_body_is_what_the_sdk_parses() {
        assert_eq!(
            error_body(413, "request_too_large", "too big"),
            json!({"error": {"message": "too big", "type": "invalid_request_error", "param": null, "code": "request_too_large"}})
        );
        assert_eq!(error_body(403, "policy_blocked", "no")["error"]["type"], "permission_error");
    }
}
