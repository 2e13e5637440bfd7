//! `partctl`: thin wrapper around [`partctl::cli::run`].
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Behave like a Unix tool in a pipe (`partctl check x | head`): die quietly on SIGPIPE.
    // SAFETY: setting a signal disposition to the default before any thread is started.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = partctl::cli::Cli::parse();
    match partctl::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("partctl: error: {e}");
            ExitCode::from(2)
        }
    }
}
