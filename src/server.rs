//! The composition root: builds the Pingora server and its services from a validated `Config`,
//! and hands each part what it needs.

use crate::admin::AdminState;
use crate::audit;
use crate::cli::RunArgs;
use crate::config::{self, Config};
use crate::policy::clock::Clock;
use crate::policy::counters::{Seed, UsageCounters};
use crate::policy::decide::Decider;
use crate::policy::live::{LiveSettings, Reloader};
use crate::proxy::route::Router;
use crate::proxy::{BodyBudget, Edge, Gateway, Offload, Resolver, Shared};
use pingora_core::listeners::ListenerConfig;
use pingora_core::protocols::l4::stream::L4BufferSettings;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use std::sync::Arc;
use std::time::Duration;

/// Keeps the policy side's snapshot of the active approvals in step with the `approvals` table
/// (written by `yori allow`), reading it every `approvals::REFRESH` on its own connection.
struct ApprovalRefresh {
    database: std::path::PathBuf,
    approvals: Arc<crate::policy::approvals::Approvals>,
    clock: Arc<Clock>,
}

impl ApprovalRefresh {
    fn refresh(&self, failing: &mut bool) {
        use crate::policy::approvals::Approval;
        let now = self.clock.now().to_rfc3339();
        let read = audit::store::open_reader(&self.database)
            .and_then(|c| audit::store::active_approvals(&c, &now));
        match read {
            Ok(records) => {
                let active: Vec<Approval> = records
                    .into_iter()
                    .filter_map(|r| {
                        Some(Approval {
                            id: r.id,
                            expires_at: chrono::DateTime::parse_from_rfc3339(&r.expires_at).ok()?,
                            device: r.device,
                            policy: r.policy,
                        })
                    })
                    .collect();
                self.approvals.set(active);
                *failing = false;
            }
            Err(e) => {
                // the last snapshot stays: approvals keep working through a locked moment
                if !*failing && self.database.exists() {
                    log::warn!(
                        "approvals cannot be read, the last ones read stay in force error={e}"
                    );
                }
                *failing = true;
            }
        }
    }
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for ApprovalRefresh {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let mut failing = false;
        loop {
            self.refresh(&mut failing);
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(crate::policy::approvals::REFRESH) => {}
            }
        }
    }
}

/// Today's usage counters, started from what the audit log says (a restart keeps daily limits).
fn seeded_counters(config: &Config, clock: &Clock) -> UsageCounters {
    let counters = UsageCounters::default();
    let now = clock.now();
    let (since, hour_ago) = (
        clock.day_start(now),
        (now - chrono::Duration::hours(1)).to_utc(),
    );
    let month_start = {
        use chrono::Datelike;
        clock.day_start(now.with_day(1).unwrap_or(now))
    };
    let tallies = audit::store::open_reader(&config.audit.database)
        .and_then(|c| audit::store::usage_since(&c, since, hour_ago, month_start));
    match tallies {
        Ok(tallies) => {
            let seeds = tallies.into_iter().filter_map(|t| {
                Some(Seed {
                    client: t.client_ip.parse().ok()?,
                    requests_today: t.requests,
                    tokens_today: t.tokens,
                    requests_last_hour: t.last_hour,
                    cost_today: t.cost,
                    cost_month: t.cost_month,
                })
            });
            let n = counters.seed(seeds, now);
            log::debug!("usage counters seeded from the audit log clients={n}");
        }
        Err(e) => log::warn!("usage counters start at zero, audit log unreadable error={e}"),
    }
    counters
}

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
    let (audit, audit_service) = audit_writer(&config);
    server.add_service(background_service("yori audit writer", audit_service));
    server.add_service(background_service("yori memory trim", crate::trim::Trim));
    let (alerts, alert_service) = crate::alerts::channel(config.webhook.as_ref());
    if let Some(service) = alert_service {
        server.add_service(background_service("yori alerts", service));
    }
    let live = Arc::new(LiveSettings::new(config.live()));
    let clock = Arc::new(Clock::from_env());
    let path = config.source.clone();
    server.add_service(background_service(
        "yori reload",
        Reloader {
            live: live.clone(),
            load: Box::new(move || Ok(config::load(path.as_deref())?.live())),
            clock: clock.clone(),
        },
    ));
    let counters = seeded_counters(&config, &clock);
    let approvals = Arc::new(crate::policy::approvals::Approvals::default());
    server.add_service(background_service(
        "yori approvals",
        ApprovalRefresh {
            database: config.audit.database.clone(),
            approvals: approvals.clone(),
            clock: clock.clone(),
        },
    ));
    log::info!(
        "policies loaded origin={} policies={} mode={}",
        config.policies.set.origin,
        config.policies.set.names().join(","),
        config.mode
    );
    let shared = Arc::new(Shared {
        router: Router::new(&config),
        resolver: Resolver::default(),
        audit,
        decider: Arc::new(Decider {
            approvals,
            mode: config.mode,
            live,
            counters,
            clock,
        }),
        alerts,
        admin: AdminState::new(&config),
        offload: Offload::start(config.server.inspection_threads),
        body_budget: BodyBudget::new(config.limits.max_buffered_body_bytes),
        config,
    });
    let proxy = proxy_service(&server, &shared, certs)?;
    server.add_service(proxy);
    crate::metrics::init(crate::proxy::VERSION);
    let mut prometheus = pingora_prometheus::prometheus_http_service();
    prometheus.add_tcp(&shared.config.metrics_listen.to_string());
    server.add_service(prometheus);
    log::info!(
        "yori {} listening addr={} mode={}",
        crate::proxy::VERSION,
        shared.config.listen,
        shared.config.mode
    );
    Ok(server)
}

