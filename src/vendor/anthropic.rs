//! Anthropic: the Messages API.

use serde_json::{json, Value};

pub const DOMAIN: &str = "api.anthropic.com";

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
