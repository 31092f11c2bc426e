//! The per-client usage a policy reads (`input.usage`): requests today and in the last hour,
//! tokens today, cost today and this month (US dollars). Counted as exchanges finish, by local day, and seeded at start from what the
//! audit log says about today, so a restart does not reset a daily limit.

use super::clock::LocalTime;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientUsage {
    pub requests_today: u64,
    pub requests_last_hour: u64,
    pub tokens_today: u64,
    /// US dollars of the priced calls (calls of unpriced models add nothing).
    pub cost_today: f64,
    pub cost_month: f64,
}

/// What the audit log says one client did today, to start from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seed {
    pub client: IpAddr,
    pub requests_today: u64,
    pub tokens_today: u64,
    pub requests_last_hour: u64,
    pub cost_today: f64,
    pub cost_month: f64,
}

#[derive(Debug, Default)]
struct Counter {
    day: Option<chrono::NaiveDate>,
    requests_today: u64,
    tokens_today: u64,
    cost_today: f64,
    /// (year, month) of `cost_month`.
    month: Option<(i32, u32)>,
    cost_month: f64,
    /// Request times (unix seconds) in the last hour.
    recent: VecDeque<i64>,
}

/// Requests and tokens per client IP, by local day.
#[derive(Default)]
pub struct UsageCounters {
    by_client: Mutex<HashMap<IpAddr, Counter>>,
}

impl UsageCounters {
    /// What this client did before the current request.
    pub fn get(&self, ip: IpAddr, now: LocalTime) -> ClientUsage {
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
            cost_today: c.cost_today,
            cost_month: c.cost_month,
        }
    }

    /// Counts one finished exchange.
    pub fn record(&self, ip: IpAddr, now: LocalTime, tokens: u64, cost: Option<f64>) {
        if let Ok(mut map) = self.by_client.lock() {
            let c = map.entry(ip).or_default();
            roll(c, now);
            c.requests_today += 1;
            c.tokens_today = c.tokens_today.saturating_add(tokens);
            let cost = cost.filter(|x| x.is_finite() && *x >= 0.0).unwrap_or(0.0);
            c.cost_today += cost;
            c.cost_month += cost;
            c.recent.push_back(now.timestamp());
        }
    }

    /// Starts today's counters from the audit log's tallies. Returns how many clients.
    pub fn seed(&self, seeds: impl IntoIterator<Item = Seed>, now: LocalTime) -> usize {
        let Ok(mut map) = self.by_client.lock() else {
            return 0;
        };
        let mut n = 0;
        for s in seeds {
            let c = map.entry(s.client).or_default();
            c.day = Some(now.date_naive());
            c.requests_today = s.requests_today;
            c.tokens_today = s.tokens_today;
            c.cost_today = s.cost_today;
            c.month = Some(month_of(now));
            c.cost_month = s.cost_month;
            // the last hour's requests are spread over it; enough for a rate rule after a restart
            c.recent = (0..s.requests_last_hour)
                .map(|_| now.timestamp() - 1)
                .collect();
            n += 1;
        }
        n
    }
}

fn roll(c: &mut Counter, now: LocalTime) {
    let today = now.date_naive();
    if c.day != Some(today) {
        c.day = Some(today);
        c.requests_today = 0;
        c.tokens_today = 0;
        c.cost_today = 0.0;
    }
    let month = month_of(now);
    if c.month != Some(month) {
        c.month = Some(month);
        c.cost_month = 0.0;
    }
    let cutoff = now.timestamp() - 3600;
    while c.recent.front().is_some_and(|t| *t <= cutoff) {
        c.recent.pop_front();
    }
}

fn month_of(now: LocalTime) -> (i32, u32) {
    use chrono::Datelike;
    (now.year(), now.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> LocalTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn counts_roll_over_by_day_and_hour() {
        let c = UsageCounters::default();
        let ip: IpAddr = "192.168.1.5".parse().unwrap();
        c.record(ip, at("2026-12-01T10:00:00Z"), 100, Some(0.25));
        c.record(ip, at("2026-12-01T10:30:00Z"), 50, None);
        let u = c.get(ip, at("2026-12-01T11:15:00Z"));
        assert_eq!(
            u,
            ClientUsage {
                requests_today: 2,
                requests_last_hour: 1,
                tokens_today: 150,
                cost_today: 0.25,
                cost_month: 0.25,
            }
        );
        let next_day = c.get(ip, at("2026-12-03T09:00:00Z"));
        assert_eq!(
            next_day,
            ClientUsage {
                cost_month: 0.25,
                ..ClientUsage::default()
            },
            "the month's cost stays"
        );
        c.record(ip, at("2026-12-03T09:00:00Z"), 1, Some(0.5));
        assert_eq!(
            c.get(ip, at("2027-01-01T00:00:01Z")),
            ClientUsage::default()
        );
    }

    #[test]
    fn seeding_sets_todays_counts() {
        let c = UsageCounters::default();
        let now = at("2026-12-01T12:00:00Z");
        let client: IpAddr = "10.0.0.2".parse().unwrap();
        let n = c.seed(
            [Seed {
                client,
                requests_today: 3,
                tokens_today: 90,
                requests_last_hour: 2,
                cost_today: 0.5,
                cost_month: 3.0,
            }],
            now,
        );
        assert_eq!(n, 1);
        assert_eq!(
            c.get(client, now),
            ClientUsage {
                requests_today: 3,
                requests_last_hour: 2,
                tokens_today: 90,
                cost_today: 0.5,
                cost_month: 3.0,
            }
        );
    }
}
