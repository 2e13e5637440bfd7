//! The default environment (`u-boot-initial-env`, the text `mkenvimage` reads) and what makes
//! one usable.
//!
//! When no copy is valid, a write starts from the defaults, and U-Boot then boots with exactly
//! what was written (its import replaces its whole table). A defaults file that is empty, only
//! comments, garbage, or lacks the boot command would store an environment U-Boot stops at its
//! prompt with: such a file is *unusable*, and a write that would start from it is refused.
//! Reading still works (with a warning): the problem only matters once something is written.
//!
//! Usable means:
//! - every entry is `NAME=VALUE` (a line without `=`, a NUL byte, or a name with blanks or
//!   control characters is reported with its line);
//! - `bootcmd` is set and not empty, and every variable it `run`s by a literal name is defined;
//! - every variable the caller requires is set ([`crate::Store::with_required_defaults`]:
//!   `bootcount` requires its policy's variables).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::storage::{self, StorageError};
use crate::text;
use crate::vars::Vars;

/// The largest defaults file read: larger than any environment fw-env accepts.
pub const MAX_DEFAULTS_FILE: u64 = crate::config::MAX_ENV_SIZE;

/// How a defaults file was chosen, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsFrom {
    /// Named on the command line (`-f`/`--defaults`).
    Option,
    /// The default path (`/etc/u-boot-initial-env`), used because it exists.
    DefaultPath,
    /// Given by the program using the library.
    Caller,
}

impl fmt::Display for DefaultsFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultsFrom::Option => "given with -f/--defaults",
            DefaultsFrom::DefaultPath => "the default path, used because it exists",
            DefaultsFrom::Caller => "given by the program",
        })
    }
}

/// A default environment and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The variables, as `mkenvimage` would store them.
    pub vars: Vars,
    /// The file they were read from, if any.
    pub path: Option<PathBuf>,
    /// How the file was chosen.
    pub from: DefaultsFrom,
    /// Lines that are not `NAME=VALUE` (`file:line: what`), in order.
    pub problems: Vec<String>,
}

impl Defaults {
    /// Defaults built in code (no file).
    pub fn from_vars(vars: Vars) -> Defaults {
        Defaults {
            vars,
            path: None,
            from: DefaultsFrom::Caller,
            problems: Vec::new(),
        }
    }

    /// Parse defaults text; `path` names the origin in messages.
    pub fn parse(text: &[u8], path: Option<&Path>, from: DefaultsFrom) -> Defaults {
        let shown = path.map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
        let mut problems = Vec::new();
        for (line, entry) in entries_with_lines(text) {
            if let Some(reason) = entry_problem(&entry) {
                problems.push(format!("{shown}:{line}: {reason}"));
            }
        }
        Defaults {
            vars: parse_text(text),
            path: path.map(Path::to_owned),
            from,
            problems,
        }
    }

    /// Read a defaults file: a regular file (never a FIFO or device) of at most
    /// [`MAX_DEFAULTS_FILE`] bytes.
    pub fn load(path: &Path, from: DefaultsFrom) -> Result<Defaults, StorageError> {
        let text = storage::read_small_file(path, MAX_DEFAULTS_FILE, "defaults file")?;
        Ok(Defaults::parse(&text, Some(path), from))
    }

