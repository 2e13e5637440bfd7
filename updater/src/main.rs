fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::ExitCode::from(zbot_updater::cli::main_with(args) as u8)
}
