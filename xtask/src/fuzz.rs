//! `cargo xtask fuzz`: every cargo-fuzz target of the workspace for a few seconds (a smoke run:
//! no panic on what the fuzzer reaches in that time), or one target for longer.
//!
//! A fuzz crate is `CRATE/fuzz/Cargo.toml` with its targets in `CRATE/fuzz/fuzz_targets/*.rs`;
//! finding them is [`targets`], the runs are [`run`]. cargo-fuzz needs nightly-only rustc
//! flags and the project's toolchain is stable, so the runs set `RUSTC_BOOTSTRAP=1` (the same
//! compiler, its unstable flags unlocked). Each target's corpus is seeded with its crate's
//! committed fixtures (`CRATE/tests/fixtures`, files under 300 KiB); crashes and each run's log
//! stay in `CRATE/fuzz/artifacts/`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One fuzz target: the crate directory's name and the target's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// The crate's directory under the workspace root (`fw-env`).
    pub krate: String,
    /// The target (`image`: `fw-env/fuzz/fuzz_targets/image.rs`).
    pub name: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.krate, self.name)
    }
}

/// Why a fuzz run did not pass.
#[derive(Debug)]
pub enum FuzzError {
    /// Listing the workspace or writing a corpus or log failed.
    Io(PathBuf, std::io::Error),
    /// A program could not be run (cargo, cargo-fuzz's install).
    Spawn(String, std::io::Error),
    /// `cargo install cargo-fuzz` failed.
    Install,
    /// The named target is not in the workspace.
    NoSuchTarget(Target, Vec<Target>),
    /// The target crashed or did not build; the log names what.
    Failed(Target, PathBuf, String),
}

impl fmt::Display for FuzzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuzzError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            FuzzError::Spawn(what, e) => write!(f, "cannot run {what}: {e}"),
            FuzzError::Install => write!(
                f,
                "`cargo install --locked cargo-fuzz` failed (is crates.io reachable?)"
            ),
            FuzzError::NoSuchTarget(t, all) => {
                let all: Vec<String> = all.iter().map(|t| t.to_string()).collect();
                write!(f, "no fuzz target {t}; the targets are: {}", all.join(" "))
            }
            FuzzError::Failed(t, log, lines) => {
                write!(f, "{t} FAILED (log: {}):\n{lines}", log.display())
            }
        }
    }
}

