//! `cargo xtask test`: the whole test suite, what the README calls "the test command" and CI
//! runs (through `scripts/test.sh`, which installs the Debian packages first).
//!
//! Steps, each idempotent and cached, so a second run is quick; a failing step does not stop
//! the later ones (one failure must not hide another), the run fails at the end:
//! 1. the U-Boot peers (`qemu/build-uboot.sh`: tools, sandbox, QEMU builds from Debian's
//!    source, and `qemu-riscv64-zbot` with the generated default env compiled in); the paths it
//!    prints go into every later step's environment, so a concurrent build elsewhere cannot
//!    change what this run tests;
//! 2. `cargo test --workspace --no-fail-fast`;
//! 3. the robot's static riscv64 binaries ([`crate::dist`]) through the fw-env drop-in,
//!    bootcount story and partctl CLI tests under qemu-riscv64-static; NOT RUN (counted, loudly)
//!    where the toolchain cannot be had;
//! 4. `scripts/test-buildroot.sh`, the BR2_EXTERNAL tree's board scripts;
//! 5. every fuzz target for `FUZZ_SECONDS` (default 10) each ([`crate::fuzz`]);
//! 6. `qemu/demo.sh`, the README's main command, as a newcomer runs it: an empty `ZBOT_CACHE`
//!    and none of step 1's paths, so U-Boot's source, the kernel and the ROM are fetched and
//!    built from nothing (`ZBOT_SKIP_NEWCOMER=1` skips it, loudly).
//!
//! Logs go to `target/zbot-test/` (the cargo test log grows as it runs); the last lines are
//! each step's outcome and the totals of [`crate::summary`].

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::summary::Summary;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// It ran and failed, or could not run when it should have.
    Failed,
    /// It could not run on this machine, for the reason given (counted in the summary).
    NotRun(String),
    /// Skipped on request (`ZBOT_SKIP_NEWCOMER=1`).
    Skipped,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Failed => f.write_str("FAILED"),
            Outcome::NotRun(why) => write!(f, "NOT RUN ({why})"),
            Outcome::Skipped => f.write_str("skipped (ZBOT_SKIP_NEWCOMER=1)"),
        }
    }
}

/// Whether a `cargo test` log shows a run that passed: at least one result line, no failed
/// result and no `error:`/`error[` line (a build error, cargo's "test failed").
pub fn cargo_log_passed(log: &str) -> bool {
    let mut results = false;
    for l in log.lines() {
        if l.starts_with("test result: FAILED")
            || l.starts_with("error:")
            || l.starts_with("error[")
        {
            return false;
        }
        results |= l.starts_with("test result");
    }
    results
}

/// The lines of a running `cargo test` worth showing live.
pub fn is_progress_line(l: &str) -> bool {
    ["test result", "running", "error", "failures", "---- "]
        .iter()
        .any(|p| l.starts_with(p))
        || l.contains("panicked")
}

/// The `NAME='value'` assignments a script prints for `eval` (qemu/build-uboot.sh).
pub fn shell_assignments(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once('=')?;
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            ok.then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// One run of the suite.
struct Run {
    root: PathBuf,
    logs: PathBuf,
    /// Step 1's paths, given to every later step.
    peers: Vec<(String, String)>,
    /// `test result:` lines of the steps after cargo test, for the totals.
    step_results: String,
}

/// A log's text, whatever bytes the tests printed (an unreadable log reads as empty, which
/// counts as no result: a failure).
fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn step(name: &str) {
    eprintln!("\n== {name}");
}

/// Run the suite; the exit code is 0 only when every step that ran passed.
pub fn run(root: &Path) -> u8 {
    let logs = root.join("target/zbot-test");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("xtask test: error: cannot create {}: {e}", logs.display());
        return 1;
    }
    let mut r = Run {
        root: root.to_path_buf(),
        logs,
        peers: Vec::new(),
        step_results: String::new(),
    };
    step("U-Boot peers (cached in $ZBOT_CACHE, default ~/.cache/zbot)");
    let peers = r.uboot_peers();
    step("cargo test --workspace");
    let cargo = r.cargo_test();
    step("the robot's riscv64 binaries under qemu-riscv64-static (cargo xtask dist)");
    let riscv = r.riscv64();
    step("the BR2_EXTERNAL tree's board scripts (scripts/test-buildroot.sh)");
    let buildroot = r.buildroot();
    step("fuzz smoke runs (cargo xtask fuzz)");
    let fuzz = r.fuzz();
    step("the main command on an empty cache (qemu/demo.sh, as a newcomer runs it)");
    let newcomer = r.newcomer();

    let steps_log = r.logs.join("steps.log");
    let mut s = Summary::default();
    s.add(&read_lossy(&r.logs.join("cargo-test.log")));
    s.add(&r.step_results);
    let _ = std::fs::write(&steps_log, &r.step_results);
    let outcomes = [
        ("the U-Boot peers", &peers),
        ("cargo test --workspace", &cargo),
        ("the README's main command on an empty cache", &newcomer),
        ("the robot's riscv64 binaries (qemu-riscv64-static)", &riscv),
        ("the buildroot/ board scripts", &buildroot),
        ("the fuzz smoke runs", &fuzz),
    ];
    println!();
    print!("{s}");
    for (name, o) in &outcomes {
        println!("{name}: {o}");
    }
    let not_run = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NotRun(_)))
        .count();
    if not_run > 0 {
        println!("{not_run} step NOT RUN (see above)");
    }
    let failed = outcomes.iter().any(|(_, o)| **o == Outcome::Failed);
    u8::from(failed || !s.success())
}

