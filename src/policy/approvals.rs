//! "Ask a parent": approvals that let one device past one policy (or every policy) for a while.
//!
//! A block answer carries a short code for the device and the policy; a parent runs
//! `yori allow CODE --for 30m` on the router (only someone who can write the audit database can),
//! the approval goes into the `approvals` table, and the gateway's snapshot of the active ones
//! (refreshed every `REFRESH`, off the proxy thread, by the audit side) lets the device's requests
//! past that policy until the time runs out. Each approval and each request that passed because of
//! one is in the audit log. There is no password a child could try.

use super::clock::LocalTime;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the gateway re-reads the active approvals.
pub const REFRESH: Duration = Duration::from_secs(2);

/// One approval, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: i64,
    /// A device name from `devices`, or a client IP.
    pub device: String,
    /// `None`: every policy.
    pub policy: Option<String>,
    pub expires_at: LocalTime,
}

/// The active approvals, swapped whole by the refresher.
#[derive(Default)]
pub struct Approvals {
    current: RwLock<Arc<Vec<Approval>>>,
}

impl Approvals {
    pub fn set(&self, approvals: Vec<Approval>) {
        let approvals = Arc::new(approvals);
        match self.current.write() {
            Ok(mut g) => *g = approvals,
            Err(poisoned) => *poisoned.into_inner() = approvals,
        }
    }

    /// The approval that lets this device past `policy` at `now`, if any.
    pub fn active(
        &self,
        device: Option<&str>,
        ip: Option<IpAddr>,
        policy: Option<&str>,
        now: LocalTime,
    ) -> Option<Approval> {
        let current = match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if current.is_empty() {
            return None;
        }
        let ip = ip.map(|ip| ip.to_string());
        current
            .iter()
            .find(|a| {
                (device == Some(a.device.as_str()) || ip.as_deref() == Some(a.device.as_str()))
                    && (a.policy.is_none() || a.policy.as_deref() == policy)
                    && a.expires_at > now
            })
            .cloned()
    }
}

/// The code a block answer shows for `device` (a name, else the IP) and `policy`: six letters
/// and digits a parent can read out, the same for the same device and policy. It only names
/// what to approve; approving needs the router.
pub fn code(device: &str, policy: &str) -> String {
    use openssl::sha::sha256;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let digest = sha256(format!("{device}\n{policy}").as_bytes());
    digest
        .iter()
        .take(6)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// `30m`, `2h`, `1h30m`, `90s`, `1d`: a positive duration of at most 7 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 30m, 2h, 1h30m, 1d)");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    if total > 7 * 86_400 {
        return Err(format!("`{text}` is longer than 7 days"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> LocalTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn an_approval_covers_its_device_and_policy_until_it_expires() {
        let a = Approvals::default();
        a.set(vec![
            Approval {
                id: 1,
                device: "kids-laptop".into(),
                policy: Some("bedtime".into()),
                expires_at: at("2026-12-01T22:30:00Z"),
            },
            Approval {
                id: 2,
                device: "192.168.1.30".into(),
                policy: None,
                expires_at: at("2026-12-01T23:00:00Z"),
            },
        ]);
        let now = at("2026-12-01T22:00:00+00:00");
        let ip: IpAddr = "192.168.1.20".parse().unwrap();
        assert_eq!(
            a.active(Some("kids-laptop"), Some(ip), Some("bedtime"), now)
                .map(|x| x.id),
            Some(1)
        );
        assert_eq!(
            a.active(Some("kids-laptop"), Some(ip), Some("homework"), now),
            None
        );
        assert_eq!(
            a.active(Some("tablet"), Some(ip), Some("bedtime"), now),
            None
        );
        let other: IpAddr = "192.168.1.30".parse().unwrap();
        assert_eq!(
            a.active(None, Some(other), Some("homework"), now)
                .map(|x| x.id),
            Some(2)
        );
        // expired, also when the clock is in another offset
        assert_eq!(
            a.active(
                Some("kids-laptop"),
                None,
                Some("bedtime"),
                at("2026-12-01T23:31:00+01:00")
            ),
            None
        );
    }

    #[test]
    fn codes_are_short_stable_and_readable() {
        let c = code("kids-laptop", "bedtime");
        assert_eq!(c.len(), 6);
        assert_eq!(c, code("kids-laptop", "bedtime"));
        assert_ne!(c, code("kids-laptop", "homework"));
        assert!(c
            .chars()
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()));
        assert!(!c.contains(['0', 'O', '1', 'I']));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "30", "m", "0m", "30x", "8d", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
