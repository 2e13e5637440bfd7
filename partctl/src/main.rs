//! `partctl`: thin wrapper around [`partctl::cli::run`].
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = partctl::cli::Cli::parse();
    match partctl::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("partctl: error: {e}");
            ExitCode::from(2)
        }
    }
}
