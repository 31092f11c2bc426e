//! Which way a request goes: health, admin API, a vendor (and with which path), or refusal.
//!
//! Built once from the config; the request path only does lookups. The Host header never chooses
//! an upstream address: it can only select one of the configured endpoints (no open proxy).

use crate::config::{Config, EndpointId};
use std::collections::HashMap;

pub(crate) const HEALTH_PATH: &str = "/health";
pub(crate) const ADMIN_PREFIX: &str = "/api";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    Admin,
    /// Vendor traffic: the endpoint and the vendor-side path (prefix stripped, query kept).
    Vendor {
        endpoint: EndpointId,
        path: String,
    },
    /// The Host names a vendor whose endpoint is disabled here: 421.
    Misdirected,
    /// On the TLS listener, a Host other than the connection's SNI: 421.
    HostMismatch,
    /// Nothing matches: 404, never forwarded.
    NotFound,
}

pub(crate) struct Router {
    /// Every configured domain; `None` for a disabled endpoint's.
    by_domain: HashMap<String, Option<EndpointId>>,
    by_prefix: HashMap<String, EndpointId>,
    default_endpoint: Option<EndpointId>,
}

impl Router {
    pub(crate) fn new(config: &Config) -> Router {
        let mut by_domain = HashMap::new();
        let mut by_prefix = HashMap::new();
        for (id, e) in config.endpoint_ids() {
            by_domain.insert(e.domain.clone(), e.enabled.then_some(id));
            if e.enabled {
                by_prefix.insert(e.name.clone(), id);
            }
        }
        Router {
            by_domain,
            by_prefix,
            default_endpoint: config.default_endpoint,
        }
    }

    /// A request on the TLS listener: the connection's SNI (already checked by the handshake)
    /// names the vendor and every path goes to it unchanged, as the device believes it talks to
    /// the vendor. A Host that differs from the SNI (domain fronting) is misdirected.
    pub(crate) fn route_tls(&self, sni: &str, host: Option<&str>, path_and_query: &str) -> Route {
        if host.is_some_and(|h| normalize_host(h) != sni) {
            return Route::HostMismatch;
        }
        match self.by_domain.get(sni) {
            Some(Some(i)) => Route::Vendor {
                endpoint: *i,
                path: path_and_query.to_string(),
            },
            _ => Route::Misdirected,
        }
    }

    pub(crate) fn route(&self, host: Option<&str>, path_and_query: &str) -> Route {
        let path = path_and_query.split('?').next().unwrap_or("");
        if path == HEALTH_PATH {
            return Route::Health;
        }
        if path == ADMIN_PREFIX || path.starts_with("/api/") || path == "/ca.crt" {
            return Route::Admin;
        }
        if let Some(host) = host {
            match self.by_domain.get(&normalize_host(host)) {
                Some(Some(i)) => {
                    return Route::Vendor {
                        endpoint: *i,
                        path: path_and_query.to_string(),
                    }
                }
                Some(None) => return Route::Misdirected,
                None => {}
            }
        }
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if let Some(i) = self.by_prefix.get(first) {
            let rest = &path_and_query[1 + first.len()..];
            let rest = if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_string()
            };
            return Route::Vendor {
                endpoint: *i,
                path: rest,
            };
        }
        if path == "/v1" || path.starts_with("/v1/") || path.starts_with("/v1beta/") {
            if let Some(i) = self.default_endpoint {
                return Route::Vendor {
                    endpoint: i,
                    path: path_and_query.to_string(),
                };
            }
        }
        Route::NotFound
    }
}

