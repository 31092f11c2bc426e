//! The LLM vendors YORI understands. Each provider file answers the same questions through one
//! table, `Provider`: its id, its default domain, the request facts in a body, the usage in an
//! answer, and the error body its SDKs parse. Each file carries its own fixture tests.
//!
//! Adding a fifth vendor is one new file (copy `mistral.rs`) and one line in `providers!` below;
//! the enum, the list of all vendors and the dispatch are generated from that line.

use crate::inspect::facts::{self, Parsed, RequestFacts};
use crate::inspect::usage::Absorb;
use serde_json::Value;
use std::fmt;

/// What YORI knows about one vendor's API.
pub struct Provider {
    /// Stable id: the config's `vendor`, metric labels, the audit `vendor` column, the policy
    /// input. Spelled only here.
    pub id: &'static str,
    /// The vendor's public API host; `None` for custom endpoints, which name their own.
    pub default_domain: Option<&'static str>,
    /// Request facts from the body (as JSON) and the vendor path, where some vendors put the
    /// model and the stream flag.
    pub request_facts: fn(body: &Value, path: &str) -> Parsed,
    /// Folds a response document or one stream event into the running usage.
    pub absorb_usage: Absorb,
    /// The vendor's own JSON error body for (status, code, message), so its SDK shows the
    /// message to the user.
    pub error_body: fn(status: u16, code: &str, message: &str) -> Value,
}

macro_rules! providers {
    ($($variant:ident => $module:ident,)+) => {
        $(pub mod $module;)+

        /// A vendor, by the API its endpoint speaks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Vendor {
            $($variant,)+
        }

        impl Vendor {
            /// Every vendor, in the order of the built-in endpoint list.
            pub const ALL: &'static [Vendor] = &[$(Vendor::$variant,)+];

            /// This vendor's provider table: the one dispatch.
            pub fn provider(self) -> &'static Provider {
                match self {
                    $(Vendor::$variant => &$module::PROVIDER,)+
                }
            }
        }
    };
}

providers! {
    OpenAi => openai,
    Anthropic => anthropic,
    Gemini => gemini,
    Mistral => mistral,
    OpenAiCompatible => openai_compatible,
}

