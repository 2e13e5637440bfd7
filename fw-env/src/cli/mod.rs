//! The command-line tools, as library code so tests run them in-process with made-up
//! `argv[0]`s and captured output. The binaries are one-line wrappers around [`main`].

pub mod dropin;
pub mod friendly;
pub mod getopt;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::open::{OpenOptions, LOCK_FILE_VAR, LOCK_TIMEOUT_VAR};
use crate::store::{Snapshot, Store};

pub use crate::open::DEFAULT_DEFAULTS_PATH;

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
/// (explicit, or the default path when it exists), lock file (`-l`, else `$FW_ENV_LOCK_FILE`,
/// else the shared one) and `$FW_ENV_LOCK_TIMEOUT`: the process environment is read here, in
/// the CLI layer, never by the library.
pub fn open_store(
    config: Option<&Path>,
    defaults: Option<&Path>,
    lock_file: Option<PathBuf>,
) -> Result<Store, dropin::CliError> {
    let mut options = OpenOptions {
        config: config.unwrap_or(Path::new(DEFAULT_CONFIG_PATH)).to_owned(),
        defaults: defaults.map(Path::to_owned),
        ..OpenOptions::default()
    }
    .with_lock_vars(
        std::env::var_os(LOCK_FILE_VAR),
        std::env::var_os(LOCK_TIMEOUT_VAR),
    )?;
    if let Some(l) = lock_file {
        options.lock_file = l;
    }
    Ok(options.open()?)
}

/// Say on stderr when no copy is valid.
pub fn print_warning(snapshot: &Snapshot, io: &mut Io<'_>) {
    if let Some(w) = snapshot.warning() {
        let _ = writeln!(io.stderr, "{w}");
    }
}

pub use crate::error_chain;

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
