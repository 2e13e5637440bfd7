//! `fw_printenv` and `fw_setenv`: one program, dispatching on the name it was run as, a
//! drop-in for libubootenv's tools (the board's `/usr/bin/fw_setenv`, what SWUpdate and
//! RAUC's U-Boot backend are used with) and U-Boot's `tools/env`. Where the two C tools
//! differ we follow libubootenv; `FW_ENV_DROPIN=uboot-tools` selects U-Boot's behaviour.
//! Where both are silent about something they ignore (options, arguments, script lines) we
//! refuse it. Every difference is in the table in `docs/fw-env.md`.
//!
//! Names, values, paths and script lines are bytes, from the command line to the disk and
//! back: a value that is not UTF-8 is stored and printed exactly, as the C tools do.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::getopt::{self, OptSpec};
use super::{open_store, print_warning, Io, RunError};
use crate::config::DEFAULT_CONFIG_PATH;
use crate::store::{Error, Snapshot, Source};
use crate::vars::{check_name, Changes};

const SPECS: &[OptSpec] = &[
    OptSpec {
        short: 'c',
        long: "config",
        takes_arg: true,
    },
    OptSpec {
        short: 'f',
        long: "defenv",
        takes_arg: true,
    },
    OptSpec {
        short: 'l',
        long: "lock",
        takes_arg: true,
    },
    OptSpec {
        short: 'n',
        long: "noheader",
        takes_arg: false,
    },
    OptSpec {
        short: 'n',
        long: "no-header",
        takes_arg: false,
    },
    OptSpec {
        short: 's',
        long: "script",
        takes_arg: true,
    },
    OptSpec {
        short: 'h',
        long: "help",
        takes_arg: false,
    },
    OptSpec {
        short: 'v',
        long: "version",
        takes_arg: false,
    },
    OptSpec {
        short: 'V',
        long: "Version",
        takes_arg: false,
    },
];

/// Which tool we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `fw_printenv`.
    Print,
    /// `fw_setenv`.
    Set,
}

/// The tool for a program name (argv\[0\]), by its file name.
pub fn tool_for(argv0: &Path) -> Option<Tool> {
    match argv0.file_name()?.to_str()? {
        "fw_printenv" => Some(Tool::Print),
        "fw_setenv" => Some(Tool::Set),
        _ => None,
    }
}

/// The environment variable choosing whose behaviour the drop-in follows where libubootenv
/// and U-Boot's `tools/env` differ: unset, empty or `libubootenv` (the default), or
/// `uboot-tools`. Any other value is an error, never a silent default.
pub const STYLE_VAR: &str = "FW_ENV_DROPIN";

/// Whose behaviour to follow where the two C tools differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// libubootenv 0.3.2 (the default): sorted output, `NAME=` for a missing variable
    /// (exit 0), `fw_setenv N1 V1 N2 V2` pairs, an empty value stored, `key=value` scripts.
    Libubootenv,
    /// U-Boot 2023.01 `tools/env`: storage order, missing variable is an error, values
    /// joined with spaces, an empty value deletes, `key value` scripts.
    UbootTools,
}

impl Style {
    /// The style named by [`STYLE_VAR`]'s value.
    pub fn from_var(value: Option<&std::ffi::OsStr>) -> Result<Style, String> {
        match value.map(OsStrExt::as_bytes) {
            None | Some(b"") | Some(b"libubootenv") => Ok(Style::Libubootenv),
            Some(b"uboot-tools") => Ok(Style::UbootTools),
            Some(other) => Err(format!(
                "{STYLE_VAR}={:?} is not a drop-in style: use libubootenv (the default) or uboot-tools",
                String::from_utf8_lossy(other)
            )),
        }
    }
}

