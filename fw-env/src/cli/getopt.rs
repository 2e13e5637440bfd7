//! A small GNU `getopt_long` work-alike for the drop-in tools, whose option syntax must match
//! the C tools': short options bundled (`-nc FILE`), attached arguments (`-cFILE`,
//! `--config=FILE`), unambiguous prefixes of long options (`--conf FILE`), options anywhere
//! among the operands (GNU permutation), `--` to stop.
//!
//! Arguments are bytes (`OsString`s), never decoded: a path or value that is not UTF-8 reaches
//! the program exactly as given. What glibc's getopt refuses we refuse too, with its message:
//! an unknown option, a missing argument, an ambiguous prefix, and an argument attached to a
//! long option that takes none (`--noheader=x`), which would otherwise be dropped silently.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// One option the program accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    /// Short letter.
    pub short: char,
    /// Long name, without `--`.
    pub long: &'static str,
    /// Whether it takes an argument.
    pub takes_arg: bool,
}

/// A parsed option: its short letter and argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The letter (long options map to theirs).
    pub letter: char,
    /// The argument, for options that take one.
    pub arg: Option<OsString>,
}

/// Why the command line cannot be parsed (glibc's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetoptError {
    /// Unknown short option.
    #[error("invalid option -- '{0}'")]
    Unknown(String),
    /// Unknown long option (given with its dashes).
    #[error("unrecognized option '{0}'")]
    UnknownLong(String),
    /// Short option needs an argument.
    #[error("option requires an argument -- '{0}'")]
    MissingArg(String),
    /// Long option needs an argument.
    #[error("option '--{0}' requires an argument")]
    MissingLongArg(String),
    /// A long option that takes no argument was given one with `=`.
    #[error("option '--{0}' doesn't allow an argument")]
    UnexpectedArg(String),
    /// A prefix that matches several long options.
    #[error("option '{given}' is ambiguous; possibilities: {candidates}")]
    Ambiguous {
        /// What was given, with its dashes.
        given: String,
        /// The long options it could be.
        candidates: String,
    },
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The long option `name` stands for: an exact match, else the only option (or options of
/// one letter) it is a prefix of.
fn find_long<'a>(name: &[u8], specs: &'a [OptSpec]) -> Result<&'a OptSpec, GetoptError> {
    if let Some(spec) = specs.iter().find(|o| o.long.as_bytes() == name) {
        return Ok(spec);
    }
    let matches: Vec<&OptSpec> = specs
        .iter()
        .filter(|o| !name.is_empty() && o.long.as_bytes().starts_with(name))
        .collect();
    match matches.as_slice() {
        [] => Err(GetoptError::UnknownLong(format!("--{}", shown(name)))),
        [first, rest @ ..]
            if rest
                .iter()
                .all(|o| o.short == first.short && o.takes_arg == first.takes_arg) =>
        {
            Ok(first)
        }
        many => Err(GetoptError::Ambiguous {
            given: format!("--{}", shown(name)),
            candidates: many
                .iter()
                .map(|o| format!("'--{}'", o.long))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// Parse `args` (without argv\[0\]) into options and operands.
pub fn parse(
    args: &[OsString],
    specs: &[OptSpec],
) -> Result<(Vec<Opt>, Vec<OsString>), GetoptError> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        i += 1;
        if bytes == b"--" {
            operands.extend(args[i..].iter().cloned());
            break;
        } else if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, attached) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
                None => (long, None),
            };
            let spec = find_long(name, specs)?;
            let value = match (spec.takes_arg, attached) {
                (true, Some(v)) => Some(v.to_owned()),
                (true, None) => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| GetoptError::MissingLongArg(spec.long.to_owned()))?;
                    i += 1;
                    Some(v)
                }
                (false, Some(_)) => return Err(GetoptError::UnexpectedArg(spec.long.to_owned())),
                (false, None) => None,
            };
            opts.push(Opt {
                letter: spec.short,
                arg: value,
            });
        } else if bytes.len() > 1 && bytes[0] == b'-' {
            let mut j = 1;
            while j < bytes.len() {
                let c = bytes[j];
                let spec = specs
                    .iter()
                    .find(|o| c.is_ascii() && o.short == c as char)
                    .ok_or_else(|| GetoptError::Unknown(shown(&bytes[j..=j])))?;
                if spec.takes_arg {
                    let rest = &bytes[j + 1..];
                    let value = if !rest.is_empty() {
                        OsString::from_vec(rest.to_vec())
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| GetoptError::MissingArg(spec.short.to_string()))?;
                        i += 1;
                        v
                    };
                    opts.push(Opt {
                        letter: spec.short,
                        arg: Some(value),
                    });
                    break;
                }
                opts.push(Opt {
                    letter: spec.short,
                    arg: None,
                });
                j += 1;
            }
        } else {
            operands.push(arg.clone());
        }
    }
    Ok((opts, operands))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptSpec] = &[
        OptSpec {
            short: 'c',
            long: "config",
            takes_arg: true,
        },
        OptSpec {
            short: 'n',
            long: "noheader",
            takes_arg: false,
        },
        OptSpec {
            short: 'n',
            long: "no-header",
            takes_arg: false,
        },
        OptSpec {
            short: 'h',
            long: "help",
            takes_arg: false,
        },
        OptSpec {
            short: 'H',
            long: "hex",
            takes_arg: false,
        },
    ];

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn gnu_style_forms() {
        let (o, a) = parse(&os(&["-nc", "cfg", "x", "--config=b", "--", "-n"]), SPECS).unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o[1].arg.as_deref(), Some("cfg".as_ref()));
        assert_eq!(o[2].arg.as_deref(), Some("b".as_ref()));
        assert_eq!(a, os(&["x", "-n"]));
        let (o, _) = parse(&os(&["-ccfg"]), SPECS).unwrap();
        assert_eq!(o[0].arg.as_deref(), Some("cfg".as_ref()));
        assert_eq!(
            parse(&os(&["-q"]), SPECS),
            Err(GetoptError::Unknown("q".into()))
        );
        assert_eq!(
            parse(&os(&["-c"]), SPECS),
            Err(GetoptError::MissingArg("c".into()))
        );
        assert_eq!(
            parse(&os(&["--config"]), SPECS),
            Err(GetoptError::MissingLongArg("config".into()))
        );
        let (_, a) = parse(&os(&["-"]), SPECS).unwrap();
        assert_eq!(a, os(&["-"]), "a lone dash is an operand");
    }

    /// Regression: `--noheader=x` used to be accepted and `x` dropped silently.
    #[test]
    fn an_argument_to_a_flag_is_refused() {
        assert_eq!(
            parse(&os(&["--noheader=x"]), SPECS),
            Err(GetoptError::UnexpectedArg("noheader".into()))
        );
        assert_eq!(
            parse(&os(&["--help="]), SPECS),
            Err(GetoptError::UnexpectedArg("help".into()))
        );
    }

    #[test]
    fn long_prefixes_like_glibc() {
        let (o, _) = parse(&os(&["--conf", "f", "--no"]), SPECS).unwrap();
        assert_eq!(o[0].letter, 'c');
        assert_eq!(o[0].arg.as_deref(), Some("f".as_ref()));
        assert_eq!(
            o[1].letter, 'n',
            "--no: noheader and no-header are one option"
        );
        assert!(matches!(
            parse(&os(&["--h"]), SPECS),
            Err(GetoptError::Ambiguous { .. })
        ));
        assert_eq!(
            parse(&os(&["--bogus"]), SPECS),
            Err(GetoptError::UnknownLong("--bogus".into()))
        );
        assert_eq!(
            parse(&os(&["--"]), SPECS).unwrap(),
            (vec![], vec![]),
            "-- alone ends the options"
        );
    }

    /// Regression: arguments went through `to_string_lossy`, so bytes that are not UTF-8
    /// became U+FFFD.
    #[test]
    fn bytes_pass_through_exactly() {
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let args = vec![
            raw(b"-c\xffcfg"),
            raw(b"n\xfe"),
            raw(b"--config=\xfd"),
            raw(b"v\x80"),
        ];
        let (o, a) = parse(&args, SPECS).unwrap();
        assert_eq!(o[0].arg, Some(raw(b"\xffcfg")));
        assert_eq!(o[1].arg, Some(raw(b"\xfd")));
        assert_eq!(a, vec![raw(b"n\xfe"), raw(b"v\x80")]);
        assert_eq!(
            parse(&[raw(b"-\xff")], SPECS),
            Err(GetoptError::Unknown("\u{fffd}".into()))
        );
    }
}
