//! `limits`: how much YORI reads from a device and how long it waits for a vendor.

use super::reader::{Problems, Section};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// `max_body_bytes`: the largest request body read (413 above it, nothing forwarded).
    pub max_body_bytes: usize,
    /// `connect_timeout_ms`: connecting to the vendor, TLS included.
    pub connect_timeout: Duration,
    /// `read_timeout_ms`: the longest silence between two reads from the vendor (a long
    /// generation streams for minutes, but not silently).
    pub read_timeout: Duration,
    /// `idle_timeout_ms`: how long an idle vendor connection is kept for reuse.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Longest timeout accepted: a day.
const MAX_MS: u64 = 86_400_000;

impl Limits {
    pub fn read(s: &Section<'_>, p: &mut Problems) -> Limits {
        let d = Limits::default();
        let ms = |key, default: Duration, p: &mut Problems| {
            s.uint(key, 1, MAX_MS, p)
                .map_or(default, Duration::from_millis)
        };
        Limits {
            max_body_bytes: s
                .uint("max_body_bytes", 1, 1 << 30, p)
                .map_or(d.max_body_bytes, |n| n as usize),
            connect_timeout: ms("connect_timeout_ms", d.connect_timeout, p),
            read_timeout: ms("read_timeout_ms", d.read_timeout, p),
            idle_timeout: ms("idle_timeout_ms", d.idle_timeout, p),
        }
    }
}