fn usage(tool: Tool) -> String {
    let common = format!(
        " -h, --help             print this help\n \
         -v, -V, --version      print the version\n \
         -c, --config FILE      configuration file (default {DEFAULT_CONFIG_PATH})\n \
         -f, --defenv FILE      default environment when no copy is valid\n                        \
         (default /etc/u-boot-initial-env, if present)\n \
         -l, --lock DIR         directory of the lock file (default /var/lock)\n"
    );
    let style = format!(
        "\nWhere libubootenv and U-Boot's tools/env differ this follows libubootenv;\n\
         {STYLE_VAR}=uboot-tools follows U-Boot's tools/env (shown in [brackets]).\n"
    );
    match tool {
        Tool::Print => format!(
            "Usage: fw_printenv [OPTIONS]... [VARIABLE]...\nPrint variables from the U-Boot environment\n\n{common} \
             -n, --noheader         print only the values [exactly one VARIABLE]\n\n\
             A missing VARIABLE prints VARIABLE= and exit 0 [an error, exit 1].\n{style}"
        ),
        Tool::Set => format!(
            "Usage: fw_setenv [OPTIONS]... NAME [VALUE] [NAME [VALUE]]...\n\
             Modify variables in the U-Boot environment (one atomic write)\n\n{common} \
             -s, --script FILE      set variables from FILE ('-' for stdin), all in one write\n\n\
             Examples:\n  fw_setenv foo bar        set foo to \"bar\"\n  \
             fw_setenv a 1 b 2        set a to \"1\" and b to \"2\" [a to \"1 b 2\"]\n  \
             fw_setenv foo \"\"         set foo to the empty value [delete foo]\n  \
             fw_setenv foo            delete foo\n\n\
             Script syntax (one variable per line):\n  \
             key=value                set key [also: key value]\n  \
             key=                     delete key [also: key]\n  \
             # comment, and empty lines, are skipped; any other line is refused\n{style}"
        ),
    }
}

/// Run the drop-in tool `tool` with `args` (argv without argv\[0\]), in the style
/// [`STYLE_VAR`] names. Returns the exit code: 0 on success, 1 on any failure.
pub fn run(tool: Tool, args: &[OsString], io: &mut Io<'_>) -> Result<u8, RunError> {
    match Style::from_var(std::env::var_os(STYLE_VAR).as_deref()) {
        Ok(style) => run_with(tool, style, args, io),
        Err(e) => Err(RunError::Refused(format!("{}: {e}", tool_name(tool)))),
    }
}

fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Print => "fw_printenv",
        Tool::Set => "fw_setenv",
    }
}

/// The drop-in's options and operands, checked.
struct Options {
    config: Option<PathBuf>,
    defenv: Option<PathBuf>,
    lock_dir: Option<PathBuf>,
    noheader: bool,
    script: Option<OsString>,
    operands: Vec<OsString>,
}

/// What the command line asks for.
enum Parsed {
    Run(Options),
    Help,
    Version,
}

