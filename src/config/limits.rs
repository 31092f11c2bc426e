//! `limits`: how much YORI reads from a device, how long it waits for one, how many connections
//! it holds, and how long it waits for a vendor. The device-side defaults are sized for a router
//! with 512 MB of memory shared with everything else it does (see README, "Limits").

use super::reader::{Problems, Section};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// `max_body_bytes`: the largest request body read (413 above it, nothing forwarded).
    pub max_body_bytes: usize,
    /// `max_buffered_body_bytes`: request bodies held in memory at once, all devices together;
    /// a request that would pass it gets 503 (`gateway_busy`).
    pub max_buffered_body_bytes: usize,
    /// `header_timeout_ms`: a new connection's first bytes, and every request's header (on a
    /// kept-alive connection too), must arrive within this.
    pub header_timeout: Duration,
    /// `keepalive_timeout_ms`: how long a kept-alive connection may wait idle for its next
    /// request (and any one read of a header may wait); whole seconds.
    pub keepalive_timeout: Duration,
    /// `body_timeout_ms`: the whole request body must arrive within this.
    pub body_timeout: Duration,
    /// `h2_idle_timeout_ms`: an HTTP/2 connection with no open stream is closed after this.
    pub h2_idle_timeout: Duration,
    /// `keepalive_requests`: requests one HTTP/1.1 connection may carry, then it is closed.
    pub keepalive_requests: u32,
    /// `max_connections`: device connections open at once, all together.
    pub max_connections: usize,
    /// `max_connections_per_client`: device connections open at once from one address.
    pub max_connections_per_client: usize,
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
            max_buffered_body_bytes: 64 << 20,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            h2_idle_timeout: Duration::from_secs(30),
            keepalive_requests: 1000,
            max_connections: 1024,
            max_connections_per_client: 128,
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
        let count = |key, min, max, default: usize, p: &mut Problems| {
            s.uint(key, min, max, p).map_or(default, |n| n as usize)
        };
        Limits {
            max_body_bytes: count("max_body_bytes", 1, 1 << 30, d.max_body_bytes, p),
            max_buffered_body_bytes: count(
                "max_buffered_body_bytes",
                1 << 10,
                1 << 34,
                d.max_buffered_body_bytes,
                p,
            ),
            header_timeout: ms("header_timeout_ms", d.header_timeout, p),
            keepalive_timeout: ms("keepalive_timeout_ms", d.keepalive_timeout, p),
            body_timeout: ms("body_timeout_ms", d.body_timeout, p),
            h2_idle_timeout: ms("h2_idle_timeout_ms", d.h2_idle_timeout, p),
            keepalive_requests: count(
                "keepalive_requests",
                1,
                u32::MAX as u64,
                d.keepalive_requests as usize,
                p,
            ) as u32,
            max_connections: count("max_connections", 1, 1 << 20, d.max_connections, p),
            max_connections_per_client: count(
                "max_connections_per_client",
                1,
                1 << 20,
                d.max_connections_per_client,
                p,
            ),
            connect_timeout: ms("connect_timeout_ms", d.connect_timeout, p),
            read_timeout: ms("read_timeout_ms", d.read_timeout, p),
            idle_timeout: ms("idle_timeout_ms", d.idle_timeout, p),
        }
    }
}
