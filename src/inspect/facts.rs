//! Facts about a vendor request: model, stream flag, the last user message's text, message
//! count, and the personal data found in that text. The shapes and helpers here are
//! vendor-neutral; each provider says which fields hold them (`providers::*::request_facts`).

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
    /// The personal-data scan stopped at its bound (`pii::MAX_SCAN_BYTES`, `MAX_ITEMS`).
    pub scan_cut: bool,
    /// The body came with a Content-Encoding that could not be read within the bound
    /// (`inflate::whole`): these facts are those of an empty body.
    pub body_unread: bool,
}

impl RequestFacts {
    pub fn prompt_chars(&self) -> usize {
        self.prompt.chars().count()
    }

    /// The parsed facts, with the personal data found in the prompt.
    pub fn from_parsed(p: Parsed) -> RequestFacts {
        let scan = super::pii::scan(&p.prompt);
        RequestFacts {
            sensitive_kinds: scan.kinds,
            scan_cut: scan.cut,
            model: p.model,
            stream: p.stream,
            prompt: p.prompt,
            message_count: p.message_count,
            text_chars: p.text_chars,
            body_unread: false,
        }
    }
}

/// The request body as JSON; a body that is not JSON gives `Null` (facts without a prompt,
/// still audited).
pub(crate) fn json_body(body: &[u8]) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

/// What each vendor's request parser fills in (`RequestFacts` without the personal-data scan).
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub model: Option<String>,
    pub stream: bool,
    pub prompt: String,
    pub message_count: usize,
    pub text_chars: usize,
}

/// The text of a message's content: a string, or the `text` of its parts/blocks.
pub(crate) fn content_text(content: &Value) -> String {
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

/// Shared by the message-list formats: count, total text, last user text. A message without a
/// role counts as the user's (Gemini's default), and a user message with no text does not
/// replace the one before it: a trailing empty or role-less message must not blank the prompt
/// that policies see.
pub(crate) fn from_messages<'a>(
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
        if role == user_role && !text.trim().is_empty() {
            p.prompt = text;
        }
    }
}

/// The first `max_chars` characters, cut on a character boundary.
pub(crate) fn preview(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_a_string_or_the_text_of_its_parts() {
        assert_eq!(content_text(&serde_json::json!("plain")), "plain");
        assert_eq!(
            content_text(
                &serde_json::json!([{"type": "text", "text": "a"}, {"type": "image"}, "b"])
            ),
            "a\nb"
        );
        assert_eq!(content_text(&serde_json::json!({"text": "obj"})), "obj");
        assert_eq!(content_text(&serde_json::json!(42)), "");
    }

    #[test]
    fn preview_cuts_on_char_boundary() {
        assert_eq!(preview("héllo wörld", 4), "héll");
        assert_eq!(preview("日本語テキスト", 3), "日本語");
        assert_eq!(preview("short", 200), "short");
        assert_eq!(preview("abc", 0), "");
    }

    #[test]
    fn a_trailing_empty_or_role_less_message_keeps_the_prompt() {
        let msgs = serde_json::json!([
            {"role": "user", "content": "do my homework"},
            {"content": ""},
            {"role": "user", "content": "  "},
            {"role": "user", "content": []},
            {"role": 7, "content": null},
        ]);
        let mut p = Parsed::default();
        from_messages(
            msgs.as_array().into_iter().flatten(),
            "role",
            "user",
            "content",
            &mut p,
        );
        assert_eq!((p.prompt.as_str(), p.message_count), ("do my homework", 5));
        let mut q = Parsed::default();
        let later = serde_json::json!([{"role": "user", "content": "a"}, {"content": "b"}]);
        from_messages(
            later.as_array().into_iter().flatten(),
            "role",
            "user",
            "content",
            &mut q,
        );
        assert_eq!(q.prompt, "b", "a role-less message with text is the user's");
    }

    #[test]
    fn non_json_body_is_null() {
        assert_eq!(json_body(b"\x00\xffnot json"), Value::Null);
        assert_eq!(json_body(b""), Value::Null);
    }
}
