//! The command line: one file per subcommand with its Args and `run`.

pub mod access;
pub mod ack;
pub mod complete;
pub mod completions;
pub mod down;
pub mod external;
pub mod gitops;
pub mod init;
pub mod plan;
pub mod plugins;
pub mod profiles;
pub mod runbook;
pub mod status;
pub mod unlock;
pub mod up;
pub mod verify;
pub mod version;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::model::Source;
use crate::render::Request;
use crate::ui::{OutputFormat, Printer};

/// Bootstrap, verify and hand to GitOps an observability stack on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "telltale", version = version::LONG_VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes, shown under their own heading in each
/// command's help (as kubectl and helm do), apart from the command's own.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global Flags")]
pub struct GlobalArgs {
    /// Kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME", add = clap_complete::ArgValueCompleter::new(complete::contexts))]
    pub context: Option<String>,
    /// Path to the kubeconfig file
    #[arg(long, global = true, value_name = "FILE", env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the stack [default: monitoring, or the config's]
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Config file [default: ./telltale.yaml when it exists]
    #[arg(short = 'f', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Profile: a built-in name or a path to a Profile file (overrides the config's)
    #[arg(long, global = true, value_name = "NAME|PATH", add = clap_complete::ArgValueCompleter::new(complete::profiles))]
    pub profile: Option<String>,
    /// Override plugin values as helm's --set does: plugin.key=v,plugin.list[0]=v (repeatable; wins over everything)
    #[arg(long = "set", global = true, value_name = "PLUGIN.KEY=VALUE")]
    pub set: Vec<String>,
    /// As --set, but every value stays a string
    #[arg(long = "set-string", global = true, value_name = "PLUGIN.KEY=VALUE")]
    pub set_string: Vec<String>,
    /// As --set, the value being the contents of a file (at most 1 MiB)
    #[arg(long = "set-file", global = true, value_name = "PLUGIN.KEY=PATH")]
    pub set_file: Vec<String>,
    /// With a Fleet config: act on this cluster only (repeatable) [default: every cluster]
    #[arg(long = "cluster", global = true, value_name = "NAME")]
    pub cluster: Vec<String>,
    /// One cluster of a Fleet, as if it were its own config, with a JSON
    /// report: how `up`, `status` and `verify` run each cluster of a fleet
    #[arg(long = "fleet-member", global = true, value_name = "NAME", hide = true)]
    pub fleet_member: Option<String>,
    /// Add plugins from a directory (a plugin, or a directory of plugins; repeatable)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dir: Vec<PathBuf>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Never prompt; take defaults or fail
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Disable colours (also NO_COLOR)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// More output (repeatable)
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less output
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write telltale.yaml: a short wizard, or the same answers as flags
    ///
    /// Asks for the kube context (current one first), cluster name, profile,
    /// extra plugins, notification receivers and where each secret comes
    /// from, an SLO, retention and storage, and a GitOps repository, then
    /// shows a summary and writes the file (-f FILE, default ./telltale.yaml).
    /// Enter at every prompt gives a config `plan` accepts.
    ///
    /// Every question has a flag. With --yes nothing is asked and defaults
    /// are taken (the current context, the profile picked for it). Without a
    /// terminal nothing is asked either, and --context and --profile are
    /// required. No secret value is ever asked for or written: a secret is
    /// an env var, a file, an existing Secret, or `prompt` (asked by `up`).
    Init(Box<init::InitArgs>),
    /// Built-in and local profiles
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    /// Plugin catalogue and authoring
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Render the bundle to a directory and print the phases; no cluster needed
    #[command(
        after_help = "Examples:\n  telltale plan --profile homelab                 # render into ./telltale-out\n  telltale plan -f telltale.yaml --out bundle     # the config's stack into ./bundle\n  telltale plan --profile kind -o json | jq .releases"
    )]
    Plan(plan::PlanArgs),
    /// Install or upgrade the stack phase by phase (resumable, idempotent)
    #[command(
        after_help = "Examples:\n  telltale up --yes                               # preflight, every phase, then verify\n  telltale up --dry-run                           # what would change, nothing written\n  telltale up --from-phase alerting --skip-verify\n  telltale up --yes --confirm-context prod-eu-1   # a production-looking context"
    )]
    Up(up::UpArgs),
    /// Prove the stack live: metrics, alerts, logs, dashboards, load
    #[command(
        after_help = "Examples:\n  telltale verify                                 # port-forwards to the stack, every declared check\n  telltale verify --checks targets,rules --timeout 30s\n  telltale verify --prometheus-url http://127.0.0.1:9090 --alertmanager-url http://127.0.0.1:9093\n  telltale verify -o json --junit verify.xml"
    )]
    Verify(Box<verify::VerifyArgs>),
    /// Phases from the in-cluster journal, release versions and drift
    Status(status::StatusArgs),
    /// Commit the rendered state on a branch and open or update one pull request
    #[command(
        after_help = "Examples:\n  telltale gitops --repo ../infra --no-pr         # a local repository, push only\n  telltale gitops --repo git@github.com:org/infra.git --verify-report verify.json\n  telltale gitops --layout argocd --secrets external-secrets"
    )]
    Gitops(gitops::GitopsArgs),
    /// Uninstall in reverse phase order (keeps CRDs and volumes by default)
    #[command(
        after_help = "Examples:\n  telltale down --yes                             # keeps CRDs and volumes\n  telltale down --yes --keep-data=false           # also the namespace and its volumes"
    )]
    Down(down::DownArgs),
    /// Break a stale lock, naming its holder
    Unlock(unlock::UnlockArgs),
    /// Print the runbook of an alert
    Runbook(runbook::RunbookArgs),
    /// Acknowledge a firing alert: an Alertmanager silence that stops its escalation
    #[command(
        after_help = "Examples:\n  telltale ack NodeDown --alertmanager-url http://127.0.0.1:9093\n  telltale ack PodCrashLooping --matcher namespace=prod --comment 'looking into it' --duration 1h --alertmanager-url http://127.0.0.1:9093"
    )]
    Ack(ack::AckArgs),
    /// Print shell completions
    Completions(completions::CompletionsArgs),
    /// Print telltale's version, git commit and the versions it supports
    Version(version::VersionArgs),
    /// An executable plugin: `telltale NAME …` runs `telltale-NAME …` from PATH
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

