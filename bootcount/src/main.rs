//! `bootcount`: see `bootcount --help` and docs/boot-contract.md.
fn main() -> std::process::ExitCode {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut reboot = bootcount::cli::system_reboot;
    let code = bootcount::cli::main_with(
        std::env::args_os().collect(),
        &mut bootcount::cli::Ctx {
            out: &mut out,
            err: &mut err,
            reboot: &mut reboot,
        },
    );
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
