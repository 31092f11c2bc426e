//! Configuration: YAML read into a validated, typed `Config` once at start.
//!
//! Everything the request path needs is parsed here (addresses, CIDRs, upstream URLs), so a
//! request can never meet a config error. Problems are reported all at once (`check`).

pub mod check;

use crate::vendor::Vendor;
use check::{string_item, Problems, Section};
use serde_yaml::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG_PATH: &str = "/usr/local/etc/yori/yori.conf";
pub const CONFIG_ENV: &str = "YORI_CONFIG";
pub const DEFAULT_DATABASE: &str = "/var/db/yori/audit.db";
pub const DEFAULT_POLICY_DIR: &str = "/usr/local/etc/yori/policies";
pub const DEFAULT_CA_DIR: &str = "/usr/local/etc/yori/ca";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Observe,
    Advisory,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Advisory => "advisory",
            Mode::Enforce => "enforce",
        }
    }
    fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "observe" => Ok(Mode::Observe),
            "advisory" => Ok(Mode::Advisory),
            "enforce" => Ok(Mode::Enforce),
            other => Err(format!(
                "unknown mode `{other}` (expected observe, advisory or enforce)"
            )),
        }
    }
}

/// Where an endpoint's traffic goes: the vendor itself, or an override (mock, local model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// TLS server name (and certificate name checked); the host for URL overrides.
    pub sni: String,
    /// Path prefix of the override URL (`http://127.0.0.1:11434/ollama` -> `/ollama`), or empty.
    pub base_path: String,
}

impl Upstream {
    fn vendor_host(domain: &str) -> Upstream {
        Upstream {
            tls: true,
            host: domain.to_string(),
            port: 443,
            sni: domain.to_string(),
            base_path: String::new(),
        }
    }

    /// Parses `http://host:port/path` or `https://host[:port]/path`.
    pub fn parse_url(url: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("`{url}` must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("`{url}` has no valid host[:port]"))?;
        Ok(Upstream {
            tls,
            sni: host.clone(),
            host,
            port,
            base_path: path.to_string(),
        })
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_string(), default_port)),
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Prefix name for explicit routing (`/openai/...`): the vendor id, or a custom endpoint's name.
    pub name: String,
    pub vendor: Vendor,
    /// Vendor host as devices call it; the Host header sent upstream.
    pub domain: String,
    pub enabled: bool,
    pub upstream: Upstream,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub ip: IpAddr,
    pub name: String,
    pub mac: Option<String>,
}

/// An IP network (`192.168.1.0/24`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("`{s}` is not an IP address or CIDR (e.g. 192.168.1.0/24)");
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    /// Longest silence between two reads from the vendor (a long generation streams for minutes,
    /// but not silently).
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub database: PathBuf,
    pub retention_days: u32,
    /// 0 stores no preview.
    pub prompt_preview_chars: usize,
    /// Replace detected personal data in the preview with `[kind]`.
    pub redact_preview: bool,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    pub max_database_bytes: u64,
}

/// Household rules, compiled once at load.
#[derive(Clone)]
pub struct Policies {
    pub set: std::sync::Arc<crate::policy::PolicySet>,
    /// The verdict when no policy has anything to say (no policy loaded).
    pub default: crate::policy::Action,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Policies({} from {}, default {:?})",
            self.set.names().join(","),
            self.set.origin,
            self.default
        )
    }
}

/// Where alerts are POSTed (plain HTTP on the LAN).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct Enforcement {
    pub consent_accepted: bool,
    /// Client IPs never blocked (device names from `allowlist` resolved through `devices`).
    pub allowlist: Vec<IpAddr>,
    /// Emergency switch: nothing is blocked, whatever the mode.
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub allow: Vec<Cidr>,
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub daemon: bool,
    pub error_log: Option<PathBuf>,
}

/// The TLS listener that intercepts devices' HTTPS calls to the vendor names (`tls`).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// On when the `tls` section is present, unless `enabled: false`.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The local CA (`ca.crt`, `ca.key`); used unless `cert` and `key` are given.
    pub ca_dir: PathBuf,
    /// A certificate chain (PEM) and key supplied by the user instead of the local CA.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Validity of the leaf certificates the local CA issues; renewed when a third is left.
    pub leaf_days: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where this config came from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    pub mode: Mode,
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    pub endpoints: Vec<Endpoint>,
    pub default_vendor: Option<usize>,
    pub devices: Vec<Device>,
    pub audit: AuditConfig,
    pub policies: Policies,
    pub enforcement: Enforcement,
    pub webhook: Option<Webhook>,
    /// Prometheus listener.
    pub metrics_listen: SocketAddr,
    pub admin: Admin,
    pub limits: Limits,
    pub server: ServerSettings,
}

