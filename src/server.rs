//! Builds the Pingora server and its services from a validated `Config`.

use crate::audit;
use crate::cli::RunArgs;
use crate::config::Config;
use crate::live::{LiveSettings, Reloader};
use crate::policy::input::UsageCounters;
use crate::proxy::{Clock, Gateway, Shared};
use crate::route::Router;
use crate::upstream::Resolver;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use std::sync::Arc;
use std::time::Duration;

fn server_conf(config: &Config, args: &RunArgs) -> ServerConf {
    let s = &config.server;
    ServerConf {
        threads: s.threads,
        pid_file: s.pid_file.display().to_string(),
        upgrade_sock: s.upgrade_sock.display().to_string(),
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        daemon: s.daemon || args.daemon,
        error_log: s.error_log.as_ref().map(|p| p.display().to_string()),
        ..ServerConf::default()
    }
}

/// Builds every service; `run_forever` never returns.
pub fn build(
    config: Config,
    certs: Option<Arc<crate::tls::Certs>>,
    args: &RunArgs,
) -> anyhow::Result<Server> {
    let opt = Opt {
        upgrade: args.upgrade,
        daemon: args.daemon,
        nocapture: false,
        test: args.test,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf(&config, args));
    server.bootstrap();

    let listen = config.listen;
    // the audit writer may wait for in-flight requests until just before the grace period ends
    let drain_wait = Duration::from_millis(
        (config.server.grace_period_seconds * 1000)
            .saturating_sub(300)
            .max(200),
    );
    // create the folder and schema before serving, so the admin API and the operator see at once
    // whether the audit path works; the writer retries on its own if it does not
    match audit::store::open_writer(&config.audit.database) {
        Ok(_) => log::info!("audit database ready path={}", config.audit.database.display()),
        Err(e) => log::error!("audit database unusable at start, proxying continues but rows are dropped until it is fixed: {e}"),
    }
    let (audit, audit_service) = audit::channel(&config.audit, drain_wait);
    let devices = config
        .devices
        .iter()
        .map(|d| (d.ip, d.name.clone()))
        .collect();
    let clock = Clock::from_env();
    let live = Arc::new(LiveSettings::new(&config));
    let (alerts, alert_service) = crate::alerts::channel(config.webhook.as_ref());
    if let Some(service) = alert_service {
        server.add_service(background_service("yori alerts", service));
    }
    server.add_service(background_service(
        "yori reload",
        Reloader {
            live: live.clone(),
            path: config.source.clone(),
        },
    ));
    let counters = UsageCounters::default();
    match audit::store::open_reader(&config.audit.database)
        .and_then(|c| counters.seed(&c, clock.now()))
    {
        Ok(n) => log::debug!("usage counters seeded from the audit log clients={n}"),
        Err(e) => log::warn!("usage counters start at zero, audit log unreadable error={e}"),
    }
    log::info!(
        "policies loaded origin={} policies={} mode={}",
        config.policies.set.origin,
        config.policies.set.names().join(","),
        config.mode.as_str()
    );
    let shared = Arc::new(Shared {
        router: Router::new(&config),
        resolver: Resolver::default(),
        audit,
        devices,
        counters,
        clock,
        live: live.clone(),
        alerts,
        config,
    });
    server.add_service(background_service("yori audit writer", audit_service));
    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(shared.clone()),
        "yori proxy",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    proxy.add_tcp(&listen.to_string());
    if let Some(certs) = certs {
        let settings = crate::tls::settings(certs)
            .map_err(|e| anyhow::anyhow!("cannot set up the TLS listener: {e}"))?;
        proxy.add_tls_with_settings(&shared.config.tls.listen.to_string(), None, settings);
        log::info!(
            "tls listening addr={} names={} ca_dir={}",
            shared.config.tls.listen,
            shared
                .config
                .endpoints
                .iter()
                .filter(|e| e.enabled)
                .map(|e| e.domain.as_str())
                .collect::<Vec<_>>()
                .join(","),
            shared.config.tls.ca_dir.display()
        );
    }
    server.add_service(proxy);
    crate::metrics::init(crate::proxy::VERSION);
    let mut prometheus = pingora_prometheus::prometheus_http_service();
    prometheus.add_tcp(&shared.config.metrics_listen.to_string());
    server.add_service(prometheus);
    log::info!(
        "yori {} listening addr={listen} mode={}",
        crate::proxy::VERSION,
        shared.config.mode.as_str()
    );
    Ok(server)
}
