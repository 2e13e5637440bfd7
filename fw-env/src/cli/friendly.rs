//! `fw-env`: the friendly command line. Values are shown and set as U-Boot itself sees them
//! (U-Boot stores a `\` as `\\`; `fw-env set x 'a\b'` makes U-Boot's `printenv x` show `a\b`);
//! `--raw` works on the stored bytes instead, like `fw_printenv`/`fw_setenv`.
//!
//! Exit codes: 0 success; 1 failure, or `get` of an unset variable, or `check` finding a
//! problem; 2 usage errors, or `check` unable to check.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::dropin::CliError;
use super::{open_store, print_warning, Io, RunError};
use crate::codec::{self, Layout};
use crate::storage::WriteMode;
use crate::store::{CopyStatus, Snapshot, Source};
use crate::vars::{check_name, Changes, Vars};

/// Read and write the U-Boot environment.
#[derive(Debug, Parser)]
#[command(name = "fw-env", version, about, long_about = None)]
pub struct Cli {
    /// fw_env.config describing where the environment is.
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Default environment (u-boot-initial-env text) used when no copy is valid
    /// [default: /etc/u-boot-initial-env if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub defaults: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print variables (all, or the ones named) as NAME=VALUE.
    Print {
        /// Variables to print.
        names: Vec<String>,
        /// Print a JSON object instead.
        #[arg(long)]
        json: bool,
        /// Show stored bytes, not U-Boot's view.
        #[arg(long)]
        raw: bool,
    },
    /// Print one variable's value; exit 1 if it is not set.
    Get {
        /// Variable name.
        name: String,
        /// Show stored bytes, not U-Boot's view.
        #[arg(long)]
        raw: bool,
    },
    /// Set variables in one atomic write: `set NAME VALUE` or `set NAME=VALUE...`.
    Set {
        /// `NAME VALUE`, or one or more `NAME=VALUE`.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        args: Vec<String>,
        /// Store values byte for byte (no U-Boot escaping of backslashes).
        #[arg(long)]
        raw: bool,
    },
    /// Delete variables in one atomic write.
    Unset {
        /// Variable names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Check every copy: CRC, flags, which is active, bytes used and free.
    Check {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Build an environment image from text, like mkenvimage (byte-identical output).
    Mkimage {
        /// Size of the image (each copy), e.g. 0x4000 or 16384.
        #[arg(short, long, default_value = "0x4000", value_parser = parse_size)]
        size: usize,
        /// Redundant layout (a flags byte after the CRC).
        #[arg(short, long)]
        redundant: bool,
        /// Byte filling the unused data area.
        #[arg(short, long, default_value = "0xff", value_parser = parse_byte)]
        pad: u8,
        /// Text input, one NAME=VALUE per line ('-' for stdin).
        input: PathBuf,
        /// Image output ('-' for stdout).
        output: PathBuf,
    },
}

fn parse_number(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number (decimal, or hex with 0x)"))
}

fn parse_size(s: &str) -> Result<usize, String> {
    // The image is allocated at this size: bounded like a config's env size.
    let max = crate::config::MAX_ENV_SIZE;
    parse_number(s).and_then(|n| {
        if n > max {
            Err(format!(
                "{s} is larger than the {max:#x} bytes fw-env accepts"
            ))
        } else {
            Ok(n as usize)
        }
    })
}

fn parse_byte(s: &str) -> Result<u8, String> {
    parse_number(s).and_then(|n| u8::try_from(n).map_err(|_| format!("{s} does not fit in a byte")))
}

/// Run `fw-env` with a full argv. Ok: the exit code of a command that ran (0, or 1 for `get`
/// of an unset variable and `check` finding a problem).
pub fn run(argv: Vec<OsString>, io: &mut Io<'_>) -> Result<u8, RunError> {
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = write!(io.stdout, "{}", e.render());
            return Ok(u8::try_from(e.exit_code()).unwrap_or(0));
        }
        Err(e) => return Err(RunError::Usage(e)),
    };
    // `check` tells "problem found" (1) from "could not check" (2).
    let code = if matches!(cli.command, Command::Check { .. }) {
        2
    } else {
        1
    };
    match execute(cli, io) {
        Ok(c) => Ok(u8::try_from(c).unwrap_or(1)),
        Err(source) => Err(RunError::Failed {
            prefix: "fw-env: error: ".into(),
            source: Box::new(source),
            code,
        }),
    }
}

