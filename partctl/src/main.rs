//! `partctl`: thin wrapper around [`partctl::cli::run`].
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
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut io = partctl::cli::Io {
        out: &mut out,
        err: &mut err,
    };
    match partctl::cli::run(std::env::args_os().collect(), &mut io) {
        Ok(code) => code,
        Err(e) => {
            let _ = io.err.write_all(e.render().as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}
