//! Personal data and secrets in prompt text: e-mail addresses, phone numbers, card numbers
//! (Luhn-checked), US SSNs, IBANs (mod-97 checked) and API-key-like secrets.
//!
//! The scan runs on the proxy thread, so its work is bounded and linear in the text: every
//! detector is a regex (linear-time, ASCII classes only, so a match is always ASCII and the
//! validators can index it by byte), the found spans are merged in one sorted pass, at most
//! `MAX_SCAN_BYTES` of text and `MAX_ITEMS` items are looked at, and a detector that cannot match
//! (no `@`, too few digits) is skipped. Past a bound the scan stops and says it was cut.

use once_cell::sync::Lazy;
use regex::Regex;

pub(crate) const EMAIL: &str = "email";
pub(crate) const PHONE: &str = "phone";
pub(crate) const CARD: &str = "card";
pub(crate) const SSN: &str = "ssn";
pub(crate) const IBAN: &str = "iban";
pub(crate) const SECRET: &str = "secret";

/// Text scanned at most; a longer prompt is scanned this far and the scan is marked cut.
pub const MAX_SCAN_BYTES: usize = 1 << 20;
/// Items (found or claimed) at most; past it the scan stops and is marked cut.
pub const MAX_ITEMS: usize = 10_000;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// The kinds found, each once, in detector order.
    pub kinds: Vec<&'static str>,
    /// The scan stopped at a bound: there may be more than `kinds` says.
    pub cut: bool,
}

struct Detector {
    kind: &'static str,
    re: Regex,
    valid: fn(&[u8]) -> bool,
    /// A match that fails `valid` still hides its span from later detectors (a 16-digit number
    /// that fails Luhn is not a phone number either).
    claims_invalid: bool,
    /// ASCII digits the text needs for this detector to be able to match.
    min_digits: usize,
    /// A byte the text needs for this detector to be able to match.
    needs: Option<u8>,
}

fn always(_: &[u8]) -> bool {
    true
}

// The patterns are constants: one that does not compile is a programming error, caught by the
// first test that scans.
#[allow(clippy::panic)]
static DETECTORS: Lazy<Vec<Detector>> = Lazy::new(|| {
    let d = |kind, re: &str, valid, min_digits, needs| Detector {
        kind,
        re: Regex::new(re).unwrap_or_else(|e| panic!("pii regex {kind}: {e}")),
        valid,
        claims_invalid: [CARD, IBAN, SSN].contains(&kind),
        min_digits,
        needs,
    };
    // order matters for redaction: secrets and IBANs before the digit-run patterns.
    // `(?-u:\b)`: ASCII word boundaries, which keep the fast engines on non-ASCII text.
    vec![
        d(
            SECRET,
            r"(?-u:\b)(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,})",
            always,
            0,
            None,
        ),
        d(
            EMAIL,
            r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?-u:\b)",
            always,
            0,
            Some(b'@'),
        ),
        d(
            IBAN,
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?-u:\b)",
            iban_ok,
            2,
            None,
        ),
        d(
            CARD,
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
            luhn_ok,
            13,
            None,
        ),
        d(
            SSN,
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
            ssn_ok,
            9,
            None,
        ),
        d(
            PHONE,
            r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{2,4}\)[ .-]?|(?-u:\b)[0-9]{2,4}[ .-])[0-9]{3,4}[ .-]?[0-9]{3,4}(?-u:\b)",
            phone_ok,
            9,
            None,
        ),
    ]
});

