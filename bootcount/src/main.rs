//! `bootcount`: see `bootcount --help` and docs/boot-contract.md.
fn main() -> std::process::ExitCode {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut reboot = bootcount::cli::system_reboot;
    let result = bootcount::cli::run(
        std::env::args_os().collect(),
        &mut bootcount::cli::Ctx {
            out: &mut out,
            err: &mut err,
            reboot: &mut reboot,
        },
    );
    result.unwrap_or_else(|e| {
        bootcount::cli::print_error(&e, &mut err);
        std::process::ExitCode::from(e.exit_code())
    })
}
