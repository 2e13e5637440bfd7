//! `mkenvimage`'s text format (U-Boot's `u-boot-initial-env`): one parser, used by
//! [`crate::codec::mkimage_from_text`] to build an image and by [`crate::defaults`] to read a
//! default environment.
//!
//! The rules are `tools/mkenvimage.c`'s: a `#` at the start of a line comments the line out,
//! blank lines are skipped, `\` before a newline embeds the newline in the value, any other
//! newline ends the entry. Bytes are kept as they are (a NUL byte too: in an image it ends
//! the entry, as it does in mkenvimage's buffer).

use crate::codec;
use crate::vars::Vars;

/// One entry of the text, as mkenvimage copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line it starts on (1-based).
    pub line: usize,
    /// Its bytes, embedded newlines and NULs included.
    pub bytes: Vec<u8>,
}

/// Parsed text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    /// The entries, in input order.
    pub entries: Vec<Entry>,
    /// Whether the last entry ends at the end of the input rather than at a newline.
    open_end: bool,
}

/// Split `text` into entries.
pub fn parse(text: &[u8]) -> Text {
    let mut out = Text::default();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_line = 0usize;
    let mut line = 1usize;
    let at_line_start = |fp: usize| fp == 0 || text[fp - 1] == b'\n';
    let mut fp = 0usize;
    while fp < text.len() {
        let c = text[fp];
        if c == b'\n' {
            if at_line_start(fp) {
                // blank line
            } else if text[fp - 1] == b'\\' && !cur.is_empty() {
                *cur.last_mut().expect("not empty") = b'\n';
            } else if !cur.is_empty() {
                out.entries.push(Entry {
                    line: cur_line,
                    bytes: std::mem::take(&mut cur),
                });
            }
            line += 1;
        } else if at_line_start(fp) && c == b'#' {
            while fp < text.len() && text[fp] != b'\n' {
                fp += 1;
            }
            line += 1; // the comment's newline, stepped over below
        } else {
            if cur.is_empty() {
                cur_line = line;
            }
            cur.push(c);
        }
        fp += 1;
    }
    if !cur.is_empty() {
        out.entries.push(Entry {
            line: cur_line,
            bytes: cur,
        });
        out.open_end = true;
    }
    out
}

impl Text {
    /// The data area mkenvimage writes, up to and including the terminating empty entry
    /// (padding not included): each entry and its NUL (none after an entry that ends the
    /// input), then a NUL, or two when the last byte is not already one (so an input with no
    /// entries gives two: deterministic where mkenvimage reads uninitialised memory).
    pub fn data(&self) -> Vec<u8> {
        let mut data = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            data.extend_from_slice(&e.bytes);
            if !(self.open_end && i + 1 == self.entries.len()) {
                data.push(0);
            }
        }
        if data.last() != Some(&0) {
            data.push(0);
        }
        data.push(0);
        data
    }

    /// [`Text::data`] for a data area of `room` bytes, or the bytes it needs. One case fits
    /// with a byte less: when the last entry ends in a NUL byte of the input and then a
    /// newline, mkenvimage's loop (which stops copying one byte before the end) never writes
    /// the newline's NUL, and the input's NUL ends the list.
    pub fn data_within(&self, room: usize) -> Result<Vec<u8>, usize> {
        let mut data = self.data();
        let nul_line = !self.open_end
            && self
                .entries
                .last()
                .is_some_and(|e| e.bytes.last() == Some(&0));
        if data.len() == room + 1 && nul_line {
            data.pop();
        }
        if data.len() > room {
            return Err(data.len());
        }
        Ok(data)
    }

    /// The variables an image of this text holds (an entry without `=` is dropped, a later
    /// duplicate wins, as U-Boot's import does).
    pub fn vars(&self) -> Vars {
        codec::parse_data(&self.data()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `tools/mkenvimage.c`'s copy loop, transcribed (the implementation before this parser):
    /// the oracle the parser is held to, byte for byte, success and failure alike.
    fn mkenvimage_loop(text: &[u8], env_size: usize) -> Option<Vec<u8>> {
        let mut env = vec![0u8; env_size];
        let (mut ep, mut fp) = (0usize, 0usize);
        let at_line_start = |fp: usize| fp == 0 || text[fp - 1] == b'\n';
        while fp < text.len() && ep < env_size - 1 {
            let c = text[fp];
            if c == b'\n' {
                if at_line_start(fp) {
                } else if text[fp - 1] == b'\\' {
                    env[ep - 1] = b'\n';
                } else {
                    env[ep] = 0;
                    ep += 1;
                }
            } else if at_line_start(fp) && c == b'#' {
                fp += 1;
                while fp < text.len() && text[fp] != b'\n' {
                    fp += 1;
                }
            } else {
                env[ep] = c;
                ep += 1;
            }
            fp += 1;
        }
        while fp < text.len() {
            let c = text[fp];
            if c == b'\n' {
            } else if at_line_start(fp) && c == b'#' {
                fp += 1;
                while fp < text.len() && text[fp] != b'\n' {
                    fp += 1;
                }
            } else {
                return None;
            }
            fp += 1;
        }
        if ep == 0 || env[ep - 1] != 0 {
            env[ep] = 0;
            ep += 1;
            if ep >= env_size {
                return None;
            }
        }
        env[ep] = 0;
        Some(env[..=ep].to_vec())
    }

    #[test]
    fn entries_lines_and_data() {
        let t = parse(b"# c\na=1\n\nb=two\\\nlines\nc=3");
        let lines: Vec<(usize, &[u8])> = t
            .entries
            .iter()
            .map(|e| (e.line, e.bytes.as_slice()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (2, &b"a=1"[..]),
                (4, &b"b=two\nlines"[..]),
                (6, &b"c=3"[..])
            ]
        );
        assert_eq!(t.data(), b"a=1\0b=two\nlines\0c=3\0\0");
        assert_eq!(parse(b"").data(), b"\0\0");
        assert_eq!(parse(b"a=1\n").data(), b"a=1\0\0");
        assert_eq!(
            parse(b"a=1\0").data(),
            b"a=1\0\0",
            "as mkenvimage: one NUL more"
        );
    }

    proptest! {
        #[test]
        fn data_is_what_mkenvimage_copies(text in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\\'), Just(b'#'), Just(b'='), Just(0u8), Just(b'a')], 0..40),
            env_size in 2usize..48,
        ) {
            let want = mkenvimage_loop(&text, env_size);
            let got = parse(&text).data_within(env_size).ok();
            prop_assert_eq!(got, want);
        }
    }
}