fn shown(vars: &Vars, raw: bool) -> Vars {
    if raw {
        vars.clone()
    } else {
        codec::uboot_view(vars)
    }
}

fn stored_value(value: &str, raw: bool) -> String {
    if raw {
        value.to_owned()
    } else {
        String::from_utf8(codec::escape(value.as_bytes())).expect("escaping keeps UTF-8")
    }
}

fn execute(cli: Cli, io: &mut Io<'_>) -> Result<i32, CliError> {
    if let Command::Mkimage {
        size,
        redundant,
        pad,
        input,
        output,
    } = &cli.command
    {
        return mkimage(*size, *redundant, *pad, input, output, io);
    }
    let store = open_store(cli.config.as_deref(), cli.defaults.as_deref(), None)?;
    match cli.command {
        Command::Print { names, json, raw } => print(&store, names, json, raw, io),
        Command::Get { name, raw } => {
            let snapshot = store.read()?;
            print_warning(&snapshot, io);
            match shown(&snapshot.vars, raw).get_bytes(name.as_bytes()) {
                Some(v) => {
                    let _ = io.stdout.write_all(v);
                    let _ = io.stdout.write_all(b"\n");
                    Ok(0)
                }
                None => {
                    let _ = writeln!(io.stderr, "fw-env: {name:?} is not set");
                    Ok(1)
                }
            }
        }
        Command::Set { args, raw } => write(&store, set_changes(&args, raw)?, io),
        Command::Unset { names } => write(&store, unset_changes(names)?, io),
        Command::Check { json } => {
            let snapshot = store.read()?;
            Ok(check(&snapshot, json, io))
        }
        Command::Mkimage { .. } => unreachable!("handled above"),
    }
}

/// `fw-env print`: all variables, or the named ones (exit 1 when one is not set).
fn print(
    store: &crate::Store,
    names: Vec<String>,
    json: bool,
    raw: bool,
    io: &mut Io<'_>,
) -> Result<i32, CliError> {
    let snapshot = store.read()?;
    print_warning(&snapshot, io);
    let vars = shown(&snapshot.vars, raw);
    let mut code = 0;
    let selected: Vec<(String, String)> = if names.is_empty() {
        vars.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    } else {
        let mut out = Vec::new();
        for n in names {
            match vars.get(&n) {
                Some(v) => out.push((n, v.into_owned())),
                None => {
                    let _ = writeln!(io.stderr, "fw-env: {n:?} is not set");
                    code = 1;
                }
            }
        }
        out
    };
    if json {
        let map: serde_json::Map<String, serde_json::Value> = selected
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let _ = writeln!(io.stdout, "{}", serde_json::Value::Object(map));
    } else {
        for (k, v) in selected {
            let _ = writeln!(io.stdout, "{k}={v}");
        }
    }
    Ok(code)
}

/// The changes of `fw-env unset`.
fn unset_changes(names: Vec<String>) -> Result<Changes, CliError> {
    let mut changes = Changes::new();
    for n in names {
        check_name(n.as_bytes()).map_err(|e| CliError::BadName {
            name: n.clone(),
            reason: e.to_string(),
        })?;
        changes.push(n, None);
    }
    Ok(changes)
}

/// Apply `changes` in one write, warning first when no copy was valid.
fn write(store: &crate::Store, changes: Changes, io: &mut Io<'_>) -> Result<i32, CliError> {
    store.update(|s| {
        print_warning(s, io);
        Ok::<_, crate::Error>((changes, ()))
    })?;
    Ok(0)
}

