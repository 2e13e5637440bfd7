//! The command-line tools, as library code so tests run them in-process with made-up
//! `argv[0]`s and captured output. The binaries are one-line wrappers around [`main`].

pub mod dropin;
pub mod friendly;
pub mod getopt;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::defaults::DefaultsFrom;
use crate::store::{self, Snapshot, Store};

/// Where the default environment is read from when no `-f`/`--defaults` is given and the file
/// exists (libubootenv's default; U-Boot's build writes it as `u-boot-initial-env`).
pub const DEFAULT_DEFAULTS_PATH: &str = "/etc/u-boot-initial-env";

/// The standard streams, injectable for tests.
pub struct Io<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
}

/// Open the store for the CLI options: config (default `/etc/fw_env.config`), defaults file
/// (explicit, or the default path when it exists), lock file (explicit, or the library's).
pub fn open_store(
    config: Option<&Path>,
    defaults: Option<&Path>,
    lock_file: Option<PathBuf>,
) -> Result<Store, dropin::CliError> {
    let config = config.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let mut s = Store::from_config_file(config)?;
    let defaults = match defaults {
        Some(p) => Some(store::load_defaults(p)?),
        // symlink_metadata: a dangling link is reported by the load, not taken for "absent".
        None if std::fs::symlink_metadata(DEFAULT_DEFAULTS_PATH).is_ok() => Some(
            crate::Defaults::load(Path::new(DEFAULT_DEFAULTS_PATH), DefaultsFrom::DefaultPath)?,
        ),
        None => None,
    };
    s = s.with_defaults_file(defaults);
    if let Some(l) = lock_file {
        s = s.with_lock_file(Some(l));
    }
    Ok(s)
}

/// Say on stderr when no copy is valid.
pub fn print_warning(snapshot: &Snapshot, io: &mut Io<'_>) {
    if let Some(w) = snapshot.warning() {
        let _ = writeln!(io.stderr, "{w}");
    }
}

/// An error and its causes on one line, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Entry point of every binary: dispatch on argv\[0\] (`fw_printenv`, `fw_setenv`, anything
/// else is the friendly `fw-env`) and return the exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut stdin = stdin.lock();
    let mut stdout = stdout.lock();
    let mut stderr = stderr.lock();
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    run(argv, &mut io)
}

/// [`main`] with injected streams.
pub fn run(argv: Vec<OsString>, io: &mut Io<'_>) -> i32 {
    let argv0 = argv.first().cloned().unwrap_or_default();
    let code = match dropin::tool_for(Path::new(&argv0)) {
        Some(tool) => dropin::run(tool, &argv[1..], io),
        None => friendly::run(argv, io),
    };
    let _ = io.stdout.flush();
    code
}
