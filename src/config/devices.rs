//! `devices`: names for the household's devices, by IP.

use super::reader::{Problems, Section};
use serde_yaml::Value;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Device {
    /// `ip`: the device's address.
    pub ip: IpAddr,
    /// `name`: shown in rows and policy input, and usable in `enforcement.allowlist`.
    pub name: String,
    /// `mac`: optional, for the record.
    pub mac: Option<String>,
}

impl Device {
    /// One item of the `devices` list.
    pub fn read(v: &Value, path: &str, p: &mut Problems) -> Option<Device> {
        Section::read(Some(v), path, p, |s, p| {
            let ip = s.required("ip", p, |ip| {
                ip.parse::<IpAddr>()
                    .map_err(|_| format!("`{ip}` is not an IP address"))
            });
            let name = s.required("name", p, |n| Ok(n.to_string()));
            let mac = s.string("mac", p);
            Some(Device {
                ip: ip?,
                name: name?,
                mac,
            })
        })
    }
}
