//! `enforcement`: consent for enforce mode, devices never blocked, and the emergency switch.

use super::devices::Device;
use super::reader::{Problems, Section};
use crate::kinds::Mode;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct Enforcement {
    /// `consent_accepted`: the household was told; enforce mode refuses to start without it.
    pub consent_accepted: bool,
    /// `allowlist`: client IPs never blocked (device names resolved through `devices`).
    pub allowlist: Vec<IpAddr>,
    /// `disabled`: the emergency switch; nothing is blocked, whatever the mode.
    pub disabled: bool,
}

/// The section as written: allowlist entries are resolved against `devices` afterwards.
pub struct Written {
    pub consent_accepted: bool,
    /// Where `consent_accepted` is, for the problem when it is missing.
    consent_path: String,
    /// (dotted path, entry): an IP address or a device name.
    pub allowlist: Vec<(String, String)>,
    pub disabled: bool,
}

const CONSENT: &str = "consent_accepted";

pub fn read(s: &Section<'_>, p: &mut Problems) -> Written {
    Written {
        consent_accepted: s.boolean(CONSENT, p).unwrap_or(false),
        consent_path: s.child(CONSENT),
        allowlist: s
            .list("allowlist", p, |v, path, p| {
                super::reader::string_item(v, path, p, |e| Ok((path.to_string(), e.to_string())))
            })
            .unwrap_or_default(),
        disabled: s.boolean("disabled", p).unwrap_or(false),
    }
}

impl Written {
    /// Resolves the allowlist's device names; an entry that is neither an IP nor a device name
    /// is a problem.
    pub fn resolve(self, devices: &[Device], p: &mut Problems) -> Enforcement {
        let mut allowlist = Vec::new();
        for (path, entry) in self.allowlist {
            match entry.parse::<IpAddr>() {
                Ok(ip) => allowlist.push(ip),
                Err(_) => match devices.iter().find(|d| d.name == entry) {
                    Some(d) => allowlist.push(d.ip),
                    None => p.push(
                        &path,
                        format!(
                            "`{entry}` is neither an IP address nor a device name from `devices`"
                        ),
                    ),
                },
            }
        }
        Enforcement {
            consent_accepted: self.consent_accepted,
            allowlist,
            disabled: self.disabled,
        }
    }
}

impl Written {
    /// Enforce mode blocks the household's requests: it needs the consent flag.
    pub fn check_consent(&self, mode: Mode, p: &mut Problems) {
        if mode == Mode::Enforce && !self.consent_accepted {
            p.push(
                &self.consent_path,
                "enforce mode blocks requests from the household's devices; set enforcement.consent_accepted: true to confirm you have told them",
            );
        }
    }
}
