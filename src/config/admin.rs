//! `admin`: who may use the admin API.

use super::reader::{Problems, Section};
use super::types::{Cidr, LOOPBACK4, LOOPBACK6};

#[derive(Debug, Clone)]
pub struct Admin {
    /// `allow`: networks whose clients may use `/api/*` (default: loopback only).
    pub allow: Vec<Cidr>,
    /// `token`: a bearer token that opens `/api/*` from anywhere (scripts); none by default.
    pub token: Option<String>,
    /// `hosts`: names besides IP literals and `localhost` that `/api/*` and `/ca.crt` answer to
    /// in the Host header (for example `yori.lan`); any other Host gets 421, so a web page that
    /// DNS-rebinds its own name to the router cannot read the household's log.
    pub hosts: Vec<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            allow: vec![LOOPBACK4, LOOPBACK6],
            token: None,
            hosts: Vec::new(),
        }
    }
}

impl Admin {
    pub fn read(s: &Section<'_>, p: &mut Problems) -> Admin {
        let d = Admin::default();
        Admin {
            allow: s.strings("allow", p, Cidr::parse).unwrap_or(d.allow),
            token: s.string("token", p).filter(|t| !t.is_empty()),
            hosts: s
                .strings("hosts", p, |h| {
                    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                    if h.is_empty() || h.contains(['/', ' ', ':']) {
                        Err(format!("`{h}` is not a host name"))
                    } else {
                        Ok(h)
                    }
                })
                .unwrap_or(d.hosts),
        }
    }
}
