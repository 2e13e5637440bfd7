//! The post-boot health checks: executables in `<dir>/required.d` (must pass) and
//! `<dir>/wanted.d` (may fail), run one at a time in name order, each killed (with its whole
//! process group) at its timeout.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Passed,
    /// Another exit status.
    Failed(i32),
    /// Killed by a signal it did not get from us.
    Signalled(i32),
    /// Still running at the timeout: killed.
    TimedOut(Duration),
    /// Could not be started.
    NotRun(String),
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The file name.
    pub name: String,
    /// From `required.d`.
    pub required: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran.
    pub elapsed: Duration,
}

impl CheckResult {
    /// A one-line description.
    pub fn describe(&self) -> String {
        let kind = if self.required { "required" } else { "wanted" };
        let how = match &self.outcome {
            Outcome::Passed => "passed".to_string(),
            Outcome::Failed(c) => format!("failed (exit {c})"),
            Outcome::Signalled(s) => format!("failed (signal {s})"),
            Outcome::TimedOut(t) => format!("timed out after {}s and was killed", t.as_secs_f64()),
            Outcome::NotRun(e) => format!("could not run ({e})"),
        };
        format!("{kind} check {} {how}", self.name)
    }
}

/// The verdict over all checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every check, in the order run.
    pub results: Vec<CheckResult>,
}

impl Verdict {
    /// Every required check passed.
    pub fn healthy(&self) -> bool {
        self.results
            .iter()
            .all(|r| !r.required || r.outcome == Outcome::Passed)
    }

    /// The reason stored when unhealthy: `health: <first failure>[ (+N more)]`.
    pub fn reason(&self) -> Option<String> {
        let failed: Vec<_> = self
            .results
            .iter()
            .filter(|r| r.required && r.outcome != Outcome::Passed)
            .collect();
        let first = failed.first()?;
        let mut s = format!("health: {}", first.describe());
        if failed.len() > 1 {
            s.push_str(&format!(" (+{} more)", failed.len() - 1));
        }
        s.retain(|c| !c.is_control() && c != '\\');
        s.truncate(200);
        Some(s)
    }
}

fn executables(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && !name.ends_with('~')
                && std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    v.sort();
    v
}

fn run_one(path: &Path, timeout: Duration) -> (Outcome, Duration) {
    let start = Instant::now();
    let mut child = match Command::new(path)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (Outcome::NotRun(e.to_string()), start.elapsed()),
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let o = match (status.code(), status.signal()) {
                    (Some(0), _) => Outcome::Passed,
                    (Some(c), _) => Outcome::Failed(c),
                    (None, Some(s)) => Outcome::Signalled(s),
                    (None, None) => Outcome::Failed(-1),
                };
                return (o, start.elapsed());
            }
            Ok(None) if start.elapsed() >= timeout => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return (Outcome::TimedOut(timeout), start.elapsed());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return (Outcome::NotRun(e.to_string()), start.elapsed()),
        }
    }
}

/// Run the checks of `dir` (`required.d/`, then `wanted.d/`). A missing directory has no
/// checks: reaching this point of the boot is then the whole check.
pub fn run_checks(dir: &Path, timeout: Duration, mut log: impl FnMut(&CheckResult)) -> Verdict {
    let mut results = Vec::new();
    for (sub, required) in [("required.d", true), ("wanted.d", false)] {
        for path in executables(&dir.join(sub)) {
            let (outcome, elapsed) = run_one(&path, timeout);
            let r = CheckResult {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                required,
                outcome,
                elapsed,
            };
            log(&r);
            results.push(r);
        }
    }
    Verdict { results }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, sub: &str, name: &str, body: &str) {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn required_must_pass_wanted_may_fail() {
        let t = tempfile::tempdir().unwrap();
        script(t.path(), "required.d", "10-ok", "exit 0");
        script(t.path(), "wanted.d", "20-meh", "exit 3");
        std::fs::write(t.path().join("required.d/README"), "not executable").unwrap();
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert_eq!(v.results.len(), 2);
        assert!(v.healthy());
        assert_eq!(v.reason(), None);
        script(t.path(), "required.d", "30-bad", "exit 4");
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert!(!v.healthy());
        assert_eq!(
            v.reason().unwrap(),
            "health: required check 30-bad failed (exit 4)"
        );
    }

    #[test]
    fn a_hung_check_and_its_children_are_killed_at_the_timeout() {
        let t = tempfile::tempdir().unwrap();
        let marker = t.path().join("child-alive");
        script(
            t.path(),
            "required.d",
            "hang",
            &format!("(sleep 2; touch {}) & sleep 30", marker.display()),
        );
        let start = Instant::now();
        let v = run_checks(t.path(), Duration::from_millis(300), |_| {});
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(matches!(v.results[0].outcome, Outcome::TimedOut(_)));
        assert!(v.reason().unwrap().contains("timed out"));
        std::thread::sleep(Duration::from_millis(2300));
        assert!(!marker.exists(), "the check's background child survived");
    }

    #[test]
    fn no_directory_means_healthy() {
        let v = run_checks(
            Path::new("/nonexistent/bootcount"),
            Duration::from_secs(1),
            |_| {},
        );
        assert!(v.healthy() && v.results.is_empty());
    }
}
