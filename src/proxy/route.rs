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
    /// A vendor path with a dot-segment (`.`, `..`, encoded or not): 400. No vendor API has one,
    /// and it could climb out of an endpoint's `upstream` base path.
    DotSegment,
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
        let path_and_query = collapse_leading_slashes(path_and_query);
        match self.by_domain.get(sni) {
            Some(Some(i)) => vendor(*i, path_and_query.to_string()),
            _ => Route::Misdirected,
        }
    }

    /// Where a request on the plain listener goes.
    pub(crate) fn route(&self, host: Option<&str>, path_and_query: &str) -> Route {
        let path_and_query = collapse_leading_slashes(path_and_query);
        match self.route_collapsed(host, path_and_query) {
            Route::Vendor { endpoint, path } => vendor(endpoint, path),
            other => other,
        }
    }

    fn route_collapsed(&self, host: Option<&str>, path_and_query: &str) -> Route {
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

/// A vendor route, unless its path has a dot-segment.
fn vendor(endpoint: EndpointId, path: String) -> Route {
    if has_dot_segment(path.split('?').next().unwrap_or("")) {
        Route::DotSegment
    } else {
        Route::Vendor { endpoint, path }
    }
}

/// `//openai/v1` is `/openai/v1`: several leading slashes are one.
fn collapse_leading_slashes(path: &str) -> &str {
    let rest = path.trim_start_matches('/');
    if rest.len() + 1 < path.len() {
        &path[path.len() - rest.len() - 1..]
    } else {
        path
    }
}

/// Whether a path has a `.` or `..` segment, with `%2e` for the dots and `%2f` or `\` (and
/// their encodings) as separators, as a server might decode them.
fn has_dot_segment(path: &str) -> bool {
    let decoded = percent_decode(path);
    decoded
        .split(|c| *c == b'/' || *c == b'\\')
        .any(|seg| seg == b"." || seg == b"..")
}

/// Query parameters that carry a credential (Gemini's `key`, OAuth tokens, signatures).
const SECRET_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "api-key",
    "x-goog-api-key",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "auth",
    "authorization",
    "client_secret",
    "password",
    "secret",
    "sig",
    "signature",
];

/// The path as YORI shows it anywhere but on the wire to the vendor (logs, policy input, rows,
/// webhooks): the value of every credential-bearing query parameter replaced by `REDACTED`.
/// Parameter names are compared case-insensitively and percent-decoded, as a server reads them.
pub(crate) fn redact_query(path_and_query: &str) -> std::borrow::Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.into();
    };
    let secret = |name: &str| {
        let name = percent_decode(name);
        SECRET_PARAMS
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(&name))
    };
    if !query
        .split('&')
        .any(|kv| kv.split_once('=').is_some_and(|(k, _)| secret(k)))
    {
        return path_and_query.into();
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    out.push('?');
    for (i, kv) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match kv.split_once('=') {
            Some((k, _)) if secret(k) => {
                out.push_str(k);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(kv),
        }
    }
    out.into()
}

/// `%xx` escapes decoded (`+` kept); bytes that are not an escape are kept as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
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
    fn leading_slashes_collapse_and_dot_segments_are_refused() {
        let (r, c) = router("");
        assert_eq!(
            vendor_of(&c, &r.route(None, "//openai/v1/chat/completions")),
            Some(("openai".into(), "/v1/chat/completions".into()))
        );
        assert_eq!(
            vendor_of(&c, &r.route(None, "///v1/models")),
            Some(("openai".into(), "/v1/models".into()))
        );
        for bad in [
            "/openai/../admin",
            "/openai/v1/./x",
            "/openai/v1/%2e%2e/x",
            "/openai/v1/.%2E/x",
            "/openai/v1/..%2fx",
            "/openai/v1/%2e%2e%5cx",
            "/openai/v1/..",
            "/openai/v1\\..\\x",
        ] {
            assert_eq!(r.route(None, bad), Route::DotSegment, "{bad}");
        }
        assert_eq!(
            r.route_tls("api.openai.com", None, "/v1/%2E%2E/x"),
            Route::DotSegment
        );
        // dots inside a segment are fine (Gemini model names, versions)
        assert!(matches!(
            r.route(
                None,
                "/gemini/v1beta/models/gemini-1.5-pro:generateContent?x=..%2f"
            ),
            Route::Vendor { .. }
        ));
    }

    #[test]
    fn secret_query_values_are_redacted() {
        assert_eq!(
            redact_query("/v1beta/models/g:generateContent?alt=sse&key=AIzaSyXXXX"),
            "/v1beta/models/g:generateContent?alt=sse&key=REDACTED"
        );
        assert_eq!(
            redact_query("/x?KEY=a&k%65y=b&api_key=c&access_token=d&keep=e&keyx=f"),
            "/x?KEY=REDACTED&k%65y=REDACTED&api_key=REDACTED&access_token=REDACTED&keep=e&keyx=f"
        );
        assert_eq!(redact_query("/x?alt=sse"), "/x?alt=sse");
        assert_eq!(redact_query("/x"), "/x");
        assert_eq!(redact_query("/x?key"), "/x?key");
        assert_eq!(redact_query("/x?%=1&key=%"), "/x?%=1&key=REDACTED");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn a_redacted_path_never_holds_the_secret(
            before in "[a-z=&]{0,20}",
            name in "(key|KEY|Key|api_key|k%65y|access_token)",
            secret in "[A-Za-z0-9_-]{8,40}",
            after in "[a-z=&]{0,20}",
        ) {
            let secret = format!("AIza{secret}");
            let path = format!("/v1beta/m:generateContent?{before}&{name}={secret}&{after}");
            let shown = redact_query(&path);
            proptest::prop_assert!(!shown.contains(&secret), "{}", shown);
        }

        #[test]
        fn redaction_never_panics(path in "\\PC{0,80}") {
            let shown = redact_query(&path);
            proptest::prop_assert!(shown.len() <= path.len() + 9 * path.matches('=').count().max(1));
        }

        #[test]
        fn any_host_and_path_routes_without_panicking(
            host in proptest::option::of("\\PC{0,40}"),
            path in "\\PC{0,80}",
        ) {
            let (r, _) = router("");
            let _ = r.route(host.as_deref(), &path);
            let _ = r.route_tls("api.openai.com", host.as_deref(), &path);
            // a vendor path never carries a dot-segment
            if let Route::Vendor { path: p, .. } = r.route(host.as_deref(), &path) {
                proptest::prop_assert!(!has_dot_segment(p.split('?').next().unwrap_or("")));
            }
        }

        #[test]
        fn a_host_never_reaches_an_unconfigured_upstream(host in "[a-z0-9.:-]{1,30}", path in "/[a-z0-9/]{0,30}") {
            let (r, c) = router("");
            if let Route::Vendor { endpoint, .. } = r.route(Some(&host), &path) {
                let domain = &c.endpoint(endpoint).domain;
                proptest::prop_assert!(c.endpoints.iter().any(|e| &e.domain == domain));
            }
        }
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
