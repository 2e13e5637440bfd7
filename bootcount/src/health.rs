//! The post-boot health checks: executables in `<dir>/required.d` (must pass) and
//! `<dir>/wanted.d` (may fail), run one at a time in name order, each killed (with its whole
//! process group) at its timeout.
//!
//! Every entry of a check directory is a check, except names starting with `.` or ending with
//! `~` (editor and package-manager leftovers). An entry that cannot be run (a dangling symlink,
//! a file without the execute bit, a directory, a FIFO, an exec error such as a missing `#!`
//! interpreter) is a check that **could not run**: for `required.d` that is a failed check,
//! never a pass, because a program missing from a new image is exactly what the check exists to
//! catch. A `required.d` that exists but cannot be listed (not a directory, unreadable) fails
//! the same way. A missing health directory or `required.d` is not a failure (reaching this
//! point of the boot is then the whole check) but is reported in [`Verdict::notes`].

use crate::state::Reason;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest timeout a check may be given (`health run --timeout`): one hour. Every check
/// is killed at its timeout, so a run takes at most (number of checks) x timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Parse a `--timeout` value: seconds, a finite number in (0, 3600].
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > MAX_TIMEOUT.as_secs_f64() {
        return Err(format!(
            "{s:?} seconds is out of range: a check's timeout must be more than 0 and at most {}",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

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
    /// Could not be started (the reason names what is wrong with the entry): for a required
    /// check, a failure.
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
    /// Every check, in the order run (an unlistable check directory is one entry named after
    /// the directory, [`Outcome::NotRun`]).
    pub results: Vec<CheckResult>,
    /// Things worth saying loudly that do not fail the run (no health directory, no
    /// `required.d`).
    pub notes: Vec<String>,
}

impl Verdict {
    /// Every required check passed (a required check that could not run did not pass).
    pub fn healthy(&self) -> bool {
        self.results
            .iter()
            .all(|r| !r.required || r.outcome == Outcome::Passed)
    }

    /// Some required check could not even be run (as opposed to running and failing).
    pub fn could_not_check(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.required && matches!(r.outcome, Outcome::NotRun(_)))
    }

    /// The reason stored when unhealthy: `health: <first failure>[ (+N more)]`, made storable
    /// ([`Reason::sanitised`]: one line, no backslash, at most 200 bytes).
    pub fn reason(&self) -> Option<Reason> {
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
        Some(Reason::sanitised(&s).expect("starts with \"health: \""))
    }
}

/// What a check directory holds.
enum Listing {
    /// It does not exist.
    Missing,
    /// Its entries (checks), sorted by name.
    Entries(Vec<PathBuf>),
    /// It exists but cannot be listed: why.
    Broken(String),
}

fn list(dir: &Path) -> Listing {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::symlink_metadata(dir) {
                Ok(_) => Listing::Broken("it is a dangling symlink".to_string()),
                Err(_) => Listing::Missing,
            }
        }
        Err(e) => return Listing::Broken(format!("cannot stat it: {e}")),
        Ok(m) if !m.is_dir() => {
            return Listing::Broken(format!(
                "it is not a directory but {}",
                kind_of(&m.file_type())
            ))
        }
        Ok(_) => {}
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return Listing::Broken(format!("cannot list it: {e}")),
    };
    let mut v = Vec::new();
    for e in rd {
        match e {
            Ok(e) => {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if !name.starts_with('.') && !name.ends_with('~') {
                    v.push(e.path());
                }
            }
            Err(e) => return Listing::Broken(format!("cannot list it: {e}")),
        }
    }
    v.sort();
    Listing::Entries(v)
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device node"
    } else {
        "not a regular file"
    }
}

/// Why an entry cannot be executed, found before trying (`None`: try it).
fn not_runnable(path: &Path) -> Option<String> {
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Some(match std::fs::read_link(path) {
                Ok(to) => format!("dangling symlink to {}", to.display()),
                Err(_) => format!("cannot stat it: {e}"),
            })
        }
    };
    if !m.is_file() {
        return Some(format!(
            "is {}, not an executable file",
            kind_of(&m.file_type())
        ));
    }
    let mode = m.permissions().mode();
    if mode & 0o111 == 0 {
        return Some(format!(
            "is not executable (mode {:o}): chmod +x it, or move it out of the directory",
            mode & 0o7777
        ));
    }
    None
}

