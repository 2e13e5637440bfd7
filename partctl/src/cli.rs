//! Command-line interface: argument parsing (clap) and [`run`]`(args, io)`, which returns the
//! exit code or an error that carries its own ([`CliError::exit_code`]). What is printed is a
//! [`Message`] rendered by the crate's one printer ([`crate::print`]).
//!
//! Exit codes: `check`: 0 sound, 1 problems found, 2 could not check. `repair`/`grow`: 0 done
//! (or nothing to do: `grow` of a partition that already ends at the card's aligned end), 1
//! refused or not written (no `--yes`), 2 error. `--dry-run` exits as the run would: `repair`
//! with the check of the tables after the plan (0 sound, 1 problems would remain), `grow` 0.

use crate::check::{self, Report, Severity};
use crate::disk::{Patched, Snapshot};
use crate::emit::{emit, EmitKind};
use crate::layout::Layout;
pub use crate::print::format_report;
use crate::print::{print, Message};
use crate::repair::{self, Backup, Plan};
use crate::{blockdev, create, files, SECTOR};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The output streams, injectable for tests (the confirmation question reads the real stdin:
/// only a terminal is asked).
pub struct Io<'a> {
    /// Standard output: the [`Message`]s.
    pub out: &'a mut dyn Write,
    /// Standard error: refusals, errors, the confirmation question.
    pub err: &'a mut dyn Write,
}

/// Create, check and repair the ZBot hybrid GPT/MBR SD card.
#[derive(Parser, Debug)]
#[command(name = "partctl", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Build a whole card image (tables and filesystems) from a layout.
    Create {
        /// Layout file (TOML).
        layout: PathBuf,
        /// Image to write.
        output: PathBuf,
        /// Directory holding the content files (default: the layout's directory).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Image size (e.g. 1G); default: the smallest that holds the layout.
        #[arg(long, value_parser = parse_card_size)]
        size: Option<u64>,
        /// Also write a derived file: KIND=PATH, KIND one of fw_env.config, uboot-fragment, fstab, slots.
        #[arg(long, value_name = "KIND=PATH", value_parser = parse_emit)]
        emit: Vec<(EmitKind, PathBuf)>,
    },
    /// Print a file derived from the layout.
    Emit {
        /// What to print.
        kind: EmitKind,
        /// Layout file.
        layout: PathBuf,
    },
    /// Check the tables of a card or image (reads only the table areas).
    Check {
        /// Block device or image file.
        target: PathBuf,
        /// Also compare every partition with this layout.
        #[arg(long)]
        layout: Option<PathBuf>,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Repair the tables (never partition contents); shows the plan, writes with --yes.
    Repair {
        /// Block device or image file.
        target: PathBuf,
        /// Rebuild from / compare with this layout.
        #[arg(long)]
        layout: Option<PathBuf>,
        /// Show the plan and the resulting check, write nothing (`--yes` and `--backup`, which
        /// would be ignored, are refused with it).
        #[arg(long, conflicts_with_all = ["yes", "backup"])]
        dry_run: bool,
        /// Write without asking.
        #[arg(long)]
        yes: bool,
        /// Where to save the sectors about to change (default: partctl-backup-<name>-<time>.bin).
        #[arg(long)]
        backup: Option<PathBuf>,
    },
    /// Undo a repair or grow with its backup file.
    Restore {
        /// Backup file written by repair/grow.
        backup: PathBuf,
        /// Block device or image file.
        target: PathBuf,
    },
    /// Grow the last partition to the end of the card, moving the backup GPT.
    Grow {
        /// Partition name (e.g. staging).
        name: String,
        /// Block device or image file.
        target: PathBuf,
        /// Show the plan only (`--yes` and `--backup`, which would be ignored, are refused
        /// with it).
        #[arg(long, conflicts_with_all = ["yes", "backup"])]
        dry_run: bool,
        /// Write without asking.
        #[arg(long)]
        yes: bool,
        /// Backup file for the old sectors.
        #[arg(long)]
        backup: Option<PathBuf>,
        /// Align the new end down to this many 512-byte sectors: a power of two from 1 to
        /// 2097152 (1 GiB); default 2048 = 1 MiB.
        #[arg(long, default_value = "2048", value_parser = parse_align)]
        align: u64,
    },
}

