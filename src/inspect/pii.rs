//! Personal data and secrets in prompt text: e-mail addresses, phone numbers, card numbers
//! (Luhn-checked), US SSNs, IBANs (mod-97 checked) and API-key-like secrets.

use once_cell::sync::Lazy;
use regex::Regex;

pub(crate) const EMAIL: &str = "email";
pub(crate) const PHONE: &str = "phone";
pub(crate) const CARD: &str = "card";
pub(crate) const SSN: &str = "ssn";
pub(crate) const IBAN: &str = "iban";
pub(crate) const SECRET: &str = "secret";

struct Detector {
    kind: &'static str,
    re: Regex,
    valid: fn(&str) -> bool,
    /// A match that fails `valid` still hides its span from later detectors (a 16-digit number
    /// that fails Luhn is not a phone number either).
    claims_invalid: bool,
}

fn always(_: &str) -> bool {
    true
}

// The patterns are constants: one that does not compile is a programming error, caught by the
// first test that scans.
#[allow(clippy::panic)]
static DETECTORS: Lazy<Vec<Detector>> = Lazy::new(|| {
    let d = |kind, re: &str, valid| Detector {
        kind,
        re: Regex::new(re).unwrap_or_else(|e| panic!("pii regex {kind}: {e}")),
        valid,
        claims_invalid: [CARD, IBAN, SSN].contains(&kind),
    };
    // order matters for redaction: secrets and IBANs before the digit-run patterns
    vec![
        d(
            SECRET,
            r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,})",
            always,
        ),
        d(
            EMAIL,
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            always,
        ),
        d(
            IBAN,
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
            iban_ok,
        ),
        d(CARD, r"\b\d(?:[ -]?\d){12,18}\b", luhn_ok),
        d(SSN, r"\b\d{3}-\d{2}-\d{4}\b", ssn_ok),
        d(
            PHONE,
            r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}\b",
            phone_ok,
        ),
    ]
});

/// Non-overlapping detected items as (start, end, kind), in text order.
fn spans(text: &str) -> Vec<(usize, usize, &'static str)> {
    let mut taken: Vec<(usize, usize, Option<&'static str>)> = Vec::new();
    for d in DETECTORS.iter() {
        for m in d.re.find_iter(text) {
            if taken.iter().any(|(s, e, _)| m.start() < *e && *s < m.end()) {
                continue;
            }
            if (d.valid)(m.as_str()) {
                taken.push((m.start(), m.end(), Some(d.kind)));
            } else if d.claims_invalid {
                taken.push((m.start(), m.end(), None));
            }
        }
    }
    let mut found: Vec<_> = taken
        .into_iter()
        .filter_map(|(s, e, k)| k.map(|k| (s, e, k)))
        .collect();
    found.sort_unstable();
    found
}

/// The kinds found in `text`, each once, in detector order.
pub(crate) fn scan(text: &str) -> Vec<&'static str> {
    let found = spans(text);
    DETECTORS
        .iter()
        .map(|d| d.kind)
        .filter(|k| found.iter().any(|(_, _, f)| f == k))
        .collect()
}

/// `text` with every detected item replaced by `[kind]`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e, kind) in spans(text) {
        out.push_str(&text[at..s]);
        out.push('[');
        out.push_str(kind);
        out.push(']');
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn luhn_ok(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                *x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn ssn_ok(s: &str) -> bool {
    let area = &s[..3];
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && &s[4..6] != "00"
        && &s[7..] != "0000"
}

fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn phone_ok(s: &str) -> bool {
    let n = digits(s).len();
    (9..=15).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind() {
        assert_eq!(scan("write to jane.doe@example.org please"), [EMAIL]);
        assert_eq!(scan("call me at +1 415-555-2671"), [PHONE]);
        assert_eq!(scan("my card is 4111 1111 1111 1111"), [CARD]);
        assert_eq!(scan("ssn 123-45-6789"), [SSN]);
        assert_eq!(scan("IBAN DE89 3704 0044 0532 0130 00 thanks"), [IBAN]);
        assert_eq!(scan("key sk-proj-abcdefghijklmnopqrstuvwx123"), [SECRET]);
    }

    #[test]
    fn checksums_reject_lookalikes() {
        assert!(scan("order 4111 1111 1111 1112").is_empty(), "fails Luhn");
        assert!(scan("ssn 666-45-6789").is_empty());
        assert!(
            scan("IBAN DE89 3704 0044 0532 0130 01").is_empty(),
            "fails mod 97"
        );
        assert!(scan("the year 2024 had 365 days").is_empty());
        assert!(scan("what is 12 * 34?").is_empty());
    }

    #[test]
    fn redacts_in_place() {
        assert_eq!(
            redact("mail a@b.co or card 4111-1111-1111-1111."),
            "mail [email] or card [card]."
        );
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
