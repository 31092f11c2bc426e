//! The policy input document (`input` in Rego), exactly as DESIGN.md describes it.

use super::counters::ClientUsage;
use crate::inspect::facts::RequestFacts;
use crate::kinds::Mode;
use chrono::{DateTime, Datelike, Local, Timelike};
use regorus::Value;
use std::net::IpAddr;

/// Everything a policy sees about one request.
pub struct InputParts<'a> {
    pub vendor: &'a str,
    pub endpoint: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub facts: &'a RequestFacts,
    pub client_ip: Option<IpAddr>,
    pub device: Option<&'a str>,
    pub now: DateTime<Local>,
    pub usage: ClientUsage,
    pub mode: Mode,
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The document, built straight into regorus' value type (no serde_json detour on the request
/// path). Its shape is the DESIGN.md contract; the test below holds it to the letter.
pub fn document(p: &InputParts<'_>) -> Value {
    let f = p.facts;
    let text = |s: &str| Value::from(s);
    let maybe = |s: Option<&str>| s.map_or(Value::Null, Value::from);
    obj([
        (
            "request",
            obj([
                ("vendor", text(p.vendor)),
                ("endpoint", text(p.endpoint)),
                ("method", text(p.method)),
                ("path", text(p.path)),
                ("model", maybe(f.model.as_deref())),
                ("stream", Value::from(f.stream)),
                ("prompt", text(&f.prompt)),
                ("prompt_chars", Value::from(f.prompt_chars() as u64)),
                ("message_count", Value::from(f.message_count as u64)),
                (
                    "contains_sensitive",
                    Value::from(!f.sensitive_kinds.is_empty()),
                ),
                (
                    "sensitive_kinds",
                    Value::from(
                        f.sensitive_kinds
                            .iter()
                            .map(|k| text(k))
                            .collect::<Vec<_>>(),
                    ),
                ),
            ]),
        ),
        (
            "client",
            obj([
                ("ip", maybe(p.client_ip.map(|ip| ip.to_string()).as_deref())),
                ("device", maybe(p.device)),
            ]),
        ),
        (
            "time",
            obj([
                (
                    "iso",
                    text(&p.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
                ),
                ("date", text(&p.now.format("%Y-%m-%d").to_string())),
                ("hour", Value::from(p.now.hour() as u64)),
                ("minute", Value::from(p.now.minute() as u64)),
                (
                    "weekday",
                    text(WEEKDAYS[p.now.weekday().num_days_from_monday() as usize]),
                ),
            ]),
        ),
        (
            "usage",
            obj([
                ("requests_today", Value::from(p.usage.requests_today)),
                (
                    "requests_last_hour",
                    Value::from(p.usage.requests_last_hour),
                ),
                ("tokens_today", Value::from(p.usage.tokens_today)),
            ]),
        ),
        ("mode", text(p.mode.as_str())),
    ])
}

fn obj<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_contract_shape() {
        let facts = RequestFacts {
            model: Some("gpt-4o".into()),
            stream: true,
            prompt: "héllo".into(),
            message_count: 2,
            text_chars: 20,
            sensitive_kinds: vec!["email"],
        };
        let now = DateTime::parse_from_rfc3339("2026-12-01T22:30:00Z")
            .unwrap()
            .with_timezone(&Local);
        let doc = document(&InputParts {
            vendor: "openai",
            endpoint: "api.openai.com",
            method: "POST",
            path: "/v1/chat/completions",
            facts: &facts,
            client_ip: Some("192.168.1.23".parse().unwrap()),
            device: None,
            now,
            usage: ClientUsage {
                requests_today: 3,
                requests_last_hour: 1,
                tokens_today: 400,
            },
            mode: Mode::Observe,
        });
        let expected = serde_json::json!({
            "request": {"vendor": "openai", "endpoint": "api.openai.com", "method": "POST",
                        "path": "/v1/chat/completions", "model": "gpt-4o", "stream": true,
                        "prompt": "héllo", "prompt_chars": 5, "message_count": 2,
                        "contains_sensitive": true, "sensitive_kinds": ["email"]},
            "client": {"ip": "192.168.1.23", "device": null},
            "time": {"iso": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                     "date": now.format("%Y-%m-%d").to_string(), "hour": now.hour(),
                     "minute": now.minute(),
                     "weekday": WEEKDAYS[now.weekday().num_days_from_monday() as usize]},
            "usage": {"requests_today": 3, "requests_last_hour": 1, "tokens_today": 400},
            "mode": "observe"
        });
        assert_eq!(doc, Value::from(expected));
    }
}
