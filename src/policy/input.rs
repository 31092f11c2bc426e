//! The policy input document (`input` in Rego), exactly as DESIGN.md describes it, and the
//! per-client usage counters YORI keeps for it (seeded from the audit database at start, so a
//! restart does not reset a daily limit).

use crate::facts::RequestFacts;
use chrono::{DateTime, Datelike, Local, Timelike};
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

pub fn document(p: &InputParts) -> serde_json::Value {
    let f = p.facts;
    serde_json::json!({
        "request": {
            "vendor": p.vendor,
            "endpoint": p.endpoint,
            "method": p.method,
            "path": p.path,
            "model": f.model,
            "stream": f.stream,
            "prompt": f.prompt,
            "prompt_chars": f.prompt_chars(),
            "message_count": f.message_count,
            "contains_sensitive": !f.sensitive_kinds.is_empty(),
            "sensitive_kinds": f.sensitive_kinds,
        },
        "client": {"ip": p.client_ip.map(|ip| ip.to_string()), "device": p.device},
        "time": {
            "iso": p.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "date": p.now.format("%Y-%m-%d").to_string(),
            "hour": p.now.hour(),
            "minute": p.now.minute(),
            "weekday": WEEKDAYS[p.now.weekday().num_days_from_monday() as usize],
        },
        "usage": {
            "requests_today": p.usage.requests_today,
            "requests_last_hour": p.usage.requests_last_hour,
            "tokens_today": p.usage.tokens_today,
        },
        "mode": p.mode,
    })
}
