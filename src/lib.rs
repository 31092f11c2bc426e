//! YORI: a home LLM gateway on Pingora.
//!
//! One request's path, in module order:
//! - `proxy`: the `ProxyHttp` phases. `proxy::route` says where a request goes (health, admin,
//!   a vendor, refusal), `proxy::capture` reads its whole body, `proxy::forward` has the
//!   policies decide and replays it to the vendor, `proxy::upstream` resolves the vendor.
//! - `providers`: what each vendor's wire format says (facts, usage, error bodies), one file
//!   per vendor; `inspect`: the vendor-neutral parsing (facts, personal data, token usage).
//! - `policy`: the Rego set, the input document, the counters, the mode gate, approvals,
//!   SIGHUP reloads.
//! - `report`: the exchange's typed report, from which `audit` (row, queue, writer, SQLite,
//!   queries) and `metrics` are derived.
//!
//! Around it: `config` (YAML to a validated `Config`), `kinds` (the stored vocabularies),
//! `admin` (the admin API), `alerts` (the webhook), `tls` (the local CA and the TLS listener),
//! `server` (builds every service), `cli`, `allow` (a parent's approvals), `logging`, `trim`.
//!
//! Arrows point one way: `proxy` uses everything below it; `admin` and `audit` know nothing of
//! the proxy; `metrics` and `audit` read the report, never the proxy's context.

// Public for the binary (`main.rs`), the benchmarks in `examples/` and the integration tests;
// the rest is the crate's own.
pub(crate) mod admin;
pub(crate) mod alerts;
pub mod allow;
pub mod audit;
pub mod cli;
pub mod config;
pub mod inspect;
pub mod kinds;
pub mod logging;
pub(crate) mod metrics;
pub mod policy;
pub mod providers;
pub(crate) mod proxy;
pub(crate) mod report;
pub mod server;
pub mod tls;
pub(crate) mod trim;
