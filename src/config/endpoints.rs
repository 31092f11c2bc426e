//! `endpoints` and `default_vendor`: the vendor hosts YORI answers for, and where each one's
//! traffic goes.

use super::reader::{Problems, Section};
use super::types::Upstream;
use crate::providers::Vendor;
use serde_yaml::Value;

/// An endpoint, by its place in `Config::endpoints`. Only the config makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointId(u16);

impl EndpointId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Endpoint ids for `endpoints`, in order (at most `u16::MAX` endpoints are read).
pub fn ids(endpoints: &[Endpoint]) -> impl Iterator<Item = (EndpointId, &Endpoint)> {
    endpoints
        .iter()
        .take(u16::MAX as usize)
        .enumerate()
        .map(|(i, e)| (EndpointId(i as u16), e))
}

/// Path prefixes YORI keeps for itself.
const RESERVED_NAMES: &[&str] = &["api", "health", "ca.crt", "metrics"];

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Prefix for explicit routing (`/openai/...`): the vendor id, or a custom endpoint's `name`.
    pub name: String,
    /// The API this endpoint speaks (`vendor`).
    pub vendor: Vendor,
    /// The vendor host as devices call it (`domain`); also the Host header sent upstream.
    /// Default: the vendor's public host; required for `openai_compatible`.
    pub domain: String,
    /// `enabled` (default true). A disabled vendor's host gets 421.
    pub enabled: bool,
    /// Where the traffic goes (`upstream` URL); default: the domain on 443 over TLS.
    pub upstream: Upstream,
}

impl Endpoint {
    /// A vendor's built-in endpoint: its public host over TLS.
    pub fn built_in(vendor: Vendor) -> Endpoint {
        let domain = vendor.default_domain().unwrap_or_default().to_string();
        Endpoint {
            name: vendor.as_str().to_string(),
            vendor,
            upstream: Upstream::vendor_host(&domain),
            domain,
            enabled: true,
        }
    }

    /// One item of the `endpoints` list.
    pub fn read(v: &Value, path: &str, p: &mut Problems) -> Option<Endpoint> {
        Section::read(Some(v), path, p, |s, p| {
            let vendor = s.parsed("vendor", p, |v| {
                Vendor::parse(v).ok_or_else(|| {
                    format!(
                        "unknown vendor `{v}` (expected one of: {})",
                        Vendor::names().join(", ")
                    )
                })
            });
            let domain = s.parsed("domain", p, parse_domain);
            let enabled = s.boolean("enabled", p).unwrap_or(true);
            let upstream = s.parsed("upstream", p, Upstream::parse_url);
            let name = s.string("name", p);
            let Some(vendor) = vendor else {
                if s.get("vendor").is_none() {
                    p.push(
                        &s.child("vendor"),
                        format!("missing (one of {})", Vendor::names().join(", ")),
                    );
                }
                return None;
            };
            let Some(domain) = domain.or_else(|| vendor.default_domain().map(str::to_string))
            else {
                p.push(
                    &s.child("domain"),
                    "missing: an openai_compatible endpoint needs its domain",
                );
                return None;
            };
            if vendor.default_domain().is_none() && name.is_none() {
                p.push(
                    &s.child("name"),
                    "missing: an openai_compatible endpoint needs a name (its path prefix)",
                );
            }
            let name = name.unwrap_or_else(|| vendor.as_str().to_string());
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(
                    &s.child("name"),
                    format!("`{name}` must be letters, digits, - or _ (it becomes /{name}/...)"),
                );
            }
            Some(Endpoint {
                upstream: upstream.unwrap_or_else(|| Upstream::vendor_host(&domain)),
                name,
                vendor,
                domain,
                enabled,
            })
        })
    }
}

fn parse_domain(d: &str) -> Result<String, String> {
    let d = d.trim().to_ascii_lowercase();
    if d.is_empty() || d.contains(['/', ':', ' ']) {
        Err(format!(
            "`{d}` is not a host name (write only the name, e.g. api.openai.com)"
        ))
    } else {
        Ok(d)
    }
}

/// Names and domains are unique, and names are not YORI's own routes.
pub fn check_endpoints(endpoints: &[Endpoint], path: &str, p: &mut Problems) {
    for (i, e) in endpoints.iter().enumerate() {
        let at = |field: &str| format!("{path}[{i}].{field}");
        if let Some(j) = endpoints[..i].iter().position(|o| o.name == e.name) {
            p.push(
                &at("name"),
                format!("`{}` is already used by {path}[{j}]", e.name),
            );
        }
        if let Some(j) = endpoints[..i].iter().position(|o| o.domain == e.domain) {
            p.push(
                &at("domain"),
                format!("`{}` is already used by {path}[{j}]", e.domain),
            );
        }
        if RESERVED_NAMES.contains(&e.name.as_str()) {
            p.push(&at("name"), format!("`{}` is reserved", e.name));
        }
    }
}

/// The endpoint bare `/v1/...` requests go to: `default_vendor` by name, else openai if it is
/// enabled.
pub fn default_endpoint(
    endpoints: &[Endpoint],
    named: Option<(String, String)>,
    p: &mut Problems,
) -> Option<EndpointId> {
    let enabled = |name: &str| {
        ids(endpoints)
            .find(|(_, e)| e.name == name && e.enabled)
            .map(|(id, _)| id)
    };
    match named {
        None => enabled(Vendor::OpenAi.as_str()),
        Some((path, name)) => {
            let found = enabled(&name);
            if found.is_none() {
                p.push(
                    &path,
                    format!("`{name}` is not the name of an enabled endpoint"),
                );
            }
            found
        }
    }
}