/// The `#!` line of a regular file, if any (at most 128 bytes; never blocks: the entry was
/// checked to be a regular file, and it is opened with O_NONBLOCK anyway).
fn shebang(path: &Path) -> Option<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    f.take(128).read_to_end(&mut buf).ok()?;
    let line = buf.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    Some(String::from_utf8_lossy(line).trim().to_string())
}

fn spawn_error(path: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(nix::libc::ENOEXEC) => {
            "exec format error: not a program for this machine, or a script without a #! line"
                .to_string()
        }
        Some(nix::libc::ENOENT) => match shebang(path) {
            Some(interp) => format!("its interpreter #!{interp} is missing"),
            None => format!("exec failed: {e}"),
        },
        _ => format!("exec failed: {e}"),
    }
}

fn kill_group(child: &std::process::Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
}

fn run_one(path: &Path, timeout: Duration) -> (Outcome, Duration) {
    let start = Instant::now();
    if let Some(why) = not_runnable(path) {
        return (Outcome::NotRun(why), start.elapsed());
    }
    let mut child = match Command::new(path)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (Outcome::NotRun(spawn_error(path, &e)), start.elapsed()),
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
                kill_group(&child);
                let _ = child.wait();
                return (Outcome::TimedOut(timeout), start.elapsed());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill_group(&child);
                let _ = child.wait();
                return (
                    Outcome::NotRun(format!("waiting for it failed: {e}")),
                    start.elapsed(),
                );
            }
        }
    }
}