impl Run {
    /// Record a step's result lines (a failed one when it printed none).
    fn add_result(&mut self, log: &str, otherwise: &str) {
        self.step_results.push_str(&result_lines(log, otherwise));
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.root).envs(self.peers.iter().cloned());
        c
    }

    /// Run a command with stdout and stderr into `log`; its success and the log's text.
    fn logged(&self, mut cmd: Command, log: &str) -> (bool, String) {
        let path = self.logs.join(log);
        let ok = match std::fs::File::create(&path).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((out, err)) => cmd
                .stdout(out)
                .stderr(err)
                .status()
                .is_ok_and(|s| s.success()),
            Err(e) => {
                eprintln!("xtask test: cannot write {}: {e}", path.display());
                false
            }
        };
        (ok, read_lossy(&path))
    }

    fn uboot_peers(&mut self) -> Outcome {
        let build = |r: &Run, args: &[&str], extra: &[(&str, &Path)]| -> Option<String> {
            let mut c = r.command("bash");
            c.arg("qemu/build-uboot.sh")
                .args(args)
                .stderr(Stdio::inherit());
            c.envs(extra.iter().map(|(k, v)| (*k, *v)));
            let o = c.output().ok()?;
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let Some(text) = build(self, &[], &[]) else {
            eprintln!("xtask test: qemu/build-uboot.sh failed");
            return Outcome::Failed;
        };
        self.peers = shell_assignments(&text);
        // The QEMU boot loops need U-Boot with the generated default env compiled in (the
        // tests would build it on first use too; here it stays out of the test timings).
        let env = self.logs.join("zbot-default-env.txt");
        let mut gen = self.command("cargo");
        gen.args(["run", "-q", "--locked", "-p", "uboot-scripts", "--"])
            .args(["--board", "qemu", "default-env"]);
        let generated = gen
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| std::fs::write(&env, o.stdout).is_ok());
        if generated != Some(true) {
            eprintln!("xtask test: uboot-scripts default-env failed");
            return Outcome::Failed;
        }
        match build(self, &["qemu-riscv64-zbot"], &[("ZBOT_DEFAULT_ENV", &env)]) {
            Some(text) => {
                self.peers.extend(shell_assignments(&text));
                Outcome::Passed
            }
            None => {
                eprintln!("xtask test: qemu/build-uboot.sh qemu-riscv64-zbot failed");
                Outcome::Failed
            }
        }
    }

    /// `cargo test --workspace`, its output into cargo-test.log with the progress lines shown.
    fn cargo_test(&mut self) -> Outcome {
        let path = self.logs.join("cargo-test.log");
        let run = || -> std::io::Result<()> {
            let mut log = std::fs::File::create(&path)?;
            // One pipe for stdout and stderr, as `2>&1 | tee` had them: in the order written.
            let (reader, writer) = nix::unistd::pipe().map_err(std::io::Error::from)?;
            let mut child = {
                let mut c = self.command("cargo");
                c.args(["test", "--workspace", "--locked", "--no-fail-fast"])
                    .stdout(writer.try_clone()?)
                    .stderr(writer);
                c.spawn()?
                // `c`, holding the pipe's write ends, is dropped here: the read below ends
                // when cargo and the tests it started are done.
            };
            // Bytes, not `lines()`: a test may print invalid UTF-8, which must not end the read.
            let mut reader = BufReader::new(std::fs::File::from(reader));
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf)? > 0 {
                log.write_all(&buf)?;
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if is_progress_line(line) {
                    eprintln!("{line}");
                }
                buf.clear();
            }
            child.wait()?;
            Ok(())
        };
        if let Err(e) = run() {
            eprintln!("xtask test: cargo test: {e}");
            return Outcome::Failed;
        }
        let log = read_lossy(&path);
        if cargo_log_passed(&log) {
            Outcome::Passed
        } else {
            let tail: Vec<&str> = log.lines().collect();
            eprintln!("{}", tail[tail.len().saturating_sub(60)..].join("\n"));
            eprintln!("xtask test: cargo test failed (log: {})", path.display());
            Outcome::Failed
        }
    }

    fn riscv64(&mut self) -> Outcome {
        let out = self.root.join(crate::dist::DEFAULT_OUT);
        if let Err(e) = crate::dist::build(&self.root, &out) {
            eprintln!("xtask test: cargo xtask dist: {e}");
            return match e {
                crate::dist::DistError::Unavailable(why) => Outcome::NotRun(why),
                crate::dist::DistError::Failed(_) => {
                    self.add_result("", "the riscv64 build failed");
                    Outcome::Failed
                }
            };
        }
        let (outcome, log) = target_tests(&self.root, &out, &self.peers);
        self.add_result(&log, "the riscv64 tests printed no result");
        if let Outcome::NotRun(why) = &outcome {
            eprintln!("xtask test: the riscv64 binaries were NOT tested: {why}");
        }
        outcome
    }

    fn buildroot(&mut self) -> Outcome {
        let mut c = self.command("bash");
        c.arg("scripts/test-buildroot.sh");
        let (ok, log) = self.logged(c, "buildroot.log");
        self.add_result(&log, "scripts/test-buildroot.sh printed no result");
        if ok {
            Outcome::Passed
        } else {
            let tail: Vec<&str> = log.lines().collect();
            eprintln!("{}", tail[tail.len().saturating_sub(30)..].join("\n"));
            Outcome::Failed
        }
    }

    fn fuzz(&mut self) -> Outcome {
        let seconds = match std::env::var("FUZZ_SECONDS") {
            Err(_) => 10,
            Ok(s) => match s.parse() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("xtask test: FUZZ_SECONDS={s:?} is not a whole number above 0");
                    return Outcome::Failed;
                }
            },
        };
        match crate::fuzz::run(&self.root, seconds, None) {
            Ok(ran) => {
                self.step_results.push_str(&format!(
                    "test result: ok. {} passed; 0 failed (fuzz targets, {seconds}s each)\n",
                    ran.len()
                ));
                Outcome::Passed
            }
            Err(e) => {
                eprintln!("xtask fuzz: error: {e}");
                self.add_result("", "a fuzz target crashed or did not build");
                Outcome::Failed
            }
        }
    }

    fn newcomer(&mut self) -> Outcome {
        if std::env::var("ZBOT_SKIP_NEWCOMER").as_deref() == Ok("1") {
            eprintln!(
                "xtask test: ZBOT_SKIP_NEWCOMER=1: the README's main command was NOT run on an empty cache"
            );
            return Outcome::Skipped;
        }
        let cache = match tempfile::Builder::new().prefix("zbot-newcomer-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("xtask test: cannot make an empty cache directory: {e}");
                return Outcome::Failed;
            }
        };
        // A newcomer's shell: none of step 1's paths, and an empty cache.
        let mut c = Command::new("bash");
        c.current_dir(&self.root)
            .arg("qemu/demo.sh")
            .env("ZBOT_CACHE", cache.path());
        for (name, _) in &self.peers {
            c.env_remove(name);
        }
        let (ok, log) = self.logged(c, "demo-newcomer.log");
        drop(cache); // removed
        self.add_result(&log, "qemu/demo.sh printed no test result");
        if ok {
            Outcome::Passed
        } else {
            let tail: Vec<&str> = log.lines().collect();
            eprintln!("{}", tail[tail.len().saturating_sub(40)..].join("\n"));
            eprintln!(
                "xtask test: qemu/demo.sh failed on an empty cache (log: {})",
                self.logs.join("demo-newcomer.log").display()
            );
            Outcome::Failed
        }
    }
}

