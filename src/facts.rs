//! Facts about a vendor request, from its body: model, stream flag, the last user message's
//! text, message count, and the personal data found in that text.

use crate::pii;
use crate::vendor::{anthropic, gemini, openai, Vendor};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// Text of the last user message (all its text parts, joined by newlines).
    pub prompt: String,
    pub message_count: usize,
    /// Characters of text in the whole request (all messages): the basis of token estimates.
    pub text_chars: usize,
    pub sensitive_kinds: Vec<&'static str>,
}

impl RequestFacts {
    pub fn prompt_chars(&self) -> usize {
        self.prompt.chars().count()
    }
}

/// What each vendor's request parser fills in.
#[derive(Debug, Default)]
pub struct Parsed {
    pub model: Option<String>,
    pub stream: bool,
    pub prompt: String,
    pub message_count: usize,
    pub text_chars: usize,
}

/// Extracts facts; a body that is not JSON gives facts without prompt (still audited).
pub fn extract(vendor: Vendor, path: &str, body: &[u8]) -> RequestFacts {
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    let p = match vendor {
        Vendor::Anthropic => anthropic::request_facts(&json),
        Vendor::Gemini => gemini::request_facts(&json, path),
        Vendor::OpenAi | Vendor::Mistral | Vendor::OpenAiCompatible => openai::request_facts(&json),
    };
    RequestFacts {
        sensitive_kinds: pii::scan(&p.prompt),
        model: p.model,
        stream: p.stream,
        prompt: p.prompt,
        message_count: p.message_count,
        text_chars: p.text_chars,
    }
}

/// The text of a message's content: a string, or the `text` of its parts/blocks.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("text").and_then(Value::as_str),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(o) => o
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

/// Shared by the message-list formats: count, total text, last user text.
pub fn from_messages<'a>(
    messages: impl Iterator<Item = &'a Value>,
    role_key: &str,
    user_role: &str,
    content_key: &str,
    p: &mut Parsed,
) {
    for m in messages {
        p.message_count += 1;
        let text = content_text(m.get(content_key).unwrap_or(&Value::Null));
        p.text_chars += text.chars().count();
        let role = m.get(role_key).and_then(Value::as_str).unwrap_or(user_role);
        if role == user_role {
            p.prompt = text;
        }
    }
}

/// The first `max_chars` characters, cut on a character boundary.
pub fn preview(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_chat_takes_last_user_message_and_parts() {
        let body = br#"{"model":"gpt-4o","stream":true,"messages":[
            {"role":"system","content":"be nice"},
            {"role":"user","content":"first question"},
            {"role":"assistant","content":"answer"},
            {"role":"user","content":[{"type":"text","text":"second"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"part two"}]}]}"#;
        let f = extract(Vendor::OpenAi, "/v1/chat/completions", body);
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert!(f.stream);
        assert_eq!(f.prompt, "second\npart two");
        assert_eq!(f.message_count, 4);
    }

    #[test]
    fn openai_responses_input_string_and_items() {
        let f = extract(
            Vendor::OpenAi,
            "/v1/responses",
            br#"{"model":"o4","input":"just a string"}"#,
        );
        assert_eq!((f.prompt.as_str(), f.message_count), ("just a string", 1));
        let f = extract(
            Vendor::OpenAi,
            "/v1/responses",
            br#"{"model":"o4","input":[{"role":"user","content":[{"type":"input_text","text":"hello items"}]}]}"#,
        );
        assert_eq!(f.prompt, "hello items");
    }

    #[test]
    fn anthropic_blocks_and_gemini_parts() {
        let f = extract(
            Vendor::Anthropic,
            "/v1/messages",
            br#"{"model":"claude","system":"sys","messages":[{"role":"user","content":[{"type":"text","text":"my email is a@b.co"}]}]}"#,
        );
        assert_eq!(f.prompt, "my email is a@b.co");
        assert_eq!(f.sensitive_kinds, ["email"]);
        let f = extract(
            Vendor::Gemini,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            br#"{"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"model","parts":[{"text":"b"}]},{"role":"user","parts":[{"text":"c1"},{"text":"c2"}]}]}"#,
        );
        assert_eq!(
            (
                f.model.as_deref(),
                f.stream,
                f.prompt.as_str(),
                f.message_count
            ),
            (Some("gemini-2.0-flash"), true, "c1\nc2", 3)
        );
    }

    #[test]
    fn preview_cuts_on_char_boundary() {
        assert_eq!(preview("héllo wörld", 4), "héll");
        assert_eq!(preview("日本語テキスト", 3), "日本語");
        assert_eq!(preview("short", 200), "short");
        assert_eq!(preview("abc", 0), "");
    }

    #[test]
    fn non_json_body_gives_empty_facts() {
        let f = extract(Vendor::OpenAi, "/v1/chat/completions", b"\x00\xffnot json");
        assert_eq!(f, RequestFacts::default());
    }
}
