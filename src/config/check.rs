//! Small typed readers over a YAML tree that collect every problem as `dotted.path: message`.
//!
//! serde's `deny_unknown_fields` stops at the first problem; a parent editing the router's config
//! wants all of them at once, each with its path and, for a misspelled key, a suggestion.

use serde_yaml::{Mapping, Value};
use std::fmt;

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

/// A mapping being read: checks its keys against the known ones up front.
pub struct Section<'a> {
    pub path: String,
    map: Option<&'a Mapping>,
}

impl<'a> Section<'a> {
    /// Reads `value` as a mapping with the given known keys. `Null` (an empty section) is fine.
    pub fn new(value: Option<&'a Value>, path: &str, known: &[&str], p: &mut Problems) -> Self {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => {
                for key in m.keys() {
                    match key.as_str() {
                        Some(k) if known.contains(&k) => {}
                        Some(k) => p.push(&join(path, k), unknown_key_message(k, known)),
                        None => p.push(
                            path,
                            format!("keys must be strings, found {}", describe(key)),
                        ),
                    }
                }
                Some(m)
            }
            Some(other) => {
                p.push(
                    path,
                    format!("expected a mapping of keys, found {}", describe(other)),
                );
                None
            }
        };
        Section {
            path: path.to_string(),
            map,
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn string(&self, key: &str, p: &mut Problems) -> Option<String> {
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

    pub fn boolean(&self, key: &str, p: &mut Problems) -> Option<bool> {
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
    pub fn uint(&self, key: &str, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
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
        key: &str,
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

    /// A string parsed by `parse`, whose error text is reported at the key's path.
    pub fn parsed<T>(
        &self,
        key: &str,
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

fn describe(v: &Value) -> String {
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
}