/// All problems found in a config file, ready to print (exit code 2).
#[derive(Debug)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<check::Problem>,
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
                problems: vec![check::Problem {
                    path: String::new(),
                    message: format!("cannot read {}: {e}", p.display()),
                }],
            })?;
            parse_str(&text, Some(p))
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "mode",
    "listen",
    "tls",
    "endpoints",
    "default_vendor",
    "devices",
    "audit",
    "policies",
    "enforcement",
    "alerts",
    "metrics",
    "admin",
    "limits",
    "server",
];

/// Parses and validates YAML text. Empty text is the built-in default.
pub fn parse_str(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    let source_name = source.map_or("(built-in default)".to_string(), |p| {
        p.display().to_string()
    });
    let mut p = Problems::default();
    let root: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Err(ConfigError {
                    source: source_name,
                    problems: vec![check::Problem {
                        path: String::new(),
                        message: format!("not valid YAML: {e}"),
                    }],
                })
            }
        }
    };
    let top = Section::new(Some(&root), "", TOP_KEYS, &mut p);

    let mode = top
        .parsed("mode", &mut p, Mode::parse)
        .unwrap_or(Mode::Observe);
    let listen = top
        .parsed("listen", &mut p, parse_addr)
        .unwrap_or(([0, 0, 0, 0], 8443).into());
    let endpoints = match top.get("endpoints") {
        Some(_) => top.list("endpoints", &mut p, endpoint).unwrap_or_default(),
        None => Vendor::BUILT_IN
            .iter()
            .map(|v| built_in_endpoint(*v))
            .collect(),
    };
    check_endpoints(&endpoints, &mut p);
    let default_vendor = match top.string("default_vendor", &mut p) {
        None => endpoints
            .iter()
            .position(|e| e.name == "openai" && e.enabled),
        Some(name) => match endpoints.iter().position(|e| e.name == name && e.enabled) {
            Some(i) => Some(i),
            None => {
                p.push(
                    "default_vendor",
                    format!("`{name}` is not the name of an enabled endpoint"),
                );
                None
            }
        },
    };
    let devices = top.list("devices", &mut p, device).unwrap_or_default();

    let au = Section::new(
        top.get("audit"),
        "audit",
        &[
            "database",
            "retention_days",
            "prompt_preview_chars",
            "redact_preview",
            "batch_size",
            "flush_interval_ms",
            "queue_capacity",
            "max_database_mb",
        ],
        &mut p,
    );
    let audit = AuditConfig {
        database: au
            .string("database", &mut p)
            .map(PathBuf::from)
            .unwrap_or_else(|| DEFAULT_DATABASE.into()),
        retention_days: au.uint("retention_days", 1, 36500, &mut p).unwrap_or(365) as u32,
        prompt_preview_chars: au
            .uint("prompt_preview_chars", 0, 100_000, &mut p)
            .unwrap_or(200) as usize,
        redact_preview: au.boolean("redact_preview", &mut p).unwrap_or(false),
        batch_size: au.uint("batch_size", 1, 100_000, &mut p).unwrap_or(512) as usize,
        flush_interval: Duration::from_millis(
            au.uint("flush_interval_ms", 1, 60_000, &mut p)
                .unwrap_or(200),
        ),
        queue_capacity: au
            .uint("queue_capacity", 1, 10_000_000, &mut p)
            .unwrap_or(50_000) as usize,
        max_database_bytes: au
            .uint("max_database_mb", 1, 1 << 20, &mut p)
            .unwrap_or(1024)
            << 20,
    };

    let po = Section::new(
        top.get("policies"),
        "policies",
        &["directory", "enabled", "default", "data"],
        &mut p,
    );
    let policy_source = match po.string("directory", &mut p) {
        Some(d) => crate::policy::Source::Directory(PathBuf::from(d)),
        None if Path::new(DEFAULT_POLICY_DIR).is_dir() => {
            crate::policy::Source::Directory(DEFAULT_POLICY_DIR.into())
        }
        None => crate::policy::Source::BuiltIn,
    };
    let enabled = po.list("enabled", &mut p, |v, path, p| {
        string_item(v, path, p, |s| Ok(s.to_string()))
    });
    let default_action = po
        .parsed("default", &mut p, |s| {
            crate::policy::Action::parse(s)
                .ok_or_else(|| format!("`{s}` is not allow, alert or block"))
        })
        .unwrap_or(crate::policy::Action::Allow);
    let data = match po.get("data") {
        None => serde_json::json!({}),
        Some(v @ Value::Mapping(_)) => serde_json::to_value(v).unwrap_or_else(|e| {
            p.push(
                "policies.data",
                format!("cannot be used as policy data: {e}"),
            );
            serde_json::json!({})
        }),
        Some(_) => {
            p.push(
                "policies.data",
                "expected a mapping (settings per policy, e.g. bedtime: {start_hour: 21})",
            );
            serde_json::json!({})
        }
    };
    let policy_set = match crate::policy::PolicySet::load(&policy_source, enabled.as_deref(), &data)
    {
        Ok(set) => Some(set),
        Err(errors) => {
            for e in errors {
                p.push("policies", e);
            }
            None
        }
    };

    let en = Section::new(
        top.get("enforcement"),
        "enforcement",
        &["consent_accepted", "allowlist", "disabled"],
        &mut p,
    );
    let consent_accepted = en.boolean("consent_accepted", &mut p).unwrap_or(false);
    if mode == Mode::Enforce && !consent_accepted {
        p.push(
            "enforcement.consent_accepted",
            "enforce mode blocks requests from the household's devices; set enforcement.consent_accepted: true to confirm you have told them",
        );
    }
    let allow_entries = en
        .list("allowlist", &mut p, |v, path, p| {
            string_item(v, path, p, |s| Ok((path.to_string(), s.to_string())))
        })
        .unwrap_or_default();
    let mut allowlist = Vec::new();
    for (path, entry) in allow_entries {
        match entry.parse::<IpAddr>() {
            Ok(ip) => allowlist.push(ip),
            Err(_) => match devices.iter().find(|d| d.name == entry) {
                Some(d) => allowlist.push(d.ip),
                None => p.push(
                    &path,
                    format!("`{entry}` is neither an IP address nor a device name from `devices`"),
                ),
            },
        }
    }
    let enforcement = Enforcement {
        consent_accepted,
        allowlist,
        disabled: en.boolean("disabled", &mut p).unwrap_or(false),
    };

    let al = Section::new(
        top.get("alerts"),
        "alerts",
        &["webhook_url", "timeout_ms", "retries"],
        &mut p,
    );
    let webhook = al
        .parsed("webhook_url", &mut p, |u| match Upstream::parse_url(u) {
            Ok(up) if !up.tls => Ok(up),
            Ok(_) => Err(format!(
                "`{u}`: only http:// receivers on the local network are supported"
            )),
            Err(e) => Err(e),
        })
        .map(|up| Webhook {
            path: if up.base_path.is_empty() {
                "/".into()
            } else {
                up.base_path
            },
            host: up.host,
            port: up.port,
            timeout: Duration::from_millis(
                al.uint("timeout_ms", 100, 60_000, &mut p).unwrap_or(5000),
            ),
            retries: al.uint("retries", 0, 10, &mut p).unwrap_or(3) as u32,
        });

    let me = Section::new(top.get("metrics"), "metrics", &["listen"], &mut p);
    let metrics_listen = me
        .parsed("listen", &mut p, parse_addr)
        .unwrap_or(([127, 0, 0, 1], 9184).into());
    if metrics_listen == listen {
        p.push(
            "metrics.listen",
            format!("`{metrics_listen}` is also `listen`: give the metrics their own port"),
        );
    }

    let tls = tls_section(&top, listen, metrics_listen, &mut p);

    let admin_s = Section::new(top.get("admin"), "admin", &["allow", "token"], &mut p);
    let admin = Admin {
        allow: admin_s
            .list("allow", &mut p, |v, path, p| {
                string_item(v, path, p, Cidr::parse)
            })
            .unwrap_or_else(|| vec![Cidr::parse("127.0.0.0/8").unwrap_or(LOOPBACK4), LOOPBACK6]),
        token: admin_s.string("token", &mut p).filter(|t| !t.is_empty()),
    };

    let lim = Section::new(
        top.get("limits"),
        "limits",
        &[
            "max_body_bytes",
            "connect_timeout_ms",
            "read_timeout_ms",
            "idle_timeout_ms",
        ],
        &mut p,
    );
    let ms = |key: &str, default: u64, p: &mut Problems| {
        Duration::from_millis(lim.uint(key, 1, 86_400_000, p).unwrap_or(default))
    };
    let limits = Limits {
        max_body_bytes: lim
            .uint("max_body_bytes", 1, 1 << 30, &mut p)
            .unwrap_or(16 << 20) as usize,
        connect_timeout: ms("connect_timeout_ms", 10_000, &mut p),
        read_timeout: ms("read_timeout_ms", 300_000, &mut p),
        idle_timeout: ms("idle_timeout_ms", 60_000, &mut p),
    };

    let srv = Section::new(
        top.get("server"),
        "server",
        &[
            "threads",
            "pid_file",
            "upgrade_sock",
            "grace_period_seconds",
            "graceful_shutdown_timeout_seconds",
            "daemon",
            "error_log",
        ],
        &mut p,
    );
    let server = ServerSettings {
        threads: srv.uint("threads", 1, 256, &mut p).unwrap_or(1) as usize,
        pid_file: srv
            .string("pid_file", &mut p)
            .map(PathBuf::from)
            .unwrap_or_else(|| "/var/run/yori.pid".into()),
        upgrade_sock: srv
            .string("upgrade_sock", &mut p)
            .map(PathBuf::from)
            .unwrap_or_else(|| "/var/run/yori_upgrade.sock".into()),
        grace_period_seconds: srv
            .uint("grace_period_seconds", 0, 3600, &mut p)
            .unwrap_or(5),
        graceful_shutdown_timeout_seconds: srv
            .uint("graceful_shutdown_timeout_seconds", 0, 3600, &mut p)
            .unwrap_or(10),
        daemon: srv.boolean("daemon", &mut p).unwrap_or(false),
        error_log: srv.string("error_log", &mut p).map(PathBuf::from),
    };

    let policies = match policy_set {
        Some(set) if p.0.is_empty() => Policies {
            set: std::sync::Arc::new(set),
            default: default_action,
        },
        _ => {
            return Err(ConfigError {
                source: source_name,
                problems: p.0,
            })
        }
    };
    Ok(Config {
        source: source.map(Path::to_path_buf),
        mode,
        listen,
        tls,
        endpoints,
        default_vendor,
        devices,
        audit,
        policies,
        enforcement,
        webhook,
        metrics_listen,
        admin,
        limits,
        server,
    })
}

