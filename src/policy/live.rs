//! Settings that change without a restart: the policy set, the enforcement switches, and the
//! household's device names (with the allowlist that names them).
//!
//! On SIGHUP the config file is read again; when it is valid (policies compile), the new set
//! replaces the old one in one swap, so a request sees either the old or the new set, never a
//! mix. A broken file keeps the running set and logs why. The reading is handed in by the
//! server (`Reloader::load`): this side knows what it swaps, not where the config lives.

use super::{Action, PolicySet};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// What a SIGHUP can change.
#[derive(Clone)]
pub struct Live {
    pub policies: Arc<PolicySet>,
    /// The verdict when no policy has anything to say (`policies.default`).
    pub default: Action,
    /// Client IPs never blocked (`enforcement.allowlist`, device names resolved).
    pub allowlist: Vec<IpAddr>,
    /// The emergency switch (`enforcement.disabled`): nothing is blocked, whatever the mode.
    pub disabled: bool,
    /// Device names by address (`devices`): rows, policy input, alerts.
    pub devices: Arc<HashMap<IpAddr, String>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("policies", &self.policies.names())
            .field("default", &self.default)
            .field("allowlist", &self.allowlist)
            .field("disabled", &self.disabled)
            .field("devices", &self.devices.len())
            .finish()
    }
}

/// The current `Live`, swapped whole.
pub struct LiveSettings {
    current: RwLock<Arc<Live>>,
}

impl LiveSettings {
    pub fn new(live: Live) -> LiveSettings {
        LiveSettings {
            current: RwLock::new(Arc::new(live)),
        }
    }

    pub fn get(&self) -> Arc<Live> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn swap(&self, live: Live) -> Arc<Live> {
        let live = Arc::new(live);
        match self.current.write() {
            Ok(mut g) => *g = live.clone(),
            Err(poisoned) => *poisoned.into_inner() = live.clone(),
        }
        live
    }
}

/// Reads the config again and builds its `Live`, or says why it cannot.
pub type Load =
    Box<dyn Fn() -> Result<Live, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// Listens for SIGHUP and reloads (the router's time zone too).
pub struct Reloader {
    pub live: Arc<LiveSettings>,
    pub load: Load,
    pub clock: Arc<super::clock::Clock>,
}

impl Reloader {
    fn reload(&self) {
        self.clock.reload_zone();
        match (self.load)() {
            Ok(new) => {
                let live = self.live.swap(new);
                crate::metrics::RELOADS.with_label_values(&["ok"]).inc();
                log::info!(
                    "reloaded on SIGHUP policies={} enforcement_disabled={} devices={} (listen, endpoints, audit and server keys need a restart)",
                    live.policies.names().join(","),
                    live.disabled,
                    live.devices.len()
                );
            }
            Err(e) => {
                crate::metrics::RELOADS.with_label_values(&["failed"]).inc();
                log::error!(
                    "reload failed, the running policies stay in force: {}",
                    e.to_string().trim_end()
                );
            }
        }
    }
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
                got = hup.recv() => match got {
                    Some(()) => self.reload(),
                    None => return,
                },
            }
        }
    }
}
