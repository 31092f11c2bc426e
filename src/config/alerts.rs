//! `alerts`: where alerts are POSTed (plain HTTP on the LAN).

use super::reader::{Problems, Section};
use super::types::Upstream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Webhook {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `timeout_ms`: one delivery attempt.
    pub timeout: Duration,
    /// `retries`: attempts after the first, with doubling pauses.
    pub retries: u32,
}

/// The webhook from `webhook_url`, or `None` when alerts only go to the log and metrics.
pub fn read(s: &Section<'_>, p: &mut Problems) -> Option<Webhook> {
    let url = s.parsed("webhook_url", p, |u| match Upstream::parse_url(u) {
        Ok(up) if !up.tls => Ok(up),
        Ok(_) => Err(format!(
            "`{u}`: only http:// receivers on the local network are supported"
        )),
        Err(e) => Err(e),
    });
    let timeout = s.uint("timeout_ms", 100, 60_000, p).unwrap_or(5000);
    let retries = s.uint("retries", 0, 10, p).unwrap_or(3) as u32;
    url.map(|up| Webhook {
        path: if up.base_path.is_empty() {
            "/".into()
        } else {
            up.base_path
        },
        host: up.host,
        port: up.port,
        timeout: Duration::from_millis(timeout),
        retries,
    })
}
