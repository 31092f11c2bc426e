//! The listeners: plain HTTP (`listen`), Prometheus (`metrics.listen`) and the TLS interception
//! listener (`tls`), and the check that no two of them share a port.

use super::reader::{Problems, Section};
use super::types::{parse_addr, same_port};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the local CA lives by default.
pub const DEFAULT_CA_DIR: &str = "/usr/local/etc/yori/ca";

/// A listening address and the config key it came from.
#[derive(Debug, Clone)]
pub struct Bound {
    pub addr: SocketAddr,
    pub path: String,
}

impl Bound {
    /// The address at `key`, or `default`.
    pub fn read(
        s: &Section<'_>,
        key: &'static str,
        default: SocketAddr,
        p: &mut Problems,
    ) -> Bound {
        let (addr, path) = s.located(key, p, parse_addr);
        Bound {
            addr: addr.unwrap_or(default),
            path,
        }
    }
}

/// The TLS listener that intercepts devices' HTTPS calls to the vendor names (`tls`).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// `enabled`: on when the `tls` section is present, unless `enabled: false`.
    pub enabled: bool,
    /// `listen` (default 0.0.0.0:8443).
    pub listen: SocketAddr,
    /// `ca_dir`: the local CA (`ca.crt`, `ca.key`); used unless `cert` and `key` are given.
    pub ca_dir: PathBuf,
    /// `cert` and `key`: a certificate chain (PEM) and key of your own instead of the local CA.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `leaf_days`: validity of the leaf certificates the local CA issues; renewed when a
    /// third is left.
    pub leaf_days: u32,
    /// `name_constraints`: a local CA made from now on may sign only the enabled endpoint
    /// domains (X.509 name constraints), so a stolen `ca.key` cannot impersonate other sites.
    /// Adding an endpoint then needs a new CA, installed again on each device.
    pub name_constraints: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            listen: ([0, 0, 0, 0], 8443).into(),
            ca_dir: DEFAULT_CA_DIR.into(),
            cert: None,
            key: None,
            leaf_days: 90,
            name_constraints: true,
        }
    }
}

impl TlsConfig {
    /// The section, and its listener for the port check when it is enabled.
    pub fn read(s: &Section<'_>, p: &mut Problems) -> (TlsConfig, Option<Bound>) {
        let d = TlsConfig::default();
        let enabled = s.boolean("enabled", p).unwrap_or(s.is_present());
        let listen = Bound::read(s, "listen", d.listen, p);
        let (cert, cert_path) = s.located("cert", p, |c| Ok(PathBuf::from(c)));
        let (key, key_path) = s.located("key", p, |k| Ok(PathBuf::from(k)));
        if cert.is_some() != key.is_some() {
            p.push(
                if cert.is_some() { &key_path } else { &cert_path },
                "`cert` and `key` go together: give both (your own certificate) or neither (the local CA)",
            );
        }
        let tls = TlsConfig {
            enabled,
            listen: listen.addr,
            ca_dir: s.path("ca_dir", p).unwrap_or(d.ca_dir),
            cert,
            key,
            leaf_days: s
                .uint("leaf_days", 2, 825, p)
                .map_or(d.leaf_days, |n| n as u32),
            name_constraints: s
                .boolean("name_constraints", p)
                .unwrap_or(d.name_constraints),
        };
        (tls, enabled.then_some(listen))
    }
}

/// `metrics.listen` (default 127.0.0.1:9184: Prometheus on the router itself).
pub fn read_metrics(s: &Section<'_>, p: &mut Problems) -> Bound {
    Bound::read(s, "listen", ([127, 0, 0, 1], 9184).into(), p)
}

/// Two listeners on one port would fight over it (same port, and same or wildcard address).
pub fn check_ports(listeners: &[Bound], p: &mut Problems) {
    for (j, b) in listeners.iter().enumerate() {
        if let Some(a) = listeners[..j].iter().find(|a| same_port(a.addr, b.addr)) {
            p.push(
                &b.path,
                format!(
                    "`{}` overlaps `{}` ({}): each listener needs its own port \
                     (e.g. plain HTTP on 0.0.0.0:8080, TLS on 0.0.0.0:8443)",
                    b.addr, a.path, a.addr
                ),
            );
        }
    }
}
