//! Configuration: YAML read into a validated, typed `Config` once at start (and on SIGHUP).
//!
//! Each section has a type that knows its keys, defaults and checks (`audit`, `limits`, ...);
//! checks that span sections (ports, endpoint names, allowlist device names, consent) are
//! functions of their own, run once every section is read. Everything the request path needs is
//! parsed here (addresses, CIDRs, upstream URLs, policies), so a request can never meet a config
//! error. Every problem is reported at once, as `dotted.path: message` (`reader`).

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod devices;
pub mod endpoints;
pub mod enforcement;
pub mod limits;
pub mod listeners;
pub mod policies;
pub mod pricing;
pub mod reader;
pub mod server;
pub mod types;

pub use admin::Admin;
pub use alerts::Webhook;
pub use audit::AuditConfig;
pub use devices::Device;
pub use endpoints::{Endpoint, EndpointId};
pub use enforcement::Enforcement;
pub use limits::Limits;
pub use listeners::TlsConfig;
pub use policies::Policies;
pub use server::ServerSettings;
pub use types::{parse_addr, Cidr, Upstream};

use crate::kinds::Mode;
use crate::policy::live::Live;
use crate::providers::Vendor;
use listeners::Bound;
use reader::{Problem, Problems, Section};
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_PATH: &str = "/usr/local/etc/yori/yori.conf";
pub const CONFIG_ENV: &str = "YORI_CONFIG";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where this config came from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// `mode`: observe (default), advisory or enforce.
    pub mode: Mode,
    /// `listen`: the plain HTTP listener (default 0.0.0.0:8443).
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    /// `endpoints` (default: the four vendors on their public hosts).
    pub endpoints: Vec<Endpoint>,
    /// Where bare `/v1/...` goes (`default_vendor`, default openai).
    pub default_endpoint: Option<EndpointId>,
    pub devices: Vec<Device>,
    pub audit: AuditConfig,
    pub policies: Policies,
    pub enforcement: Enforcement,
    /// `alerts`
    pub webhook: Option<Webhook>,
    /// `metrics.listen`: the Prometheus listener.
    pub metrics_listen: SocketAddr,
    pub admin: Admin,
    pub limits: Limits,
    pub server: ServerSettings,
    /// `pricing`: the shipped price table (`conf/pricing.yaml`) with these entries over it.
    pub pricing: pricing::Pricing,
}

impl Config {
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        &self.endpoints[id.index()]
    }

    /// The endpoints with their ids.
    pub fn endpoint_ids(&self) -> impl Iterator<Item = (EndpointId, &Endpoint)> {
        endpoints::ids(&self.endpoints)
    }

    /// What a SIGHUP may change.
    pub fn live(&self) -> Live {
        Live {
            policies: self.policies.set.clone(),
            default: self.policies.default,
            allowlist: self.enforcement.allowlist.clone(),
            disabled: self.enforcement.disabled,
            devices: std::sync::Arc::new(
                self.devices
                    .iter()
                    .map(|d| (d.ip, d.name.clone()))
                    .collect(),
            ),
        }
    }
}

/// All problems found in a config file, ready to print (exit code 2).
#[derive(Debug)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "invalid configuration {} ({} problem(s)):",
            self.source,
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Which file to read: `-c`, then `$YORI_CONFIG`, then the default path if it exists.
pub fn locate(cli: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = cli {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    default.exists().then(|| default.to_path_buf())
}

/// Loads the config at `path`, or the built-in default when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => parse_str("", None),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                source: p.display().to_string(),
                problems: vec![Problem {
                    path: String::new(),
                    message: format!("cannot read {}: {e}", p.display()),
                }],
            })?;
            parse_str(&text, Some(p))
        }
    }
}

/// Parses and validates YAML text. Empty text is the built-in default.
pub fn parse_str(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    let source_name = source.map_or("(built-in default)".to_string(), |p| {
        p.display().to_string()
    });
    let root: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| ConfigError {
            source: source_name.clone(),
            problems: vec![Problem {
                path: String::new(),
                message: format!("not valid YAML: {e}"),
            }],
        })?
    };
    let mut p = Problems::default();
    let config = Section::read(Some(&root), "", &mut p, read);
    match config {
        Some(c) if p.0.is_empty() => Ok(Config {
            source: source.map(Path::to_path_buf),
            ..c
        }),
        _ => Err(ConfigError {
            source: source_name,
            problems: p.0,
        }),
    }
}

/// The top level, in the order the keys are documented; `None` when policies did not compile.
fn read(s: &Section<'_>, p: &mut Problems) -> Option<Config> {
    let mode = s
        .parsed("mode", p, |m| {
            Mode::parse(m).ok_or_else(|| {
                format!("unknown mode `{m}` (expected observe, advisory or enforce)")
            })
        })
        .unwrap_or(Mode::Observe);
    let listen = Bound::read(s, "listen", ([0, 0, 0, 0], 8443).into(), p);
    let (tls, tls_listen) = s.section("tls", p, TlsConfig::read);
    let endpoints = read_endpoints(s, p);
    let default_endpoint = {
        let (name, path) = s.located("default_vendor", p, |n| Ok(n.to_string()));
        endpoints::default_endpoint(&endpoints, name.map(|n| (path, n)), p)
    };
    let devices = s.list("devices", p, Device::read).unwrap_or_default();
    let audit = s.section("audit", p, AuditConfig::read);
    let policies = s.section("policies", p, policies::read);
    let enforcement = s.section("enforcement", p, |s, p| {
        let written = enforcement::read(s, p);
        written.check_consent(mode, p);
        written.resolve(&devices, p)
    });
    let webhook = s.section("alerts", p, alerts::read);
    let metrics = s.section("metrics", p, listeners::read_metrics);
    let admin = s.section("admin", p, Admin::read);
    let limits = s.section("limits", p, Limits::read);
    let server = s.section("server", p, ServerSettings::read);
    let mut pricing = pricing::Pricing::built_in();
    pricing.add(s.get("pricing"), &s.child("pricing"), p);
    let mut bound = vec![listen.clone(), metrics.clone()];
    bound.extend(tls_listen);
    listeners::check_ports(&bound, p);
    Some(Config {
        source: None,
        mode,
        listen: listen.addr,
        tls,
        endpoints,
        default_endpoint,
        devices,
        audit,
        policies: policies?,
        enforcement,
        webhook,
        metrics_listen: metrics.addr,
        admin,
        limits,
        server,
        pricing,
    })
}

/// `endpoints`, checked; the four built-in vendors when the key is absent.
fn read_endpoints(s: &Section<'_>, p: &mut Problems) -> Vec<Endpoint> {
    const KEY: &str = "endpoints";
    if s.get(KEY).is_none() {
        return Vendor::built_in().map(Endpoint::built_in).collect();
    }
    let endpoints = s.list(KEY, p, Endpoint::read).unwrap_or_default();
    endpoints::check_endpoints(&endpoints, &s.child(KEY), p);
    endpoints
}

#[cfg(test)]
mod tests;