/// The CLI stories on the robot's bytes: the fw-env drop-in, bootcount's stories and
/// partctl's CLI tests, with `ZBOT_TARGET_BIN_DIR` and `ZBOT_TARGET_RUNNER` (the tests' helpers
/// then run `qemu-riscv64-static BIN ...`). bootcount's
/// power_cut_inside_every_write_of_every_story needs fw-env's fault-injection build, which the
/// shipped binary has not: it runs on the host build only. Returns the outcome and the
/// `test result:` lines.
pub fn target_tests(root: &Path, bin: &Path, env: &[(String, String)]) -> (Outcome, String) {
    let Some(runner) = qemu_riscv64_static() else {
        return (
            Outcome::NotRun(
                "qemu-riscv64-static not found (Debian package qemu-user-static, scripts/setup-debian.sh): the riscv64 binaries were built but NOT tested".into(),
            ),
            String::new(),
        );
    };
    let mut passed = true;
    let mut results = String::new();
    for args in TARGET_TESTS {
        eprintln!("== riscv64: cargo test {}", args.join(" "));
        let mut c = Command::new("cargo");
        c.current_dir(root)
            .args(["test", "--locked"])
            .args(args)
            .envs(env.iter().cloned())
            .env("ZBOT_TARGET_BIN_DIR", bin)
            .env("ZBOT_TARGET_RUNNER", &runner);
        let (ok, text) = match c.output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run cargo: {e}")),
        };
        if !ok {
            passed = false;
            let why = text.lines().filter(|l| {
                l.starts_with("---- ") || l.contains("panicked") || l.starts_with("failures")
            });
            eprintln!("{}", why.collect::<Vec<_>>().join("\n"));
        }
        let lines = result_lines(
            &text,
            &format!("cargo test {} printed no result", args.join(" ")),
        );
        eprint!("{lines}");
        results.push_str(&lines);
    }
    let outcome = if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    (outcome, results)
}

