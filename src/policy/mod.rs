//! Household rules in Rego, evaluated in-process with regorus.
//!
//! Every `*.rego` file declares `package yori.<name>` and a rule `decision` =
//! `{"action": "allow"|"alert"|"block", "reason": "..."}`. Each policy is compiled once at start
//! into its own `CompiledPolicy`, then into a regorus RVM program, which evaluates the shipped
//! set 6 to 9 times faster than the interpreter (examples/policy_bench.rs). A policy the RVM
//! compiler cannot take runs on the interpreter. The most severe action wins. An evaluation error
//! allows the request (fail-open) and is reported in the verdict.
//!
//! Around the engine: `input` builds the document a policy sees, `counters` keeps the per-client
//! usage it reads, `decide` runs the set on one request, `gate` turns the verdict into what the
//! mode allows, and `live` swaps the set on SIGHUP.

pub mod approvals;
pub mod clock;
pub mod counters;
pub mod decide;
pub mod gate;
pub mod input;
pub mod live;
pub mod reads;

pub use crate::kinds::Action;

use reads::Reads;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::{CompiledPolicy, Engine, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// RVM instructions one policy may execute per request (a runaway rule is an evaluation error,
/// not a stuck proxy). The shipped policies use well under 1,000.
const MAX_INSTRUCTIONS: usize = 2_000_000;

/// The policies shipped in `conf/policies/`, built in for the default configuration.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "home_default.rego",
        include_str!("../../conf/policies/home_default.rego"),
    ),
    (
        "bedtime.rego",
        include_str!("../../conf/policies/bedtime.rego"),
    ),
    (
        "high_usage.rego",
        include_str!("../../conf/policies/high_usage.rego"),
    ),
    (
        "budget.rego",
        include_str!("../../conf/policies/budget.rego"),
    ),
    (
        "homework.rego",
        include_str!("../../conf/policies/homework.rego"),
    ),
    (
        "privacy.rego",
        include_str!("../../conf/policies/privacy.rego"),
    ),
];

/// A problem loading the policy set, at start, in `yori check` or on SIGHUP.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// regorus' message names the file and line.
    #[error("{0}")]
    Compile(String),
    #[error("{file}: declares `package {found}` but must declare `package yori.{name}` (the file's name)")]
    Package {
        file: String,
        found: String,
        name: String,
    },
    #[error("{file}: {message}")]
    Data { file: String, message: String },
    #[error("no policy file {name}.rego in {origin}")]
    NotFound { name: String, origin: String },
}

/// Which setting a `PolicyError` is about: the config reports it at that key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    /// The folder policies are read from.
    Directory,
    /// The list of enabled policies.
    Enabled,
    /// The settings handed to the policies.
    Data,
    /// A policy file itself (the message names it).
    Files,
}

impl PolicyError {
    pub fn field(&self) -> PolicyField {
        match self {
            PolicyError::Directory { .. } => PolicyField::Directory,
            PolicyError::NotFound { .. } => PolicyField::Enabled,
            PolicyError::Data { .. } => PolicyField::Data,
            PolicyError::Read { .. } | PolicyError::Compile(_) | PolicyError::Package { .. } => {
                PolicyField::Files
            }
        }
    }
}

/// Why one policy could not give a decision for one request (the request is allowed).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// regorus failed: a runtime error, or the instruction limit.
    #[error("{0}")]
    Engine(String),
    #[error("decision has no string `action`")]
    NoAction,
    #[error("decision action `{0}` is not allow, alert or block")]
    BadAction(String),
}

/// The combined decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    /// The policy whose decision won (`None` when every policy allowed without a reason).
    pub policy: Option<String>,
    pub reason: Option<String>,
    /// Policies that failed to evaluate (the request was allowed as far as they are concerned).
    pub errors: Vec<String>,
}

impl Verdict {
    pub fn allow() -> Verdict {
        Verdict {
            action: Action::Allow,
            policy: None,
            reason: None,
            errors: Vec::new(),
        }
    }
}

struct Policy {
    name: String,
    compiled: CompiledPolicy,
    /// The RVM program and idle VMs ready to run it; `None`: the interpreter runs this policy.
    vm: Option<VmPool>,
    /// The parts of `input` it reads.
    reads: Reads,
    /// How its decision is found without running it, where that is sound.
    shortcut: Shortcut,
}

/// A decision: the action and the reason.
type Decision = (Action, String);

/// Policies are pure functions of the input they read and `data` (unless they call a clock,
/// random or network builtin). So a policy that reads nothing from `input` is decided once at
/// load, and a decision for input values already seen is remembered.
enum Shortcut {
    /// Evaluate every time.
    None,
    /// Reads nothing from `input`: this is its decision.
    Constant(Decision),
    /// Decisions by the values at the paths it reads (small values only: a long prompt is
    /// never a key).
    Memo(Mutex<BTreeMap<Vec<Value>, Decision>>),
}

