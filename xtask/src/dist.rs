//! `cargo xtask dist [OUT]`: the static riscv64 binaries of everything that runs on the robot
//! (Milk-V Duo S, C906, 64-bit Linux; its rootfs is musl, and a static binary does not care).
//!
//! Rust's `riscv64gc-unknown-linux-gnu` (rustup), Debian's `gcc-riscv64-linux-gnu` as linker,
//! `-C target-feature=+crt-static` with `libc6-dev-riscv64-cross`; release profile, stripped,
//! each result checked to be a static RISC-V executable. [`BINARIES`] is the one list of what
//! ships: the Buildroot tree's prebuilt packages are checked against it
//! (tests/tests/buildroot_tree.rs).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target of the board.
pub const TARGET: &str = "riscv64gc-unknown-linux-gnu";
/// The prefix of Debian's cross binutils and gcc for it.
pub const CROSS: &str = "riscv64-linux-gnu";

/// One cargo build: its packages and extra flags. Two builds, because cargo unifies features
/// within one and the robot's agent must not get the host's `pack` (OpenSSL, zlib, zstd).
pub const BUILDS: [&[&str]; 2] = [
    &[
        "-p",
        "fw-env",
        "-p",
        "bootcount",
        "-p",
        "partctl",
        "-p",
        "zbot-migrate-env",
    ],
    &["-p", "zbot-updater", "--no-default-features"],
];

/// Every binary that ships, in the order they are reported.
pub const BINARIES: [&str; 5] = [
    "fw-env",
    "bootcount",
    "partctl",
    "zbot-migrate-env",
    "zbot-updater",
];

/// Names that are symlinks to a binary: `fw-env` acts as libubootenv's tools by its name.
pub const LINKS: [(&str, &str); 2] = [("fw_printenv", "fw-env"), ("fw_setenv", "fw-env")];

/// Where the binaries go without an OUT: `$ZBOT_RISCV64_OUT`, else this, under the workspace
/// (the Buildroot tree's prebuilt packages read it from there).
pub const DEFAULT_OUT: &str = "target/riscv64/bin";

/// Why no binaries were made.
#[derive(Debug)]
pub enum DistError {
    /// The toolchain cannot be had on this machine (exit 3: callers say "not run", loudly).
    Unavailable(String),
    /// The build or a check of its result failed (exit 1).
    Failed(String),
}

impl DistError {
    /// The exit code: 3 unavailable, 1 failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            DistError::Unavailable(_) => 3,
            DistError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::Unavailable(m) | DistError::Failed(m) => f.write_str(m),
        }
    }
}

/// Whether `file -b`'s description of a binary is a statically linked RISC-V executable.
pub fn is_static_riscv(description: &str) -> bool {
    description.contains("RISC-V") && description.contains("statically linked")
}

/// The cargo environment variable for a per-target setting (`CARGO_TARGET_<TRIPLE>_<KEY>`).
pub fn target_var(key: &str) -> String {
    format!(
        "CARGO_TARGET_{}_{key}",
        TARGET.to_uppercase().replace('-', "_")
    )
}