const LOOPBACK4: Cidr = Cidr {
    addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    prefix: 8,
};
const LOOPBACK6: Cidr = Cidr {
    addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    prefix: 128,
};

fn tls_section(
    top: &Section,
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    p: &mut Problems,
) -> TlsConfig {
    let t = Section::new(
        top.get("tls"),
        "tls",
        &["enabled", "listen", "ca_dir", "cert", "key", "leaf_days"],
        p,
    );
    let present = top.get("tls").is_some_and(|v| !v.is_null());
    let tls = TlsConfig {
        enabled: t.boolean("enabled", p).unwrap_or(present),
        listen: t
            .parsed("listen", p, parse_addr)
            .unwrap_or(([0, 0, 0, 0], 8443).into()),
        ca_dir: t
            .string("ca_dir", p)
            .map(PathBuf::from)
            .unwrap_or_else(|| DEFAULT_CA_DIR.into()),
        cert: t.string("cert", p).map(PathBuf::from),
        key: t.string("key", p).map(PathBuf::from),
        leaf_days: t.uint("leaf_days", 2, 825, p).unwrap_or(90) as u32,
    };
    if tls.cert.is_some() != tls.key.is_some() {
        let missing = if tls.cert.is_some() { "key" } else { "cert" };
        p.push(
            &t.child(missing),
            "`cert` and `key` go together: give both (your own certificate) or neither (the local CA)",
        );
    }
    if tls.enabled {
        for (other, key) in [(listen, "listen"), (metrics_listen, "metrics.listen")] {
            if same_port(tls.listen, other) {
                p.push(
                    "tls.listen",
                    format!(
                        "`{}` overlaps `{key}` ({other}): TLS needs its own port \
                         (e.g. plain HTTP on 0.0.0.0:8080, TLS on 0.0.0.0:8443)",
                        tls.listen
                    ),
                );
            }
        }
    }
    tls
}

