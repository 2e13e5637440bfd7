use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    zbot_migrate_env::cli::main(zbot_migrate_env::cli::Args::parse())
}