/// Parse and check the options the way both C tools read them, refusing what they would
/// silently ignore.
fn parse_options(tool: Tool, style: Style, args: &[OsString]) -> Result<Parsed, RunError> {
    let name = tool_name(tool);
    let (opts, operands) = match getopt::parse(args, SPECS) {
        Ok(p) => p,
        Err(e) => return Err(RunError::Refused(format!("{name}: {e}\n{}", usage(tool)))),
    };
    let mut config: Option<PathBuf> = None;
    let mut defenv: Option<PathBuf> = None;
    let mut lock_dir: Option<PathBuf> = None;
    let mut noheader = false;
    let mut script: Option<OsString> = None;
    for o in opts {
        // An option that takes a file, given twice: the C tools keep the last one and drop
        // the other silently; which one was meant is a guess.
        let once = |given: bool| {
            if given {
                Err(format!(
                    "{name}: option -{} given twice: give it once\n{}",
                    o.letter,
                    usage(tool)
                ))
            } else {
                Ok(())
            }
        };
        let checked = match o.letter {
            'c' => once(config.is_some()).map(|()| config = o.arg.map(PathBuf::from)),
            'f' => once(defenv.is_some()).map(|()| defenv = o.arg.map(PathBuf::from)),
            'l' => once(lock_dir.is_some()).map(|()| lock_dir = o.arg.map(PathBuf::from)),
            's' if tool == Tool::Set => once(script.is_some()).map(|()| script = o.arg),
            'n' if tool == Tool::Print => {
                noheader = true;
                Ok(())
            }
            'h' => return Ok(Parsed::Help),
            'v' | 'V' => return Ok(Parsed::Version),
            other => Err(format!(
                "{name}: option -{other} is not an option of {name}\n{}",
                usage(tool)
            )),
        };
        checked.map_err(RunError::Refused)?;
    }
    if tool == Tool::Print && noheader {
        let wrong = match style {
            Style::Libubootenv => operands.is_empty(),
            Style::UbootTools => operands.len() != 1,
        };
        if wrong {
            return Err(RunError::Refused(format!(
                "## Error: `-n'/`--noheader' option requires {} argument",
                match style {
                    Style::Libubootenv => "at least one",
                    Style::UbootTools => "exactly one",
                }
            )));
        }
    }
    if script.is_some() && !operands.is_empty() {
        return Err(RunError::Refused(format!(
            "{name}: -s FILE takes no NAME or VALUE arguments (got {}): put them in the script; nothing was written",
            operands
                .iter()
                .map(|o| format!("{:?}", o))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    Ok(Parsed::Run(Options {
        config,
        defenv,
        lock_dir,
        noheader,
        script,
        operands,
    }))
}

/// The drop-in tool as a `clap::Command`, for its man page and shell completions only: the
/// tool itself parses with [`getopt`] (the C tools' syntax, which clap does not follow). The
/// options come from the same table the parser uses, the notes from the `--help` text.
pub fn command(tool: Tool) -> clap::Command {
    let mut cmd = clap::Command::new(tool_name(tool))
        .version(env!("CARGO_PKG_VERSION"))
        .about(match tool {
            Tool::Print => "Print variables from the U-Boot environment",
            Tool::Set => "Modify variables in the U-Boot environment (one atomic write)",
        })
        // The `--help` text after its option list: the examples and where the C tools differ.
        .after_long_help(
            usage(tool)
                .splitn(3, "\n\n")
                .nth(2)
                .unwrap_or_default()
                .to_owned(),
        )
        .disable_help_flag(true)
        .disable_version_flag(true);
    for spec in SPECS {
        let (value, help) = match spec.short {
            'c' => (Some("FILE"), "configuration file"),
            'f' => (Some("FILE"), "default environment when no copy is valid"),
            'l' => (Some("DIR"), "directory of the lock file"),
            'n' if tool == Tool::Print => (None, "print only the values"),
            's' if tool == Tool::Set => (Some("FILE"), "set variables from FILE ('-' for stdin)"),
            'h' => (None, "print this help"),
            'v' | 'V' => (None, "print the version"),
            _ => continue,
        };
        let mut arg = clap::Arg::new(spec.long).long(spec.long).help(help);
        // `-n` has two long spellings and `-v`/`-V` one meaning: give each letter once.
        if !cmd
            .get_arguments()
            .any(|a| a.get_short() == Some(spec.short))
        {
            arg = arg.short(spec.short);
        }
        arg = match value {
            Some(v) => arg.value_name(v).action(clap::ArgAction::Set),
            None => arg.action(clap::ArgAction::SetTrue),
        };
        cmd = cmd.arg(arg);
    }
    let operands = match tool {
        Tool::Print => clap::Arg::new("VARIABLE").num_args(0..),
        Tool::Set => clap::Arg::new("NAME [VALUE]").num_args(0..),
    };
    cmd.arg(operands.action(clap::ArgAction::Append))
}

/// [`run`] in a given style.
pub fn run_with(
    tool: Tool,
    style: Style,
    args: &[OsString],
    io: &mut Io<'_>,
) -> Result<u8, RunError> {
    let name = tool_name(tool);
    let Options {
        config,
        defenv,
        lock_dir,
        noheader,
        script,
        operands,
    } = match parse_options(tool, style, args)? {
        Parsed::Run(o) => o,
        Parsed::Help => {
            let _ = write!(io.stdout, "{}", usage(tool));
            return Ok(0);
        }
        Parsed::Version => {
            let _ = writeln!(io.stdout, "{name} (fw-env) {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
    };
    let lock_file = lock_dir.map(|d| d.join("fw_printenv.lock"));
    let result = (|| -> Result<u8, CliError> {
        // Arguments and the script are checked before the environment is opened.
        let changes = match (tool, &script) {
            (Tool::Print, _) => None,
            (Tool::Set, Some(path)) => Some(parse_script(style, &read_script(path, io)?)?),
            (Tool::Set, None) => Some(changes_from_args(style, &operands)?),
        };
        let store = open_store(config.as_deref(), defenv.as_deref(), lock_file)?;
        match changes {
            None => {
                let snapshot = store.read()?;
                print_warning(&snapshot, io);
                Ok(print(style, &snapshot, &operands, noheader, io))
            }
            Some(changes) => {
                let (_, _report) = store.update(|snapshot| {
                    print_warning(snapshot, io);
                    Ok::<_, Error>((changes, ()))
                })?;
                Ok(0)
            }
        }
    })();
    result.map_err(|source| RunError::Failed {
        prefix: format!("{name}: "),
        source: Box::new(source),
        code: 1,
    })
}

/// Errors of the drop-in beyond the library's.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the library.
    #[error(transparent)]
    Env(#[from] Error),
    /// No variable name given.
    #[error("## Error: variable name missing")]
    NameMissing,
    /// A bad variable name.
    #[error("## Error: illegal variable name {name:?}: {reason}; nothing was written")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A script line cannot be used.
    #[error("{script}:{line}: {reason}; nothing was written")]
    Script {
        /// The script path.
        script: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The script cannot be read.
    #[error("cannot read script {path}: {source}")]
    ScriptRead {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// `fw-env mkimage` input that does not fit.
    #[error("{input}: {source} (give a larger --size, or shorten the input)")]
    Mkimage {
        /// The text input.
        input: String,
        /// Why.
        source: crate::codec::EncodeError,
    },
    /// Defaults file problem.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

fn print_line(io: &mut Io<'_>, parts: &[&[u8]]) {
    for p in parts {
        let _ = io.stdout.write_all(p);
    }
    let _ = io.stdout.write_all(b"\n");
}

fn print(
    style: Style,
    snapshot: &Snapshot,
    names: &[OsString],
    noheader: bool,
    io: &mut Io<'_>,
) -> u8 {
    if names.is_empty() && snapshot.source == Source::Empty {
        let _ = writeln!(io.stderr, "fw_printenv: no default environment to show: give the board's with -f FILE (u-boot-initial-env)");
        return 1;
    }
    if names.is_empty() {
        match style {
            // libubootenv lists its sorted variable list, which holds `.flags` apart.
            Style::Libubootenv => {
                for (name, value) in snapshot.vars.iter() {
                    if name != crate::flags::FLAGS_VAR.as_bytes() {
                        print_line(io, &[name, b"=", value]);
                    }
                }
            }
            Style::UbootTools => {
                for entry in &snapshot.entries {
                    print_line(io, &[entry]);
                }
            }
        }
        return 0;
    }
    let mut code = 0;
    for name in names {
        let n = name.as_bytes();
        let value = match (snapshot.vars.get_bytes(n), style) {
            (Some(v), _) => v,
            (None, Style::Libubootenv) => b"",
            (None, Style::UbootTools) => {
                let _ = writeln!(
                    io.stderr,
                    "## Error: \"{}\" not defined",
                    String::from_utf8_lossy(n)
                );
                code = 1;
                continue;
            }
        };
        if noheader {
            print_line(io, &[value]);
        } else {
            print_line(io, &[n, b"=", value]);
        }
    }
    code
}

fn checked_name(name: &[u8]) -> Result<(), CliError> {
    check_name(name).map_err(|e| CliError::BadName {
        name: String::from_utf8_lossy(name).into_owned(),
        reason: e.to_string(),
    })
}

/// The changes `fw_setenv NAME [VALUE]...` asks for, as bytes exactly.
///
/// libubootenv: name/value pairs (`fw_setenv a 1 b 2`); a value is stored as given, an empty
/// one included (`NAME=`); a last name without a value deletes it; no arguments change
/// nothing. U-Boot's tools: one name, the values joined with single spaces; no value or an
/// empty one deletes; no name is an error. Any bad name refuses the whole command.
pub fn changes_from_args(style: Style, operands: &[OsString]) -> Result<Changes, CliError> {
    let mut changes = Changes::new();
    match style {
        Style::Libubootenv => {
            for pair in operands.chunks(2) {
                let name = pair[0].as_bytes();
                checked_name(name)?;
                match pair.get(1) {
                    Some(value) => changes.set_exact(name, value.as_bytes()),
                    None => changes.push_bytes(name, None),
                }
            }
        }
        Style::UbootTools => {
            let (name, values) = operands.split_first().ok_or(CliError::NameMissing)?;
            checked_name(name.as_bytes())?;
            let value = values
                .iter()
                .map(|v| v.as_bytes())
                .collect::<Vec<_>>()
                .join(&b' ');
            changes.push_bytes(name.as_bytes(), (!value.is_empty()).then_some(value));
        }
    }
    Ok(changes)
}

/// A script's name for messages and its bytes.
pub struct Script {
    /// The path as given, or `<stdin>`.
    pub name: String,
    /// The contents.
    pub text: Vec<u8>,
}

fn read_script(path: &OsString, io: &mut Io<'_>) -> Result<Script, CliError> {
    use std::io::Read as _;
    // Bounded like every text fw-env reads: a script larger than any environment cannot fit.
    let max = crate::defaults::MAX_DEFAULTS_FILE;
    if path == "-" {
        let mut text = Vec::new();
        io.stdin
            .take(max + 1)
            .read_to_end(&mut text)
            .map_err(|source| CliError::ScriptRead {
                path: "<stdin>".to_owned(),
                source,
            })?;
        if text.len() as u64 > max {
            return Err(CliError::ScriptRead {
                path: "<stdin>".to_owned(),
                source: std::io::Error::other(format!(
                    "more than {max} bytes: larger than any environment"
                )),
            });
        }
        return Ok(Script {
            name: "<stdin>".to_owned(),
            text,
        });
    }
    // A regular file only: a FIFO or a device must not block or stream for ever.
    let text = crate::storage::read_small_file(Path::new(path), max, "script")?;
    Ok(Script {
        name: path.to_string_lossy().into_owned(),
        text,
    })
}

fn is_blank(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// Parse a `-s` script into one set of changes (one write). Lines are bytes, kept exactly
/// (values that are not UTF-8 included); a line ends at `\n`, and `\r`s before it are
/// dropped; a last line without `\n` counts; empty lines and lines starting with `#` are
/// skipped. Any bad line fails the whole script, naming file and line: nothing is written.
///
/// libubootenv's form (the default): `key=value` sets, `key=` deletes; the value is what
/// follows the first `=`, blanks included. A line without `=` (which libubootenv ignores and
/// U-Boot's tools apply) and a line starting with a blank (libubootenv makes the blanks part
/// of the name, U-Boot's tools drop them) are refused: one of the two tools would do
/// something else with them.
///
/// U-Boot's form (`FW_ENV_DROPIN=uboot-tools`): leading blanks skipped, the key ends at the
/// first blank or `=`, blanks after it skipped, the rest is the value; no value deletes.
pub fn parse_script(style: Style, script: &Script) -> Result<Changes, CliError> {
    let mut changes = Changes::new();
    let mut lines: Vec<&[u8]> = script.text.split(|&b| b == b'\n').collect();
    if script.text.ends_with(b"\n") {
        lines.pop();
    }
    for (index, raw) in lines.into_iter().enumerate() {
        let bad = |reason: String| CliError::Script {
            script: script.name.clone(),
            line: index + 1,
            reason,
        };
        let mut line = raw;
        while let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line.contains(&0) {
            return Err(bad("a NUL byte cannot be stored in a variable".into()));
        }
        let (name, value): (&[u8], &[u8]) = match style {
            Style::Libubootenv => {
                if is_blank(&line[0]) {
                    return Err(bad(
                        "the line starts with a blank, which libubootenv keeps in the name and U-Boot's tools drop: remove it".into(),
                    ));
                }
                let Some(eq) = line.iter().position(|&b| b == b'=') else {
                    return Err(bad(format!(
                        "{:?} has no '=': write NAME=VALUE to set, NAME= to delete (libubootenv ignores such a line, U-Boot's tools apply it)",
                        String::from_utf8_lossy(line)
                    )));
                };
                (&line[..eq], &line[eq + 1..])
            }
            Style::UbootTools => {
                let start = line.iter().position(|b| !is_blank(b));
                let Some(start) = start else { continue };
                let trimmed = &line[start..];
                let end = trimmed
                    .iter()
                    .position(|b| is_blank(b) || *b == b'=')
                    .unwrap_or(trimmed.len());
                let rest = &trimmed[end..];
                let rest = rest.strip_prefix(b"=").unwrap_or(rest);
                let skip = rest.iter().position(|b| !is_blank(b)).unwrap_or(rest.len());
                (&trimmed[..end], &rest[skip..])
            }
        };
        check_name(name).map_err(|e| bad(e.to_string()))?;
        changes.push_bytes(name, (!value.is_empty()).then(|| value.to_vec()));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documentation_command_has_every_option_of_the_parser() {
        for (tool, only) in [(Tool::Print, 'n'), (Tool::Set, 's')] {
            let cmd = command(tool);
            cmd.clone().debug_assert();
            for spec in SPECS {
                let shown = cmd.get_arguments().any(|a| a.get_long() == Some(spec.long));
                let belongs = !matches!(spec.short, 'n' | 's') || spec.short == only;
                assert_eq!(shown, belongs, "{:?} {}", tool, spec.long);
            }
        }
    }

    fn script(style: Style, t: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        parse_script(
            style,
            &Script {
                name: "s".into(),
                text: t.to_vec(),
            },
        )
        .unwrap()
        .iter_bytes()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect()
    }

    fn pair(k: &[u8], v: Option<&[u8]>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.to_vec(), v.map(<[u8]>::to_vec))
    }

    #[test]
    fn dispatch_on_argv0() {
        assert_eq!(
            tool_for(Path::new("/usr/bin/fw_printenv")),
            Some(Tool::Print)
        );
        assert_eq!(tool_for(Path::new("fw_setenv")), Some(Tool::Set));
        assert_eq!(tool_for(Path::new("/sbin/fw-env")), None);
    }

    #[test]
    fn style_variable() {
        assert_eq!(Style::from_var(None), Ok(Style::Libubootenv));
        assert_eq!(
            Style::from_var(Some("uboot-tools".as_ref())),
            Ok(Style::UbootTools)
        );
        assert!(Style::from_var(Some("uboot".as_ref())).is_err());
    }

    #[test]
    fn script_forms_libubootenv() {
        assert_eq!(
            script(
                Style::Libubootenv,
                b"# c\n\nnetdev=eth0\nkv= x y\r\nbaz=\nx==1\nraw=\xff\xfe\nlast=1"
            ),
            vec![
                pair(b"netdev", Some(b"eth0")),
                pair(b"kv", Some(b" x y")),
                pair(b"baz", None),
                pair(b"x", Some(b"=1")),
                pair(b"raw", Some(b"\xff\xfe")),
                pair(b"last", Some(b"1")),
            ]
        );
    }

    #[test]
    fn script_forms_uboot_tools() {
        assert_eq!(
            script(
                Style::UbootTools,
                b"# c\n\nnetdev   eth0\nfoo  a b   c\nbar\n  kv= x y\r\nbaz=\nn\xff v\xfe\n"
            ),
            vec![
                pair(b"netdev", Some(b"eth0")),
                pair(b"foo", Some(b"a b   c")),
                pair(b"bar", None),
                pair(b"kv", Some(b"x y")),
                pair(b"baz", None),
                pair(b"n\xff", Some(b"v\xfe")),
            ]
        );
    }

    #[test]
    fn script_bad_line_names_line() {
        for (style, text, line) in [
            (Style::UbootTools, &b"a 1\n=x\n"[..], 2),
            (Style::Libubootenv, b"a=1\n=x\n", 2),
            (Style::Libubootenv, b"a=1\nb 2\n", 2),
            (Style::Libubootenv, b"a=1\n\n  c=2\n", 3),
            (Style::Libubootenv, b"a=\x001\n", 1),
        ] {
            let e = parse_script(
                style,
                &Script {
                    name: "s.txt".into(),
                    text: text.to_vec(),
                },
            )
            .unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("s.txt:{line}:")),
                "{style:?} {text:?}: {e}"
            );
        }
    }

    #[test]
    fn args_in_both_styles() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let got = |style, v: &[&str]| {
            changes_from_args(style, &os(v)).map(|c| {
                c.iter()
                    .map(|(k, v)| (k.into_owned(), v.map(std::borrow::Cow::into_owned)))
                    .collect::<Vec<_>>()
            })
        };
        let some = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        assert_eq!(
            got(
                Style::UbootTools,
                &["bootargs", "console=ttyS0", "root=/dev/x"]
            )
            .unwrap(),
            vec![some("bootargs", "console=ttyS0 root=/dev/x")]
        );
        assert_eq!(
            got(Style::UbootTools, &["e", ""]).unwrap(),
            vec![("e".to_owned(), None)]
        );
        assert_eq!(
            got(Style::Libubootenv, &["a", "1", "b", "2", "c"]).unwrap(),
            vec![some("a", "1"), some("b", "2"), ("c".to_owned(), None)]
        );
        assert_eq!(
            got(Style::Libubootenv, &["e", ""]).unwrap(),
            vec![some("e", "")],
            "libubootenv stores an empty value"
        );
        assert!(got(Style::Libubootenv, &[]).unwrap().is_empty());
        assert!(got(Style::Libubootenv, &["a", "1", "b=c", "2"]).is_err());
        assert!(got(Style::UbootTools, &["a=b"]).is_err());
        assert!(matches!(
            changes_from_args(Style::UbootTools, &[]),
            Err(CliError::NameMissing)
        ));
    }
}