impl Vendor {
    /// Stable id (see `Provider::id`).
    pub fn as_str(self) -> &'static str {
        self.provider().id
    }

    /// The vendor whose id is `s`.
    pub fn parse(s: &str) -> Option<Vendor> {
        Vendor::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// Every id, for messages.
    pub fn names() -> Vec<&'static str> {
        Vendor::ALL.iter().map(|v| v.as_str()).collect()
    }

    /// The vendors with a public host of their own: the built-in endpoints.
    pub fn built_in() -> impl Iterator<Item = Vendor> {
        Vendor::ALL
            .iter()
            .copied()
            .filter(|v| v.default_domain().is_some())
    }

    pub fn default_domain(self) -> Option<&'static str> {
        self.provider().default_domain
    }

    /// The vendor's JSON error body, serialised.
    pub fn error_body(self, status: u16, code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&(self.provider().error_body)(status, code, message)).unwrap_or_default()
    }

    /// The facts of a request body sent to `path`, with the personal data in its prompt.
    pub fn request_facts(self, path: &str, body: &[u8]) -> RequestFacts {
        let json = facts::json_body(body);
        RequestFacts::from_parsed((self.provider().request_facts)(&json, path))
    }

    pub fn absorb_usage(self) -> Absorb {
        self.provider().absorb_usage
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request or answer recorded in `tests/fixtures/`, as JSON.
#[cfg(test)]
pub(crate) fn fixture_json(name: &str) -> Value {
    facts::json_body(&crate::inspect::usage::fixture(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn the_dispatch_covers_every_variant_with_a_distinct_id() {
        let ids = Vendor::names();
        assert_eq!(
            ids,
            [
                "openai",
                "anthropic",
                "gemini",
                "mistral",
                "openai_compatible"
            ]
        );
        for v in Vendor::ALL {
            assert_eq!(Vendor::parse(v.as_str()), Some(*v), "{v} round-trips");
            assert_eq!(ids.iter().filter(|i| **i == v.as_str()).count(), 1);
            let body: Value = serde_json::from_slice(&v.error_body(429, "x", "slow down")).unwrap();
            assert!(body.to_string().contains("slow down"), "{v}: {body}");
        }
        assert_eq!(Vendor::parse("openia"), None);
    }

    #[test]
    fn built_in_vendors_are_those_with_a_public_host() {
        let built: Vec<_> = Vendor::built_in().map(|v| v.default_domain()).collect();
        assert_eq!(
            built,
            [
                Some("api.openai.com"),
                Some("api.anthropic.com"),
                Some("generativelanguage.googleapis.com"),
                Some("api.mistral.ai")
            ]
        );
        assert_eq!(Vendor::OpenAiCompatible.default_domain(), None);
    }

    /// A request body in `v`'s own format with `prompt` as the last user message.
    fn body_for(v: Vendor, prompt: &str, earlier: &str) -> Vec<u8> {
        let v_json = match v {
            Vendor::Gemini => serde_json::json!({"contents": [
                {"role": "user", "parts": [{"text": earlier}]},
                {"role": "model", "parts": [{"text": "ok"}]},
                {"role": "user", "parts": [{"text": prompt}]},
            ]}),
            Vendor::Anthropic => serde_json::json!({"model": "m", "max_tokens": 8, "messages": [
                {"role": "user", "content": earlier},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": prompt}]},
            ]}),
            _ => serde_json::json!({"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": earlier},
                {"role": "user", "content": prompt},
            ]}),
        };
        v_json.to_string().into_bytes()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any bytes: facts come out, nothing panics.
        #[test]
        fn any_body_gives_facts_without_panicking(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            path in "\\PC{0,60}",
        ) {
            for v in Vendor::ALL {
                let _ = v.request_facts(&path, &body);
            }
        }

        /// JSON of the right shape with values of the wrong types: no panic either.
        #[test]
        fn wrongly_typed_fields_give_facts_without_panicking(
            model in proptest::prelude::prop_oneof![
                proptest::prelude::Just(serde_json::json!(null)),
                proptest::prelude::Just(serde_json::json!(7)),
                proptest::prelude::Just(serde_json::json!([1, {"a": 2}])),
                "\\PC{0,20}".prop_map(Value::from),
            ],
            content in proptest::prelude::prop_oneof![
                proptest::prelude::Just(serde_json::json!(null)),
                proptest::prelude::Just(serde_json::json!({"text": 5})),
                proptest::prelude::Just(serde_json::json!([null, 3, {"text": ["x"]}])),
                "\\PC{0,40}".prop_map(Value::from),
            ],
        ) {
            let body = serde_json::json!({
                "model": model, "stream": content,
                "messages": [{"role": model, "content": content}, content],
                "contents": [{"parts": content}, {"parts": [content]}],
                "input": content, "system": content,
            })
            .to_string();
            for v in Vendor::ALL {
                let _ = v.request_facts("/v1beta/models/x:generateContent", body.as_bytes());
            }
        }

        /// Any Unicode prompt in each vendor's format is the prompt the policies see.
        #[test]
        fn the_last_user_text_is_the_prompt_in_every_format(
            prompt in "\\PC*[^\\s]\\PC{0,200}",
            earlier in "\\PC{0,50}",
        ) {
            for v in Vendor::ALL {
                let f = v.request_facts(
                    "/v1beta/models/gemini-2.0-flash:generateContent",
                    &body_for(*v, &prompt, &earlier),
                );
                proptest::prop_assert_eq!(&f.prompt, &prompt, "{}", v);
                proptest::prop_assert_eq!(f.message_count, 3, "{}", v);
            }
        }
    }

    #[test]
    fn a_body_that_is_not_json_gives_facts_without_a_prompt() {
        for v in Vendor::ALL {
            let f = v.request_facts("/v1/chat/completions", b"\x00\xffnot json");
            assert_eq!(f, RequestFacts::default(), "{v}");
        }
    }
}
