//! OpenAI (and Mistral, and custom OpenAI-compatible servers): Chat Completions and Responses.

use serde_json::{json, Value};

pub const DOMAIN: &str = "api.openai.com";
pub const MISTRAL_DOMAIN: &str = "api.mistral.ai";

/// `{"error": {"message", "type", "code"}}`: what the openai and mistral SDKs parse.
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
