//! Every validation message, and the defaults.

use super::*;

fn problems(yaml: &str) -> Vec<String> {
    match parse_str(yaml, None) {
        Ok(_) => vec![],
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn built_in_default_is_observe_on_8443_with_four_vendors() {
    let c = parse_str("", None).expect("default is valid");
    assert_eq!(c.mode, Mode::Observe);
    assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
    let names: Vec<_> = c.endpoints.iter().map(|e| e.domain.as_str()).collect();
    assert_eq!(
        names,
        [
            "api.openai.com",
            "api.anthropic.com",
            "generativelanguage.googleapis.com",
            "api.mistral.ai"
        ]
    );
    assert!(c
        .endpoints
        .iter()
        .all(|e| e.upstream.tls && e.upstream.port == 443));
    assert_eq!(c.default_endpoint.map(|id| id.index()), Some(0));
    assert_eq!(c.limits.max_body_bytes, 16 << 20);
    assert!(c
        .admin
        .allow
        .iter()
        .any(|a| a.contains("127.0.0.1".parse().unwrap())));
    assert!(!c
        .admin
        .allow
        .iter()
        .any(|a| a.contains("192.168.1.10".parse().unwrap())));
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    assert_eq!(
        problems("mdoe: observe\n"),
        ["mdoe: unknown key (did you mean `mode`?)"]
    );
    assert_eq!(
        problems("limits:\n  max_body_byte: 10\n"),
        ["limits.max_body_byte: unknown key (did you mean `max_body_bytes`?)"]
    );
    let p = problems("colour: blue\n");
    assert!(
        p[0].starts_with("colour: unknown key (known keys: mode, listen"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems("mode: strict\nlisten: not-an-address\nlimits:\n  read_timeout_ms: 0\nserver:\n  threads: many\n");
    assert_eq!(
        p,
        [
            "mode: unknown mode `strict` (expected observe, advisory or enforce)",
            "listen: `not-an-address` is not a valid listen address (expected ip:port, e.g. 0.0.0.0:8443)",
            "limits.read_timeout_ms: 0 is out of range (allowed 1 to 86400000)",
            "server.threads: expected a whole number, found the string `many`",
        ]
    );
}

#[test]
fn bad_addresses_are_rejected() {
    assert_eq!(
        problems("listen: 0.0.0.0:99999\n"),
        ["listen: `0.0.0.0:99999` is not a valid listen address (expected ip:port, e.g. 0.0.0.0:8443)"]
    );
    assert_eq!(
        problems("admin:\n  allow: [10.0.0.0/33]\n"),
        ["admin.allow[0]: `10.0.0.0/33` is not an IP address or CIDR (e.g. 192.168.1.0/24)"]
    );
    assert_eq!(
        problems("devices:\n  - ip: 10.1\n    name: tablet\n"),
        ["devices[0].ip: expected a string, found the number 10.1"]
    );
    assert_eq!(
        problems("devices:\n  - ip: '300.1.1.1'\n    name: tablet\n"),
        ["devices[0].ip: `300.1.1.1` is not an IP address"]
    );
}

#[test]
fn endpoint_problems_name_their_index() {
    assert_eq!(
        problems("endpoints:\n  - vendor: openia\n"),
        ["endpoints[0].vendor: unknown vendor `openia` (expected one of: openai, anthropic, gemini, mistral, openai_compatible)"]
    );
    assert_eq!(
        problems("endpoints:\n  - vendor: openai\n    upstream: ftp://x\n"),
        ["endpoints[0].upstream: `ftp://x` must start with http:// or https://"]
    );
    assert_eq!(
        problems("endpoints:\n  - vendor: openai_compatible\n    domain: llm.lan\n"),
        ["endpoints[0].name: missing: an openai_compatible endpoint needs a name (its path prefix)"]
    );
    assert_eq!(
        problems("endpoints:\n  - vendor: openai\n  - vendor: openai\n"),
        [
            "endpoints[1].name: `openai` is already used by endpoints[0]",
            "endpoints[1].domain: `api.openai.com` is already used by endpoints[0]"
        ]
    );
    assert_eq!(problems("endpoints:\n  - vendor: openai\n    domain: http://x/\n"), ["endpoints[0].domain: `http://x/` is not a host name (write only the name, e.g. api.openai.com)"]);
    assert_eq!(
        problems("endpoints: {}\n"),
        ["endpoints: expected a list, found a mapping"]
    );
    assert_eq!(
        problems("default_vendor: gemini\nendpoints:\n  - vendor: openai\n"),
        ["default_vendor: `gemini` is not the name of an enabled endpoint"]
    );
}

#[test]
fn type_errors_say_what_was_found() {
    assert_eq!(
        problems("server:\n  daemon: yes please\n"),
        ["server.daemon: expected true or false, found the string `yes please`"]
    );
    assert_eq!(
        problems("admin: [1]\n"),
        ["admin: expected a mapping of keys, found a list"]
    );
    assert!(problems("mode: [\n")[0].starts_with("not valid YAML"));
}

#[test]
fn upstream_urls_are_parsed() {
    let u = Upstream::parse_url("http://127.0.0.1:11434/ollama/").unwrap();
    assert_eq!(
        (u.tls, u.host.as_str(), u.port, u.base_path.as_str()),
        (false, "127.0.0.1", 11434, "/ollama")
    );
    let u = Upstream::parse_url("https://llm.example.org").unwrap();
    assert_eq!(
        (u.tls, u.port, u.sni.as_str()),
        (true, 443, "llm.example.org")
    );
    let u = Upstream::parse_url("http://[::1]:9000").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
    assert!(Upstream::parse_url("http://user@host").is_err());
}

#[test]
fn cidrs_match_v4_v6_and_mapped_addresses() {
    let lan = Cidr::parse("192.168.1.0/24").unwrap();
    assert!(lan.contains("192.168.1.77".parse().unwrap()));
    assert!(lan.contains("::ffff:192.168.1.77".parse().unwrap()));
    assert!(!lan.contains("192.168.2.1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
}

#[test]
fn policy_problems_name_their_key_once() {
    assert_eq!(
        problems("policies:\n  enabled: [nope]\n"),
        ["policies.enabled: no policy file nope.rego in (built-in)"]
    );
    let p = problems("policies:\n  directory: /nonexistent/yori-policies\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("policies.directory: cannot read /nonexistent/yori-policies"),
        "{p:?}"
    );
}

#[test]
fn listeners_on_one_port_are_refused_whichever_they_are() {
    assert_eq!(
        problems("listen: 0.0.0.0:9000\nmetrics:\n  listen: 127.0.0.1:9000\n"),
        ["metrics.listen: `127.0.0.1:9000` overlaps `listen` (0.0.0.0:9000): each listener needs its own port (e.g. plain HTTP on 0.0.0.0:8080, TLS on 0.0.0.0:8443)"]
    );
    assert!(problems("listen: 0.0.0.0:8080\ntls:\n  listen: 0.0.0.0:8443\n").is_empty());
    let p = problems("listen: 0.0.0.0:8443\ntls: {}\n");
    assert!(
        p[0].starts_with("tls.listen: `0.0.0.0:8443` overlaps `listen`"),
        "{p:?}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Keys as a config file may write them, some real, some misspelt.
    const KEYS: &[&str] = &[
        "mode",
        "listen",
        "default_vendor",
        "mdoe",
        "tls.listen",
        "tls.enabled",
        "tls.leaf_days",
        "tls.name_constraints",
        "audit.retention_days",
        "audit.max_database_mb",
        "audit.prompt_preview_chars",
        "limits.max_body_bytes",
        "limits.header_timeout_ms",
        "limits.max_connections",
        "limits.max_connections_per_clinet",
        "admin.allow",
        "admin.hosts",
        "admin.token",
        "enforcement.allowlist",
        "enforcement.consent_accepted",
        "server.threads",
        "server.inspection_threads",
        "metrics.listen",
        "alerts.webhook_url",
        "devices",
        "endpoints",
    ];

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,30}".prop_map(Value::from),
            Just(Value::from("0.0.0.0:99999")),
            Just(Value::from("127.0.0.1:8443")),
            Just(Value::from("enforce")),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| {
                    Value::Mapping(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
                }),
            ]
        })
    }

    /// A document with `entries` put at their dotted places.
    fn document(entries: Vec<(usize, Value)>) -> String {
        let mut root = serde_yaml::Mapping::new();
        for (k, v) in entries {
            let key = KEYS[k % KEYS.len()];
            match key.split_once('.') {
                Some((section, field)) => {
                    let s = root
                        .entry(Value::from(section))
                        .or_insert_with(|| Value::Mapping(Default::default()));
                    if let Value::Mapping(m) = s {
                        m.insert(Value::from(field), v);
                    }
                }
                None => {
                    root.insert(Value::from(key), v);
                }
            }
        }
        serde_yaml::to_string(&root).unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text at all: a config or a list of problems, never a panic.
        #[test]
        fn any_text_is_read_without_panicking(text in "\\PC{0,300}") {
            let _ = parse_str(&text, None);
        }

        /// Known and misspelt keys with values of every type: each problem names where it is.
        #[test]
        fn every_problem_names_its_dotted_path(entries in proptest::collection::vec((0usize..64, value()), 0..8)) {
            let text = document(entries);
            if let Err(e) = parse_str(&text, None) {
                prop_assert!(!e.problems.is_empty());
                for p in &e.problems {
                    let line = p.to_string();
                    let path = line.split(':').next().unwrap_or("");
                    prop_assert!(
                        !path.is_empty() && !path.contains(' '),
                        "problem without a path: {line}\n{text}"
                    );
                }
            }
        }
    }
}
