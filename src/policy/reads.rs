//! Which parts of `input` a policy reads, found in its source: every `input.a.b` (or
//! `input["a"].b`) reference, conservatively. A bare `input`, or an index by a variable, reads the
//! whole subtree there. With that, the proxy builds only the parts of the document the loaded
//! policies can see, and a policy's decision can be remembered for inputs it has seen before.

use std::collections::BTreeSet;

/// The parts of `input` a policy (or a set of them) reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reads {
    /// Every path read, as field names from `input`; a path covers its whole subtree.
    paths: BTreeSet<Vec<String>>,
    /// `input` itself is read whole.
    whole: bool,
}

/// Builtins whose results change between two evaluations with the same input: a policy that
/// calls one is never remembered.
const NONDETERMINISTIC: &[&str] = &[
    "time.now_ns",
    "rand.",
    "uuid.",
    "http.send",
    "net.lookup",
    "opa.runtime",
];

impl Reads {
    /// Everything (a policy whose reads are not known).
    pub fn everything() -> Reads {
        Reads {
            paths: BTreeSet::new(),
            whole: true,
        }
    }

    /// Nothing of `input` is read: the decision is a constant.
    pub fn is_nothing(&self) -> bool {
        !self.whole && self.paths.is_empty()
    }

    pub fn is_whole(&self) -> bool {
        self.whole
    }

    /// The paths read, when not the whole of `input`.
    pub fn paths(&self) -> impl Iterator<Item = &[String]> {
        self.paths.iter().map(Vec::as_slice)
    }

    /// Whether the document field at `path` must be built: some read covers it, or lies
    /// under it.
    pub fn wants(&self, path: &[&str]) -> bool {
        self.whole
            || self.paths.iter().any(|p| {
                let n = p.len().min(path.len());
                p[..n].iter().zip(&path[..n]).all(|(a, b)| a == b)
            })
    }

    /// The reads of every policy together.
    pub fn union<'a>(all: impl IntoIterator<Item = &'a Reads>) -> Reads {
        let mut out = Reads::default();
        for r in all {
            out.whole |= r.whole;
            out.paths.extend(r.paths.iter().cloned());
        }
        out
    }

    /// Scans a Rego source.
    pub fn of_source(source: &str) -> Reads {
        let mut reads = Reads::default();
        let b = source.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' => i = skip_string(b, i),
                b'`' => {
                    i += 1;
                    while i < b.len() && b[i] != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                c if is_ident_start(c) => {
                    let start = i;
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                    let after_dot = start > 0 && b[start - 1] == b'.';
                    if &b[start..i] == b"input" && !after_dot {
                        let (path, next) = chain(b, i);
                        i = next;
                        match path {
                            Some(p) if !p.is_empty() => {
                                reads.paths.insert(p);
                            }
                            _ => reads.whole = true,
                        }
                    }
                }
                _ => i += 1,
            }
        }
        reads
    }
}

/// Whether the source calls a builtin whose result can change for the same input.
pub fn is_deterministic(source: &str) -> bool {
    !NONDETERMINISTIC.iter().any(|b| source.contains(b))
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Past a `"..."` literal starting at `i` (escapes honoured; an unterminated one ends the text).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The field chain after `input` at `i`: `.a`, `["a"]`, ... Returns `None` for an index that
/// is not a literal string (the prefix so far is then read whole, which the caller records as
/// the path so far) and the position after the chain.
fn chain(b: &[u8], mut i: usize) -> (Option<Vec<String>>, usize) {
    let mut path = Vec::new();
    loop {
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
            let start = i + 1;
            i = start;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            path.push(String::from_utf8_lossy(&b[start..i]).into_owned());
        } else if b.get(i) == Some(&b'[') && b.get(i + 1) == Some(&b'"') {
            let end = skip_string(b, i + 1);
            let lit = &b[i + 2..end.saturating_sub(1).max(i + 2)];
            if b.get(end) == Some(&b']') && !lit.contains(&b'\\') {
                path.push(String::from_utf8_lossy(lit).into_owned());
                i = end + 1;
            } else {
                return (Some(path).filter(|p| !p.is_empty()), end);
            }
        } else {
            return (Some(path), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        Reads::of_source(src).paths().map(|p| p.join(".")).collect()
    }

    #[test]
    fn finds_dotted_and_bracketed_references() {
        assert_eq!(
            paths("x if { input.time.hour > 3; input[\"usage\"].requests_today > 0 }"),
            ["time.hour", "usage.requests_today"]
        );
        assert_eq!(
            paths("some k in input.request.sensitive_kinds"),
            ["request.sensitive_kinds"]
        );
    }

    #[test]
    fn comments_strings_and_other_inputs_are_not_references() {
        let src =
            "# input.secret\nx := \"input.request.prompt\"\ny := data.input.z\nmy_input := 1\n";
        assert!(Reads::of_source(src).is_nothing());
        assert!(Reads::of_source("decision := {\"action\": \"allow\"}").is_nothing());
    }

    #[test]
    fn a_bare_input_or_a_variable_index_reads_the_subtree() {
        assert!(Reads::of_source("x := input").is_whole());
        assert!(Reads::of_source("x := count(input)").is_whole());
        let r = Reads::of_source("x := input.request[k]");
        assert!(!r.is_whole());
        assert_eq!(paths("x := input.request[k]"), ["request"]);
        assert!(r.wants(&["request", "prompt"]));
        assert!(!r.wants(&["time"]));
    }

    #[test]
    fn wants_covers_ancestors_and_descendants() {
        let r = Reads::of_source("input.request.prompt");
        assert!(r.wants(&["request"]));
        assert!(r.wants(&["request", "prompt"]));
        assert!(!r.wants(&["request", "model"]));
        assert!(!r.wants(&["client"]));
        let all = Reads::union([&r, &Reads::of_source("input.client")]);
        assert!(all.wants(&["client", "ip"]));
    }

    #[test]
    fn nondeterministic_builtins_are_seen() {
        assert!(is_deterministic("x := lower(input.request.prompt)"));
        assert!(!is_deterministic("t := time.now_ns()"));
    }

    #[test]
    fn the_shipped_policies_read_what_they_say() {
        let read = |name: &str| {
            let src = super::super::SHIPPED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .unwrap();
            paths(src)
        };
        assert!(read("home_default.rego").is_empty());
        assert_eq!(read("bedtime.rego"), ["time.hour"]);
        assert_eq!(
            read("high_usage.rego"),
            ["client.device", "usage.requests_today"]
        );
        assert_eq!(
            read("budget.rego"),
            ["client.device", "usage.cost_month", "usage.cost_today"]
        );
        assert_eq!(read("homework.rego"), ["request.prompt"]);
        assert_eq!(read("privacy.rego"), ["request.sensitive_kinds"]);
    }
}
