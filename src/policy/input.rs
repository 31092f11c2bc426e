//! The policy input document (`input` in Rego), exactly as DESIGN.md describes it.

use super::clock::LocalTime;
use super::counters::ClientUsage;
use super::reads::Reads;
use crate::inspect::facts::RequestFacts;
use crate::kinds::Mode;
use chrono::{Datelike, Timelike};
use regorus::Value;
use std::collections::BTreeMap;
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
    pub now: LocalTime,
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
/// path), with only the fields some loaded policy reads (`reads`); a field no policy reads is
/// never computed. Its shape is the DESIGN.md contract; the tests below hold it to the letter.
pub fn document(p: &InputParts<'_>, reads: &Reads) -> Value {
    let f = p.facts;
    let text = |s: &str| Value::from(s);
    let maybe = |s: Option<&str>| s.map_or(Value::Null, Value::from);
    let mut doc = Doc::new(reads);
    doc.section("request", |r| {
        r.field("vendor", || text(p.vendor));
        r.field("endpoint", || text(p.endpoint));
        r.field("method", || text(p.method));
        r.field("path", || text(p.path));
        r.field("model", || maybe(f.model.as_deref()));
        r.field("stream", || Value::from(f.stream));
        r.field("prompt", || text(&f.prompt));
        r.field("prompt_chars", || Value::from(f.prompt_chars() as u64));
        r.field("message_count", || Value::from(f.message_count as u64));
        r.field("contains_sensitive", || {
            Value::from(!f.sensitive_kinds.is_empty())
        });
        r.field("sensitive_kinds", || {
            Value::from(
                f.sensitive_kinds
                    .iter()
                    .map(|k| text(k))
                    .collect::<Vec<_>>(),
            )
        });
    });
    doc.section("client", |c| {
        c.field("ip", || {
            maybe(p.client_ip.map(|ip| ip.to_string()).as_deref())
        });
        c.field("device", || maybe(p.device));
    });
    doc.section("time", |t| {
        let now = p.now;
        t.field("iso", || {
            text(&now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        });
        t.field("date", || text(&now.format("%Y-%m-%d").to_string()));
        t.field("hour", || Value::from(now.hour() as u64));
        t.field("minute", || Value::from(now.minute() as u64));
        t.field("weekday", || {
            text(WEEKDAYS[now.weekday().num_days_from_monday() as usize])
        });
    });
    doc.section("usage", |u| {
        u.field("requests_today", || Value::from(p.usage.requests_today));
        u.field("requests_last_hour", || {
            Value::from(p.usage.requests_last_hour)
        });
        u.field("tokens_today", || Value::from(p.usage.tokens_today));
        // US dollars, to the micro-dollar (calls of unpriced models add nothing)
        let dollars = |x: f64| Value::from((x * 1e6).round() / 1e6);
        u.field("cost_today", || dollars(p.usage.cost_today));
        u.field("cost_month", || dollars(p.usage.cost_month));
    });
    doc.field("mode", || text(p.mode.as_str()));
    doc.finish()
}

/// An object being built: a field is computed only if some policy reads it.
struct Doc<'r> {
    reads: &'r Reads,
    path: Vec<&'static str>,
    fields: BTreeMap<Value, Value>,
}

impl<'r> Doc<'r> {
    fn new(reads: &'r Reads) -> Doc<'r> {
        Doc {
            reads,
            path: Vec::new(),
            fields: BTreeMap::new(),
        }
    }

    fn field(&mut self, name: &'static str, value: impl FnOnce() -> Value) {
        self.path.push(name);
        if self.reads.wants(&self.path) {
            self.fields.insert(Value::from(name), value());
        }
        self.path.pop();
    }

    fn section(&mut self, name: &'static str, build: impl FnOnce(&mut Doc<'r>)) {
        self.path.push(name);
        if self.reads.wants(&self.path) {
            let mut inner = Doc {
                reads: self.reads,
                path: self.path.clone(),
                fields: BTreeMap::new(),
            };
            build(&mut inner);
            self.fields.insert(Value::from(name), inner.finish());
        }
        self.path.pop();
    }

    fn finish(self) -> Value {
        Value::from(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RequestFacts {
        RequestFacts {
            model: Some("gpt-4o".into()),
            stream: true,
            prompt: "héllo".into(),
            message_count: 2,
            text_chars: 20,
            sensitive_kinds: vec!["email"],
            scan_cut: false,
            body_unread: false,
        }
    }

    fn parts(facts: &RequestFacts) -> InputParts<'_> {
        InputParts {
            vendor: "openai",
            endpoint: "api.openai.com",
            method: "POST",
            path: "/v1/chat/completions",
            facts,
            client_ip: Some("192.168.1.23".parse().unwrap()),
            device: None,
            now: chrono::DateTime::parse_from_rfc3339("2026-12-01T22:30:00+01:00").unwrap(),
            usage: ClientUsage {
                requests_today: 3,
                requests_last_hour: 1,
                tokens_today: 400,
                cost_today: 0.25,
                cost_month: 1.5,
            },
            mode: Mode::Observe,
        }
    }

    #[test]
    fn the_document_has_the_contract_shape() {
        let facts = facts();
        let doc = document(&parts(&facts), &Reads::everything());
        let expected = serde_json::json!({
            "request": {"vendor": "openai", "endpoint": "api.openai.com", "method": "POST",
                        "path": "/v1/chat/completions", "model": "gpt-4o", "stream": true,
                        "prompt": "héllo", "prompt_chars": 5, "message_count": 2,
                        "contains_sensitive": true, "sensitive_kinds": ["email"]},
            "client": {"ip": "192.168.1.23", "device": null},
            "time": {"iso": "2026-12-01T22:30:00+01:00", "date": "2026-12-01", "hour": 22,
                     "minute": 30, "weekday": "tuesday"},
            "usage": {"requests_today": 3, "requests_last_hour": 1, "tokens_today": 400,
                      "cost_today": 0.25, "cost_month": 1.5},
            "mode": "observe"
        });
        assert_eq!(doc, Value::from(expected));
    }

    #[test]
    fn only_what_the_policies_read_is_built() {
        let facts = facts();
        let reads = Reads::of_source("x if { input.time.hour > 1; input.request.prompt != \"\" }");
        let doc = document(&parts(&facts), &reads);
        assert_eq!(
            doc,
            Value::from(serde_json::json!({"request": {"prompt": "héllo"}, "time": {"hour": 22}}))
        );
        let none = document(&parts(&facts), &Reads::of_source("decision := 1"));
        assert_eq!(none, Value::from(serde_json::json!({})));
    }
}
