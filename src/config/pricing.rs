//! `pricing`: what a call cost: a price per vendor and model (US dollars per million input and output
//! tokens) from the dated table shipped in `conf/pricing.yaml`, with the config's `pricing`
//! entries over it. A model that is not priced has an unknown cost, never zero.

use super::reader::{describe, join, Problems};
use serde_yaml::Value;
use std::collections::HashMap;

const BUILT_IN: &str = include_str!("../../conf/pricing.yaml");

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Pricing {
    /// The shipped table's date.
    pub as_of: String,
    /// Per vendor id: model name (or `*`) to price.
    by_vendor: HashMap<String, HashMap<String, Price>>,
}

impl Pricing {
    /// The shipped table.
    pub fn built_in() -> Pricing {
        let mut p = Problems::default();
        let root: Value = serde_yaml::from_str(BUILT_IN).unwrap_or(Value::Null);
        let mut pricing = Pricing {
            as_of: root
                .get("as_of")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            by_vendor: HashMap::new(),
        };
        pricing.add(root.get("models"), "models", &mut p);
        debug_assert!(p.0.is_empty(), "conf/pricing.yaml: {:?}", p.0);
        pricing
    }

    /// Adds (or replaces) the prices in `value`: `{vendor: {model: {input, output}}}`, each
    /// problem reported at its dotted path under `path`.
    pub fn add(&mut self, value: Option<&Value>, path: &str, p: &mut Problems) {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return;
        };
        let Some(vendors) = value.as_mapping() else {
            p.push(
                path,
                format!(
                    "expected vendors with their models' prices, found {}",
                    describe(value)
                ),
            );
            return;
        };
        for (vendor, models) in vendors {
            let Some(vendor) = vendor.as_str() else {
                p.push(path, "vendor names are strings");
                continue;
            };
            let vpath = join(path, vendor);
            if crate::providers::Vendor::parse(vendor).is_none() {
                p.push(
                    &vpath,
                    format!(
                        "unknown vendor (expected one of {})",
                        crate::providers::Vendor::names().join(", ")
                    ),
                );
                continue;
            }
            let Some(models) = models.as_mapping() else {
                p.push(
                    &vpath,
                    format!("expected models with prices, found {}", describe(models)),
                );
                continue;
            };
            for (model, price) in models {
                let Some(model) = model.as_str() else {
                    p.push(&vpath, "model names are strings");
                    continue;
                };
                let mpath = join(&vpath, model);
                let field = |key: &str, p: &mut Problems| -> Option<f64> {
                    let v = price.get(key);
                    match v.and_then(Value::as_f64) {
                        Some(n) if n.is_finite() && n >= 0.0 => Some(n),
                        _ => {
                            p.push(
                                &join(&mpath, key),
                                "expected a price in US dollars per million tokens (a number, 0 or more)",
                            );
                            None
                        }
                    }
                };
                if let Some(keys) = price.as_mapping() {
                    for k in keys.keys() {
                        let k = k.as_str().unwrap_or("");
                        if k != "input" && k != "output" {
                            p.push(&join(&mpath, k), "unknown key (expected input, output)");
                        }
                    }
                }
                if let (Some(input), Some(output)) = (field("input", p), field("output", p)) {
                    self.by_vendor
                        .entry(vendor.to_string())
                        .or_default()
                        .insert(model.to_ascii_lowercase(), Price { input, output });
                }
            }
        }
    }

    /// The price of `model` at `vendor`: its own entry, else the longest entry it starts with
    /// (followed by `-`, `:` or `@`: a dated snapshot), else the vendor's `*`.
    pub fn price(&self, vendor: &str, model: Option<&str>) -> Option<Price> {
        let models = self.by_vendor.get(vendor)?;
        let model = model.map(|m| m.trim().to_ascii_lowercase());
        let model = model
            .as_deref()
            .map(|m| m.strip_prefix("models/").unwrap_or(m));
        if let Some(m) = model {
            if let Some(p) = models.get(m) {
                return Some(*p);
            }
            let best = models
                .iter()
                .filter(|(name, _)| {
                    m.strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with(['-', ':', '@']))
                })
                .max_by_key(|(name, _)| name.len());
            if let Some((_, p)) = best {
                return Some(*p);
            }
        }
        models.get("*").copied()
    }

    /// What a call cost, in US dollars; `None` when the model is not priced.
    pub fn cost(
        &self,
        vendor: &str,
        model: Option<&str>,
        prompt: u64,
        completion: u64,
    ) -> Option<f64> {
        let p = self.price(vendor, model)?;
        Some((prompt as f64 * p.input + completion as f64 * p.output) / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reads_whole_and_prices_snapshots() {
        let t = Pricing::built_in();
        assert!(!t.as_of.is_empty());
        assert_eq!(
            t.price("openai", Some("gpt-4o")),
            Some(Price {
                input: 2.5,
                output: 10.0
            })
        );
        // a dated snapshot, and the longest name wins over a shorter one it starts with
        assert_eq!(
            t.price("openai", Some("gpt-4o-mini-2024-07-18"))
                .map(|p| p.input),
            Some(0.15)
        );
        assert_eq!(
            t.price("openai", Some("gpt-4o-2024-08-06"))
                .map(|p| p.input),
            Some(2.5)
        );
        assert_eq!(
            t.price("anthropic", Some("claude-sonnet-4-20250514"))
                .map(|p| p.output),
            Some(15.0)
        );
        assert_eq!(
            t.price("gemini", Some("models/gemini-2.0-flash"))
                .map(|p| p.input),
            Some(0.1)
        );
        assert_eq!(
            t.price("mistral", Some("mistral-large-latest"))
                .map(|p| p.output),
            Some(6.0)
        );
        // unknown is unknown, not free
        assert_eq!(t.price("openai", Some("gpt-4ox")), None);
        assert_eq!(t.cost("openai_compatible", Some("llama3"), 10, 10), None);
        assert_eq!(t.price("openai", None), None);
        let c = t.cost("openai", Some("gpt-4o"), 1000, 500).unwrap();
        assert!((c - 0.0075).abs() < 1e-12, "{c}");
    }

    #[test]
    fn config_entries_add_and_replace_and_bad_ones_are_named() {
        let mut t = Pricing::built_in();
        let v: Value = serde_yaml::from_str(
            "openai: {gpt-4o: {input: 1, output: 2}}\nopenai_compatible: {'*': {input: 0, output: 0}}\n",
        )
        .unwrap();
        let mut p = Problems::default();
        t.add(Some(&v), "pricing", &mut p);
        assert!(p.0.is_empty(), "{:?}", p.0);
        assert_eq!(
            t.price("openai", Some("gpt-4o")),
            Some(Price {
                input: 1.0,
                output: 2.0
            })
        );
        assert_eq!(
            t.cost("openai_compatible", Some("llama3"), 10, 10),
            Some(0.0)
        );
        let bad: Value = serde_yaml::from_str(
            "openia: {x: {input: 1, output: 1}}\nopenai: {m: {input: -1, output: 1, extra: 2}}\n",
        )
        .unwrap();
        let mut p = Problems::default();
        t.add(Some(&bad), "pricing", &mut p);
        let got: Vec<String> = p.0.iter().map(|x| x.to_string()).collect();
        assert!(
            got.iter()
                .any(|x| x.starts_with("pricing.openia: unknown vendor")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|x| x.starts_with("pricing.openai.m.input:")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|x| x.starts_with("pricing.openai.m.extra: unknown key")),
            "{got:?}"
        );
    }
}
