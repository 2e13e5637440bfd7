//! The `bootcount` command: argument parsing (clap), then the engine over an [`EnvAccess`].

use crate::cmdline::{booted_slot, UnknownBootedSlot};
use crate::engine::{self, Booted, Op, OpError};
use crate::health;
use crate::slots::{ConfigError, SlotConfig};
use clap::{Parser, Subcommand};
use fw_env::{Changes, Vars};
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
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
        /// Why (kept in zbot_rb_reason until `ack`)
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
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
        limit: Option<u8>,
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
    /// Run the checks, then mark good, or mark bad and reboot
    Run {
        /// Directory holding required.d/ and wanted.d/
        #[arg(long, default_value = DEFAULT_HEALTH_DIR)]
        dir: PathBuf,
        /// Seconds each check may run before it and its process group are killed (more than
        /// 0, at most 3600)
        #[arg(long, default_value = "60", value_parser = health::parse_timeout)]
        timeout: Duration,
        /// Do not reboot after marking bad
        #[arg(long)]
        no_reboot: bool,
        /// Only check (mark bad on failure); leave the commit to `mark-good --if-trial`
        /// (systemd: after boot-complete.target)
        #[arg(long)]
        no_commit: bool,
    },
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
    /// The reboot command failed.
    #[error("reboot command {cmd:?} failed: {why}")]
    Reboot {
        /// The command.
        cmd: String,
        /// What happened.
        why: String,
    },
}

/// What was read: the variables as U-Boot sees them, and a warning when no copy is valid.
pub struct EnvRead {
    /// The variables.
    pub vars: Vars,
    /// Set when U-Boot would use its defaults.
    pub warning: Option<String>,
}

/// Access to the environment: one read, or one locked read-decide-write.
pub trait EnvAccess {
    /// Read a snapshot.
    fn read(&self) -> Result<EnvRead, CliError>;
    /// Under one lock: read, let `decide` compute changes, write them (no write if they change
    /// nothing). Returns whether a write happened.
    fn update(
        &self,
        decide: &mut dyn FnMut(&EnvRead) -> Result<Changes, CliError>,
    ) -> Result<bool, CliError>;
}

fn env_read(s: &fw_env::Snapshot) -> EnvRead {
    EnvRead {
        vars: fw_env::codec::uboot_view(&s.vars),
        warning: s.warning(),
    }
}

impl EnvAccess for fw_env::Store {
    fn read(&self) -> Result<EnvRead, CliError> {
        Ok(env_read(&fw_env::Store::read(self)?))
    }
    fn update(
        &self,
        decide: &mut dyn FnMut(&EnvRead) -> Result<Changes, CliError>,
    ) -> Result<bool, CliError> {
        // One locked read and one decision. An empty change set writes nothing, not even over
        // an invalid environment (U-Boot does not save its defaults either).
        let ((), report) = fw_env::Store::update(self, |snap| {
            Ok::<_, CliError>((decide(&env_read(snap))?, ()))
        })?;
        Ok(report.written)
    }
}

/// An environment in memory (tests, simulations).
#[derive(Debug, Default)]
pub struct MemEnv {
    /// The variables.
    pub vars: RefCell<Vars>,
    /// Number of writes done.
    pub writes: RefCell<usize>,
}