/// Lowercase, without the port and the trailing dot.
fn normalize_host(host: &str) -> String {
    let h = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h).to_string()
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn router(yaml: &str) -> (Router, Config) {
        let c = parse_str(yaml, None).expect("valid config");
        (Router::new(&c), c)
    }

    fn vendor_of(c: &Config, r: &Route) -> Option<(String, String)> {
        match r {
            Route::Vendor { endpoint, path } => {
                Some((c.endpoint(*endpoint).name.clone(), path.clone()))
            }
            _ => None,
        }
    }

    #[test]
    fn transparent_host_keeps_path() {
        let (r, c) = router("");
        let got = r.route(Some("API.Anthropic.com:443"), "/v1/messages?x=1");
        assert_eq!(
            vendor_of(&c, &got),
            Some(("anthropic".into(), "/v1/messages?x=1".into()))
        );
    }

    #[test]
    fn explicit_prefix_is_stripped() {
        let (r, c) = router("");
        let got = r.route(
            Some("router.lan:8443"),
            "/gemini/v1beta/models/x:generateContent?alt=sse",
        );
        assert_eq!(
            vendor_of(&c, &got),
            Some((
                "gemini".into(),
                "/v1beta/models/x:generateContent?alt=sse".into()
            ))
        );
        assert_eq!(
            vendor_of(&c, &r.route(None, "/mistral")),
            Some(("mistral".into(), "/".into()))
        );
        // a prefix must be a whole path segment
        assert_eq!(r.route(None, "/openaix/v1/chat"), Route::NotFound);
    }

    #[test]
    fn bare_v1_goes_to_default_vendor() {
        let (r, c) = router("default_vendor: mistral\n");
        let got = r.route(Some("10.0.0.1:8443"), "/v1/chat/completions");
        assert_eq!(
            vendor_of(&c, &got),
            Some(("mistral".into(), "/v1/chat/completions".into()))
        );
    }

    #[test]
    fn unknown_hosts_and_paths_are_refused() {
        let (r, _) = router("");
        assert_eq!(
            r.route(Some("evil.example.com"), "/etc/passwd"),
            Route::NotFound
        );
        assert_eq!(
            r.route(Some("169.254.169.254"), "/latest/meta-data"),
            Route::NotFound
        );
    }

    #[test]
    fn disabled_vendor_host_is_misdirected() {
        let (r, _) =
            router("endpoints:\n  - vendor: openai\n    enabled: false\n  - vendor: anthropic\n");
        assert_eq!(
            r.route(Some("api.openai.com"), "/v1/chat/completions"),
            Route::Misdirected
        );
        assert_eq!(
            r.route(None, "/openai/v1/chat/completions"),
            Route::NotFound
        );
    }

    #[test]
    fn custom_endpoint_by_name_and_domain() {
        let (r, c) = router(
            "endpoints:\n  - vendor: openai_compatible\n    name: ollama\n    domain: llm.home.lan\n    upstream: http://127.0.0.1:11434\n",
        );
        assert_eq!(
            vendor_of(&c, &r.route(None, "/ollama/v1/chat/completions")).map(|v| v.1),
            Some("/v1/chat/completions".into())
        );
        assert_eq!(
            vendor_of(&c, &r.route(Some("llm.home.lan"), "/v1/models")).map(|v| v.0),
            Some("ollama".into())
        );
    }

    #[test]
    fn health_and_admin_win_over_vendor_hosts() {
        let (r, _) = router("");
        assert_eq!(r.route(Some("api.openai.com"), "/health"), Route::Health);
        assert_eq!(r.route(Some("api.openai.com"), "/api/stats"), Route::Admin);
    }

    #[test]
    fn tls_routes_every_path_by_sni_and_refuses_fronting() {
        let (r, c) = router("");
        let got = r.route_tls("api.openai.com", Some("API.OpenAI.com:443"), "/health");
        assert_eq!(
            vendor_of(&c, &got),
            Some(("openai".into(), "/health".into()))
        );
        let got = r.route_tls("api.mistral.ai", None, "/v1/chat/completions");
        assert_eq!(vendor_of(&c, &got).map(|v| v.0), Some("mistral".into()));
        assert_eq!(
            r.route_tls("api.openai.com", Some("api.anthropic.com"), "/v1/messages"),
            Route::HostMismatch
        );
        assert_eq!(r.route_tls("example.com", None, "/"), Route::Misdirected);
    }
}
