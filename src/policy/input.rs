//! The policy input document (`input` in Rego), exactly as DESIGN.md describes it, and the
//! per-client usage counters YORI keeps for it (seeded from the audit database at start, so a
//! restart does not reset a daily limit).

use crate::facts::RequestFacts;
use chrono::{DateTime, Datelike, Local, Timelike};
use regorus::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientUsage {
    pub requests_today: u64,
    pub requests_last_hour: u64,
    pub tokens_today: u64,
}

#[derive(Debug, Default)]
struct Counter {
    day: Option<chrono::NaiveDate>,
    requests_today: u64,
    tokens_today: u64,
    /// Request times (unix seconds) in the last hour.
    recent: std::collections::VecDeque<i64>,
}

/// Requests and tokens per client IP, by local day.
#[derive(Default)]
pub struct UsageCounters {
    by_client: Mutex<HashMap<IpAddr, Counter>>,
}

impl UsageCounters {
    /// What this client did before the current request.
    pub fn get(&self, ip: IpAddr, now: DateTime<Local>) -> ClientUsage {
        let Ok(mut map) = self.by_client.lock() else {
            return ClientUsage::default();
        };
        let Some(c) = map.get_mut(&ip) else {
            return ClientUsage::default();
        };
        roll(c, now);
        ClientUsage {
            requests_today: c.requests_today,
            requests_last_hour: c.recent.len() as u64,
            tokens_today: c.tokens_today,
        }
    }

    /// Counts one finished exchange.
    pub fn record(&self, ip: IpAddr, now: DateTime<Local>, tokens: u64) {
        if let Ok(mut map) = self.by_client.lock() {
            let c = map.entry(ip).or_default();
            roll(c, now);
            c.requests_today += 1;
            c.tokens_today += tokens;
            c.recent.push_back(now.timestamp());
        }
    }

    /// Seeds today's counters from the audit database (rows since local midnight).
    pub fn seed(
        &self,
        conn: &rusqlite::Connection,
        now: DateTime<Local>,
    ) -> rusqlite::Result<usize> {
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|m| m.and_local_timezone(Local).earliest())
            .unwrap_or(now);
        let since = midnight
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let hour_ago = (now - chrono::Duration::hours(1))
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut stmt = conn.prepare(
            "SELECT client_ip, COUNT(*), COALESCE(SUM(COALESCE(prompt_tokens,0) + COALESCE(response_tokens,0)),0), SUM(timestamp >= ?2)
             FROM audit_events WHERE timestamp >= ?1 AND client_ip IS NOT NULL GROUP BY client_ip",
        )?;
        let rows = stmt.query_map([&since, &hour_ago], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut map = match self.by_client.lock() {
            Ok(m) => m,
            Err(_) => return Ok(0),
        };
        let mut n = 0;
        for row in rows.flatten() {
            let Ok(ip) = row.0.parse::<IpAddr>() else {
                continue;
            };
            let c = map.entry(ip).or_default();
            c.day = Some(now.date_naive());
            c.requests_today = row.1 as u64;
            c.tokens_today = row.2 as u64;
            // the last hour's requests are spread over it; enough for a rate rule after a restart
            c.recent = (0..row.3).map(|_| now.timestamp() - 1).collect();
            n += 1;
        }
        Ok(n)
    }
}

fn roll(c: &mut Counter, now: DateTime<Local>) {
    let today = now.date_naive();
    if c.day != Some(today) {
        c.day = Some(today);
        c.requests_today = 0;
        c.tokens_today = 0;
    }
    let cutoff = now.timestamp() - 3600;
    while c.recent.front().is_some_and(|t| *t <= cutoff) {
        c.recent.pop_front();
    }
}

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
    pub mode: &'a str,
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
pub fn document(p: &InputParts) -> Value {
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
        ("mode", text(p.mode)),
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
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T22:30:00Z")
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
            mode: "observe",
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