impl EnvAccess for MemEnv {
    fn read(&self) -> Result<EnvRead, CliError> {
        Ok(EnvRead {
            vars: self.vars.borrow().clone(),
            warning: None,
        })
    }
    fn update(
        &self,
        decide: &mut dyn FnMut(&EnvRead) -> Result<Changes, CliError>,
    ) -> Result<bool, CliError> {
        let changes = decide(&self.read()?)?;
        if changes.is_noop_for(&self.vars.borrow()) {
            return Ok(false);
        }
        self.vars.borrow_mut().apply(&changes).expect("valid names");
        *self.writes.borrow_mut() += 1;
        Ok(true)
    }
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

fn changes_json(c: &Changes) -> serde_json::Value {
    c.iter()
        .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
        .collect()
}

fn warn(ctx: &mut Ctx, r: &EnvRead) {
    if let Some(w) = &r.warning {
        let _ = writeln!(ctx.err, "bootcount: {w}");
    }
}

/// Run a userspace operation as one locked update; prints its message.
fn run_op(
    ctx: &mut Ctx,
    env: &dyn EnvAccess,
    cfg: &SlotConfig,
    cmdline: &Path,
    op: Op,
) -> Result<(), CliError> {
    let needs_booted = matches!(op, Op::MarkGood | Op::MarkBad { .. } | Op::Trial { .. });
    let cmdline = if needs_booted {
        Some(read_cmdline(cmdline)?)
    } else {
        None
    };
    let mut message = String::new();
    let mut warning = None;
    env.update(&mut |r| {
        warning = r.warning.clone();
        let booted = match &cmdline {
            Some(c) => booted_slot(cfg, &r.vars, c)?,
            None => None,
        };
        let out = engine::apply_op(cfg, &r.vars, booted, &op)?;
        message = out.message;
        Ok(out.changes)
    })?;
    if let Some(w) = warning {
        let _ = writeln!(ctx.err, "bootcount: {w}");
    }
    let _ = writeln!(ctx.out, "{message}");
    Ok(())
}

fn booted_of(cfg: &SlotConfig, r: &EnvRead, cmdline: &Path) -> Result<Option<Booted>, CliError> {
    Ok(booted_slot(cfg, &r.vars, &read_cmdline(cmdline)?)?)
}

/// Run one parsed command. Returns the exit code (0: done; 1: unhealthy for `health run`).
pub fn run(cli: &Cli, env: &dyn EnvAccess, ctx: &mut Ctx) -> Result<i32, CliError> {
    let cfg = load_slots(cli.slots.as_deref())?;
    match &cli.command {
        Command::Status { json } => {
            let r = env.read()?;
            warn(ctx, &r);
            let booted = booted_of(&cfg, &r, &cli.cmdline)?;
            let st = engine::status(&cfg, &r.vars, booted);
            if *json {
                let mut v = serde_json::to_value(&st).expect("serializable");
                v["env_valid"] = serde_json::Value::Bool(r.warning.is_none());
                let _ = writeln!(
                    ctx.out,
                    "{}",
                    serde_json::to_string_pretty(&v).expect("json")
                );
            } else {
                let _ = write!(ctx.out, "{st}");
                if r.warning.is_some() {
                    let _ = writeln!(
                        ctx.out,
                        "environment:   no valid copy: U-Boot uses its defaults (boots recovery)"
                    );
                }
            }
        }
        Command::MarkGood { if_trial: false } => {
            run_op(ctx, env, &cfg, &cli.cmdline, Op::MarkGood)?
        }
        Command::MarkGood { if_trial: true } => {
            let message = commit_if_trial(env, &cfg, &cli.cmdline)?;
            let _ = writeln!(ctx.out, "{message}");
        }
        Command::MarkBad { reason } => run_op(
            ctx,
            env,
            &cfg,
            &cli.cmdline,
            Op::MarkBad {
                reason: reason.clone(),
            },
        )?,
        Command::BootOnce { slot, reboot } => {
            run_op(ctx, env, &cfg, &cli.cmdline, Op::BootOnce(slot.clone()))?;
            if *reboot {
                (ctx.reboot)()?;
            }
        }
        Command::SetPrimary { slot } => {
            run_op(ctx, env, &cfg, &cli.cmdline, Op::SetPrimary(slot.clone()))?
        }
        Command::Trial {
            slot,
            limit,
            reboot,
        } => {
            run_op(
                ctx,
                env,
                &cfg,
                &cli.cmdline,
                Op::Trial {
                    slot: slot.clone(),
                    limit: *limit,
                },
            )?;
            if *reboot {
                (ctx.reboot)()?;
            }
        }
        Command::InstallTarget { json, no_reserve } => {
            let cmdline = read_cmdline(&cli.cmdline)?;
            let mut chosen = None;
            let mut decide = |r: &EnvRead| {
                let booted = booted_slot(&cfg, &r.vars, &cmdline)?;
                let (t, out) = engine::install_target(&cfg, &r.vars, booted)?;
                chosen = Some((t, out.message));
                Ok(if *no_reserve {
                    Changes::new()
                } else {
                    out.changes
                })
            };
            if *no_reserve {
                decide(&env.read()?)?;
            } else {
                env.update(&mut decide)?;
            }
            let (t, message) = chosen.expect("decided");
            let slot = cfg.slot(t);
            if *json {
                let v = serde_json::json!({ "slot": slot.name, "device": slot.device, "reserved": !no_reserve });
                let _ = writeln!(ctx.out, "{v}");
            } else {
                let _ = writeln!(ctx.out, "{}", slot.device);
                let _ = writeln!(ctx.err, "bootcount: {message}");
            }
        }
        Command::Preview { json } => {
            let r = env.read()?;
            warn(ctx, &r);
            let d = engine::bootloader_step(&cfg, &r.vars);
            if *json {
                let v = serde_json::json!({
                    "slot": cfg.name(d.slot), "reason": d.explain(&cfg), "kernel_args": d.kernel_args(&cfg),
                    "changes": changes_json(&d.changes),
                });
                let _ = writeln!(
                    ctx.out,
                    "{}",
                    serde_json::to_string_pretty(&v).expect("json")
                );
            } else {
                let _ = writeln!(ctx.out, "next boot: {}", d.explain(&cfg));
                let _ = writeln!(ctx.out, "kernel:    {}", d.kernel_args(&cfg));
                if d.changes.is_empty() {
                    let _ = writeln!(ctx.out, "writes:    nothing");
                }
                for (k, v) in d.changes.iter() {
                    match v {
                        Some(v) => writeln!(ctx.out, "writes:    {k}={v}"),
                        None => writeln!(ctx.out, "writes:    unset {k}"),
                    }
                    .ok();
                }
            }
        }
        Command::BootloaderStep { json } => {
            let mut decision = None;
            let written = env.update(&mut |r| {
                let d = engine::bootloader_step(&cfg, &r.vars);
                let c = d.changes.clone();
                decision = Some(d);
                Ok(c)
            })?;
            let d = decision.expect("decided");
            if *json {
                let v = serde_json::json!({
                    "slot": cfg.name(d.slot), "reason": d.explain(&cfg), "root": d.root_args,
                    "kernel_args": d.kernel_args(&cfg), "changes": changes_json(&d.changes), "written": written,
                });
                let _ = writeln!(ctx.out, "{v}");
            } else {
                let _ = writeln!(ctx.out, "{}", cfg.name(d.slot));
            }
        }
        Command::Ack => run_op(ctx, env, &cfg, &cli.cmdline, Op::Ack)?,
        Command::Health {
            command:
                HealthCommand::Run {
                    dir,
                    timeout,
                    no_reboot,
                    no_commit,
                },
        } => {
            return health_run(
                ctx,
                env,
                &cfg,
                &cli.cmdline,
                dir,
                *timeout,
                *no_reboot,
                *no_commit,
            );
        }
    }
    Ok(0)
}

/// `mark-good --if-trial`: commit when a trial of the running slot is active, else no write.
fn commit_if_trial(
    env: &dyn EnvAccess,
    cfg: &SlotConfig,
    cmdline: &Path,
) -> Result<String, CliError> {
    let cmdline = read_cmdline(cmdline)?;
    let mut message = String::new();
    env.update(&mut |r| {
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

#[allow(clippy::too_many_arguments)]
fn health_run(
    ctx: &mut Ctx,
    env: &dyn EnvAccess,
    cfg: &SlotConfig,
    cmdline: &Path,
    dir: &Path,
    timeout: Duration,
    no_reboot: bool,
    no_commit: bool,
) -> Result<i32, CliError> {
    // Know the running slot before spending time on checks.
    let r = env.read()?;
    warn(ctx, &r);
    let booted = booted_of(cfg, &r, cmdline)?.ok_or(OpError::BootedUnknown)?;
    let verdict = {
        let out = &mut *ctx.out;
        health::run_checks(dir, timeout, |c| {
            let _ = writeln!(out, "bootcount: {}", c.describe());
        })
    };
    for n in &verdict.notes {
        let _ = writeln!(ctx.err, "bootcount: warning: {n}");
    }
    if verdict.healthy() {
        let message = if no_commit {
            "checks passed (commit left to `bootcount mark-good --if-trial`)".to_string()
        } else {
            commit_if_trial(env, cfg, cmdline)?
        };
        let _ = writeln!(
            ctx.out,
            "bootcount: {} is healthy: {message}",
            cfg.name(booted.slot)
        );
        Ok(0)
    } else {
        let reason = verdict.reason().expect("unhealthy has a reason");
        let _ = writeln!(
            ctx.err,
            "bootcount: {} is unhealthy{}: {reason}",
            cfg.name(booted.slot),
            if verdict.could_not_check() {
                " (a required check could not run, which counts as a failure)"
            } else {
                ""
            }
        );
        run_op(ctx, env, cfg, cmdline, Op::MarkBad { reason })?;
        if !no_reboot {
            (ctx.reboot)()?;
        }
        Ok(1)
    }
}

/// The binary's whole life: parse, open, run, print the error chain. Returns the exit code.
pub fn main_with(args: Vec<std::ffi::OsString>, ctx: &mut Ctx) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = if code == 0 {
                write!(ctx.out, "{e}")
            } else {
                write!(ctx.err, "{e}")
            };
            return code;
        }
    };
    let result = open_env(&cli).and_then(|store| run(&cli, &store, ctx));
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(ctx.err, "bootcount: error: {}", fw_env::error_chain(&e));
            1
        }
    }
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
}
