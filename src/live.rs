//! Settings that change without a restart: the policy set and the enforcement switches.
//!
//! On SIGHUP the config file is read again; when it is valid (policies compile), the new policy
//! set, `enforcement` and `policies.*` replace the old ones in one swap, so a request sees either
//! the old or the new set, never a mix. A broken file keeps the running set and logs why.
//! Other keys (listen, endpoints, audit, ...) need a restart; a change to them is logged.

use crate::config::{self, Config, Enforcement, Policies};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone)]
pub struct Live {
    pub policies: Policies,
    pub enforcement: Enforcement,
}

pub struct LiveSettings {
    current: RwLock<Arc<Live>>,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

impl LiveSettings {
    pub fn new(config: &Config) -> LiveSettings {
        LiveSettings {
            current: RwLock::new(Arc::new(Live {
                policies: config.policies.clone(),
                enforcement: config.enforcement.clone(),
            })),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> Arc<Live> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads `path` again and swaps in its policies and enforcement settings if it is valid.
    pub fn reload(&self, path: Option<&PathBuf>) -> Result<Arc<Live>, String> {
        let loaded = config::load(path.map(PathBuf::as_path))
            .map_err(|e| e.to_string().trim_end().to_string());
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::RELOADS.with_label_values(&["failed"]).inc();
                return Err(e);
            }
        };
        let live = Arc::new(Live {
            policies: new.policies,
            enforcement: new.enforcement,
        });
        match self.current.write() {
            Ok(mut g) => *g = live.clone(),
            Err(poisoned) => *poisoned.into_inner() = live.clone(),
        }
        self.reloads.fetch_add(1, Ordering::Relaxed);
        crate::metrics::RELOADS.with_label_values(&["ok"]).inc();
        Ok(live)
    }
}

/// Listens for SIGHUP and reloads.
pub struct Reloader {
    pub live: Arc<LiveSettings>,
    pub path: Option<PathBuf>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload needs a restart: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match self.live.reload(self.path.as_ref()) {
                        Ok(live) => log::info!(
                            "reloaded on SIGHUP policies={} enforcement_disabled={} (listen, endpoints, audit and server keys need a restart)",
                            live.policies.set.names().join(","),
                            live.enforcement.disabled
                        ),
                        Err(e) => log::error!("reload failed, the running policies stay in force: {e}"),
                    }
                }
            }
        }
    }
}
