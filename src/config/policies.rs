//! `policies`: which Rego files run, their settings, and the verdict when none has anything to
//! say. The files are compiled here, once; a file that does not compile is a config problem.

use super::reader::{Problems, Section};
use crate::kinds::Action;
use crate::policy::{PolicyField, PolicySet, Source};
use serde_yaml::Value;
use std::path::Path;
use std::sync::Arc;

/// Where policies are read from when `directory` is not set and this folder exists; else the
/// shipped set built into the binary.
pub const DEFAULT_POLICY_DIR: &str = "/usr/local/etc/yori/policies";

/// Household rules, compiled.
#[derive(Clone)]
pub struct Policies {
    /// Every `*.rego` in `directory` (or `enabled` of them), compiled with `data`.
    pub set: Arc<PolicySet>,
    /// `default`: the verdict when no policy has anything to say (allow).
    pub default: Action,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Policies({} from {}, default {:?})",
            self.set.names().join(","),
            self.set.origin,
            self.default
        )
    }
}

const DIRECTORY: &str = "directory";
const ENABLED: &str = "enabled";
const DATA: &str = "data";

/// Reads and compiles; `None` when a policy did not compile (the problems say why).
pub fn read(s: &Section<'_>, p: &mut Problems) -> Option<Policies> {
    let source = match s.path(DIRECTORY, p) {
        Some(d) => Source::Directory(d),
        None if Path::new(DEFAULT_POLICY_DIR).is_dir() => {
            Source::Directory(DEFAULT_POLICY_DIR.into())
        }
        None => Source::BuiltIn,
    };
    let enabled = s.strings(ENABLED, p, |n| Ok(n.to_string()));
    let default = s
        .parsed("default", p, |a| {
            Action::parse(a).ok_or_else(|| format!("`{a}` is not allow, alert or block"))
        })
        .unwrap_or(Action::Allow);
    let data_path = s.child(DATA);
    let data = match s.get(DATA) {
        None => serde_json::json!({}),
        Some(v @ Value::Mapping(_)) => serde_json::to_value(v).unwrap_or_else(|e| {
            p.push(&data_path, format!("cannot be used as policy data: {e}"));
            serde_json::json!({})
        }),
        Some(_) => {
            p.push(
                &data_path,
                "expected a mapping (settings per policy, e.g. bedtime: {start_hour: 21})",
            );
            serde_json::json!({})
        }
    };
    match PolicySet::load(&source, enabled.as_deref(), &data) {
        Ok(set) => Some(Policies {
            set: Arc::new(set),
            default,
        }),
        Err(errors) => {
            for e in errors {
                let path = match e.field() {
                    PolicyField::Directory => s.child(DIRECTORY),
                    PolicyField::Enabled => s.child(ENABLED),
                    PolicyField::Data => data_path.clone(),
                    PolicyField::Files => s.path.clone(),
                };
                p.push(&path, e.to_string());
            }
            None
        }
    }
}
