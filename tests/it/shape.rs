//! The module graph of `src/` points one way: no top-level module reaches back to one that uses
//! it. Checked on the source text, from every `crate::<module>` a module's non-test code names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules its non-test code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |f: &Path| {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top(f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top(f);
        if !modules.contains(&from) || f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut names = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                names.extend(
                    inner
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap_or("").trim().to_string()),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
        let entry = edges.entry(from.clone()).or_default();
        entry.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(n) && *n != from),
        );
    }
    edges
}

/// A path from `from` back to `to`, if there is one.
fn path_to(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_string()]);
    }
    if !seen.insert(from.to_string()) {
        return None;
    }
    for next in edges.get(from).into_iter().flatten() {
        if let Some(mut rest) = path_to(edges, next, to, seen) {
            rest.insert(0, from.to_string());
            return Some(rest);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycles() {
    let edges = graph();
    assert!(edges.contains_key("proxy") && edges["proxy"].contains("policy"));
    for (from, tos) in &edges {
        for to in tos {
            let back = path_to(&edges, to, from, &mut BTreeSet::new());
            assert!(
                back.is_none(),
                "cycle: {from} -> {}",
                back.unwrap().join(" -> ")
            );
        }
    }
}

#[test]
fn nothing_below_the_proxy_knows_it() {
    let edges = graph();
    for (from, tos) in &edges {
        if from != "server" {
            assert!(!tos.contains("proxy"), "{from} uses the proxy");
        }
    }
    assert!(
        !edges["metrics"].contains("audit"),
        "metrics read the report, not rows"
    );
    assert!(
        !edges["policy"].contains("audit"),
        "the audit side hands policy its tallies"
    );
}
