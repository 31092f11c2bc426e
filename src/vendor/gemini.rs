//! Google Gemini: `generateContent` and `streamGenerateContent`.

use serde_json::{json, Value};

pub const DOMAIN: &str = "generativelanguage.googleapis.com";

/// `{"error": {"code", "message", "status"}}`: Google's API error shape.
pub fn error_body(status: u16, _code: &str, message: &str) -> Value {
    let grpc = match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 421 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message, "status": grpc}})
}