/// Build, strip, check and link every binary into `out`; returns the sizes in bytes.
pub fn build(root: &Path, out: &Path) -> Result<Vec<(&'static str, u64)>, DistError> {
    ensure_cross_toolchain(root)?;
    ensure_rust_target()?;
    for args in BUILDS {
        let st = Command::new("cargo")
            .current_dir(root)
            .args(["build", "--release", "--locked", "--target", TARGET])
            .args(args)
            .env(target_var("LINKER"), format!("{CROSS}-gcc"))
            .env(target_var("RUSTFLAGS"), "-C target-feature=+crt-static")
            .status()
            .map_err(|e| DistError::Failed(format!("cannot run cargo: {e}")))?;
        if !st.success() {
            return Err(DistError::Failed(format!(
                "cargo build {} for {TARGET} failed",
                args.join(" ")
            )));
        }
    }
    let built = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(TARGET)
        .join("release");
    let io = |what: &str, p: &Path, e: std::io::Error| {
        DistError::Failed(format!("{what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(out).map_err(|e| io("cannot create", out, e))?;
    let mut sizes = Vec::new();
    for b in BINARIES {
        let (from, to) = (built.join(b), out.join(b));
        if !from.is_file() {
            return Err(DistError::Failed(format!(
                "{} was not built",
                from.display()
            )));
        }
        // Stripped into a temporary name and renamed: OUT never holds half a binary.
        let tmp = out.join(format!("{b}.tmp"));
        run_ok(
            Command::new(format!("{CROSS}-strip"))
                .arg("-o")
                .arg(&tmp)
                .arg(&from),
            &format!("{CROSS}-strip {}", from.display()),
        )?;
        std::fs::rename(&tmp, &to).map_err(|e| io("cannot rename into", &to, e))?;
        let desc = run_ok(Command::new("file").arg("-b").arg(&to), "file")?;
        if !is_static_riscv(&desc) {
            return Err(DistError::Failed(format!(
                "{} is not a static RISC-V executable: {}",
                to.display(),
                desc.trim()
            )));
        }
        let len = to.metadata().map_err(|e| io("cannot stat", &to, e))?.len();
        sizes.push((b, len));
    }
    for (link, target) in LINKS {
        let p = out.join(link);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).map_err(|e| io("cannot link", &p, e))?;
    }
    Ok(sizes)
}

/// Run a command to success and return its stdout.
fn run_ok(cmd: &mut Command, what: &str) -> Result<String, DistError> {
    let o = cmd
        .output()
        .map_err(|e| DistError::Failed(format!("cannot run {what}: {e}")))?;
    if !o.status.success() {
        return Err(DistError::Failed(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The cross gcc (the linker) and the static cross libc, from Debian (scripts/setup-debian.sh
/// installs them when run as root).
fn ensure_cross_toolchain(root: &Path) -> Result<(), DistError> {
    let gcc = format!("{CROSS}-gcc");
    let libc = PathBuf::from(format!("/usr/{CROSS}/lib/libc.a"));
    let ready = || have(&gcc) && libc.is_file();
    if ready() {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Err(DistError::Unavailable(format!(
            "{gcc} or {} is missing: run scripts/setup-debian.sh as root (gcc-riscv64-linux-gnu, libc6-dev-riscv64-cross)",
            libc.display()
        )));
    }
    let setup = Command::new("bash")
        .arg(root.join("scripts/setup-debian.sh"))
        .stdout(std::process::Stdio::null())
        .status();
    if !setup.is_ok_and(|s| s.success()) {
        return Err(DistError::Unavailable(
            "scripts/setup-debian.sh failed: install gcc-riscv64-linux-gnu and libc6-dev-riscv64-cross by hand".into(),
        ));
    }
    if ready() {
        Ok(())
    } else {
        Err(DistError::Unavailable(format!(
            "{gcc} or {} still missing after setup (Debian packages gcc-riscv64-linux-gnu, libc6-dev-riscv64-cross)",
            libc.display()
        )))
    }
}

/// The Rust standard library for [`TARGET`] (a download of about 2 minutes the first time).
fn ensure_rust_target() -> Result<(), DistError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|_| {
            DistError::Unavailable(format!(
                "rustup not found: the {TARGET} standard library comes from rustup"
            ))
        })?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask dist: installing the Rust target {TARGET} (rustup target add)");
    let st = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if st.is_ok_and(|s| s.success()) {
        Ok(())
    } else {
        Err(DistError::Unavailable(format!(
            "rustup target add {TARGET} failed (offline, or no such target for this toolchain): the riscv64 binaries cannot be built on this machine"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_descriptions_of_static_riscv_binaries() {
        assert!(is_static_riscv(
            "ELF 64-bit LSB executable, UCB RISC-V, RVC, double-float ABI, version 1 (SYSV), statically linked, stripped"
        ));
        assert!(!is_static_riscv(
            "ELF 64-bit LSB pie executable, UCB RISC-V, RVC, double-float ABI, version 1 (SYSV), dynamically linked, interpreter /lib/ld-linux-riscv64-lp64d.so.1, stripped"
        ));
        assert!(!is_static_riscv(
            "ELF 64-bit LSB executable, x86-64, version 1 (SYSV), statically linked, stripped"
        ));
    }

    #[test]
    fn cargo_target_variables_name_the_triple_as_cargo_wants() {
        assert_eq!(
            target_var("LINKER"),
            "CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER"
        );
    }

    #[test]
    fn every_binary_is_built_by_exactly_one_build_and_is_a_workspace_package() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let manifest = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        for b in BINARIES {
            // Each binary is its package's name.
            let package = b;
            let builds = BUILDS
                .iter()
                .filter(|args| args.windows(2).any(|w| w == ["-p", package]))
                .count();
            assert_eq!(builds, 1, "{b} is built by {builds} builds");
            assert!(
                manifest.contains(&format!("name = \"{package}\"")),
                "{package} is not a package of the workspace"
            );
        }
        for (link, target) in LINKS {
            assert!(BINARIES.contains(&target), "{link} -> {target}");
        }
    }
}