/// The test files run on the robot's bytes. bootcount's power-cut story needs fw-env's
/// fault-injection build, which the shipped binary has not: it runs on the host build only.
const TARGET_TESTS: [&[&str]; 3] = [
    &["-p", "fw-env", "--test", "dropin"],
    &[
        "-p",
        "bootcount",
        "--test",
        "stories",
        "--",
        "--skip",
        "power_cut_inside_every_write_of_every_story",
    ],
    &["-p", "partctl", "--test", "cli"],
];

/// Debian's qemu-user-static runner (no binfmt registration needed: it is called with the
/// binary as its argument).
fn qemu_riscv64_static() -> Option<PathBuf> {
    [
        "/usr/bin/qemu-riscv64-static",
        "/usr/local/bin/qemu-riscv64-static",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The `test result:` lines of a step's output, or one failed result saying `otherwise` when
/// it printed none (a step that says nothing must not count as passed).
pub fn result_lines(log: &str, otherwise: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("test result"))
        .collect();
    if lines.is_empty() {
        format!("test result: FAILED. 0 passed; 1 failed ({otherwise})\n")
    } else {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cargo_log_passes_only_with_results_and_no_failure() {
        assert!(cargo_log_passed(
            "running 2 tests\ntest result: ok. 2 passed; 0 failed\n"
        ));
        assert!(!cargo_log_passed(""));
        assert!(!cargo_log_passed(
            "test result: ok. 1 passed\ntest result: FAILED. 0 passed; 1 failed\n"
        ));
        assert!(!cargo_log_passed("error[E0425]: cannot find value\n"));
        assert!(!cargo_log_passed(
            "test result: ok. 1 passed\nerror: 1 target failed:\n"
        ));
        // An indented error inside a test's output is not cargo's.
        assert!(cargo_log_passed(
            "    error: expected\ntest result: ok. 1 passed\n"
        ));
    }

    #[test]
    fn a_step_without_result_lines_counts_as_one_failure() {
        assert_eq!(
            result_lines("x\ntest result: ok. 2 passed\n", "silent"),
            "test result: ok. 2 passed\n"
        );
        assert_eq!(
            result_lines("built\n", "demo.sh printed no result"),
            "test result: FAILED. 0 passed; 1 failed (demo.sh printed no result)\n"
        );
    }

    #[test]
    fn build_uboot_assignments_are_read_as_eval_would() {
        let text = "ZBOT_UBOOT_SANDBOX='/c/u-boot'\nZBOT_P1=1048576\nbuild-uboot: done\n# x=1\n";
        assert_eq!(
            shell_assignments(text),
            vec![
                ("ZBOT_UBOOT_SANDBOX".to_string(), "/c/u-boot".to_string()),
                ("ZBOT_P1".to_string(), "1048576".to_string())
            ]
        );
    }

    #[test]
    fn progress_lines_are_results_failures_and_panics() {
        for l in [
            "running 3 tests",
            "test result: ok. 3 passed",
            "---- a stdout ----",
            "thread 'a' panicked at x.rs:1",
            "error: test failed",
        ] {
            assert!(is_progress_line(l), "{l}");
        }
        assert!(!is_progress_line("test a ... ok"));
        assert!(!is_progress_line("   Compiling fw-env v0.1.0"));
    }
}
