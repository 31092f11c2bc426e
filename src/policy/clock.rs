//! Local time for policies and the daily counters; fixed by `YORI_TEST_NOW` (RFC 3339) so tests
//! do not depend on the wall clock.

use chrono::{DateTime, Local};

#[derive(Debug, Default, Clone)]
pub struct Clock {
    fixed: Option<DateTime<Local>>,
}

impl Clock {
    pub const ENV: &'static str = "YORI_TEST_NOW";

    pub fn from_env() -> Clock {
        let fixed = std::env::var(Self::ENV)
            .ok()
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Local));
        if let Some(t) = fixed {
            log::warn!("clock fixed by {} for testing now={t}", Self::ENV);
        }
        Clock { fixed }
    }

    pub fn now(&self) -> DateTime<Local> {
        self.fixed.unwrap_or_else(Local::now)
    }
}
