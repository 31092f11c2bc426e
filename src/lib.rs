//! YORI: a home LLM gateway on Pingora.
//!
//! Data flow of one request, in module order: `route` (which vendor) -> `capture` (whole body,
//! bounded) -> `proxy` (the ProxyHttp phases) -> `upstream` (the vendor's address and peer).

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod capture;
pub mod cli;
pub mod config;
pub mod error;
pub mod facts;
pub mod live;
pub mod metrics;
pub mod pii;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod respond;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod usage;
pub mod vendor;
