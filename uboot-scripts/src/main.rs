//! `uboot-scripts`: generate the U-Boot boot script, default environment, board header and
//! `boot.scr` from the slot file. The logic is the library's (`uboot_scripts::cli`).
use clap::Parser;
use std::process::ExitCode;
use uboot_scripts::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uboot-scripts: error: {e}");
            ExitCode::from(1)
        }
    }
}
