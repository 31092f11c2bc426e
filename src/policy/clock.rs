//! Local time for policies and the daily counters. The router's time zone is resolved once, at
//! start and on SIGHUP (`reload_zone`), not per request: asking the C library or chrono's
//! `Local` for it stats `/etc/localtime` on every call. `YORI_TEST_NOW` (RFC 3339) fixes the
//! instant so tests do not depend on the wall clock.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::sync::RwLock;

/// A local time: the instant with the zone's offset at that instant.
pub type LocalTime = DateTime<FixedOffset>;

#[derive(Debug)]
pub struct Clock {
    zone: RwLock<TimeZone>,
    fixed: Option<Timestamp>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            zone: RwLock::new(TimeZone::system()),
            fixed: None,
        }
    }
}

impl Clock {
    pub const ENV: &'static str = "YORI_TEST_NOW";

    pub fn from_env() -> Clock {
        let fixed = std::env::var(Self::ENV)
            .ok()
            .and_then(|v| v.parse::<Timestamp>().ok());
        if let Some(t) = fixed {
            log::warn!("clock fixed by {} for testing now={t}", Self::ENV);
        }
        Clock {
            fixed,
            ..Clock::default()
        }
    }

    /// Reads the system's time zone again (SIGHUP).
    pub fn reload_zone(&self) {
        let zone = TimeZone::system();
        match self.zone.write() {
            Ok(mut z) => *z = zone,
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }

    fn zone(&self) -> TimeZone {
        match self.zone.read() {
            Ok(z) => z.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn instant(&self) -> Timestamp {
        self.fixed.unwrap_or_else(Timestamp::now)
    }

    pub fn now(&self) -> LocalTime {
        local(self.instant(), &self.zone())
    }

    /// The start of `now`'s local day, in UTC.
    pub fn day_start(&self, now: LocalTime) -> DateTime<Utc> {
        let ts = Timestamp::new(now.timestamp(), 0).unwrap_or(Timestamp::UNIX_EPOCH);
        let start = ts
            .to_zoned_datetime(self.zone())
            .start_of_day()
            .map(|z| z.timestamp())
            .unwrap_or(ts);
        DateTime::from_timestamp(start.as_second(), 0).unwrap_or_default()
    }
}

fn local(ts: Timestamp, zone: &TimeZone) -> LocalTime {
    let offset = zone.to_offset(ts).seconds();
    let utc = DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default();
    let offset = FixedOffset::east_opt(offset).unwrap_or_else(|| Utc.fix());
    utc.with_timezone(&offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn local_time_follows_the_zone_and_the_day_starts_at_local_midnight() {
        let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let clock = Clock {
            zone: RwLock::new(paris),
            fixed: Some("2026-07-01T22:30:00Z".parse().unwrap()),
        };
        let now = clock.now();
        assert_eq!(
            (now.hour(), now.offset().local_minus_utc()),
            (0, 7200),
            "summer time"
        );
        assert_eq!(
            clock.day_start(now).to_rfc3339(),
            "2026-07-01T22:00:00+00:00"
        );
    }
}
