//! Command line: `yori` runs the gateway; verbs check config, manage the CA and test policies.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "yori",
    version,
    about = "YORI: a home LLM gateway that audits, alerts on and blocks AI calls by household policy"
)]
pub struct Cli {
    /// Config file (YAML). Default: $YORI_CONFIG, else /usr/local/etc/yori/yori.conf if it
    /// exists, else the built-in default.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Run in the background (daemon), writing `server.pid_file`.
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// Take over the listening sockets of a running YORI (zero-downtime upgrade through
    /// `server.upgrade_sock`; send the old process SIGQUIT).
    #[arg(short = 'u', long)]
    pub upgrade: bool,
    /// Load the config, build every service, then exit without serving.
    #[arg(short = 't', long)]
    pub test: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default when no verb is given).
    Run(RunArgs),
    /// Validate the config and compile every policy; prints every problem and exits 2 if there is one.
    Check,
    /// Household policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// "Ask a parent": let a device past a policy for a while, or list and revoke approvals.
    /// Run on the router: it writes the audit database, which devices cannot reach.
    Allow(AllowArgs),
    /// The local certificate authority for HTTPS interception (in `tls.ca_dir`).
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["device", "list", "revoke"])))]
pub struct AllowArgs {
    /// The code from a block answer, a device name from `devices`, or a client IP.
    pub device: Option<String>,
    /// How long: 30m, 2h, 1h30m, 1d (at most 7 days).
    #[arg(long = "for", value_name = "DURATION", requires = "device")]
    pub duration: Option<String>,
    /// Only this policy (a code names its own); default: every policy.
    #[arg(long, value_name = "NAME", requires = "device")]
    pub policy: Option<String>,
    /// List the approvals of the last 7 days, active or not.
    #[arg(long)]
    pub list: bool,
    /// Revoke an approval by its id (from --list).
    #[arg(long, value_name = "ID")]
    pub revoke: Option<i64>,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create the local CA (`ca.crt`, and `ca.key` readable only by its owner). Refuses to replace
    /// an existing one unless --force.
    Init {
        /// Replace an existing CA: every device must then install the new certificate.
        #[arg(long)]
        force: bool,
    },
    /// Print the CA certificate for installing on devices (PEM, or binary DER with --der).
    Export {
        /// DER instead of PEM (some Android and Windows dialogs want it).
        #[arg(long)]
        der: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the decision for a policy input document (a dry run, for writing your own rules).
    Test {
        /// JSON input document, as a policy sees it (see DESIGN.md, "Policy input document").
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Evaluate only this policy (its file name without .rego).
        #[arg(long, value_name = "NAME")]
        policy: Option<String>,
    },
}
