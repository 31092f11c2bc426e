//! Integration tests: the real `yori` binary with a temp config, temp database and free ports,
//! against the in-process mock vendor (`mock`), on 127.0.0.1 only. One test binary: the shared
//! harness (`common`) is compiled and linked once.

// Test code: a failed step is a failed test, and the harness signals the processes it starts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_pass_by_value,
    unsafe_code
)]

mod common;
mod mock;

mod audit;
mod cli;
mod edge;
mod family;
mod gateway;
mod hardening;
mod metrics;
mod ops;
mod policy;
mod shape;
mod tls;
