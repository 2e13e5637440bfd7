//! `cargo xtask test-summary LOG...`: the totals of `cargo test` logs, read in Rust rather than
//! with grep, sed and bc. The format read is libtest's human output (stable), not
//! `--format json` (unstable).

use std::fmt;

/// What a set of `cargo test` logs says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `test result:` lines seen.
    pub results: usize,
    /// Tests passed, over every result line.
    pub passed: u64,
    /// Tests failed, over every result line.
    pub failed: u64,
    /// Tests ignored, over every result line.
    pub ignored: u64,
    /// The test binaries (cargo's `Running ...` line, else the result line) whose result is
    /// `FAILED`, in order.
    pub failed_binaries: Vec<String>,
    /// The tests libtest lists as failed (`---- NAME stdout ----`, the `failures:` list), in
    /// order, once each.
    pub failed_tests: Vec<String>,
    /// Lines that start with `error:` or `error[` (a build error, cargo's "test failed").
    pub errors: Vec<String>,
}

impl Summary {
    /// Add one log's lines.
    pub fn add(&mut self, log: &str) {
        let mut binary: Option<String> = None;
        // In libtest's closing `failures:` list (names indented by 4), which also names the
        // failed tests of a `--nocapture` run (no `---- NAME stdout ----` there).
        let mut in_failures = false;
        for line in log.lines() {
            if line == "failures:" {
                in_failures = true;
                continue;
            }
            if in_failures {
                match line.strip_prefix("    ") {
                    Some(n) if !n.is_empty() && !n.contains(char::is_whitespace) => {
                        if !self.failed_tests.iter().any(|t| t == n) {
                            self.failed_tests.push(n.to_string());
                        }
                        continue;
                    }
                    _ => in_failures = !line.trim().is_empty() && line.starts_with(' '),
                }
            }
            let t = line.trim_start();
            if let Some(b) = t
                .strip_prefix("Running ")
                .or_else(|| t.strip_prefix("Doc-tests "))
            {
                binary = Some(b.trim().to_string());
            } else if let Some(r) = line.strip_prefix("test result: ") {
                self.results += 1;
                self.passed += count(r, "passed");
                self.failed += count(r, "failed");
                self.ignored += count(r, "ignored");
                if r.starts_with("FAILED") {
                    self.failed_binaries
                        .push(binary.take().unwrap_or_else(|| r.to_string()));
                }
            } else if let Some(n) = line
                .strip_prefix("---- ")
                .and_then(|l| l.strip_suffix(" stdout ----"))
            {
                if !self.failed_tests.iter().any(|t| t == n) {
                    self.failed_tests.push(n.to_string());
                }
            } else if line.starts_with("error:") || line.starts_with("error[") {
                self.errors.push(line.to_string());
            }
        }
    }

    /// Whether the logs show a successful run: at least one result, none failed, no error.
    pub fn success(&self) -> bool {
        self.results > 0
            && self.failed == 0
            && self.failed_binaries.is_empty()
            && self.errors.is_empty()
    }
}

/// The number before ` WORD` in a result line (`ok. 3 passed; 0 failed; ...`), 0 if absent.
fn count(result: &str, word: &str) -> u64 {
    let words: Vec<&str> = result.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches([';', ',', '.']) == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

impl fmt::Display for Summary {
    /// The failures, then `N passed, M failed` (scripts/test.sh's last line), and the ignored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.failed_binaries {
            writeln!(f, "FAILED: {b}")?;
        }
        for t in &self.failed_tests {
            writeln!(f, "failed test: {t}")?;
        }
        for e in &self.errors {
            writeln!(f, "{e}")?;
        }
        if self.results == 0 {
            writeln!(f, "no test result in the log")?;
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.ignored > 0 {
            write!(f, " ({} ignored)", self.ignored)?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
   Compiling xtask v0.1.0 (/w/xtask)
     Running unittests src/lib.rs (target/debug/deps/bootcount-1)

running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/stories.rs (target/debug/deps/stories-2)

running 2 tests
test c ... ok
test d ... FAILED

failures:

---- d stdout ----
thread 'd' panicked at tests/stories.rs:1:1:
boom

failures:
    d

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s

error: test failed, to rerun pass `-p bootcount --test stories`
   Doc-tests fw_env

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn a_cargo_test_log_is_summed_and_its_failures_named() {
        let mut s = Summary::default();
        s.add(LOG);
        assert_eq!((s.results, s.passed, s.failed, s.ignored), (3, 3, 1, 1));
        assert_eq!(
            s.failed_binaries,
            ["tests/stories.rs (target/debug/deps/stories-2)"]
        );
        assert_eq!(s.failed_tests, ["d"]);
        assert_eq!(s.errors.len(), 1);
        assert!(!s.success());
        let text = s.to_string();
        assert!(text.ends_with("3 passed, 1 failed (1 ignored)\n"), "{text}");
        assert!(text.starts_with("FAILED: tests/stories.rs"), "{text}");
    }

    /// A `--nocapture` run has no `---- NAME stdout ----`: the closing list names the test.
    #[test]
    fn a_nocapture_failure_is_named_by_the_closing_list() {
        let mut s = Summary::default();
        s.add(
            "     Running tests/x.rs (x-1)\n\nfailures:\n    cuts_land_inside_the_save\n\n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored\n",
        );
        assert_eq!(s.failed_tests, ["cuts_land_inside_the_save"]);
        assert_eq!(s.failed_binaries, ["tests/x.rs (x-1)"]);
    }

    /// The lines scripts/test.sh appends for its steps count like cargo's.
    #[test]
    fn appended_step_results_and_empty_logs() {
        let mut s = Summary::default();
        assert!(!s.success(), "no result is no success");
        assert!(s.to_string().contains("no test result"));
        s.add("test result: ok. 5 passed; 0 failed\n");
        assert!(s.success());
        s.add("test result: FAILED. 0 passed; 1 failed (cargo xtask test-riscv64 exit 2)\n");
        assert_eq!((s.passed, s.failed), (5, 1));
        assert_eq!(
            s.failed_binaries,
            ["FAILED. 0 passed; 1 failed (cargo xtask test-riscv64 exit 2)"]
        );
        assert!(!s.success());
    }
}
