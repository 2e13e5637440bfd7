//! `uboot-scripts`: generate the U-Boot boot script, default environment, board header and
//! `boot.scr` from the slot file. The logic is the library's (`uboot_scripts::cli::run`).
use std::process::ExitCode;
use uboot_scripts::cli::{run, Io};

fn main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    match run(std::env::args_os().collect(), &mut io) {
        Ok(code) => code,
        Err(e) => {
            let _ = io.err.write_all(e.render().as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}
