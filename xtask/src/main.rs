//! `cargo xtask man OUT_DIR` | `cargo xtask completions OUT_DIR` |
//! `cargo xtask test-summary LOG...` | `cargo xtask fuzz [SECONDS [CRATE TARGET]]` |
//! `cargo xtask dist [OUT]`: see xtask/README.md.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, logs @ ..] if task == "test-summary" && !logs.is_empty() => test_summary(logs),
        [task, rest @ ..] if task == "dist" && rest.len() <= 1 => dist(rest.first()),
        [task] if task == "test" => ExitCode::from(xtask::suite::run(workspace())),
        [task] if task == "test-riscv64" => test_riscv64(),
        [task, rest @ ..] if task == "fuzz" && matches!(rest.len(), 0 | 1 | 3) => fuzz(rest),
        [task, out] if task == "man" || task == "completions" => {
            let out = PathBuf::from(out);
            let written = if task == "man" {
                xtask::write_man(&out)
            } else {
                xtask::write_completions(&out)
            };
            match written {
                Ok(n) => {
                    println!("xtask: {n} files written under {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xtask: error: cannot write under {}: {e}", out.display());
                    ExitCode::from(1)
                }
            }
        }
        _ => usage(),
    }
}

/// The totals of `cargo test` logs; exit 0 only for a run with results and no failure.
fn test_summary(logs: &[String]) -> ExitCode {
    let mut s = xtask::summary::Summary::default();
    for log in logs {
        match std::fs::read(log) {
            Ok(b) => s.add(&String::from_utf8_lossy(&b)),
            Err(e) => {
                eprintln!("xtask: error: cannot read {log}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    print!("{s}");
    if s.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `fuzz [SECONDS [CRATE TARGET]]`: every target (or one) for SECONDS (default 10) each.
fn fuzz(args: &[String]) -> ExitCode {
    let seconds = match args.first().map(|s| s.parse::<u32>()) {
        None => 10,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!(
                "xtask fuzz: error: SECONDS must be a whole number above 0, not {:?}",
                args[0]
            );
            return ExitCode::from(2);
        }
    };
    let only = (args.len() == 3).then(|| xtask::fuzz::Target {
        krate: args[1].clone(),
        name: args[2].clone(),
    });
    let root = workspace();
    match xtask::fuzz::run(root, seconds, only) {
        Ok(ran) => {
            eprintln!(
                "xtask fuzz: {} targets ran {seconds}s each without a crash",
                ran.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask fuzz: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The workspace's root (xtask is one of its members).
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
}

/// `test-riscv64`: `dist`, then the CLI tests on those binaries under qemu-riscv64-static.
/// Exit 0 passed, 1 failed, 3 the toolchain or qemu-riscv64-static cannot be had here.
fn test_riscv64() -> ExitCode {
    use xtask::suite::{target_tests, Outcome};
    let out = workspace().join(xtask::dist::DEFAULT_OUT);
    if let Err(e) = xtask::dist::build(workspace(), &out) {
        eprintln!("xtask test-riscv64: error: {e}");
        return ExitCode::from(e.exit_code());
    }
    let (outcome, results) = target_tests(workspace(), &out, &[]);
    print!("{results}");
    match outcome {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::NotRun(why) => {
            eprintln!("xtask test-riscv64: {why}");
            ExitCode::from(3)
        }
        _ => ExitCode::from(1),
    }
}

/// `dist [OUT]`: the robot's static riscv64 binaries into OUT; prints OUT on stdout.
fn dist(out: Option<&String>) -> ExitCode {
    use xtask::dist;
    let root = workspace();
    let out = out
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("ZBOT_RISCV64_OUT").map(PathBuf::from))
        .unwrap_or_else(|| root.join(dist::DEFAULT_OUT));
    match dist::build(root, &out) {
        Ok(sizes) => {
            eprintln!(
                "xtask dist: static {} binaries in {} (stripped sizes in bytes):",
                dist::TARGET,
                out.display()
            );
            for (b, n) in sizes {
                eprintln!("  {b:<17} {n:>9}");
            }
            println!("{}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask dist: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask man OUT_DIR          (pages in OUT_DIR/man1: install as /usr/share/man)\n       \
         cargo xtask completions OUT_DIR  (bash, zsh, fish: install OUT_DIR as /usr/share)\n       \
         cargo xtask test-summary LOG...  (totals of cargo test logs: exit 0 all passed, 1 not, 2 unreadable)\n       \
         cargo xtask fuzz [SECONDS [CRATE TARGET]]  (every fuzz target, or one, SECONDS each, default 10)\n       \
         cargo xtask dist [OUT]           (the robot's static riscv64 binaries; exit 3: no toolchain here)\n       \
         cargo xtask test-riscv64         (dist, then the CLI tests on those bytes under qemu-riscv64-static)\n       \
         cargo xtask test                 (the whole suite; scripts/test.sh installs the Debian packages, then runs it)"
    );
    ExitCode::from(2)
}
