//! Mistral on `api.mistral.ai`: OpenAI-style Chat Completions, whose every stream ends with a
//! usage chunk. The formats are OpenAI's, so the functions are too.

use super::{openai, Provider};

pub const PROVIDER: Provider = Provider {
    id: "mistral",
    default_domain: Some("api.mistral.ai"),
    request_facts: openai::request_facts,
    absorb_usage: openai::absorb_usage,
    error_body: openai::error_body,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::usage::{fixture, tap_pieces, Tokens};
    use crate::providers::fixture_json;

    #[test]
    fn chat_request_facts() {
        let p = (PROVIDER.request_facts)(&fixture_json("mistral/chat_request.json"), "/v1/chat/completions");
        assert_eq!(p.model.as_deref(), Some("mistral-small-latest"));
        assert_eq!((p.prompt.as_str(), p.message_count, p.stream), ("Dis bonjour", 2, true));
    }

    #[test]
    fn the_final_chunk_carries_usage() {
        let t = tap_pieces(PROVIDER.absorb_usage, "text/event-stream", None, &fixture("mistral/chat_stream.sse"));
        assert_eq!(
            t.tokens(0),
            Tokens {
                prompt: 10,
                response: 4,
                estimated: false
            }
        );
    }

    #[test]
    fn error_body_has_the_openai_shape() {
        let b = (PROVIDER.error_body)(502, "upstream_unreachable", "down");
        assert_eq!(b["error"]["code"], "upstream_unreachable");
        assert_eq!(b["error"]["type"], "api_error");
    }
}