impl GlobalArgs {
    pub fn printer(&self) -> Printer {
        let no_color = self.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if self.verbose > 0 {
            crate::process::set_trace(crate::ui::trace);
        }
        Printer {
            // A fleet member reports to the fleet run that started it: one
            // JSON document, whatever the fleet run's own format.
            format: if self.fleet_member.is_some() {
                OutputFormat::Json
            } else {
                self.output
            },
            color: !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }

    pub fn catalog(&self) -> Result<Catalog, CommandError> {
        Ok(Catalog::load(&self.plugin_dir)?)
    }

    /// The config file: `-f FILE` must exist; without it ./telltale.yaml is used when present.
    pub fn config_source(&self) -> Result<Option<Source>, CommandError> {
        let (path, explicit) = match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from("telltale.yaml"), false),
        };
        match crate::catalog::read_input_file(&path, crate::catalog::MAX_DOCUMENT_BYTES) {
            Ok(text) => Ok(Some(Source::new(path.display().to_string(), text))),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CommandError::bad_input(format!(
                "cannot read config {}",
                path.display()
            ))
            .with_source(&e)
            .with_hint("pass an existing file with -f, or run `telltale init` to write one")),
        }
    }

    /// What a Fleet's clusters take from the global flags.
    pub fn fleet_inputs(&self) -> crate::fleet::Inputs<'_> {
        crate::fleet::Inputs {
            plugin_dirs: &self.plugin_dir,
            overrides: Request {
                config: None,
                profile: self.profile.clone(),
                namespace: self.namespace.clone(),
                sets: self.set.clone(),
                set_strings: self.set_string.clone(),
                set_files: self.set_file.clone(),
                member: None,
            },
            at: access::at(self),
        }
    }

    /// Flags that name one cluster make no sense for a whole fleet: refused
    /// before anything runs.
    pub fn refuse_single_cluster_flags(&self, flags: &[(&str, bool)]) -> Result<(), CommandError> {
        let mut given: Vec<&str> = flags
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| *f)
            .collect();
        if self.context.is_some() {
            given.insert(0, "--context");
        }
        match given.first() {
            None => Ok(()),
            Some(flag) => Err(CommandError::bad_input(format!(
                "{flag} names one cluster, and this is a fleet: each cluster is acted on through its own context and settings"
            ))
            .with_hint("set it per cluster in the Fleet file (context, endpoints), or pick one cluster with --cluster NAME")),
        }
    }

    pub fn request(&self) -> Result<Request, CommandError> {
        Ok(Request {
            config: self.config_source()?,
            profile: self.profile.clone(),
            namespace: self.namespace.clone(),
            sets: self.set.clone(),
            set_strings: self.set_string.clone(),
            set_files: self.set_file.clone(),
            member: self.member(),
        })
    }

    /// The one cluster of a Fleet this run acts on: the fleet run's
    /// member, or a single `--cluster` for the commands that act on one
    /// cluster (`down`, `unlock`).
    pub fn member(&self) -> Option<String> {
        self.fleet_member
            .clone()
            .or_else(|| match self.cluster.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            })
    }

    /// The config file when it is a Fleet that this run fans out over (not
    /// when it runs as one member of it), parsed and checked.
    pub fn fleet(&self) -> Result<Option<crate::fleet::Fleet>, CommandError> {
        if self.fleet_member.is_some() {
            return Ok(None);
        }
        match self.config_source()? {
            Some(source) if crate::model::fleet::is_fleet(&source) => {
                let parsed = crate::model::fleet::parse(&source)?;
                Ok(Some(crate::fleet::Fleet::new(
                    source,
                    parsed,
                    &self.cluster,
                )?))
            }
            _ => Ok(None),
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CommandError> {
    let printer = cli.global.printer();
    match cli.command {
        Command::Init(args) => init::run(*args, &cli.global, &printer),
        Command::Profiles(cmd) => profiles::run(cmd, &cli.global, &printer),
        Command::Plugins(cmd) => plugins::run(cmd, &cli.global, &printer),
        Command::Plan(args) => plan::run(args, &cli.global, &printer),
        Command::Up(args) => up::run(args, &cli.global, &printer),
        Command::Verify(args) => verify::run(*args, &cli.global, &printer),
        Command::Status(args) => status::run(args, &cli.global, &printer),
        Command::Gitops(args) => gitops::run(args, &cli.global, &printer),
        Command::Down(args) => down::run(args, &cli.global, &printer),
        Command::Unlock(args) => unlock::run(args, &cli.global, &printer),
        Command::Runbook(args) => runbook::run(args, &cli.global, &printer),
        Command::Ack(args) => ack::run(args, &cli.global, &printer),
        Command::Completions(args) => completions::run(args, &printer),
        Command::Version(args) => version::run(args, &cli.global, &printer),
        Command::External(args) => external::run(args),
    }
}