/// Whether two listeners would fight over one port (same port, and same or wildcard address).
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not a valid listen address (expected ip:port, e.g. 0.0.0.0:8443)")
    })
}

fn built_in_endpoint(vendor: Vendor) -> Endpoint {
    let domain = vendor.default_domain().unwrap_or_default().to_string();
    Endpoint {
        name: vendor.as_str().to_string(),
        vendor,
        upstream: Upstream::vendor_host(&domain),
        domain,
        enabled: true,
    }
}

const ENDPOINT_KEYS: &[&str] = &["domain", "vendor", "enabled", "upstream", "name"];

fn endpoint(v: &Value, path: &str, p: &mut Problems) -> Option<Endpoint> {
    let s = Section::new(Some(v), path, ENDPOINT_KEYS, p);
    let Some(vendor) = s.parsed("vendor", p, Vendor::parse) else {
        if s.get("vendor").is_none() {
            p.push(
                &s.child("vendor"),
                "missing (one of openai, anthropic, gemini, mistral, openai_compatible)",
            );
        }
        return None;
    };
    let domain = s
        .parsed("domain", p, |d| {
            let d = d.trim().to_ascii_lowercase();
            if d.is_empty() || d.contains(['/', ':', ' ']) {
                Err(format!(
                    "`{d}` is not a host name (write only the name, e.g. api.openai.com)"
                ))
            } else {
                Ok(d)
            }
        })
        .or_else(|| vendor.default_domain().map(str::to_string));
    let name = s
        .string("name", p)
        .unwrap_or_else(|| vendor.as_str().to_string());
    let upstream = s.parsed("upstream", p, Upstream::parse_url);
    let enabled = s.boolean("enabled", p).unwrap_or(true);
    let domain = match domain {
        Some(d) => d,
        None => {
            p.push(
                &s.child("domain"),
                "missing: an openai_compatible endpoint needs its domain",
            );
            return None;
        }
    };
    if vendor == Vendor::OpenAiCompatible && s.get("name").is_none() {
        p.push(
            &s.child("name"),
            "missing: an openai_compatible endpoint needs a name (its path prefix)",
        );
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || name.is_empty()
    {
        p.push(
            &s.child("name"),
            format!("`{name}` must be letters, digits, - or _ (it becomes /{name}/...)"),
        );
    }
    let upstream = upstream.unwrap_or_else(|| Upstream::vendor_host(&domain));
    Some(Endpoint {
        name,
        vendor,
        domain,
        enabled,
        upstream,
    })
}

fn check_endpoints(endpoints: &[Endpoint], p: &mut Problems) {
    for (i, e) in endpoints.iter().enumerate() {
        if let Some(j) = endpoints[..i].iter().position(|o| o.name == e.name) {
            p.push(
                &format!("endpoints[{i}].name"),
                format!("`{}` is already used by endpoints[{j}]", e.name),
            );
        }
        if let Some(j) = endpoints[..i].iter().position(|o| o.domain == e.domain) {
            p.push(
                &format!("endpoints[{i}].domain"),
                format!("`{}` is already used by endpoints[{j}]", e.domain),
            );
        }
        if ["api", "health", "ca.crt", "metrics"].contains(&e.name.as_str()) {
            p.push(
                &format!("endpoints[{i}].name"),
                format!("`{}` is reserved", e.name),
            );
        }
    }
}

fn device(v: &Value, path: &str, p: &mut Problems) -> Option<Device> {
    let s = Section::new(Some(v), path, &["ip", "name", "mac"], p);
    let ip = s.parsed("ip", p, |ip| {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("`{ip}` is not an IP address"))
    });
    let name = s.string("name", p);
    let mac = s.string("mac", p);
    if s.get("ip").is_none() {
        p.push(&s.child("ip"), "missing");
    }
    if s.get("name").is_none() {
        p.push(&s.child("name"), "missing");
    }
    Some(Device {
        ip: ip?,
        name: name?,
        mac,
    })
}

#[cfg(test)]
mod tests;