/// Every fuzz target under `root`, sorted by crate then name.
pub fn targets(root: &Path) -> Result<Vec<Target>, FuzzError> {
    let read = |dir: &Path| std::fs::read_dir(dir).map_err(|e| FuzzError::Io(dir.into(), e));
    let mut out = Vec::new();
    for entry in read(root)? {
        let krate = entry.map_err(|e| FuzzError::Io(root.into(), e))?.path();
        let fuzz = krate.join("fuzz");
        if !fuzz.join("Cargo.toml").is_file() {
            continue;
        }
        let krate = krate.file_name().unwrap().to_string_lossy().into_owned();
        for t in read(&fuzz.join("fuzz_targets"))? {
            let t = t.map_err(|e| FuzzError::Io(fuzz.clone(), e))?.path();
            if t.extension().is_some_and(|e| e == "rs") {
                out.push(Target {
                    krate: krate.clone(),
                    name: t.file_stem().unwrap().to_string_lossy().into_owned(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The lines of a libFuzzer log that say what went wrong; the log's last 20 lines when none
/// does (a build error, say).
pub fn failure_lines(log: &str) -> String {
    const MARKS: [&str; 6] = [
        "panicked",
        "ERROR",
        "SUMMARY",
        "Test unit written",
        "Base64",
        "error",
    ];
    let marked: Vec<&str> = log
        .lines()
        .filter(|l| MARKS.iter().any(|m| l.contains(m)))
        .collect();
    if marked.is_empty() {
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(20)..].join("\n")
    } else {
        marked.join("\n")
    }
}

/// Run `only` (or every target) for `seconds` each; stops at the first failure. Progress goes
/// to stderr, one line per target.
pub fn run(root: &Path, seconds: u32, only: Option<Target>) -> Result<Vec<Target>, FuzzError> {
    let all = targets(root)?;
    let chosen = match only {
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => return Err(FuzzError::NoSuchTarget(t, all)),
        None => all,
    };
    ensure_cargo_fuzz()?;
    for t in &chosen {
        run_one(root, t, seconds)?;
    }
    Ok(chosen)
}

fn ensure_cargo_fuzz() -> Result<(), FuzzError> {
    let quiet = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    if quiet(Command::new("cargo").args(["fuzz", "--version"])).is_ok_and(|s| s.success()) {
        return Ok(());
    }
    eprintln!("xtask fuzz: installing cargo-fuzz from crates.io");
    let st = Command::new("cargo")
        .args(["install", "--locked", "-q", "cargo-fuzz"])
        .status()
        .map_err(|e| FuzzError::Spawn("cargo install".into(), e))?;
    if st.success() {
        Ok(())
    } else {
        Err(FuzzError::Install)
    }
}

fn run_one(root: &Path, t: &Target, seconds: u32) -> Result<(), FuzzError> {
    let dir = root.join(&t.krate).join("fuzz");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| FuzzError::Io(p, e)
    };
    let corpus = dir.join("corpus").join(&t.name);
    std::fs::create_dir_all(&corpus).map_err(io(&corpus))?;
    seed_corpus(&root.join(&t.krate).join("tests/fixtures"), &corpus)?;
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).map_err(io(&artifacts))?;
    let log_path = artifacts.join(format!("{}.log", t.name));
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    eprintln!("xtask fuzz: {t} for {seconds}s");
    let st = Command::new("cargo")
        .current_dir(root.join(&t.krate))
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--sanitizer", "none", &t.name, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-max_len=20000")
        .stdout(log.try_clone().map_err(io(&log_path))?)
        .stderr(log)
        .status()
        .map_err(|e| FuzzError::Spawn(format!("cargo fuzz run {}", t.name), e))?;
    let text =
        String::from_utf8_lossy(&std::fs::read(&log_path).map_err(io(&log_path))?).into_owned();
    // libFuzzer exits non-zero on a crash, and cargo-fuzz passes that through.
    if !st.success() {
        return Err(FuzzError::Failed(t.clone(), log_path, failure_lines(&text)));
    }
    if let Some(done) = text.lines().find(|l| l.starts_with("Done")) {
        eprintln!("{done}");
    }
    Ok(())
}

/// Copy the crate's fixtures into the corpus, keeping what the corpus already has.
fn seed_corpus(fixtures: &Path, corpus: &Path) -> Result<(), FuzzError> {
    let Ok(entries) = std::fs::read_dir(fixtures) else {
        return Ok(()); // a crate without fixtures
    };
    for e in entries {
        let p = e.map_err(|e| FuzzError::Io(fixtures.into(), e))?.path();
        let small = p
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() < 300 * 1024);
        let to = corpus.join(p.file_name().unwrap());
        if small && !to.exists() {
            std::fs::copy(&p, &to).map_err(|e| FuzzError::Io(to.clone(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(krate: &str, name: &str) -> Target {
        Target {
            krate: krate.into(),
            name: name.into(),
        }
    }

    #[test]
    fn finds_every_fuzz_target_of_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let all = targets(root).unwrap();
        for t in [
            target("fw-env", "image"),
            target("bootcount", "policy"),
            target("partctl", "card"),
            target("updater", "client"),
        ] {
            assert!(all.contains(&t), "{t} missing from {all:?}");
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    }

    #[test]
    fn a_target_outside_the_workspace_is_named_with_the_list() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let e = run(root, 1, Some(target("fw-env", "nosuch"))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("no fuzz target fw-env/nosuch") && msg.contains("fw-env/image"),
            "{msg}"
        );
    }

    #[test]
    fn failure_lines_pick_the_crash_or_the_tail() {
        let crash = "INFO: seed\n#1 NEW\nthread '<unnamed>' panicked at src/x.rs:3\n==1== ERROR: libFuzzer: deadly signal\nSUMMARY: libFuzzer: deadly signal\n";
        assert_eq!(
            failure_lines(crash),
            "thread '<unnamed>' panicked at src/x.rs:3\n==1== ERROR: libFuzzer: deadly signal\nSUMMARY: libFuzzer: deadly signal"
        );
        let quiet: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let tail = failure_lines(&quiet);
        assert!(tail.starts_with("line 10\n") && tail.ends_with("line 29"));
    }
}
