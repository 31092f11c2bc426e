//! Custom `openai_compatible` endpoints (a self-hosted model, a LAN server): OpenAI's formats
//! on a domain and upstream the config names.

use super::{openai, Provider};

pub const PROVIDER: Provider = Provider {
    id: "openai_compatible",
    default_domain: None,
    request_facts: openai::request_facts,
    absorb_usage: openai::absorb_usage,
    error_body: openai::error_body,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::usage::{fixture, tap_pieces};
    use crate::providers::fixture_json;

    #[test]
    fn reads_openai_requests_and_answers() {
        let p = (PROVIDER.request_facts)(&fixture_json("openai/chat_request.json"), "/v1/chat/completions");
        assert_eq!(p.prompt, "second\npart two");
        let t = tap_pieces(PROVIDER.absorb_usage, "text/event-stream", None, &fixture("openai/chat_stream_usage.sse"));
        assert_eq!(t.tokens(0).prompt, 12);
        assert_eq!(PROVIDER.default_domain, None, "the config names its domain");
    }
}