/// `grow --align`: sectors, a power of two in 1..=2^21 (1 GiB). 0 used to be taken as 1
/// silently; a value that is not a power of two, or larger than any sane erase unit, is
/// a mistake worth stopping for.
pub fn parse_align(s: &str) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of sectors"))?;
    if v == 0 || !v.is_power_of_two() || v > 1 << 21 {
        return Err(format!(
            "{v} sectors: the alignment must be a power of two from 1 to 2097152 sectors (1 GiB), e.g. 2048 (1 MiB) or 8192 (4 MiB)"
        ));
    }
    Ok(v)
}

/// `create --size`: bytes (`1G`, `64M`, ...), a multiple of 512, at most 128 TiB.
pub fn parse_card_size(s: &str) -> Result<u64, String> {
    let v = crate::layout::Size::parse(s)
        .ok_or_else(|| format!("bad --size {s:?}: use e.g. 1G, 512M or a number of bytes"))?
        .0;
    if v % SECTOR != 0 || v == 0 || v > files::MAX_CARD_BYTES {
        return Err(format!(
            "--size {s}: {v} bytes is not a card size (a positive multiple of 512, at most 128 TiB)"
        ));
    }
    Ok(v)
}

/// `create --emit KIND=PATH`: which derived file, and where to write it.
pub fn parse_emit(s: &str) -> Result<(EmitKind, PathBuf), String> {
    let (k, p) = s
        .split_once('=')
        .ok_or_else(|| format!("--emit {s:?}: expected KIND=PATH"))?;
    let kind = <EmitKind as clap::ValueEnum>::from_str(k, false)
        .map_err(|_| format!("--emit: unknown kind {k:?}"))?;
    Ok((kind, PathBuf::from(p)))
}

/// A failure that stops the command; it carries its exit code ([`CliError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Could not do it (a file, the card, a layout): exit 2. The message names the file.
    #[error("{0}")]
    Msg(String),
    /// Refused, nothing written: exit 1 (`repair` with nothing to rebuild from, `grow` on
    /// unsound tables, ...). The message says why.
    #[error("{0}")]
    Refused(String),
    /// The command line is not understood (clap's message, with the usage): exit 2.
    #[error("{0}")]
    Usage(clap::Error),
}

impl CliError {
    /// 1 refused, 2 could not (or a usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Msg(_) | CliError::Usage(_) => 2,
        }
    }

    /// The line for stderr: `partctl: error: ...` when it could not, `partctl: ...` for a
    /// refusal (which says "refusing" itself), clap's own text for a usage error.
    pub fn render(&self) -> String {
        match self {
            CliError::Msg(m) => format!("partctl: error: {m}\n"),
            CliError::Refused(m) => format!("partctl: {m}\n"),
            CliError::Usage(e) => e.to_string(),
        }
    }
}

fn msg<E: std::fmt::Display>(ctx: impl std::fmt::Display) -> impl FnOnce(E) -> CliError {
    move |e| CliError::Msg(format!("{ctx}: {e}"))
}

fn open_ro(p: &Path) -> Result<(File, u64), CliError> {
    let f = files::open_target(p, false).map_err(|e| CliError::Msg(no_dup(p, e)))?;
    let n = blockdev::size_bytes(&f).map_err(msg(format!("{}: size", p.display())))?;
    Ok((f, n))
}

fn open_rw(p: &Path) -> Result<(File, u64), CliError> {
    let f = files::open_target(p, true).map_err(|e| CliError::Msg(no_dup(p, e)))?;
    let n = blockdev::size_bytes(&f).map_err(msg(format!("{}: size", p.display())))?;
    Ok((f, n))
}

/// An error message naming `p` once (the refusals of [`files`] name it already).
fn no_dup(p: &Path, e: std::io::Error) -> String {
    let s = e.to_string();
    if s.contains(&p.display().to_string()) {
        s
    } else {
        format!("{}: {s}", p.display())
    }
}