/// A span of text: (start, end, the kind found there; `None`: claimed by a failed checksum).
type Span = (usize, usize, Option<&'static str>);

/// The longest prefix of `text` within `max` bytes, cut on a character boundary.
fn bounded(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Non-overlapping detected items in text order, and whether a bound cut the scan.
fn spans(text: &str) -> (Vec<Span>, bool) {
    let mut cut = text.len() > MAX_SCAN_BYTES;
    let text = bounded(text, MAX_SCAN_BYTES);
    let bytes = text.as_bytes();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let mut taken: Vec<Span> = Vec::new();
    'detectors: for d in DETECTORS.iter() {
        if digits < d.min_digits || d.needs.is_some_and(|b| !bytes.contains(&b)) {
            continue;
        }
        // merge this detector's matches (in text order, never overlapping each other) into
        // the spans taken so far, in one pass
        let mut merged = Vec::with_capacity(taken.len());
        let mut earlier = taken.into_iter().peekable();
        for m in d.re.find_iter(text) {
            while earlier.peek().is_some_and(|t| t.1 <= m.start()) {
                merged.extend(earlier.next());
            }
            if earlier.peek().is_some_and(|t| t.0 < m.end()) {
                continue; // overlaps a span an earlier detector took
            }
            let kind = if (d.valid)(m.as_str().as_bytes()) {
                Some(d.kind)
            } else if d.claims_invalid {
                None
            } else {
                continue;
            };
            merged.push((m.start(), m.end(), kind));
            if merged.len() + earlier.len() >= MAX_ITEMS {
                cut = true;
                merged.extend(earlier);
                taken = merged;
                break 'detectors;
            }
        }
        merged.extend(earlier);
        taken = merged;
    }
    (taken, cut)
}

/// The kinds found in `text` (each once, in detector order), and whether the scan was cut.
pub fn scan(text: &str) -> Scan {
    let (found, cut) = spans(text);
    let kinds = DETECTORS
        .iter()
        .map(|d| d.kind)
        .filter(|k| found.iter().any(|(_, _, f)| *f == Some(k)))
        .collect();
    Scan { kinds, cut }
}

/// `text` with every detected item replaced by `[kind]` (within the scan bound; the rest is
/// left out, which callers avoid by redacting only what they keep).
pub fn redact(text: &str) -> String {
    let (found, _) = spans(text);
    let text = bounded(text, MAX_SCAN_BYTES);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e, kind) in found {
        let Some(kind) = kind else { continue };
        out.push_str(&text[at..s]);
        out.push('[');
        out.push_str(kind);
        out.push(']');
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

/// The first `max_chars` characters of `text` with the detected items redacted. Only a window a
/// little longer than the preview is scanned: an item that starts inside the preview is whole
/// inside the window.
pub(crate) fn redacted_preview(text: &str, max_chars: usize) -> String {
    let window = bounded(text, max_chars.saturating_mul(4).saturating_add(512));
    super::facts::preview(&redact(window), max_chars).to_string()
}

fn digits(s: &[u8]) -> Vec<u32> {
    s.iter()
        .filter(|c| c.is_ascii_digit())
        .map(|c| u32::from(c - b'0'))
        .collect()
}

fn luhn_ok(s: &[u8]) -> bool {
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

/// `AAA-GG-SSSS`, never area 000, 666 or 9xx, group 00 or serial 0000.
fn ssn_ok(s: &[u8]) -> bool {
    let [a0, a1, a2, b'-', g0, g1, b'-', s0, s1, s2, s3] = s else {
        return false;
    };
    let area = [*a0, *a1, *a2];
    &area != b"000"
        && &area != b"666"
        && *a0 != b'9'
        && [*g0, *g1] != *b"00"
        && [*s0, *s1, *s2, *s3] != *b"0000"
}

fn iban_ok(s: &[u8]) -> bool {
    let compact: Vec<u8> = s.iter().copied().filter(|c| *c != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, rest) = compact.split_at(4);
    let mut rem: u64 = 0;
    for c in rest.iter().chain(head) {
        let v = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'A'..=b'Z' => u64::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn phone_ok(s: &[u8]) -> bool {
    let n = digits(s).len();
    (9..=15).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(text: &str) -> Vec<&'static str> {
        scan(text).kinds
    }

    #[test]
    fn finds_each_kind() {
        assert_eq!(kinds("write to jane.doe@example.org please"), [EMAIL]);
        assert_eq!(kinds("call me at +1 415-555-2671"), [PHONE]);
        assert_eq!(kinds("my card is 4111 1111 1111 1111"), [CARD]);
        assert_eq!(kinds("ssn 123-45-6789"), [SSN]);
        assert_eq!(kinds("IBAN DE89 3704 0044 0532 0130 00 thanks"), [IBAN]);
        assert_eq!(kinds("key sk-proj-abcdefghijklmnopqrstuvwx123"), [SECRET]);
    }

    #[test]
    fn checksums_reject_lookalikes() {
        assert!(kinds("order 4111 1111 1111 1112").is_empty(), "fails Luhn");
        assert!(kinds("ssn 666-45-6789").is_empty());
        assert!(
            kinds("IBAN DE89 3704 0044 0532 0130 01").is_empty(),
            "fails mod 97"
        );
        assert!(kinds("the year 2024 had 365 days").is_empty());
        assert!(kinds("what is 12 * 34?").is_empty());
    }

    #[test]
    fn redacts_in_place() {
        assert_eq!(
            redact("mail a@b.co or card 4111-1111-1111-1111."),
            "mail [email] or card [card]."
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(
            redacted_preview("héllo a@b.co and more text", 12),
            "héllo [email"
        );
    }

    #[test]
    fn non_ascii_digits_are_text_not_a_crash() {
        // Arabic-Indic and fullwidth digits: not ASCII, so no detector matches them
        for text in [
            "١٢٣-٤٥-٦٧٨٩",
            "１２３-４５-６７８９",
            "DE８９ ３７０４ ００４４ ０５３２ ０１３０ ００",
            "GB٨٢WEST١٢٣٤٥٦٩٨٧٦٥٤٣٢",
        ] {
            assert_eq!(scan(text), Scan::default(), "{text}");
            assert_eq!(redact(text), text);
        }
        // ASCII items among non-ASCII text are still found
        assert_eq!(
            kinds("écris à jane@example.org, s'il te plaît ١٢٣"),
            [EMAIL]
        );
    }

    #[test]
    fn a_flood_of_items_stops_at_the_bound_and_says_so() {
        let flood = "a@b.cd ".repeat(20_000);
        let s = scan(&flood);
        assert_eq!(s.kinds, [EMAIL]);
        assert!(s.cut, "more items than MAX_ITEMS");
        let long = format!("{}{}", "x".repeat(MAX_SCAN_BYTES), " a@b.cd");
        let s = scan(&long);
        assert!(
            s.kinds.is_empty() && s.cut,
            "past the byte bound nothing is seen"
        );
        assert!(!scan("a@b.cd").cut);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics_and_redaction_keeps_the_rest(text in "\\PC{0,300}") {
            let s = scan(&text);
            let r = redact(&text);
            if s.kinds.is_empty() {
                prop_assert_eq!(&r, &text);
            } else {
                prop_assert!(r.contains('['));
            }
            let _ = redacted_preview(&text, 7);
        }

        #[test]
        fn digit_and_separator_soup_never_panics(text in "[0-9０-９٠-٩ \\-.+()@A-Za-z]{0,400}") {
            let _ = scan(&text);
            let _ = redact(&text);
        }

        #[test]
        fn found_items_survive_any_surrounding_text(pre in "\\PC{0,40}", post in "\\PC{0,40}") {
            let text = format!("{pre} jane.doe@example.org {post}");
            prop_assert!(scan(&text).kinds.contains(&EMAIL));
        }
    }
}
