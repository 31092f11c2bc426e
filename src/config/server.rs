//! `server`: Pingora's own settings, validated here (Pingora's `ServerConf` ignores unknown keys).

use super::reader::{Problems, Section};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `threads`: worker threads of the proxy service.
    pub threads: usize,
    /// `inspection_threads`: threads that work out, in observe and advisory modes, a request's
    /// facts and verdict while the vendor answers (0: on the proxy threads).
    pub inspection_threads: usize,
    /// `pid_file`: written in daemon mode.
    pub pid_file: PathBuf,
    /// `upgrade_sock`: where a new process (`yori -u`) takes over the listening sockets.
    pub upgrade_sock: PathBuf,
    /// `grace_period_seconds`: after SIGTERM, how long in-flight requests may finish.
    pub grace_period_seconds: u64,
    /// `graceful_shutdown_timeout_seconds`: then how long services get to stop.
    pub graceful_shutdown_timeout_seconds: u64,
    /// `daemon`: run in the background (as `-d`).
    pub daemon: bool,
    /// `error_log`: a file for the log instead of stderr.
    pub error_log: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: 1,
            inspection_threads: 1,
            pid_file: "/var/run/yori.pid".into(),
            upgrade_sock: "/var/run/yori_upgrade.sock".into(),
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 10,
            daemon: false,
            error_log: None,
        }
    }
}

impl ServerSettings {
    pub fn read(s: &Section<'_>, p: &mut Problems) -> ServerSettings {
        let d = ServerSettings::default();
        ServerSettings {
            threads: s
                .uint("threads", 1, 256, p)
                .map_or(d.threads, |n| n as usize),
            inspection_threads: s
                .uint("inspection_threads", 0, 64, p)
                .map_or(d.inspection_threads, |n| n as usize),
            pid_file: s.path("pid_file", p).unwrap_or(d.pid_file),
            upgrade_sock: s.path("upgrade_sock", p).unwrap_or(d.upgrade_sock),
            grace_period_seconds: s
                .uint("grace_period_seconds", 0, 3600, p)
                .unwrap_or(d.grace_period_seconds),
            graceful_shutdown_timeout_seconds: s
                .uint("graceful_shutdown_timeout_seconds", 0, 3600, p)
                .unwrap_or(d.graceful_shutdown_timeout_seconds),
            daemon: s.boolean("daemon", p).unwrap_or(d.daemon),
            error_log: s.path("error_log", p),
        }
    }
}
