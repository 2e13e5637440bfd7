//! Thin wrapper: everything lives in `fw_env::cli`, which dispatches on argv[0].
fn main() -> std::process::ExitCode {
    fw_env::cli::main(std::env::args_os().collect())
}
