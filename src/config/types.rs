//! Small value types the config parses once: addresses, networks, upstream URLs.

use std::net::{IpAddr, SocketAddr};

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
    pub fn vendor_host(domain: &str) -> Upstream {
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

/// An address as the household knows it: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
/// dual-stack listener reports for IPv4 clients) is the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[test]
fn ipv4_mapped_addresses_are_plain_ipv4() {
    let mapped: IpAddr = "::ffff:192.168.1.20".parse().unwrap();
    assert_eq!(
        canonical_ip(mapped),
        "192.168.1.20".parse::<IpAddr>().unwrap()
    );
    let v6: IpAddr = "fe80::1".parse().unwrap();
    assert_eq!(canonical_ip(v6), v6);
    let compat: IpAddr = "::1".parse().unwrap();
    assert_eq!(canonical_ip(compat), compat, "loopback v6 stays v6");
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

pub const LOOPBACK4: Cidr = Cidr {
    addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    prefix: 8,
};
pub const LOOPBACK6: Cidr = Cidr {
    addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    prefix: 128,
};

/// Whether two listeners would fight over one port (same port, and same or wildcard address).
pub fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not a valid listen address (expected ip:port, e.g. 0.0.0.0:8443)")
    })
}
