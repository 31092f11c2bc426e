//! The process logger: `env_logger` (`RUST_LOG`, default `warn,yori=info`) with one rule on top.
//! Pingora's own records are held at info and above whatever `RUST_LOG` says: at debug and trace
//! it dumps whole request headers (API keys, cookies) and body chunks (prompts). YORI's own debug
//! lines never carry those.

use log::{Level, Log, Metadata, Record};

/// The default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "warn,yori=info";

struct Guarded {
    inner: env_logger::Logger,
}

/// Whether a record may be written: Pingora's crates only up to info.
fn allowed(target: &str, level: Level) -> bool {
    !(target.starts_with("pingora") && level > Level::Info)
}

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        allowed(metadata.target(), metadata.level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if allowed(record.target(), record.level()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER))
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Guarded { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_debug_and_trace_are_held_back() {
        assert!(!allowed("pingora_proxy::proxy_h1", Level::Debug));
        assert!(!allowed(
            "pingora_core::protocols::http::v1::client",
            Level::Trace
        ));
        assert!(allowed("pingora_proxy", Level::Error));
        assert!(allowed("pingora_core::server", Level::Info));
        assert!(allowed("yori::proxy", Level::Debug));
    }
}
