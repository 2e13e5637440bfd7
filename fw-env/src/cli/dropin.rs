//! `fw_printenv` and `fw_setenv`: one program, dispatching on the name it was run as, a
//! drop-in for U-Boot's `tools/env` and libubootenv's tools. Where the two differ we follow
//! U-Boot where that is safer; every difference is in the table in `docs/fw-env.md`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::getopt::{self, OptSpec};
use super::{open_store, print_warning, Io};
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
        short: 'a',
        long: "aes",
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

fn usage(tool: Tool) -> String {
    let common = format!(
        " -h, --help             print this help\n \
         -v, -V, --version      print the version\n \
         -c, --config FILE      configuration file (default {DEFAULT_CONFIG_PATH})\n \
         -f, --defenv FILE      default environment when no copy is valid\n                        \
         (default /etc/u-boot-initial-env, if present)\n \
         -l, --lock DIR         directory of the lock file (default /var/lock)\n"
    );
    match tool {
        Tool::Print => format!(
            "Usage: fw_printenv [OPTIONS]... [VARIABLE]...\nPrint variables from the U-Boot environment\n\n{common} \
             -n, --noheader         print only the value (exactly one VARIABLE)\n"
        ),
        Tool::Set => format!(
            "Usage: fw_setenv [OPTIONS]... VARIABLE [VALUE]...\n\
             Modify variables in the U-Boot environment (one atomic write)\n\n{common} \
             -s, --script FILE      set variables from FILE ('-' for stdin), all in one write\n\n\
             Examples:\n  fw_setenv foo bar        set foo to \"bar\"\n  \
             fw_setenv foo a b        set foo to \"a b\" (values are joined with spaces)\n  \
             fw_setenv foo            delete foo\n\n\
             Script syntax (one variable per line):\n  \
             key value                U-Boot's form: the first blank ends the key\n  \
             key=value                libubootenv's form\n  \
             key                      delete key\n  \
             # comment, and empty lines, are skipped\n"
        ),
    }
}

/// Run the drop-in tool `tool` with `args` (argv without argv\[0\]). Returns the exit code:
/// 0 on success, 1 on any failure, as both C tools do.
pub fn run(tool: Tool, args: &[OsString], io: &mut Io<'_>) -> i32 {
    let name = match tool {
        Tool::Print => "fw_printenv",
        Tool::Set => "fw_setenv",
    };
    let (opts, operands) = match getopt::parse(args, SPECS) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(io.stderr, "{name}: {e}\n{}", usage(tool));
            return 1;
        }
    };
    let mut config: Option<PathBuf> = None;
    let mut defenv: Option<PathBuf> = None;
    let mut lock_dir: Option<PathBuf> = None;
    let mut noheader = false;
    let mut script: Option<OsString> = None;
    for o in opts {
        match o.letter {
            'c' => config = o.arg.map(PathBuf::from),
            'f' => defenv = o.arg.map(PathBuf::from),
            'l' => lock_dir = o.arg.map(PathBuf::from),
            'n' if tool == Tool::Print => noheader = true,
            's' if tool == Tool::Set => script = o.arg,
            'a' => {}
            'h' => {
                let _ = write!(io.stdout, "{}", usage(tool));
                return 0;
            }
            'v' | 'V' => {
                let _ = writeln!(io.stdout, "{name} (fw-env) {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            other => {
                let _ = writeln!(
                    io.stderr,
                    "{name}: invalid option -- '{other}'\n{}",
                    usage(tool)
                );
                return 1;
            }
        }
    }
    if tool == Tool::Print && noheader && operands.len() != 1 {
        let _ = writeln!(
            io.stderr,
            "## Error: `-n'/`--noheader' option requires exactly one argument"
        );
        return 1;
    }
    let lock_file = lock_dir.map(|d| d.join("fw_printenv.lock"));
    let result = (|| -> Result<i32, CliError> {
        let store = open_store(config.as_deref(), defenv.as_deref(), lock_file)?;
        match tool {
            Tool::Print => {
                let snapshot = store.read()?;
                print_warning(&snapshot, io);
                Ok(print(&snapshot, &operands, noheader, io))
            }
            Tool::Set => {
                let changes = match &script {
                    Some(path) => parse_script(&read_script(path, io)?)?,
                    None => changes_from_args(&operands)?,
                };
                let (_, _report) = store.update(|snapshot| {
                    print_warning(snapshot, io);
                    Ok::<_, Error>((changes, ()))
                })?;
                Ok(0)
            }
        }
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io.stderr, "{name}: {}", super::error_chain(&e));
            1
        }
    }
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
    #[error("## Error: illegal variable name {name:?}: {reason}")]
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

