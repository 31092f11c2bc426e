//! `yori`: parse the command line, load the config, build the services, run.
//! Exit codes: 0 ok, 2 bad config or usage, 1 runtime failure.

use clap::Parser;
use std::process::ExitCode;
use yori::cli::{Cli, Command};
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
