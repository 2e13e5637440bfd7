//! The binaries a CLI test runs: the host build, or the robot's static riscv64 build under
//! `qemu-riscv64-static` (cargo xtask test-riscv64). One copy for every crate's tests: fw-env's and
//! partctl's use it through `zbot_tests::target` (a dev-dependency); bootcount's, which has no
//! dev-dependency on `zbot-tests`, include this file with `#[path]`.

/// The binaries under test: the host build (`CARGO_BIN_EXE_*`), or the robot's static riscv64
/// build when `cargo xtask test-riscv64` sets `ZBOT_TARGET_BIN_DIR` (the directory of
/// `cargo xtask dist`) and `ZBOT_TARGET_RUNNER` (`qemu-riscv64-static`).
pub fn target_bin(name: &str, host: &str) -> std::path::PathBuf {
    match std::env::var_os("ZBOT_TARGET_BIN_DIR") {
        Some(d) => {
            let p = std::path::Path::new(&d).join(name);
            assert!(
                p.is_file(),
                "ZBOT_TARGET_BIN_DIR={}: {name} is not there (run cargo xtask dist)",
                p.display()
            );
            p
        }
        None => host.into(),
    }
}

/// A command running `program` (a path from [`target_bin`], or a link to it: argv[0] is kept),
/// through `ZBOT_TARGET_RUNNER` when it is set.
pub fn target_command(program: &std::path::Path) -> std::process::Command {
    match std::env::var_os("ZBOT_TARGET_RUNNER") {
        Some(r) if !r.is_empty() => {
            let mut c = std::process::Command::new(r);
            c.arg(program);
            c
        }
        _ => std::process::Command::new(program),
    }
}
