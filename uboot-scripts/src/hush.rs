//! A small builder for U-Boot's old hush, encoding the quoting rules of the crate documentation
//! once: every comparison is `test x${var} = xLITERAL` (unquoted, `x`-prefixed, so that under
//! `HUSH_NO_EVAL=1` a value with blanks, quotes or `;` stays one argument and unset gives `x`),
//! literals are written into the script only when [`quotable`], and blocks are indented by
//! depth so the commented script (`boot.cmd`) reads like the contract.

/// Turns substituted text into "accept as is" (set before any comparison of a stored value).
pub const NO_EVAL_ON: &str = "HUSH_NO_EVAL=1";
/// Back to normal evaluation (before `run`, so the final command's `${...}` expand).
pub const NO_EVAL_OFF: &str = "HUSH_NO_EVAL=0";

/// `${name}`.
pub fn var(name: &str) -> String {
    format!("${{{name}}}")
}

/// `test x${name} = xLIT`: true when the variable equals `lit` (`lit` may be another
/// [`var`]); `lit = ""` tests for unset or empty.
pub fn eq(name: &str, lit: &str) -> String {
    format!("test x{} = x{lit}", var(name))
}

/// `test x${name} != xLIT`.
pub fn ne(name: &str, lit: &str) -> String {
    format!("test x{} != x{lit}", var(name))
}

/// `test ${a} -lt ${b}`: only for values already validated as digits (never a stored value).
pub fn lt(a: &str, b: &str) -> String {
    format!("test {} -lt {}", var(a), var(b))
}

/// `if COND; then BODY; fi` on one line.
pub fn if_(cond: &str, body: &str) -> String {
    format!("if {cond}; then {body}; fi")
}

/// `if COND; then A; else B; fi` on one line.
pub fn if_else(cond: &str, then: &str, otherwise: &str) -> String {
    format!("if {cond}; then {then}; else {otherwise}; fi")
}

/// A hush local (`zb_x=v`): never saved. A local cannot be emptied, so "none" is a marker.
pub fn local(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

/// `setenv NAME VALUE` (an environment variable, saved by the next `saveenv`).
pub fn setenv(name: &str, value: &str) -> String {
    format!("setenv {name} {value}")
}

/// `setenv NAME`: delete the variable.
pub fn unset(name: &str) -> String {
    format!("setenv {name}")
}

/// `'TEXT'`, for a literal that is [`quotable`].
pub fn quoted(text: &str) -> String {
    format!("'{text}'")
}

/// True when `text` survives hush's single quotes and the environment's text formats: no
/// `'`, no backslash (hush removes it), no control character (newline ends the variable).
pub fn quotable(text: &str) -> bool {
    !text
        .bytes()
        .any(|b| b == b'\'' || b == b'\\' || b < 0x20 || b == 0x7f)
}

/// A script as lines, with `if`/`elif`/`else`/`fi` blocks indented two blanks per level.
#[derive(Debug, Default)]
pub struct Script {
    lines: Vec<String>,
    depth: usize,
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script::default()
    }

    /// One statement at the current depth.
    pub fn line(&mut self, s: impl AsRef<str>) -> &mut Script {
        let l = format!("{}{}", "  ".repeat(self.depth), s.as_ref());
        self.lines.push(l);
        self
    }

    /// `# TEXT` at the current depth (dropped by [`crate::one_line`]).
    pub fn comment(&mut self, text: &str) -> &mut Script {
        self.line(format!("# {text}"))
    }

    /// `if COND; then`, opening a block.
    pub fn open_if(&mut self, cond: &str) -> &mut Script {
        self.line(format!("if {cond}; then"));
        self.depth += 1;
        self
    }

    /// `elif COND; then` in the open block.
    pub fn elif(&mut self, cond: &str) -> &mut Script {
        self.depth -= 1;
        self.open_if_word("elif", cond)
    }

    fn open_if_word(&mut self, word: &str, cond: &str) -> &mut Script {
        self.line(format!("{word} {cond}; then"));
        self.depth += 1;
        self
    }

    /// `else` in the open block.
    pub fn else_(&mut self) -> &mut Script {
        self.depth -= 1;
        self.line("else");
        self.depth += 1;
        self
    }

    /// `fi`, closing the block.
    pub fn fi(&mut self) -> &mut Script {
        self.depth -= 1;
        self.line("fi")
    }

    /// The lines (every block closed).
    pub fn into_lines(self) -> Vec<String> {
        debug_assert_eq!(self.depth, 0, "unclosed if block");
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_are_unquoted_and_x_prefixed() {
        assert_eq!(eq("next_boot", "rootfs"), "test x${next_boot} = xrootfs");
        assert_eq!(eq("zbot_tries", ""), "test x${zbot_tries} = x");
        assert_eq!(ne("zb_trial", "-"), "test x${zb_trial} != x-");
        assert_eq!(eq("a", &var("b")), "test x${a} = x${b}");
        assert_eq!(lt("zb_n", "zb_l"), "test ${zb_n} -lt ${zb_l}");
    }

    #[test]
    fn statements() {
        assert_eq!(if_("c", "b"), "if c; then b; fi");
        assert_eq!(if_else("c", "a", "b"), "if c; then a; else b; fi");
        assert_eq!(local("zb_n", "0"), "zb_n=0");
        assert_eq!(
            setenv("zbot_tries", &var("zb_m")),
            "setenv zbot_tries ${zb_m}"
        );
        assert_eq!(unset("zbot_once"), "setenv zbot_once");
        assert_eq!(quoted("root=/dev/vda4 rw"), "'root=/dev/vda4 rw'");
    }

    #[test]
    fn quotable_refuses_what_hush_or_the_env_would_change() {
        assert!(quotable("root=/dev/mmcblk0p4 rootwait rw; x=$y \"z\""));
        for bad in ["it's", "a\\b", "a\nb", "a\tb", "\x7f"] {
            assert!(!quotable(bad), "{bad:?}");
        }
    }

    #[test]
    fn blocks_indent_by_depth() {
        let mut s = Script::new();
        s.open_if("a")
            .comment("one")
            .line("x")
            .elif("b")
            .open_if("c")
            .line("y")
            .fi()
            .else_()
            .line("z")
            .fi()
            .line("w");
        assert_eq!(
            s.into_lines(),
            [
                "if a; then",
                "  # one",
                "  x",
                "elif b; then",
                "  if c; then",
                "    y",
                "  fi",
                "else",
                "  z",
                "fi",
                "w"
            ]
        );
    }
}