/// The changes of `fw-env set`: `NAME VALUE` (the value may contain `=`), or `NAME=VALUE...`.
pub fn set_changes(args: &[String], raw: bool) -> Result<Changes, CliError> {
    let bad = |name: &str, reason: String| CliError::BadName {
        name: name.to_owned(),
        reason,
    };
    let mut changes = Changes::new();
    let pairs: Vec<(&str, &str)> = if !args[0].contains('=') {
        match args {
            [name, value] => vec![(name.as_str(), value.as_str())],
            [name] => {
                return Err(bad(name, format!("no value given; use `fw-env set {name} VALUE`, or `fw-env unset {name}` to delete")))
            }
            [name, ..] => {
                return Err(bad(
                    name,
                    format!("{} values given; quote a value with spaces: fw-env set {name} \"a b\"", args.len() - 1),
                ))
            }
            [] => unreachable!("clap requires one"),
        }
    } else {
        let mut v = Vec::new();
        for a in args {
            let (n, val) = a.split_once('=').ok_or_else(|| {
                bad(
                    a,
                    "mixes NAME=VALUE with NAME VALUE; give every change as NAME=VALUE".into(),
                )
            })?;
            v.push((n, val));
        }
        v
    };
    for (name, value) in pairs {
        check_name(name.as_bytes()).map_err(|e| bad(name, e.to_string()))?;
        changes.push(name, (!value.is_empty()).then(|| stored_value(value, raw)));
    }
    Ok(changes)
}

fn check(snapshot: &Snapshot, json: bool, io: &mut Io<'_>) -> i32 {
    let all_valid = snapshot
        .copies
        .iter()
        .all(|c| matches!(c.status, CopyStatus::Valid { .. }));
    let single_in_place =
        snapshot.copies.len() == 1 && snapshot.copies[0].write_mode == WriteMode::InPlace;
    let code = if all_valid { 0 } else { 1 };
    if json {
        let v = serde_json::json!({
            "layout": snapshot.layout,
            "source": snapshot.source,
            "copies": snapshot.copies,
            "power_safe": !single_in_place,
            "ok": code == 0,
        });
        let _ = writeln!(io.stdout, "{v}");
        return code;
    }
    for c in &snapshot.copies {
        let mode = match c.write_mode {
            WriteMode::Replace => "file, replaced atomically",
            WriteMode::InPlace => "written in place",
        };
        let state = match &c.status {
            CopyStatus::Valid { flags, used, free } => {
                let f = flags.map(|f| format!(", flags {f}")).unwrap_or_default();
                format!("CRC ok{f}, {used} bytes used, {free} free")
            }
            CopyStatus::BadCrc {
                stored,
                computed,
                flags,
            } => {
                let f = flags.map(|f| format!(", flags {f}")).unwrap_or_default();
                format!("BAD CRC (stored {stored:#010x}, computed {computed:#010x}){f}")
            }
            CopyStatus::Missing => "MISSING (file does not exist)".into(),
            CopyStatus::Short { len } => {
                format!("SHORT (the file ends {len} bytes after the offset, before the copy does)")
            }
            CopyStatus::PastEnd { file_len } => {
                format!("PAST THE END (the file is {file_len:#x} bytes, it ends before the offset)")
            }
        };
        let active = if c.active { "  [active]" } else { "" };
        let _ = writeln!(
            io.stdout,
            "copy {}: {} offset {:#x} size {:#x} ({mode}): {state}{active}",
            c.index + 1,
            c.device.display(),
            c.offset,
            c.size
        );
    }
    match snapshot.source {
        Source::Copy(_) => {}
        Source::Defaults => match &snapshot.defaults_problem {
            None => {
                let _ = writeln!(io.stdout, "no valid copy: U-Boot boots its default environment; the next write starts from the {}", snapshot.defaults_origin.as_deref().unwrap_or("defaults"));
            }
            Some(problem) => {
                let _ = writeln!(io.stdout, "no valid copy: U-Boot boots its default environment; the {} is not usable ({problem}), so a write will be refused", snapshot.defaults_origin.as_deref().unwrap_or("defaults"));
            }
        },
        Source::Empty => {
            let _ = writeln!(io.stdout, "no valid copy: U-Boot boots its default environment; no defaults file is configured here (--defaults FILE), so a write will be refused");
        }
    }
    if single_in_place {
        let _ = writeln!(io.stdout, "note: a single copy written in place cannot survive a power cut during a write; configure two copies");
    }
    if code != 0 && snapshot.copies.len() == 2 && snapshot.is_valid() {
        let _ = writeln!(
            io.stdout,
            "the next write goes to the bad copy and repairs it"
        );
    }
    code
}

