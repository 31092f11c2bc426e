//! `yori`: parse the command line, load the config, build the services, run.
//! Exit codes: 0 ok, 2 bad config or usage, 1 runtime failure.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use yori::cli::{CaCommand, Cli, Command, PolicyCommand};
use yori::config;

fn main() -> ExitCode {
    yori::logging::init();
    let cli = Cli::parse();
    let path = config::locate(cli.config.as_deref());
    let config = match config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check) => check(&config),
        Some(Command::Allow(args)) => match yori::allow::run(&config, &args) {
            Ok(text) => {
                println!("{}", text.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("yori allow: {e}");
                ExitCode::from(2)
            }
        },
        Some(Command::Ca(verb)) => ca(&config, &verb),
        Some(Command::Policy(PolicyCommand::Test { input, policy })) => {
            policy_test(&config, &input, policy.as_deref())
        }
        Some(Command::Run(args)) => run(config, &args),
        None => run(config, &cli.run),
    }
}

/// Runs the gateway until it is stopped.
fn run(config: config::Config, args: &yori::cli::RunArgs) -> ExitCode {
    if config.source.is_none() {
        log::info!(
            "no config file found at {}: running on the built-in default (observe mode)",
            config::DEFAULT_CONFIG_PATH
        );
    }
    let tls = if config.tls.enabled {
        // fail safe: a TLS listener that cannot present a trusted certificate must not start,
        // and YORI never serves plain HTTP on the TLS port instead
        match yori::tls::prepare(&config, true) {
            Ok(yori::tls::Prepared::Ready(certs)) => Some(certs),
            Ok(yori::tls::Prepared::WillCreate) => {
                eprintln!("yori: cannot start the TLS listener: no CA was created");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("yori: cannot start the TLS listener: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    match yori::server::build(config, tls, args) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            log::error!("cannot start: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `yori check`: the config, the policies (already compiled by `load`) and the TLS material.
fn check(c: &config::Config) -> ExitCode {
    let source = c
        .source
        .as_ref()
        .map_or("(built-in default)".into(), |p| p.display().to_string());
    if c.tls.enabled {
        match yori::tls::prepare(c, false) {
            Ok(yori::tls::Prepared::Ready(_)) => {}
            Ok(yori::tls::Prepared::WillCreate) => println!(
                "note: no local CA in {} yet; YORI creates one at start (or run `yori ca init`)",
                c.tls.ca_dir.display()
            ),
            Err(e) => {
                eprintln!("invalid configuration {source}:\n  {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!("configuration ok: {source}");
    ExitCode::SUCCESS
}

/// `yori ca init|export`.
fn ca(c: &config::Config, verb: &CaCommand) -> ExitCode {
    use yori::tls::ca::Ca;
    let dir = &c.tls.ca_dir;
    match verb {
        CaCommand::Init { force } => {
            match Ca::init(dir, *force, yori::tls::constraints(c).as_deref()) {
                Ok(ca) => {
                    println!(
                    "local CA created in {}\n  certificate: {}/{} (install it on each device: `yori ca export`)\n  key: {}/{} (mode 0600, never copy it off the router)\n  SHA-256 fingerprint: {}",
                    dir.display(),
                    dir.display(),
                    yori::tls::ca::CERT_FILE,
                    dir.display(),
                    yori::tls::ca::KEY_FILE,
                    ca.fingerprint()
                );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("yori ca init: {e}");
                    ExitCode::from(2)
                }
            }
        }
        CaCommand::Export { der } => {
            // only the certificate: exporting must not need the key
            let bytes = Ca::certificate(dir)
                .map_err(|e| e.to_string())
                .and_then(|cert| {
                    if *der { cert.to_der() } else { cert.to_pem() }.map_err(|e| e.to_string())
                });
            match bytes {
                Ok(b) => {
                    let mut out = std::io::stdout().lock();
                    if out.write_all(&b).and_then(|_| out.flush()).is_err() {
                        return ExitCode::from(1);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("yori ca export: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `yori policy test`: evaluates the input document and prints the combined decision.
fn policy_test(config: &config::Config, input: &std::path::Path, only: Option<&str>) -> ExitCode {
    let set = &config.policies.set;
    if let Some(name) = only {
        if !set.names().contains(&name) {
            eprintln!(
                "no policy `{name}` (loaded from {}: {})",
                set.origin,
                set.names().join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let doc = match std::fs::read_to_string(input)
        .map_err(|e| e.to_string())
        .and_then(|t| regorus::Value::from_json_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot read the input document {}: {e}", input.display());
            return ExitCode::from(2);
        }
    };
    let v = set.evaluate(&doc, only);
    let out = serde_json::json!({
        "action": v.action.as_str(),
        "policy": v.policy,
        "reason": v.reason,
        "errors": v.errors,
        "policies": set.names(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::SUCCESS
}