fn print(snapshot: &Snapshot, names: &[OsString], noheader: bool, io: &mut Io<'_>) -> i32 {
    if names.is_empty() && snapshot.source == Source::Empty {
        let _ = writeln!(io.stderr, "fw_printenv: no default environment to show: give the board's with -f FILE (u-boot-initial-env)");
        return 1;
    }
    if names.is_empty() {
        for entry in &snapshot.entries {
            let _ = io.stdout.write_all(entry);
            let _ = io.stdout.write_all(b"\n");
        }
        return 0;
    }
    let mut code = 0;
    for name in names {
        let n = name.to_string_lossy();
        match snapshot.vars.get_bytes(n.as_bytes()) {
            Some(value) if noheader => {
                let _ = io.stdout.write_all(value);
                let _ = io.stdout.write_all(b"\n");
            }
            Some(value) => {
                let _ = io.stdout.write_all(n.as_bytes());
                let _ = io.stdout.write_all(b"=");
                let _ = io.stdout.write_all(value);
                let _ = io.stdout.write_all(b"\n");
            }
            None => {
                let _ = writeln!(io.stderr, "## Error: \"{n}\" not defined");
                code = 1;
            }
        }
    }
    code
}

fn checked_name(name: &str) -> Result<(), CliError> {
    check_name(name.as_bytes()).map_err(|e| CliError::BadName {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// `fw_setenv NAME [VALUE...]`: the values joined with single spaces, as U-Boot's tool does;
/// no value deletes.
pub fn changes_from_args(operands: &[OsString]) -> Result<Changes, CliError> {
    let (name, values) = operands.split_first().ok_or(CliError::NameMissing)?;
    let name = name.to_string_lossy().into_owned();
    checked_name(&name)?;
    let value = values
        .iter()
        .map(|v| v.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut changes = Changes::new();
    changes.push(name, (!value.is_empty()).then_some(value));
    Ok(changes)
}

fn read_script(path: &OsString, io: &mut Io<'_>) -> Result<(String, String), CliError> {
    let shown = path.to_string_lossy().into_owned();
    let mut text = String::new();
    let res = if path == "-" {
        io.stdin.read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    res.map_err(|source| CliError::ScriptRead {
        path: shown.clone(),
        source,
    })?;
    Ok((
        if path == "-" {
            "<stdin>".to_owned()
        } else {
            shown
        },
        text,
    ))
}

/// Parse a `-s` script. Each line is U-Boot's `key value` (the first blank ends the key;
/// blanks after it are skipped; no value deletes), or libubootenv's `key=value`, recognised
/// when the first word contains `=` (a name U-Boot would refuse). `#` lines and empty lines are
/// skipped. Any bad line fails the whole script: nothing is written (U-Boot's tool writes the
/// lines before the bad one).
pub fn parse_script((script, text): &(String, String)) -> Result<Changes, CliError> {
    let mut changes = Changes::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        let word_end = trimmed.find([' ', '\t']).unwrap_or(trimmed.len());
        let (name, value) = if let Some(eq) = trimmed[..word_end].find('=') {
            (
                &trimmed[..eq],
                trimmed[eq + 1..].trim_start_matches([' ', '\t']),
            )
        } else {
            (
                &trimmed[..word_end],
                trimmed[word_end..].trim_start_matches([' ', '\t']),
            )
        };
        check_name(name.as_bytes()).map_err(|e| CliError::Script {
            script: script.clone(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        changes.push(name, (!value.is_empty()).then(|| value.to_owned()));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(t: &str) -> Vec<(String, Option<String>)> {
        parse_script(&("s".into(), t.into()))
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
            .collect()
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
    fn script_forms() {
        assert_eq!(
            script("# c\n\nnetdev   eth0\nfoo  a b   c\nbar\n  kv= x y\r\nbaz=\n"),
            vec![
                ("netdev".into(), Some("eth0".into())),
                ("foo".into(), Some("a b   c".into())),
                ("bar".into(), None),
                ("kv".into(), Some("x y".into())),
                ("baz".into(), None),
            ]
        );
    }

    #[test]
    fn script_bad_line_names_line() {
        let e = parse_script(&("s.txt".into(), "a 1\n=x\n".into())).unwrap_err();
        assert!(e.to_string().starts_with("s.txt:2:"), "{e}");
    }

    #[test]
    fn args_are_joined_like_uboot() {
        let c = changes_from_args(&[
            "bootargs".into(),
            "console=ttyS0".into(),
            "root=/dev/x".into(),
        ])
        .unwrap();
        assert_eq!(
            c.iter().next(),
            Some(("bootargs", Some("console=ttyS0 root=/dev/x")))
        );
        assert!(changes_from_args(&["a=b".into()]).is_err());
        assert!(matches!(changes_from_args(&[]), Err(CliError::NameMissing)));
    }
}