fn mkimage(
    size: usize,
    redundant: bool,
    pad: u8,
    input: &std::path::Path,
    output: &std::path::Path,
    io: &mut Io<'_>,
) -> Result<i32, CliError> {
    let text = if input.as_os_str() == "-" {
        let mut t = Vec::new();
        io.stdin
            .read_to_end(&mut t)
            .map_err(|source| CliError::ScriptRead {
                path: "<stdin>".into(),
                source,
            })?;
        t
    } else {
        // A regular file only (a FIFO must not hang us), of a bounded size.
        crate::storage::read_small_file(input, crate::defaults::MAX_DEFAULTS_FILE, "mkimage input")?
    };
    let layout = if redundant {
        Layout::Redundant
    } else {
        Layout::Single
    };
    let image =
        codec::mkimage_from_text(&text, size, layout, pad).map_err(|source| CliError::Mkimage {
            input: input.display().to_string(),
            source,
        })?;
    if output.as_os_str() == "-" {
        let _ = io.stdout.write_all(&image);
    } else {
        // A complete new file, replaced atomically: a crash leaves the old output or the new.
        crate::storage::replace_whole(output, &image)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The changes as owned text, to compare with literals.
    fn text(c: &Changes) -> Vec<(String, Option<String>)> {
        c.iter()
            .map(|(k, v)| (k.into_owned(), v.map(std::borrow::Cow::into_owned)))
            .collect()
    }

    fn owned(v: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn set_forms() {
        let c = set_changes(&["next_boot".into(), "otafs".into()], false).unwrap();
        assert_eq!(text(&c), owned(&[("next_boot", Some("otafs"))]));
        let c = set_changes(&["a=1".into(), "b=x=y".into(), "c=".into()], false).unwrap();
        assert_eq!(
            text(&c),
            owned(&[("a", Some("1")), ("b", Some("x=y")), ("c", None)])
        );
        let c = set_changes(&["bootargs".into(), "root=/dev/x rw".into()], false).unwrap();
        assert_eq!(
            text(&c)[..1],
            owned(&[("bootargs", Some("root=/dev/x rw"))])
        );
        let c = set_changes(&["p".into(), r"a\b".into()], false).unwrap();
        assert_eq!(
            text(&c)[..1],
            owned(&[("p", Some(r"a\\b"))]),
            "escaped for U-Boot"
        );
        let c = set_changes(&["p".into(), r"a\b".into()], true).unwrap();
        assert_eq!(text(&c)[..1], owned(&[("p", Some(r"a\b"))]));
        assert!(set_changes(&["a".into()], false).is_err());
        assert!(set_changes(&["a".into(), "b".into(), "c".into()], false).is_err());
        assert!(set_changes(&["a=1".into(), "b".into()], false).is_err());
        assert!(set_changes(&["=1".into()], false).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_size("0x4000"), Ok(0x4000));
        assert_eq!(parse_size("16384"), Ok(16384));
        // Absurd sizes used to reach the allocation unchecked.
        assert!(parse_size("0xffffffffffffffff").is_err());
        assert!(parse_size("0x1000001").is_err());
        assert_eq!(parse_byte("0xff"), Ok(255));
        assert!(parse_byte("256").is_err());
    }
}