/// Remembered decisions per policy, at most; past it the memory starts over.
const MEMO_ENTRIES: usize = 4096;
/// A value larger than this (in string bytes or items) is not worth remembering by.
const MEMO_VALUE_LIMIT: usize = 128;

/// VMs are reused: a fresh one costs about as much as running the program.
struct VmPool {
    program: Arc<Program>,
    data: Value,
    idle: Mutex<Vec<RegoVM>>,
}

impl VmPool {
    fn new(compiled: &CompiledPolicy, entry: &str, data: Value) -> Result<VmPool, EvalError> {
        let program = Compiler::compile_from_policy(compiled, &[entry]).map_err(engine)?;
        let pool = VmPool {
            program,
            data,
            idle: Mutex::new(Vec::new()),
        };
        // one VM now: a data conflict shows at load, not at the first request
        let vm = pool.fresh()?;
        pool.put(vm);
        Ok(pool)
    }

    fn fresh(&self) -> Result<RegoVM, EvalError> {
        let mut vm = RegoVM::new();
        vm.load_program(self.program.clone());
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_data(self.data.clone()).map_err(engine)?;
        Ok(vm)
    }

    fn put(&self, vm: RegoVM) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(vm);
        }
    }

    fn eval(&self, input: &Value) -> Result<Value, EvalError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut vm = match reused {
            Some(vm) => vm,
            None => self.fresh()?,
        };
        vm.set_input(input.clone());
        // a VM that failed is dropped, not reused
        let out = vm.execute().map_err(engine)?;
        self.put(vm);
        Ok(out)
    }
}

pub struct PolicySet {
    policies: Vec<Policy>,
    /// What the policies read together: the document the proxy builds.
    reads: Reads,
    /// Where they came from, for logs (`(built-in)` for the shipped set).
    pub origin: String,
}

/// Where to read policies from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    BuiltIn,
    Directory(PathBuf),
}

impl PolicySet {
    /// Loads and compiles every policy (restricted to `enabled` when given), with `data` under
    /// `data.settings`. All problems are returned at once, each naming its file (and line).
    pub fn load(
        source: &Source,
        enabled: Option<&[String]>,
        data: &serde_json::Value,
    ) -> Result<PolicySet, Vec<PolicyError>> {
        let files: Vec<(String, String)> = match source {
            Source::BuiltIn => SHIPPED
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            Source::Directory(dir) => read_dir(dir)?,
        };
        let origin = match source {
            Source::BuiltIn => "(built-in)".to_string(),
            Source::Directory(d) => d.display().to_string(),
        };
        let mut problems = Vec::new();
        let mut policies = Vec::new();
        for (file, text) in files {
            let name = file.trim_end_matches(".rego").to_string();
            if enabled.is_some_and(|e| !e.iter().any(|n| n == &name)) {
                continue;
            }
            match compile(&file, &text, &name, data) {
                Ok(compiled) => {
                    let entry = format!("data.yori.{name}.decision");
                    let settings = Value::from(serde_json::json!({ "settings": data }));
                    let vm = match VmPool::new(&compiled, &entry, settings) {
                        Ok(pool) => Some(pool),
                        Err(e) => {
                            log::info!("policy runs on the interpreter policy={name} reason={e}");
                            None
                        }
                    };
                    let reads = Reads::of_source(&text);
                    let mut policy = Policy {
                        name,
                        compiled,
                        vm,
                        shortcut: Shortcut::None,
                        reads,
                    };
                    policy.shortcut = policy.shortcut(&text);
                    policies.push(policy);
                }
                Err(e) => problems.push(e),
            }
        }
        if let Some(enabled) = enabled {
            for n in enabled {
                let file = format!("{n}.rego");
                if !policies.iter().any(|p| &p.name == n)
                    && !problems.iter().any(|p| p.to_string().contains(&file))
                {
                    problems.push(PolicyError::NotFound {
                        name: n.clone(),
                        origin: origin.clone(),
                    });
                }
            }
        }
        if problems.is_empty() {
            let reads = Reads::union(policies.iter().map(|p| &p.reads));
            Ok(PolicySet {
                policies,
                reads,
                origin,
            })
        } else {
            Err(problems)
        }
    }

    /// What the loaded policies read of `input` (see `input::document`).
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    pub fn names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// Evaluates every policy (or only `only`) and combines: block > alert > allow; among equals
    /// the first in file order wins.
    pub fn evaluate(&self, input: &Value, only: Option<&str>) -> Verdict {
        let mut verdict = Verdict::allow();
        for p in self
            .policies
            .iter()
            .filter(|p| only.is_none_or(|o| o == p.name))
        {
            match p.decide(input) {
                Ok((action, reason)) => {
                    let better = action > verdict.action
                        || (verdict.policy.is_none()
                            && action == verdict.action
                            && !reason.is_empty());
                    if better {
                        verdict.action = action;
                        verdict.policy = Some(p.name.clone());
                        verdict.reason = Some(reason).filter(|r| !r.is_empty());
                    }
                }
                Err(e) => verdict.errors.push(format!("{}: {e}", p.name)),
            }
        }
        verdict
    }
}

fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Vec<PolicyError>> {
    let entries = std::fs::read_dir(dir).map_err(|source| {
        vec![PolicyError::Directory {
            dir: dir.to_path_buf(),
            source,
        }]
    })?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "rego") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read_to_string(&path) {
                Ok(t) => files.push((name, t)),
                Err(source) => problems.push(PolicyError::Read { file: path, source }),
            }
        }
    }
    files.sort();
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

fn compile(
    file: &str,
    text: &str,
    name: &str,
    data: &serde_json::Value,
) -> Result<CompiledPolicy, PolicyError> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    let package = engine
        .add_policy(file.to_string(), text.to_string())
        .map_err(|e| PolicyError::Compile(e.to_string()))?;
    let expected = format!("data.yori.{name}");
    if package != expected {
        return Err(PolicyError::Package {
            file: file.to_string(),
            found: package.trim_start_matches("data.").to_string(),
            name: name.to_string(),
        });
    }
    engine
        .add_data(Value::from(serde_json::json!({ "settings": data })))
        .map_err(|e| PolicyError::Data {
            file: file.to_string(),
            message: e.to_string(),
        })?;
    let entry = format!("{expected}.decision");
    engine
        .compile_with_entrypoint(&entry.as_str().into())
        .map_err(|e| PolicyError::Compile(format!("{file}: {e}")))
}

impl Policy {
    /// How this policy can be decided without running it (see `Shortcut`).
    fn shortcut(&self, source: &str) -> Shortcut {
        if !reads::is_deterministic(source) || self.reads.is_whole() {
            return Shortcut::None;
        }
        if self.reads.is_nothing() {
            let empty = Value::from(BTreeMap::<Value, Value>::new());
            return match self.run(&empty) {
                Ok(d) => Shortcut::Constant(d),
                Err(_) => Shortcut::None,
            };
        }
        Shortcut::Memo(Mutex::new(BTreeMap::new()))
    }

    fn decide(&self, input: &Value) -> Result<Decision, EvalError> {
        match &self.shortcut {
            Shortcut::None => self.run(input),
            Shortcut::Constant(d) => Ok(d.clone()),
            Shortcut::Memo(memo) => {
                let Some(key) = self.memo_key(input) else {
                    return self.run(input);
                };
                if let Some(d) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
                    return Ok(d);
                }
                let d = self.run(input)?;
                if let Ok(mut m) = memo.lock() {
                    if m.len() >= MEMO_ENTRIES {
                        m.clear();
                    }
                    m.insert(key, d.clone());
                }
                Ok(d)
            }
        }
    }

    /// The values at the paths this policy reads, when all are small.
    fn memo_key(&self, input: &Value) -> Option<Vec<Value>> {
        self.reads
            .paths()
            .map(|path| {
                let v = path.iter().fold(input, |v, k| &v[k.as_str()]);
                small(v).then(|| v.clone())
            })
            .collect()
    }

    fn run(&self, input: &Value) -> Result<Decision, EvalError> {
        let out = match &self.vm {
            Some(pool) => pool.eval(input)?,
            None => self.interpret(input)?,
        };
        read_decision(&out)
    }

    fn interpret(&self, input: &Value) -> Result<Value, EvalError> {
        self.compiled.eval_with_input(input.clone()).map_err(engine)
    }
}

/// Whether `v` is small enough to remember decisions by.
fn small(v: &Value) -> bool {
    match v {
        Value::String(s) => s.len() <= MEMO_VALUE_LIMIT,
        Value::Array(a) => a.len() <= MEMO_VALUE_LIMIT && a.iter().all(small),
        Value::Set(a) => a.len() <= MEMO_VALUE_LIMIT && a.iter().all(small),
        Value::Object(o) => {
            o.len() <= MEMO_VALUE_LIMIT && o.iter().all(|(k, v)| small(k) && small(v))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Undefined => true,
    }
}

fn engine(e: impl std::fmt::Display) -> EvalError {
    EvalError::Engine(e.to_string())
}

fn read_decision(out: &Value) -> Result<(Action, String), EvalError> {
    if *out == Value::Undefined {
        return Ok((Action::Allow, String::new()));
    }
    let action = out["action"].as_string().map_err(|_| EvalError::NoAction)?;
    let action =
        Action::parse(action.as_ref()).ok_or_else(|| EvalError::BadAction(action.to_string()))?;
    let reason = match &out["reason"] {
        Value::String(s) => s.to_string(),
        _ => String::new(),
    };
    Ok((action, reason))
}

#[cfg(test)]
mod tests;