/// Run the checks of `dir` (`required.d/`, then `wanted.d/`), each killed at `timeout`
/// (callers bound it by [`MAX_TIMEOUT`]). A missing `dir` or `required.d` has no required
/// checks (a note says so); a `required.d` that cannot be listed and any entry that cannot be
/// run are failed required checks.
pub fn run_checks(dir: &Path, timeout: Duration, mut log: impl FnMut(&CheckResult)) -> Verdict {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    if !dir.exists() && std::fs::symlink_metadata(dir).is_err() {
        notes.push(format!(
            "no health directory {}: no checks were run; only reaching this point of the boot counts",
            dir.display()
        ));
    }
    for (sub, required) in [("required.d", true), ("wanted.d", false)] {
        let d = dir.join(sub);
        let entries = match list(&d) {
            Listing::Missing => {
                if required && notes.is_empty() {
                    notes.push(format!(
                        "no {}: no required checks; only reaching this point of the boot counts",
                        d.display()
                    ));
                }
                continue;
            }
            Listing::Broken(why) => {
                let r = CheckResult {
                    name: d.display().to_string(),
                    required,
                    outcome: Outcome::NotRun(why),
                    elapsed: Duration::ZERO,
                };
                log(&r);
                results.push(r);
                continue;
            }
            Listing::Entries(v) => v,
        };
        for path in entries {
            let (outcome, elapsed) = run_one(&path, timeout);
            let r = CheckResult {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string()),
                required,
                outcome,
                elapsed,
            };
            log(&r);
            results.push(r);
        }
    }
    Verdict { results, notes }
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

    fn reason_of(dir: &Path) -> Option<String> {
        run_checks(dir, Duration::from_secs(5), |_| {})
            .reason()
            .map(|r| r.to_string())
    }

    #[test]
    fn required_must_pass_wanted_may_fail() {
        let t = tempfile::tempdir().unwrap();
        script(t.path(), "required.d", "10-ok", "exit 0");
        script(t.path(), "wanted.d", "20-meh", "exit 3");
        std::fs::write(t.path().join("required.d/.keep"), "hidden: ignored").unwrap();
        std::fs::write(t.path().join("required.d/10-ok~"), "backup: ignored").unwrap();
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert_eq!(v.results.len(), 2);
        assert!(v.healthy());
        assert_eq!(v.reason(), None);
        assert!(v.notes.is_empty());
        script(t.path(), "required.d", "30-bad", "exit 4");
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert!(!v.healthy() && !v.could_not_check());
        assert_eq!(
            v.reason().unwrap(),
            "health: required check 30-bad failed (exit 4)"
        );
    }

    /// Regression (issue 10): each of these used to be skipped silently, and the trial was
    /// committed. A required check that cannot run is a failed check, named in the reason.
    /// (what, how to break the check file, what the reason says).
    type Case = (&'static str, Box<dyn Fn(&Path)>, &'static str);

    #[test]
    fn a_required_check_that_cannot_run_is_a_failed_check() {
        let cases: Vec<Case> = vec![
            (
                "dangling symlink (the program is missing from the image)",
                Box::new(|d| {
                    std::os::unix::fs::symlink("/nonexistent/app-check", d.join("20-app")).unwrap()
                }),
                "health: required check 20-app could not run (dangling symlink to /nonexistent/app-check)",
            ),
            (
                "no execute bit",
                Box::new(|d| std::fs::write(d.join("20-app"), "#!/bin/sh\nexit 0\n").unwrap()),
                "health: required check 20-app could not run (is not executable (mode 644): chmod +x it, or move it out of the directory)",
            ),
            (
                "a directory",
                Box::new(|d| std::fs::create_dir(d.join("20-app")).unwrap()),
                "health: required check 20-app could not run (is a directory, not an executable file)",
            ),
            (
                "a FIFO (never opened, so no hang)",
                Box::new(|d| nix::unistd::mkfifo(&d.join("20-app"), nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap()),
                "health: required check 20-app could not run (is a FIFO, not an executable file)",
            ),
            (
                "a missing #! interpreter",
                Box::new(|d| {
                    let p = d.join("20-app");
                    std::fs::write(&p, "#!/nonexistent/bin/python9\nprint(1)\n").unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                }),
                "health: required check 20-app could not run (its interpreter #!/nonexistent/bin/python9 is missing)",
            ),
            (
                "not a program for this machine",
                Box::new(|d| {
                    let p = d.join("20-app");
                    std::fs::write(&p, b"\x7fELF\x02\x01\x01\0garbage-that-is-no-program").unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                }),
                "health: required check 20-app could not run (exec format error: not a program for this machine, or a script without a #! line)",
            ),
        ];
        for (what, make, want) in cases {
            let t = tempfile::tempdir().unwrap();
            script(t.path(), "required.d", "10-ok", "exit 0");
            make(&t.path().join("required.d"));
            let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
            assert!(!v.healthy(), "{what}: healthy");
            assert!(v.could_not_check(), "{what}");
            assert_eq!(v.reason().as_deref(), Some(want), "{what}");
        }
    }

    #[test]
    fn a_check_killed_by_a_signal_failed() {
        let t = tempfile::tempdir().unwrap();
        script(t.path(), "required.d", "10-crash", "kill -SEGV $$");
        assert_eq!(
            reason_of(t.path()).as_deref(),
            Some("health: required check 10-crash failed (signal 11)")
        );
    }

    #[test]
    fn a_required_d_that_is_not_a_directory_fails() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("required.d"), "oops").unwrap();
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert!(!v.healthy() && v.could_not_check());
        assert_eq!(
            v.reason().unwrap(),
            format!(
                "health: required check {}/required.d could not run (it is not a directory but a regular file)",
                t.path().display()
            )
        );
        std::fs::remove_file(t.path().join("required.d")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/checks", t.path().join("required.d")).unwrap();
        assert!(reason_of(t.path())
            .unwrap()
            .ends_with("required.d could not run (it is a dangling symlink)"));
    }

    #[test]
    fn a_wanted_check_that_cannot_run_is_reported_but_not_fatal() {
        let t = tempfile::tempdir().unwrap();
        script(t.path(), "required.d", "10-ok", "exit 0");
        std::fs::create_dir_all(t.path().join("wanted.d")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", t.path().join("wanted.d/50-x")).unwrap();
        let v = run_checks(t.path(), Duration::from_secs(5), |_| {});
        assert!(v.healthy());
        assert_eq!(
            v.results[1].describe(),
            "wanted check 50-x could not run (dangling symlink to /nonexistent/x)"
        );
    }

    #[test]
    fn timeouts_are_bounded() {
        for bad in [
            "0", "-1", "nan", "NaN", "inf", "-inf", "1e300", "3600.5", "", "5s", "0x10",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("3600"), Ok(MAX_TIMEOUT));
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
    fn no_directory_means_healthy_but_says_so() {
        let v = run_checks(
            Path::new("/nonexistent/bootcount"),
            Duration::from_secs(1),
            |_| {},
        );
        assert!(v.healthy() && v.results.is_empty());
        assert_eq!(
            v.notes,
            ["no health directory /nonexistent/bootcount: no checks were run; only reaching this point of the boot counts"]
        );
        let t = tempfile::tempdir().unwrap();
        let v = run_checks(t.path(), Duration::from_secs(1), |_| {});
        assert!(v.healthy());
        assert_eq!(
            v.notes,
            [format!(
                "no {}/required.d: no required checks; only reaching this point of the boot counts",
                t.path().display()
            )]
        );
    }
}
