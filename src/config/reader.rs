//! A strict reader over a YAML tree that collects every problem as `dotted.path: message`.
//!
//! serde's `deny_unknown_fields` stops at the first problem; a parent editing the router's config
//! wants all of them at once, each with its path and, for a misspelled key, a suggestion. A
//! section's known keys are the ones its reader asks for, so each key is named once, where it is
//! read; whatever else the mapping holds is reported as unknown.

use serde_yaml::{Mapping, Value};
use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems while the tree is read.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// Joins a parent path and a key (`audit` + `database` = `audit.database`).
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A mapping being read. It remembers the keys asked for, to report the others.
pub struct Section<'a> {
    pub path: String,
    map: Option<&'a Mapping>,
    known: RefCell<Vec<&'static str>>,
}

impl<'a> Section<'a> {
    /// Reads `value` (a mapping; `Null` is an empty section) with `read`, then reports the keys
    /// `read` did not ask for, ahead of the section's other problems.
    pub fn read<T>(
        value: Option<&'a Value>,
        path: &str,
        p: &mut Problems,
        read: impl FnOnce(&Section<'a>, &mut Problems) -> T,
    ) -> T {
        let at = p.0.len();
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                p.push(
                    path,
                    format!("expected a mapping of keys, found {}", describe(other)),
                );
                None
            }
        };
        let section = Section {
            path: path.to_string(),
            map,
            known: RefCell::new(Vec::new()),
        };
        let out = read(&section, p);
        let unknown = section.unknown_keys();
        p.0.splice(at..at, unknown);
        out
    }

    fn unknown_keys(&self) -> Vec<Problem> {
        let Some(map) = self.map else {
            return Vec::new();
        };
        let known = self.known.borrow();
        map.keys()
            .filter_map(|key| match key.as_str() {
                Some(k) if known.contains(&k) => None,
                Some(k) => Some(Problem {
                    path: join(&self.path, k),
                    message: unknown_key_message(k, &known),
                }),
                None => Some(Problem {
                    path: self.path.clone(),
                    message: format!("keys must be strings, found {}", describe(key)),
                }),
            })
            .collect()
    }

    /// The value at `key` (absent or `null`: `None`); `key` becomes a known key.
    pub fn get(&self, key: &'static str) -> Option<&'a Value> {
        let mut known = self.known.borrow_mut();
        if !known.contains(&key) {
            known.push(key);
        }
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A nested section at `key`.
    pub fn section<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        read: impl FnOnce(&Section<'a>, &mut Problems) -> T,
    ) -> T {
        Section::read(self.get(key), &self.child(key), p, read)
    }

    pub fn string(&self, key: &'static str, p: &mut Problems) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                p.push(
                    &self.child(key),
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A file or folder path.
    pub fn path(&self, key: &'static str, p: &mut Problems) -> Option<PathBuf> {
        self.string(key, p).map(PathBuf::from)
    }

    pub fn boolean(&self, key: &'static str, p: &mut Problems) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                p.push(
                    &self.child(key),
                    format!("expected true or false, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// An unsigned integer within `[min, max]`.
    pub fn uint(&self, key: &'static str, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
        let v = self.get(key)?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                p.push(
                    &self.child(key),
                    format!("{n} is out of range (allowed {min} to {max})"),
                );
                None
            }
            None => {
                p.push(
                    &self.child(key),
                    format!("expected a whole number, found {}", describe(v)),
                );
                None
            }
        }
    }

    /// A list whose items are handed to `item` with their dotted path (`devices[2]`).
    pub fn list<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        mut item: impl FnMut(&'a Value, &str, &mut Problems) -> Option<T>,
    ) -> Option<Vec<T>> {
        match self.get(key)? {
            Value::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| item(v, &format!("{}[{i}]", self.child(key)), p))
                    .collect(),
            ),
            other => {
                p.push(
                    &self.child(key),
                    format!("expected a list, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A list of strings, each parsed by `parse` (its error is reported at the item's path).
    pub fn strings<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        self.list(key, p, |v, path, p| string_item(v, path, p, &parse))
    }

    /// Like `parsed`, with the key's dotted path, for checks across sections.
    pub fn located<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> (Option<T>, String) {
        (self.parsed(key, p, parse), self.child(key))
    }

    /// Whether the section is there at all (a mapping, possibly empty).
    pub fn is_present(&self) -> bool {
        self.map.is_some()
    }

    /// Like `parsed`, and a missing key is a problem too.
    pub fn required<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.get(key).is_none() {
            p.push(&self.child(key), "missing");
            return None;
        }
        self.parsed(key, p, parse)
    }

    /// A string parsed by `parse`, whose error text is reported at the key's path.
    pub fn parsed<T>(
        &self,
        key: &'static str,
        p: &mut Problems,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(key, p)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                p.push(&self.child(key), e);
                None
            }
        }
    }
}

/// A list item that must be a string, parsed by `parse`.
pub fn string_item<T>(
    v: &Value,
    path: &str,
    p: &mut Problems,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match v.as_str() {
        Some(s) => match parse(s) {
            Ok(t) => Some(t),
            Err(e) => {
                p.push(path, e);
                None
            }
        },
        None => {
            p.push(path, format!("expected a string, found {}", describe(v)));
            None
        }
    }
}

pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

fn unknown_key_message(key: &str, known: &[&str]) -> String {
    match suggest(key, known) {
        Some(s) => format!("unknown key (did you mean `{s}`?)"),
        None => format!("unknown key (known keys: {})", known.join(", ")),
    }
}

/// The known key closest to `key`, when it is close enough to be a typo.
pub fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let known = ["retention_days", "database", "prompt_preview_chars"];
        assert_eq!(suggest("retention_dayz", &known), Some("retention_days"));
        assert_eq!(suggest("databse", &known), Some("database"));
        assert_eq!(suggest("colour", &known), None);
    }

    #[test]
    fn unknown_keys_are_the_ones_not_read_and_come_first() {
        let v: Value = serde_yaml::from_str("a: 1\nb: x\ncolour: 2\n").unwrap();
        let mut p = Problems::default();
        let a = Section::read(Some(&v), "top", &mut p, |s, p| {
            let a = s.uint("a", 0, 10, p);
            let _ = s.uint("b", 0, 10, p);
            a
        });
        assert_eq!(a, Some(1));
        let msgs: Vec<String> = p.0.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "top.colour: unknown key (known keys: a, b)",
                "top.b: expected a whole number, found the string `x`"
            ]
        );
    }
}