    /// Where the defaults came from, in words: `defaults file F (given with -f/--defaults)`.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(p) => format!("defaults file {} ({})", p.display(), self.from),
            None => format!("default environment {}", self.from),
        }
    }

    /// Why an environment written from these defaults would not boot, or `None` if it would.
    /// `required` are variables the caller needs (named `required_by` in the message).
    pub fn unusable(&self, required: &[String], required_by: &str) -> Option<String> {
        let mut reasons: Vec<String> = Vec::new();
        const SHOWN: usize = 3;
        reasons.extend(self.problems.iter().take(SHOWN).cloned());
        if self.problems.len() > SHOWN {
            reasons.push(format!("{} more bad lines", self.problems.len() - SHOWN));
        }
        if self.vars.is_empty() {
            reasons.push("it defines no variable (empty, or only comments)".into());
            return Some(reasons.join("; "));
        }
        match self.vars.get("bootcmd") {
            None => reasons.push("no bootcmd (U-Boot's boot command)".into()),
            Some(b) if b.trim().is_empty() => reasons.push("bootcmd is empty".into()),
            Some(b) => {
                let missing: Vec<String> = run_targets(&b)
                    .into_iter()
                    .filter(|n| self.vars.get(n).is_none())
                    .collect();
                if !missing.is_empty() {
                    reasons.push(format!(
                        "bootcmd runs {}, which it does not define",
                        missing.join(", ")
                    ));
                }
            }
        }
        let missing: Vec<&str> = required
            .iter()
            .filter(|n| self.vars.get(n).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            reasons.push(format!(
                "no {} (needed by {required_by})",
                missing.join(", ")
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Parse defaults text into variables exactly as `mkenvimage` would store them (an entry
/// without `=` is dropped, a later duplicate wins, as U-Boot's import does).
pub fn parse_text(text: &[u8]) -> Vars {
    text::parse(text).vars()
}

/// The entries of `mkenvimage` text with the line each starts on (see [`crate::text`]).
pub fn entries_with_lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
    text::parse(text)
        .entries
        .into_iter()
        .map(|e| (e.line, e.bytes))
        .collect()
}

fn entry_problem(entry: &[u8]) -> Option<String> {
    let shown = |b: &[u8]| {
        let s = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if b.len() > 40 {
            format!("{s}...")
        } else {
            s
        }
    };
    if entry.contains(&0) {
        return Some(
            "contains a NUL byte: this is not u-boot-initial-env text (a binary env image?)".into(),
        );
    }
    let Some(eq) = entry.iter().position(|&c| c == b'=') else {
        return Some(format!("`{}` is not NAME=VALUE", shown(entry)));
    };
    let name = &entry[..eq];
    if name.is_empty() {
        return Some(format!("`{}` has no variable name", shown(entry)));
    }
    if name
        .iter()
        .any(|&c| c.is_ascii_whitespace() || c.is_ascii_control() || c == 0x7f)
    {
        return Some(format!(
            "`{}` is not a variable name (blanks or control characters)",
            shown(name)
        ));
    }
    None
}

/// The variables a boot command `run`s by literal name (`run a b; run c` -> a, b, c); names
/// built by expansion (`run boot-${x}`) cannot be checked and are left out.
pub fn run_targets(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A command ends at `;` or a newline; `run`'s arguments end there or at `&&`/`||`.
    for command in cmd.split([';', '\n']) {
        let mut words = command.split_whitespace();
        while let Some(w) = words.next() {
            if w != "run" {
                continue;
            }
            for t in words.by_ref() {
                if matches!(t, "&&" | "||") {
                    break;
                }
                let t = t.trim_matches(|c| c == '\'' || c == '"');
                if !t.is_empty() && !t.contains('$') && !t.contains('\\') {
                    out.push(t.to_owned());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, Layout};

    fn usable(text: &str) -> Option<String> {
        Defaults::parse(
            text.as_bytes(),
            Some(Path::new("/etc/u-boot-initial-env")),
            DefaultsFrom::DefaultPath,
        )
        .unusable(&[], "")
    }

    #[test]
    fn useless_defaults_are_unusable_and_say_why() {
        // Each row: the file, and what the refusal must say.
        let rows: &[(&str, &str)] = &[
            ("", "defines no variable"),
            ("# only\n# comments\n\n", "defines no variable"),
            ("next_boot=otafs\n", "no bootcmd"),
            ("bootcmd=\nnext_boot=otafs\n", "bootcmd is empty"),
            ("bootcmd=   \n", "bootcmd is empty"),
            (
                "bootcmd=run sdboot\n",
                "bootcmd runs sdboot, which it does not define",
            ),
            (
                "garbage\nbootcmd=boot\n",
                "/etc/u-boot-initial-env:1: `garbage` is not NAME=VALUE",
            ),
            (
                "bootcmd=boot\n\n# c\nbad line here\n",
                ":4: `bad line here` is not NAME=VALUE",
            ),
            (
                "bootcmd=boot\nfoo bar=1\n",
                ":2: `foo bar` is not a variable name",
            ),
            ("bootcmd=boot\n=x\n", ":2: `=x` has no variable name"),
            ("\u{0}\u{1}bootcmd=x\n", "NUL byte"),
        ];
        for (text, want) in rows {
            let why = usable(text).unwrap_or_else(|| panic!("{text:?} accepted"));
            assert!(why.contains(want), "{text:?}: {why}");
        }
    }

    #[test]
    fn usable_defaults_pass() {
        for text in [
            "bootcmd=run zbot-policy\nzbot-policy=echo hi\n",
            "bootcmd=run a b; run c && boot\na=1\nb=2\nc=3\n",
            "bootcmd=run boot-${slot}\n",
            "# board\nbootcmd=run a; \\\nboot\na=x\n",
        ] {
            assert_eq!(usable(text), None, "{text:?}");
        }
    }

    #[test]
    fn required_names_are_reported_with_who_needs_them() {
        let d = Defaults::parse(b"bootcmd=boot\nrootfs=x\n", None, DefaultsFrom::Caller);
        let why = d
            .unusable(
                &["next_boot".into(), "rootfs".into(), "otafs".into()],
                "bootcount",
            )
            .unwrap();
        assert!(
            why.contains("no next_boot, otafs (needed by bootcount)"),
            "{why}"
        );
    }

    #[test]
    fn origin_says_how_the_file_was_chosen() {
        let d = Defaults::parse(b"", Some(Path::new("/x")), DefaultsFrom::Option);
        assert_eq!(d.origin(), "defaults file /x (given with -f/--defaults)");
    }

    #[test]
    fn run_targets_follow_commands() {
        assert_eq!(run_targets("run a b; boot"), ["a", "b"]);
        assert_eq!(run_targets("if x; then run y; fi"), ["y"]);
        assert_eq!(run_targets("run a && run b || reset"), ["a", "b"]);
        assert_eq!(run_targets("run ${x} 'q'"), ["q"]);
    }

    proptest::proptest! {
        /// The line-tracking split agrees with mkenvimage's: same entries, in order.
        #[test]
        fn entries_match_mkenvimage(text in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'=', b'\n', b'#', b'\\', b' ', b'b']), 0..64)) {
            let image = codec::mkimage_from_text(&text, text.len() + 16, Layout::Single, 0).unwrap();
            let data = &image[codec::CRC_SIZE..];
            let end = data.windows(2).position(|w| w == [0, 0]).unwrap_or(0);
            let want: Vec<Vec<u8>> = if end == 0 && data[0] == 0 { vec![] } else {
                data[..=end].split(|&c| c == 0).filter(|e| !e.is_empty()).map(<[u8]>::to_vec).collect()
            };
            let got: Vec<Vec<u8>> = entries_with_lines(&text)
                .into_iter()
                .flat_map(|(_, e)| e.split(|&c| c == 0).filter(|e| !e.is_empty()).map(<[u8]>::to_vec).collect::<Vec<_>>())
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
