//! `yori`: parse the command line, load the config, build the services, run.
//! Exit codes: 0 ok, 2 bad config or usage, 1 runtime failure.

use clap::Parser;
use std::process::ExitCode;
use yori::cli::{Cli, Command, PolicyCommand};
use yori::config;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,yori=info"))
        .init();
    let cli = Cli::parse();
    let path = config::locate(cli.config.as_deref());
    let loaded = config::load(path.as_deref());
    match cli.command {
        Some(Command::Check) => match loaded {
            Ok(c) => {
                println!(
                    "configuration ok: {}",
                    c.source
                        .map_or("(built-in default)".into(), |p| p.display().to_string())
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Some(Command::Policy(PolicyCommand::Test { input, policy })) => match loaded {
            Ok(c) => policy_test(&c, &input, policy.as_deref()),
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        cmd => {
            let args = match cmd {
                Some(Command::Run(a)) => a,
                _ => cli.run,
            };
            let config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(2);
                }
            };
            if config.source.is_none() {
                log::info!(
                    "no config file found at {}: running on the built-in default (observe mode)",
                    config::DEFAULT_CONFIG_PATH
                );
            }
            match yori::server::build(config, &args) {
                Ok(server) => server.run_forever(),
                Err(e) => {
                    log::error!("cannot start: {e:#}");
                    ExitCode::from(1)
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
