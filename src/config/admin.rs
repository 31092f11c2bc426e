//! `admin`: who may use the admin API.

use super::reader::{Problems, Section};
use super::types::{Cidr, LOOPBACK4, LOOPBACK6};

#[derive(Debug, Clone)]
pub struct Admin {
    /// `allow`: networks whose clients may use `/api/*` (default: loopback only).
    pub allow: Vec<Cidr>,
    /// `token`: a bearer token that opens `/api/*` from anywhere (scripts); none by default.
    pub token: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            allow: vec![LOOPBACK4, LOOPBACK6],
            token: None,
        }
    }
}

impl Admin {
    pub fn read(s: &Section<'_>, p: &mut Problems) -> Admin {
        let d = Admin::default();
        Admin {
            allow: s.strings("allow", p, Cidr::parse).unwrap_or(d.allow),
            token: s.string("token", p).filter(|t| !t.is_empty()),
        }
    }
}
