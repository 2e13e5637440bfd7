//! The command-line tools, as library code so tests run them in-process with made-up
//! `argv[0]`s and captured output. The binaries are one-line wrappers around [`main`].

pub mod dropin;
pub mod friendly;
pub mod getopt;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// Why a tool stopped: the text for stderr and the exit code, carried together.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The arguments are not understood (clap's message and usage; exit 2).
    #[error("{}", .0.render())]
    Usage(clap::Error),
    /// A command failed: `PREFIX` then the error and its causes on one line.
    #[error("{prefix}{}", crate::error_chain(.source.as_ref()))]
    Failed {
        /// `fw-env: error: `, `fw_setenv: `.
        prefix: String,
        /// What failed.
        #[source]
        source: Box<dropin::CliError>,
        /// 1, or 2 for a `check` that could not read.
        code: u8,
    },
    /// A drop-in refusal in the C tools' words (exit 1).
    #[error("{0}")]
    Refused(String),
}

impl RunError {
    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(e) => u8::try_from(e.exit_code()).unwrap_or(2),
            RunError::Failed { code, .. } => *code,
            RunError::Refused(_) => 1,
        }
    }
}

/// Entry point of every binary: [`run`] on the process's streams; an error is printed on
/// stderr (one line, or clap's usage) and ends the process with its code.
pub fn main(argv: Vec<OsString>) -> ExitCode {
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
    match run(argv, &mut io) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                RunError::Usage(_) => write!(io.stderr, "{e}"),
                _ => writeln!(io.stderr, "{e}"),
            }
            .ok();
            ExitCode::from(e.exit_code())
        }
    }
}

/// Dispatch on argv\[0\] (`fw_printenv`, `fw_setenv`, anything else is the friendly `fw-env`)
/// and run the tool with injected streams. Ok: the code of a command that ran (0; 1 for a
/// variable not found or a problem `check` found). Errors carry their exit code.
pub fn run(argv: Vec<OsString>, io: &mut Io<'_>) -> Result<ExitCode, RunError> {
    let argv0 = argv.first().cloned().unwrap_or_default();
    let result = match dropin::tool_for(Path::new(&argv0)) {
        Some(tool) => dropin::run(tool, &argv[1..], io),
        None => friendly::run(argv, io),
    };
    let _ = io.stdout.flush();
    result.map(ExitCode::from)
}
