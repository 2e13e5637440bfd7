//! The `bootcount` command: [`run`] parses the arguments (clap), opens the environment through
//! fw-env's library, runs one command over the pure engine and returns its exit code; each
//! command returns a typed [`Report`], rendered by [`print`]. Errors carry their exit code
//! ([`CliError::exit_code`]).

use crate::cmdline::{booted_slot, UnknownBootedSlot};
use crate::engine::{self, Booted, Op, OpError};
use crate::health;
use crate::slots::{ConfigError, SlotConfig};
use crate::state::{BadReason, BootLimit, Reason};
use clap::{Parser, Subcommand};
use fw_env::{Changes, Vars};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fw_env::Store;
use std::time::Duration;

/// Default slot file; the built-in one is used when it does not exist.
pub const DEFAULT_SLOTS_PATH: &str = "/etc/bootcount/slots.toml";
/// Default health-check directory.
pub const DEFAULT_HEALTH_DIR: &str = "/etc/bootcount/health.d";
/// Environment variable overriding the reboot command (run with `sh -c`).
pub const REBOOT_VAR: &str = "BOOTCOUNT_REBOOT_CMD";

/// Boot counting, trials and rollback for the ZBot (see docs/boot-contract.md).
#[derive(Debug, Parser)]
#[command(name = "bootcount", version)]
pub struct Cli {
    /// fw_env.config describing where the U-Boot environment is [default: /etc/fw_env.config]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// U-Boot's default environment, used when no valid copy exists [default:
    /// /etc/u-boot-initial-env if present]
    #[arg(short = 'f', long = "defaults", global = true, value_name = "FILE")]
    pub defaults: Option<PathBuf>,
    /// Slot file [default: /etc/bootcount/slots.toml if present, else built in]
    #[arg(long = "slots", global = true, value_name = "FILE")]
    pub slots: Option<PathBuf>,
    /// Kernel command line to read the running slot from
    #[arg(
        long = "cmdline",
        global = true,
        value_name = "FILE",
        default_value = "/proc/cmdline"
    )]
    pub cmdline: PathBuf,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the running slot, the next boot, the trial and the last rollback
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Commit the running slot's trial (it becomes the primary slot)
    MarkGood {
        /// Succeed without writing when there is no trial to commit (for boot services)
        #[arg(long)]
        if_trial: bool,
    },
    /// Abandon the running slot: fall back to the last good slot or recovery
    MarkBad {
        /// Why (kept in zbot_rb_reason until `ack`; one printable line without backslashes,
        /// 1..200 bytes)
        #[arg(long, default_value = "marked bad")]
        reason: String,
    },
    /// Boot SLOT on the next boot only
    BootOnce {
        /// Slot name
        slot: String,
        /// Reboot afterwards
        #[arg(long)]
        reboot: bool,
    },
    /// Make SLOT the persistent choice (verified by a trial unless it is the recovery slot)
    SetPrimary {
        /// Slot name
        slot: String,
    },
    /// Start the trial of a freshly installed SLOT
    Trial {
        /// Slot name
        slot: String,
        /// Attempts before giving up (1..9) [default: zbot_bootlimit or the slot file's]
        #[arg(long, value_parser = clap::value_parser!(BootLimit))]
        limit: Option<BootLimit>,
        /// Reboot afterwards
        #[arg(long)]
        reboot: bool,
    },
    /// Print the device to install into, and reserve it (unbootable until `trial`)
    InstallTarget {
        /// Print the slot name and device as JSON
        #[arg(long)]
        json: bool,
        /// Only print: do not reserve
        #[arg(long)]
        no_reserve: bool,
    },
    /// What the bootloader will do on the next boot, and why (writes nothing)
    Preview {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Apply the bootloader's step to the environment, as U-Boot would (host tests)
    BootloaderStep {
        /// Also print the changes written
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge (clear) the last rollback
    Ack,
    /// Health checks
    Health {
        /// What to do
        #[command(subcommand)]
        command: HealthCommand,
    },
}

/// `health` subcommands.
#[derive(Debug, Subcommand)]
pub enum HealthCommand {
    /// Run the checks, then mark good, or mark bad and reboot (exit 0 healthy, 1 unhealthy and
    /// marked bad, 2 could not check)
    Run(HealthRun),
}

/// `health run`'s options.
#[derive(Debug, clap::Args)]
pub struct HealthRun {
    /// Directory holding required.d/ and wanted.d/
    #[arg(long, default_value = DEFAULT_HEALTH_DIR)]
    pub dir: PathBuf,
    /// Seconds each check may run before it and its process group are killed (more than
    /// 0, at most 3600)
    #[arg(long, default_value = "60", value_parser = health::parse_timeout)]
    pub timeout: Duration,
    /// Do not reboot after marking bad
    #[arg(long)]
    pub no_reboot: bool,
    /// Only check (mark bad on failure); leave the commit to `mark-good --if-trial`
    /// (systemd: after boot-complete.target)
    #[arg(long)]
    pub no_commit: bool,
}

/// Everything that stops a command. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The environment could not be read or written.
    #[error(transparent)]
    Env(#[from] fw_env::Error),
    /// The slot file.
    #[error(transparent)]
    Slots(#[from] ConfigError),
    /// The policy refused.
    #[error(transparent)]
    Op(#[from] OpError),
    /// `mark-bad --reason` cannot be stored (refused like the policy's refusals: exit 1).
    #[error(transparent)]
    Reason(#[from] BadReason),
    /// The command line names an unknown slot.
    #[error(transparent)]
    Cmdline(#[from] UnknownBootedSlot),
    /// A file could not be read.
    #[error("cannot read {path}: {source}{hint}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The command line is not understood (clap's message, with the usage).
    #[error("{0}")]
    Usage(clap::Error),
    /// `health run` could not check the running slot, or could not record its verdict
    /// (nothing was written).
    #[error("health run could not check: {0}")]
    CouldNotCheck(#[source] Box<CliError>),
    /// The reboot command failed.
    #[error("reboot command {cmd:?} failed: {why}")]
    Reboot {
        /// The command.
        cmd: String,
        /// What happened.
        why: String,
    },
}

impl CliError {
    /// The exit code the command ends with: 2 for a usage error and for a `health run` that
    /// could not check; 1 for everything else (refused or failed; nothing written).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::CouldNotCheck(_) => 2,
            _ => 1,
        }
    }
}

/// What was read: the variables as U-Boot sees them, and a warning when no copy is valid.
struct EnvRead {
    vars: Vars,
    warning: Option<String>,
}

fn env_read(s: &fw_env::Snapshot) -> EnvRead {
    EnvRead {
        vars: fw_env::codec::uboot_view(&s.vars),
        warning: s.warning(),
    }
}

/// One locked read.
fn read_env(store: &Store) -> Result<EnvRead, CliError> {
    Ok(env_read(&store.read()?))
}

/// Under one lock: read, let `decide` compute changes, write them (nothing when they change
/// nothing, or are empty: U-Boot does not save its defaults either). Returns whether a write
/// happened and the read's warning.
fn update_env(
    store: &Store,
    decide: impl FnOnce(&EnvRead) -> Result<Changes, CliError>,
) -> Result<(bool, Option<String>), CliError> {
    let (warning, report) = store.update(|snap| {
        let r = env_read(snap);
        Ok::<_, CliError>((decide(&r)?, r.warning))
    })?;
    Ok((report.written, warning))
}

/// Load the slot file: explicit, else the default path if present, else built in.
pub fn load_slots(path: Option<&Path>) -> Result<SlotConfig, CliError> {
    match path {
        Some(p) => Ok(SlotConfig::load(p)?),
        None if Path::new(DEFAULT_SLOTS_PATH).exists() => {
            Ok(SlotConfig::load(Path::new(DEFAULT_SLOTS_PATH))?)
        }
        None => Ok(SlotConfig::builtin()),
    }
}

/// Open the environment the options describe (`$FW_ENV_LOCK_FILE` and `$FW_ENV_LOCK_TIMEOUT`
/// are read here, as fw-env's own CLI reads them).
/// A write that starts from the defaults file (no valid copy) is refused unless it defines
/// `bootcmd` and the policy's variables (`SlotConfig::default_env`: `next_boot`, each slot's
/// root arguments, `root`), so a lost environment is never replaced by one that cannot boot.
pub fn open_env(cli: &Cli) -> Result<fw_env::Store, CliError> {
    let mut options = fw_env::OpenOptions {
        defaults: cli.defaults.clone(),
        ..fw_env::OpenOptions::default()
    }
    .with_lock_vars(
        std::env::var_os(fw_env::open::LOCK_FILE_VAR),
        std::env::var_os(fw_env::open::LOCK_TIMEOUT_VAR),
    )?;
    if let Some(config) = &cli.config {
        options.config = config.clone();
    }
    let store = options.open()?;
    // A slot file that cannot be loaded is reported by `run`, which loads it again.
    Ok(match load_slots(cli.slots.as_deref()) {
        Ok(cfg) => store.with_required_defaults(
            cfg.default_env().into_iter().map(|(name, _)| name),
            "bootcount's boot policy",
        ),
        Err(_) => store,
    })
}

/// Output streams and the reboot hook, injectable for tests.
pub struct Ctx<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// Called to reboot.
    pub reboot: &'a mut dyn FnMut() -> Result<(), CliError>,
}

/// Reboot with `$BOOTCOUNT_REBOOT_CMD` or `reboot`. A variable that is set but empty (or
/// only blanks) is refused rather than run: `sh -c ""` succeeds without rebooting.
pub fn system_reboot() -> Result<(), CliError> {
    let cmd = match std::env::var_os(REBOOT_VAR) {
        None => std::ffi::OsString::from("reboot"),
        Some(v) => v,
    };
    let shown = cmd.to_string_lossy().into_owned();
    if shown.trim().is_empty() {
        return Err(CliError::Reboot {
            cmd: shown,
            why: format!(
                "${REBOOT_VAR} is set but empty: unset it (to use `reboot`) or give a command"
            ),
        });
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(CliError::Reboot {
            cmd: shown,
            why: s.to_string(),
        }),
        Err(e) => Err(CliError::Reboot {
            cmd: shown,
            why: e.to_string(),
        }),
    }
}

fn read_cmdline(path: &Path) -> Result<String, CliError> {
    crate::files::read_small_text(path, crate::files::MAX_CONFIG_BYTES).map_err(|source| {
        CliError::Read {
            path: path.to_owned(),
            source,
            hint: " (the kernel command line: give another with --cmdline FILE)",
        }
    })
}

fn warn(ctx: &mut Ctx, warning: &Option<String>) {
    if let Some(w) = warning {
        let _ = writeln!(ctx.err, "bootcount: {w}");
    }
}

/// What a command has to say on stdout, rendered by [`print`].
#[derive(Debug)]
pub enum Report {
    /// A line: the policy's message, or `health run`'s verdict.
    Line(String),
    /// `status`.
    Status {
        /// The state.
        status: engine::Status,
        /// Whether a valid copy was found.
        env_valid: bool,
        /// As JSON.
        json: bool,
    },
    /// `install-target`.
    InstallTarget {
        /// The slot chosen.
        slot: String,
        /// Its device.
        device: String,
        /// Whether it was reserved.
        reserved: bool,
        /// The policy's message (stderr in text mode).
        message: String,
        /// As JSON.
        json: bool,
    },
    /// `preview` (`written: None`) and `bootloader-step`.
    Decision {
        /// The bootloader's decision.
        decision: engine::BootDecision,
        /// Whether `bootloader-step` wrote it.
        written: Option<bool>,
        /// As JSON.
        json: bool,
    },
}

/// Render a report: the one printer of the command's results.
pub fn print(report: &Report, cfg: &SlotConfig, ctx: &mut Ctx) {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json");
    let _ = match report {
        Report::Line(line) => writeln!(ctx.out, "{line}"),
        Report::Status {
            status,
            env_valid,
            json: true,
        } => {
            let mut v = serde_json::to_value(status).expect("serializable");
            v["env_valid"] = serde_json::Value::Bool(*env_valid);
            writeln!(ctx.out, "{}", pretty(&v))
        }
        Report::Status {
            status, env_valid, ..
        } => write!(ctx.out, "{status}").and_then(|()| match env_valid {
            true => Ok(()),
            false => writeln!(
                ctx.out,
                "environment:   no valid copy: U-Boot uses its defaults (boots recovery)"
            ),
        }),
        Report::InstallTarget {
            slot,
            device,
            reserved,
            json: true,
            ..
        } => {
            let v = serde_json::json!({ "slot": slot, "device": device, "reserved": reserved });
            writeln!(ctx.out, "{v}")
        }
        Report::InstallTarget {
            device, message, ..
        } => writeln!(ctx.out, "{device}").and_then(|()| writeln!(ctx.err, "bootcount: {message}")),
        Report::Decision {
            decision: d,
            written,
            json,
        } => print_decision(d, *written, *json, cfg, ctx),
    };
}

fn print_decision(
    d: &engine::BootDecision,
    written: Option<bool>,
    json: bool,
    cfg: &SlotConfig,
    ctx: &mut Ctx,
) -> std::io::Result<()> {
    let changes: serde_json::Value = d
        .changes
        .iter()
        .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
        .collect();
    match (written, json) {
        (None, true) => {
            let v = serde_json::json!({
                "slot": cfg.name(d.slot), "reason": d.explain(cfg), "kernel_args": d.kernel_args(cfg),
                "changes": changes,
            });
            writeln!(
                ctx.out,
                "{}",
                serde_json::to_string_pretty(&v).expect("json")
            )
        }
        (None, false) => {
            writeln!(ctx.out, "next boot: {}", d.explain(cfg))?;
            writeln!(ctx.out, "kernel:    {}", d.kernel_args(cfg))?;
            if d.changes.is_empty() {
                writeln!(ctx.out, "writes:    nothing")?;
            }
            for (k, v) in d.changes.iter() {
                match v {
                    Some(v) => writeln!(ctx.out, "writes:    {k}={v}")?,
                    None => writeln!(ctx.out, "writes:    unset {k}")?,
                }
            }
            Ok(())
        }
        (Some(written), true) => {
            let v = serde_json::json!({
                "slot": cfg.name(d.slot), "reason": d.explain(cfg), "root": d.root_args,
                "kernel_args": d.kernel_args(cfg), "changes": changes, "written": written,
            });
            writeln!(ctx.out, "{v}")
        }
        (Some(_), false) => writeln!(ctx.out, "{}", cfg.name(d.slot)),
    }
}

/// Run a userspace operation as one locked update; returns its message.
fn run_op(
    ctx: &mut Ctx,
    store: &Store,
    cfg: &SlotConfig,
    cmdline: &Path,
    op: Op,
) -> Result<Report, CliError> {
    let needs_booted = matches!(op, Op::MarkGood | Op::MarkBad { .. } | Op::Trial { .. });
    let cmdline = if needs_booted {
        Some(read_cmdline(cmdline)?)
    } else {
        None
    };
    let mut message = String::new();
    let (_, warning) = update_env(store, |r| {
        let booted = match &cmdline {
            Some(c) => booted_slot(cfg, &r.vars, c)?,
            None => None,
        };
        let out = engine::apply_op(cfg, &r.vars, booted, &op)?;
        message = out.message;
        Ok(out.changes)
    })?;
    warn(ctx, &warning);
    Ok(Report::Line(message))
}

fn booted_of(cfg: &SlotConfig, r: &EnvRead, cmdline: &Path) -> Result<Option<Booted>, CliError> {
    Ok(booted_slot(cfg, &r.vars, &read_cmdline(cmdline)?)?)
}

/// The binary's whole life: parse, open, run, print; on an error, its chain on one line.
/// Returns the exit code (for in-process callers; the binary uses [`run`]).
pub fn main_with(args: Vec<std::ffi::OsString>, ctx: &mut Ctx) -> i32 {
    match run_code(args, ctx) {
        Ok(code) => i32::from(code),
        Err(e) => {
            print_error(&e, ctx.err);
            i32::from(e.exit_code())
        }
    }
}

/// Print an error as the binary does: clap's usage text, or `bootcount: error: ` and the
/// error with its causes on one line.
pub fn print_error(e: &CliError, err: &mut dyn Write) {
    let _ = match e {
        CliError::Usage(clap) => write!(err, "{clap}"),
        _ => writeln!(err, "bootcount: error: {}", fw_env::error_chain(e)),
    };
}

/// Parse `args` and run the command. Ok: 0 done; for `health run`, 1 unhealthy and marked bad.
/// Errors carry their exit code ([`CliError::exit_code`]); the caller prints them.
pub fn run(args: Vec<std::ffi::OsString>, ctx: &mut Ctx) -> Result<ExitCode, CliError> {
    run_code(args, ctx).map(ExitCode::from)
}

fn run_code(args: Vec<std::ffi::OsString>, ctx: &mut Ctx) -> Result<u8, CliError> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if e.exit_code() == 0 => {
            let _ = write!(ctx.out, "{e}");
            return Ok(0);
        }
        Err(e) => return Err(CliError::Usage(e)),
    };
    if let Command::Health {
        command: HealthCommand::Run(h),
    } = &cli.command
    {
        return health_run(ctx, &cli, h);
    }
    let store = open_env(&cli)?;
    let cfg = load_slots(cli.slots.as_deref())?;
    let (report, reboot) = execute(&cli, &store, &cfg, ctx)?;
    print(&report, &cfg, ctx);
    if reboot {
        (ctx.reboot)()?;
    }
    Ok(0)
}

/// Run one parsed command (all but `health run`): its report, and whether to reboot after
/// printing it.
fn execute(
    cli: &Cli,
    store: &Store,
    cfg: &SlotConfig,
    ctx: &mut Ctx,
) -> Result<(Report, bool), CliError> {
    let cmdline = &cli.cmdline;
    let report = match &cli.command {
        Command::Status { json } => {
            let r = read_env(store)?;
            warn(ctx, &r.warning);
            let booted = booted_of(cfg, &r, &cli.cmdline)?;
            Ok(Report::Status {
                status: engine::status(cfg, &r.vars, booted),
                env_valid: r.warning.is_none(),
                json: *json,
            })
        }
        Command::MarkGood { if_trial: false } => run_op(ctx, store, cfg, cmdline, Op::MarkGood),
        Command::MarkGood { if_trial: true } => {
            commit_if_trial(store, cfg, &cli.cmdline).map(Report::Line)
        }
        Command::MarkBad { reason } => run_op(
            ctx,
            store,
            cfg,
            cmdline,
            Op::MarkBad {
                reason: Reason::parse(reason)?,
            },
        ),
        Command::BootOnce { slot, reboot } => {
            let report = run_op(ctx, store, cfg, cmdline, Op::BootOnce(slot.clone()))?;
            return Ok((report, *reboot));
        }
        Command::SetPrimary { slot } => {
            run_op(ctx, store, cfg, cmdline, Op::SetPrimary(slot.clone()))
        }
        Command::Trial {
            slot,
            limit,
            reboot,
        } => {
            let report = run_op(
                ctx,
                store,
                cfg,
                cmdline,
                Op::Trial {
                    slot: slot.clone(),
                    limit: *limit,
                },
            )?;
            return Ok((report, *reboot));
        }
        Command::InstallTarget { json, no_reserve } => {
            install_target(store, cfg, &cli.cmdline, !no_reserve, *json)
        }
        Command::Preview { json } => {
            let r = read_env(store)?;
            warn(ctx, &r.warning);
            Ok(Report::Decision {
                decision: engine::bootloader_step(cfg, &r.vars),
                written: None,
                json: *json,
            })
        }
        Command::BootloaderStep { json } => {
            let mut decision = None;
            let (written, _) = update_env(store, |r| {
                let d = engine::bootloader_step(cfg, &r.vars);
                let c = d.changes.clone();
                decision = Some(d);
                Ok(c)
            })?;
            Ok(Report::Decision {
                decision: decision.expect("decided"),
                written: Some(written),
                json: *json,
            })
        }
        Command::Ack => run_op(ctx, store, cfg, cmdline, Op::Ack),
        Command::Health { .. } => unreachable!("health run is run by run_code"),
    };
    Ok((report?, false))
}

/// `install-target`: choose the slot to install into and (unless `reserve` is false) mark it
/// unbootable until `trial`, in one locked update.
fn install_target(
    store: &Store,
    cfg: &SlotConfig,
    cmdline: &Path,
    reserve: bool,
    json: bool,
) -> Result<Report, CliError> {
    let cmdline = read_cmdline(cmdline)?;
    let mut chosen = None;
    let mut decide = |r: &EnvRead| {
        let booted = booted_slot(cfg, &r.vars, &cmdline)?;
        let (t, out) = engine::install_target(cfg, &r.vars, booted)?;
        chosen = Some((t, out.message));
        Ok(if reserve { out.changes } else { Changes::new() })
    };
    if reserve {
        update_env(store, decide)?;
    } else {
        decide(&read_env(store)?)?;
    }
    let (t, message) = chosen.expect("decided");
    let slot = cfg.slot(t);
    Ok(Report::InstallTarget {
        slot: slot.name.clone(),
        device: slot.device.clone(),
        reserved: reserve,
        message,
        json,
    })
}

/// `mark-good --if-trial`: commit when a trial of the running slot is active, else no write.
fn commit_if_trial(store: &Store, cfg: &SlotConfig, cmdline: &Path) -> Result<String, CliError> {
    let cmdline = read_cmdline(cmdline)?;
    let mut message = String::new();
    update_env(store, |r| {
        let booted = booted_slot(cfg, &r.vars, &cmdline)?;
        match engine::apply_op(cfg, &r.vars, booted, &Op::MarkGood) {
            Ok(out) => {
                message = out.message;
                Ok(out.changes)
            }
            Err(OpError::NothingToCommit(why)) => {
                message = format!("nothing to commit: {why}");
                Ok(Changes::new())
            }
            Err(e) => Err(e.into()),
        }
    })?;
    Ok(message)
}

/// `health run`: 0 healthy (committed, or nothing to commit), 1 unhealthy (marked bad, or the
/// policy refused to: the recovery slot), [`CliError::CouldNotCheck`] (exit 2) when the
/// environment, the slot file or the running slot cannot be known before the checks.
fn health_run(ctx: &mut Ctx, cli: &Cli, h: &HealthRun) -> Result<u8, CliError> {
    // Know the running slot before spending time on checks.
    let before_checks = |ctx: &mut Ctx| -> Result<_, CliError> {
        let store = open_env(cli)?;
        let cfg = load_slots(cli.slots.as_deref())?;
        let r = read_env(&store)?;
        warn(ctx, &r.warning);
        let booted = booted_of(&cfg, &r, &cli.cmdline)?.ok_or(OpError::BootedUnknown)?;
        Ok((store, cfg, booted))
    };
    let (store, cfg, booted) =
        before_checks(ctx).map_err(|e| CliError::CouldNotCheck(Box::new(e)))?;
    let verdict = {
        let out = &mut *ctx.out;
        health::run_checks(&h.dir, h.timeout, |c| {
            let _ = writeln!(out, "bootcount: {}", c.describe());
        })
    };
    for n in &verdict.notes {
        let _ = writeln!(ctx.err, "bootcount: warning: {n}");
    }
    let name = cfg.name(booted.slot);
    if verdict.healthy() {
        let message = if h.no_commit {
            "checks passed (commit left to `bootcount mark-good --if-trial`)".to_string()
        } else {
            commit_if_trial(&store, &cfg, &cli.cmdline)?
        };
        print(
            &Report::Line(format!("bootcount: {name} is healthy: {message}")),
            &cfg,
            ctx,
        );
        return Ok(0);
    }
    let reason = verdict.reason().expect("unhealthy has a reason");
    let _ = writeln!(
        ctx.err,
        "bootcount: {name} is unhealthy{}: {reason}",
        if verdict.could_not_check() {
            " (a required check could not run, which counts as a failure)"
        } else {
            ""
        }
    );
    let report = run_op(ctx, &store, &cfg, &cli.cmdline, Op::MarkBad { reason })?;
    print(&report, &cfg, ctx);
    if !h.no_reboot {
        (ctx.reboot)()?;
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment is opened through fw-env's library API and its error kept whole (it
    /// used to be flattened to a string labelled with the config path).
    #[test]
    fn a_missing_defaults_file_keeps_fw_envs_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("fw_env.config");
        let env = dir.path().join("uboot.env");
        std::fs::write(&cfg, format!("{} 0 0x400\n", env.display())).unwrap();
        let missing = dir.path().join("no-defaults");
        let cli = Cli::try_parse_from([
            "bootcount".as_ref(),
            "-c".as_ref(),
            cfg.as_os_str(),
            "-f".as_ref(),
            missing.as_os_str(),
            "status".as_ref(),
        ])
        .unwrap();
        let e = open_env(&cli).unwrap_err();
        assert!(
            matches!(e, CliError::Env(fw_env::Error::Storage(_))),
            "{e:?}"
        );
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
    }

    fn run_in_process(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut reboot = || Ok(());
        let code = main_with(
            std::iter::once("bootcount")
                .chain(args.iter().copied())
                .map(Into::into)
                .collect(),
            &mut Ctx {
                out: &mut out,
                err: &mut err,
                reboot: &mut reboot,
            },
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// `health run` tells "could not check" (2) from "unhealthy, marked bad" (1, in
    /// tests/stories.rs): S95bootcount and systemd see which it was.
    #[test]
    fn exit_codes_are_carried_by_the_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("no-such.config");
        let cfg = cfg.to_str().unwrap();
        let (code, _, err) = run_in_process(&["-c", cfg, "health", "run", "--no-reboot"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("health run could not check") && err.contains(cfg),
            "{err}"
        );
        let (code, _, err) = run_in_process(&["-c", cfg, "status"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.starts_with("bootcount: error: ") && err.contains(cfg),
            "{err}"
        );
        let (code, _, err) = run_in_process(&["trial", "otafs", "--limit", "10"]);
        assert_eq!(code, 2, "{err}");
        let (code, out, _) = run_in_process(&["--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Usage: bootcount"), "{out}");
    }
}
