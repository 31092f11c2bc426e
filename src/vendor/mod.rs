//! The LLM vendors YORI understands: identity, default host, and each one's wire formats.
//!
//! Every vendor file has the same parts: constants, the error-body shape its SDKs parse, request
//! facts (model, stream, prompt) and usage (token) parsing. Mistral and custom
//! `openai_compatible` endpoints speak OpenAI's formats.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
    Mistral,
    OpenAiCompatible,
}

impl Vendor {
    pub const ALL_NAMES: [&'static str; 5] = [
        "openai",
        "anthropic",
        "gemini",
        "mistral",
        "openai_compatible",
    ];
    /// The four built-in vendors, in the order of the built-in endpoint list.
    pub const BUILT_IN: [Vendor; 4] = [
        Vendor::OpenAi,
        Vendor::Anthropic,
        Vendor::Gemini,
        Vendor::Mistral,
    ];

    pub fn parse(s: &str) -> Result<Vendor, String> {
        Ok(match s {
            "openai" => Vendor::OpenAi,
            "anthropic" => Vendor::Anthropic,
            "gemini" => Vendor::Gemini,
            "mistral" => Vendor::Mistral,
            "openai_compatible" => Vendor::OpenAiCompatible,
            other => {
                return Err(format!(
                    "unknown vendor `{other}` (expected one of: {})",
                    Vendor::ALL_NAMES.join(", ")
                ))
            }
        })
    }

    /// Stable id used in config, metrics labels, the audit `vendor` column and the policy input.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::OpenAi => "openai",
            Vendor::Anthropic => "anthropic",
            Vendor::Gemini => "gemini",
            Vendor::Mistral => "mistral",
            Vendor::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The vendor's public API host; `None` for custom endpoints, which name their own.
    pub fn default_domain(self) -> Option<&'static str> {
        match self {
            Vendor::OpenAi => Some(openai::DOMAIN),
            Vendor::Anthropic => Some(anthropic::DOMAIN),
            Vendor::Gemini => Some(gemini::DOMAIN),
            Vendor::Mistral => Some(openai::MISTRAL_DOMAIN),
            Vendor::OpenAiCompatible => None,
        }
    }

    /// The vendor's own JSON error body, so its official SDK shows `message` to the user.
    pub fn error_body(self, status: u16, code: &str, message: &str) -> Vec<u8> {
        let v = match self {
            Vendor::Anthropic => anthropic::error_body(status, code, message),
            Vendor::Gemini => gemini::error_body(status, code, message),
            Vendor::OpenAi | Vendor::Mistral | Vendor::OpenAiCompatible => {
                openai::error_body(status, code, message)
            }
        };
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Vendor {
    /// Folds one response document or stream event into the running usage.
    pub fn absorb_usage(self, v: &serde_json::Value, u: &mut crate::usage::Usage) {
        match self {
            Vendor::Anthropic => anthropic::absorb_usage(v, u),
            Vendor::Gemini => gemini::absorb_usage(v, u),
            Vendor::OpenAi | Vendor::Mistral | Vendor::OpenAiCompatible => {
                openai::absorb_usage(v, u)
            }
        }
    }
}