fn load_layout(p: &Option<PathBuf>) -> Result<Option<Layout>, CliError> {
    p.as_ref()
        .map(|p| Layout::load(p).map_err(|e| CliError::Msg(e.to_string())))
        .transpose()
}

fn default_backup_name(target: &Path) -> PathBuf {
    let base = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "card".into());
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("partctl-backup-{base}-{t}.bin"))
}

fn confirm(yes: bool, io: &mut Io) -> bool {
    if yes {
        return true;
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let _ = write!(io.err, "Write these sectors? [y/N] ");
    let _ = io.err.flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

/// Save the backup, write the plan with an fsync after each sector, tell the kernel.
fn write_plan(
    f: &mut File,
    target: &Path,
    plan: &Plan,
    backup: &Option<PathBuf>,
    io: &mut Io,
) -> Result<(), CliError> {
    let b = Backup::save(f, plan).map_err(msg("reading sectors to back up"))?;
    let path = backup
        .clone()
        .unwrap_or_else(|| default_backup_name(target));
    let mut bf = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(msg(format!("backup file {}", path.display())))?;
    bf.write_all(&b.to_bytes())
        .and_then(|_| bf.sync_all())
        .map_err(msg(format!("backup file {}", path.display())))?;
    print(
        io.out,
        &Message::BackupSaved {
            sectors: b.sectors.len(),
            path: &path,
            target,
        },
    );
    // Test hook (named fault point): `PARTCTL_FAULT_AFTER_WRITES=k` stops the process dead
    // after k synced sector writes, like a power cut, so tests can cut a real run anywhere.
    let fault: Option<usize> = std::env::var("PARTCTL_FAULT_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut done = 0usize;
    repair::apply(f, plan, |f| {
        f.sync_data()?;
        done += 1;
        if fault == Some(done) {
            std::process::abort();
        }
        Ok(())
    })
    .map_err(msg(format!("writing {}", target.display())))?;
    Ok(())
}

fn recheck(f: &mut File, n: u64, layout: Option<&Layout>, name: &str) -> Result<Report, CliError> {
    let s = Snapshot::read(f, n).map_err(msg(name))?;
    Ok(check::check(&s, layout))
}

/// Run `partctl` on its arguments (`args[0]` is the program), printing through `io`. `Ok` is
/// the code of a command that ran (0, or 1 when `check` finds problems); errors carry theirs.
pub fn run(args: Vec<OsString>, io: &mut Io) -> Result<ExitCode, CliError> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if e.exit_code() == 0 => {
            // --help, --version
            let _ = write!(io.out, "{e}");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(CliError::Usage(e)),
    };
    let code = run_cli(cli, io);
    let _ = io.out.flush();
    code
}

/// Run a parsed command line.
pub fn run_cli(cli: Cli, io: &mut Io) -> Result<ExitCode, CliError> {
    match cli.cmd {
        Cmd::Create {
            layout,
            output,
            input,
            size,
            emit: outs,
        } => create_cmd(layout, output, input, size, outs, io),
        Cmd::Emit { kind, layout } => emit_cmd(kind, layout, io),
        Cmd::Check {
            target,
            layout,
            json,
        } => check_cmd(target, layout, json, io),
        Cmd::Repair {
            target,
            layout,
            dry_run,
            yes,
            backup,
        } => repair_cmd(target, layout, dry_run, yes, backup, io),
        Cmd::Restore { backup, target } => restore_cmd(backup, target, io),
        Cmd::Grow {
            name,
            target,
            dry_run,
            yes,
            backup,
            align,
        } => grow_cmd(name, target, dry_run, yes, backup, align, io),
    }
}

/// `create`: the image, then the derived files asked for.
fn create_cmd(
    layout: PathBuf,
    output: PathBuf,
    input: Option<PathBuf>,
    size: Option<u64>,
    outs: Vec<(EmitKind, PathBuf)>,
    io: &mut Io,
) -> Result<ExitCode, CliError> {
    let l = Layout::load(&layout).map_err(|e| CliError::Msg(e.to_string()))?;
    let input = input.unwrap_or_else(|| layout.parent().map(Path::to_path_buf).unwrap_or_default());
    let t = create::create(&l, &input, &output, size)
        .map_err(|e| CliError::Msg(format!("creating {}: {e}", output.display())))?;
    print(
        io.out,
        &Message::Created {
            output: &output,
            sectors: t.disk_sectors,
            partitions: l.partitions.len(),
        },
    );
    for (kind, p) in outs {
        std::fs::write(&p, emit(&l, kind)).map_err(msg(p.display()))?;
        print(io.out, &Message::Wrote(&p));
    }
    Ok(ExitCode::SUCCESS)
}

/// `emit`: print one derived file.
fn emit_cmd(kind: EmitKind, layout: PathBuf, io: &mut Io) -> Result<ExitCode, CliError> {
    let l = Layout::load(&layout).map_err(|e| CliError::Msg(e.to_string()))?;
    print(io.out, &Message::Emitted(&emit(&l, kind)));
    Ok(ExitCode::SUCCESS)
}

/// `check`: exit 0 sound, 1 problems found (2, as an error: could not check).
fn check_cmd(
    target: PathBuf,
    layout: Option<PathBuf>,
    json: bool,
    io: &mut Io,
) -> Result<ExitCode, CliError> {
    let l = load_layout(&layout)?;
    let (mut f, n) = open_ro(&target)?;
    let s = Snapshot::read(&mut f, n).map_err(msg(target.display()))?;
    let r = check::check(&s, l.as_ref());
    let name = target.display().to_string();
    print(
        io.out,
        &Message::Check {
            name: &name,
            report: &r,
            json,
        },
    );
    Ok(ExitCode::from(r.exit_code()))
}

/// `repair`: plan, show the plan and the result, write with a backup when confirmed.
fn repair_cmd(
    target: PathBuf,
    layout: Option<PathBuf>,
    dry_run: bool,
    yes: bool,
    backup: Option<PathBuf>,
    io: &mut Io,
) -> Result<ExitCode, CliError> {
    let l = load_layout(&layout)?;
    let (mut f, n) = if dry_run {
        open_ro(&target)?
    } else {
        open_rw(&target)?
    };
    let s = Snapshot::read(&mut f, n).map_err(msg(target.display()))?;
    let name = target.display().to_string();
    let plan = repair::plan(&mut f, &s, l.as_ref())
        .map_err(|e| CliError::Refused(format!("refusing to repair {name}: {e}")))?;
    print(
        io.out,
        &Message::Plan {
            what: "Repair",
            name: &name,
            plan: &plan,
        },
    );
    if plan.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut after = Patched::new(&mut f);
    for w in &plan.writes {
        after.patch(w.lba, &w.data);
    }
    let sa = Snapshot::read(&mut after, n).map_err(msg(target.display()))?;
    let ra = check::check(&sa, l.as_ref());
    print(
        io.out,
        &Message::After {
            name: &name,
            report: &ra,
        },
    );
    if dry_run {
        // As the repair would exit: 0 when the tables would be sound.
        print(io.out, &Message::NothingWritten { dry_run: true });
        return Ok(ExitCode::from(ra.exit_code()));
    }
    if !confirm(yes, io) {
        print(io.out, &Message::NothingWritten { dry_run: false });
        return Ok(ExitCode::from(1));
    }
    write_plan(&mut f, &target, &plan, &backup, io)?;
    if let Err(e) = blockdev::reread(&f) {
        print(
            io.out,
            &Message::Note(format!(
                "note: the kernel did not reread the table ({e}); reboot to use it"
            )),
        );
    }
    let r = recheck(&mut f, n, l.as_ref(), &name)?;
    print(
        io.out,
        &Message::Repaired {
            name: &name,
            report: &r,
        },
    );
    Ok(ExitCode::from(r.exit_code()))
}

/// `restore`: put back the sectors a backup file holds, on the card it came from.
fn restore_cmd(backup: PathBuf, target: PathBuf, io: &mut Io) -> Result<ExitCode, CliError> {
    let bytes = files::read_small(&backup, repair::MAX_BACKUP_FILE_BYTES)
        .map_err(|e| CliError::Msg(no_dup(&backup, e)))?;
    let b = Backup::from_bytes(&bytes).map_err(msg(backup.display()))?;
    let (mut f, n) = open_rw(&target)?;
    if n != b.disk_bytes {
        return Err(CliError::Msg(format!(
            "{} is {n} bytes but the backup was taken from a {}-byte card: restore it to the card it was taken from",
            target.display(),
            b.disk_bytes
        )));
    }
    repair::restore(&mut f, &b, |f| f.sync_data()).map_err(msg(target.display()))?;
    let _ = blockdev::reread(&f);
    print(
        io.out,
        &Message::Restored {
            sectors: b.sectors.len(),
            target: &target,
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `grow`: refuse on unsound tables; plan, confirm, write, tell the kernel.
fn grow_cmd(
    name: String,
    target: PathBuf,
    dry_run: bool,
    yes: bool,
    backup: Option<PathBuf>,
    align: u64,
    io: &mut Io,
) -> Result<ExitCode, CliError> {
    let (mut f, n) = if dry_run {
        open_ro(&target)?
    } else {
        open_rw(&target)?
    };
    let s = Snapshot::read(&mut f, n).map_err(msg(target.display()))?;
    let r = check::check(&s, None);
    // Including a backup left mid-card: `repair` clears it while it is still free
    // space; after the grow it would lie inside the partition and stay.
    let card = target.display().to_string();
    if let Some(p) = r.problems.iter().find(|p| p.severity == Severity::Error) {
        return Err(CliError::Refused(format!(
            "refusing to grow {card}: the tables have problems ({p}); run `partctl repair` first"
        )));
    }
    let (plan, num, start, sectors) = repair::plan_grow(&mut f, &s, &name, align)
        .map_err(|e| CliError::Refused(e.to_string()))?;
    print(
        io.out,
        &Message::Plan {
            what: "Grow",
            name: &card,
            plan: &plan,
        },
    );
    if plan.is_empty() {
        // Already grown: nothing written, no backup file, success (reruns are safe).
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        print(io.out, &Message::NothingWritten { dry_run: true });
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(yes, io) {
        print(io.out, &Message::NothingWritten { dry_run: false });
        return Ok(ExitCode::from(1));
    }
    write_plan(&mut f, &target, &plan, &backup, io)?;
    if blockdev::reread(&f).is_err() {
        let note = match blockdev::resize_partition(&f, num, start, sectors) {
            Ok(()) => format!("told the kernel partition {num} now has {sectors} sectors (BLKPG); grow the filesystem with resize2fs"),
            Err(e) => format!("note: the kernel still uses the old size ({e}); reboot, then resize2fs"),
        };
        print(io.out, &Message::Note(note));
    }
    let r = recheck(&mut f, n, None, &card)?;
    print(
        io.out,
        &Message::Check {
            name: &card,
            report: &r,
            json: false,
        },
    );
    Ok(ExitCode::from(r.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in_process(args: &[&str]) -> (Result<ExitCode, CliError>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let argv = std::iter::once("partctl")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let r = run(
            argv,
            &mut Io {
                out: &mut out,
                err: &mut err,
            },
        );
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// `run(args, io)`: output through the injected streams, exit codes carried by the errors.
    #[test]
    fn run_prints_through_io_and_errors_carry_their_exit_code() {
        let layout = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/zbot-duos.toml");
        let (r, out, _) = run_in_process(&["emit", "slots", layout]);
        assert_eq!(r.unwrap(), ExitCode::SUCCESS);
        assert!(out.contains("[[slot]]"), "{out}");
        let (r, out, _) = run_in_process(&["--help"]);
        assert_eq!(r.unwrap(), ExitCode::SUCCESS);
        assert!(out.contains("Usage: partctl"), "{out}");
        let e = run_in_process(&["check"]).0.unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.render().contains("Usage: partctl check"),
            "{}",
            e.render()
        );
        let e = run_in_process(&["check", "/nonexistent/card.img"])
            .0
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.render().starts_with("partctl: error: ")
                && e.render().contains("/nonexistent/card.img"),
            "{}",
            e.render()
        );
        let refused = CliError::Refused("refusing to grow x: y".into());
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.render(), "partctl: refusing to grow x: y\n");
    }
}
