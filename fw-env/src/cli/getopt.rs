//! A small GNU `getopt_long` work-alike for the drop-in tools, whose option syntax must match
//! the C tools': short options bundled (`-nc FILE`), attached arguments (`-cFILE`,
//! `--config=FILE`), options anywhere among the operands (GNU permutation), `--` to stop.

use std::ffi::OsString;

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

/// Why the command line cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetoptError {
    /// Unknown option.
    #[error("invalid option -- '{0}'")]
    Unknown(String),
    /// Option needs an argument.
    #[error("option requires an argument -- '{0}'")]
    MissingArg(String),
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
        let s = arg.to_string_lossy();
        i += 1;
        if s == "--" {
            operands.extend(args[i..].iter().cloned());
            break;
        } else if let Some(long) = s.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (long, None),
            };
            let spec = specs
                .iter()
                .find(|o| o.long == name)
                .ok_or_else(|| GetoptError::Unknown(format!("-{name}")))?;
            let value = if spec.takes_arg {
                match attached {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| GetoptError::MissingArg(name.to_owned()))?;
                        i += 1;
                        Some(v)
                    }
                }
            } else {
                None
            };
            opts.push(Opt {
                letter: spec.short,
                arg: value,
            });
        } else if s.len() > 1 && s.starts_with('-') {
            let chars: Vec<char> = s[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let spec = specs
                    .iter()
                    .find(|o| o.short == c)
                    .ok_or_else(|| GetoptError::Unknown(c.to_string()))?;
                if spec.takes_arg {
                    let rest: String = chars[j + 1..].iter().collect();
                    let value = if !rest.is_empty() {
                        OsString::from(rest)
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| GetoptError::MissingArg(c.to_string()))?;
                        i += 1;
                        v
                    };
                    opts.push(Opt {
                        letter: c,
                        arg: Some(value),
                    });
                    break;
                }
                opts.push(Opt {
                    letter: c,
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
        let (_, a) = parse(&os(&["-"]), SPECS).unwrap();
        assert_eq!(a, os(&["-"]), "a lone dash is an operand");
    }
}