/// The audit queue and its writer service. The database is opened (folder and schema made)
/// before serving, so the admin API and the operator see at once whether the audit path works;
/// the writer retries on its own if it does not.
fn audit_writer(config: &Config) -> (audit::AuditSender, audit::AuditService) {
    // after SIGTERM the writer waits for in-flight exchanges through the grace period and
    // Pingora's runtime shutdown, which drops what is left (each then leaves a `shutdown` row)
    let s = &config.server;
    let drain_limit = Duration::from_millis(
        ((s.grace_period_seconds + s.graceful_shutdown_timeout_seconds) * 1000)
            .saturating_sub(500)
            .max(500),
    );
    match audit::store::open_writer(&config.audit.database) {
        Ok(_) => log::info!("audit database ready path={}", config.audit.database.display()),
        Err(e) => log::error!("audit database unusable at start, proxying continues but rows are dropped until it is fixed: {e}"),
    }
    audit::channel(&config.audit, drain_limit)
}

/// The proxy service on the plain listener and, with certificates, the TLS listener.
fn proxy_service(
    server: &Server,
    shared: &Arc<Shared>,
    certs: Option<Arc<crate::tls::Certs>>,
) -> anyhow::Result<Service<Edge>> {
    let config = &shared.config;
    let (listen, tls_listen) = (config.listen, config.tls.listen);
    let names = config
        .endpoints
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.domain.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let ca_dir = config.tls.ca_dir.display().to_string();
    let proxy = pingora_proxy::http_proxy(&server.configuration, Gateway::new(shared.clone()));
    let mut service = Service::new("yori proxy".to_string(), Edge::new(proxy, &config.limits));
    service.add_listener(ListenerConfig::tcp(listen.to_string()).l4_buffer(READ_BUFFER));
    if let Some(certs) = certs {
        let settings = crate::tls::settings(certs)
            .map_err(|e| anyhow::anyhow!("cannot set up the TLS listener: {e}"))?;
        service.add_listener(
            ListenerConfig::tcp(tls_listen.to_string())
                .tls(settings)
                .l4_buffer(READ_BUFFER),
        );
        // the caps and the ClientHello deadline, before Pingora's own (60 s) handshake wait
        let handshakes = service
            .app_logic()
            .map(|edge| edge.handshakes() as pingora_core::listeners::PreTlsCallback);
        if let Some(h) = handshakes {
            service.endpoints().set_pre_tls_callback(h);
        }
        log::info!("tls listening addr={tls_listen} names={names} ca_dir={ca_dir}");
    }
    Ok(service)
}

/// Each device connection's read buffer: one TLS record (Pingora's default is 64 KiB, which is
/// most of a connection's memory: a thousand idle connections held 64 MB of it).
const READ_BUFFER: L4BufferSettings = L4BufferSettings {
    read: Some(16 << 10),
    write: None,
};
