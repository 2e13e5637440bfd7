//! `fw_env.config`: where the environment copies live.
//!
//! The legacy format both U-Boot's `tools/env` and libubootenv read: one line per copy (a
//! second line is the redundant copy), columns separated by blanks:
//!
//! ```text
//! # device            offset   env size  sector size  sector count
//! /bootenv/uboot.env  0x0000   0x4000
//! /dev/mmcblk0        -0x8000  0x4000    0x200        0x20
//! ```
//!
//! The offset is read like C's `%lli` (`0x` hex, leading `0` octal, else decimal; negative
//! counts from the end of the device). The other columns are hex like C's `%lx`, with or
//! without `0x`. Unlike the C tools, which silently skip a line they cannot read, a malformed
//! line is an error naming the file and line: a robot must not write an environment to a place
//! nobody meant.

use std::path::{Path, PathBuf};

/// Where the config is read from when none is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fw_env.config";

/// The largest environment copy fw-env accepts (U-Boot's are kilobytes; the board's 192 KiB).
/// Memory is only ever allocated from a size checked against this and against the device.
pub const MAX_ENV_SIZE: u64 = 16 << 20;

/// The largest config file read (a config is a few lines).
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// The smallest copy: a header and an empty data area (two NULs) of the redundant layout.
pub const MIN_ENV_SIZE: u64 = 8;

/// One environment copy's location.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyLocation {
    /// File or device holding the copy.
    pub device: PathBuf,
    /// Byte offset; negative counts back from the end of the file or device.
    pub offset: i64,
    /// Size of the copy in bytes (header included), U-Boot's `CONFIG_ENV_SIZE`.
    pub size: u64,
    /// Erase-block size (NOR/NAND); informational for block devices and files.
    pub sector_size: Option<u64>,
    /// Number of erase blocks; informational for block devices and files.
    pub sectors: Option<u64>,
    /// 1-based line of the config this came from (0 when built in code).
    pub line: usize,
}

/// A parsed `fw_env.config`: one or two copies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// The file it was read from, for error messages.
    pub path: PathBuf,
    /// The copies: one, or two for a redundant environment.
    pub copies: Vec<CopyLocation>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source} (give another with -c FILE; the default is {DEFAULT_CONFIG_PATH})")]
    Read {
        /// The config path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line cannot be parsed.
    #[error("{path}:{line}: {reason}; expected `DEVICE OFFSET ENV_SIZE [SECTOR_SIZE [SECTOR_COUNT]]`, e.g. `/bootenv/uboot.env 0x0 0x4000`")]
    Malformed {
        /// The config path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No copy is described.
    #[error("{path}: no environment described (add a line like `/bootenv/uboot.env 0x0 0x4000`)")]
    Empty {
        /// The config path.
        path: PathBuf,
    },
    /// More than two copies.
    #[error(
        "{path}:{line}: a third environment copy; U-Boot supports one copy or two (redundant)"
    )]
    TooManyCopies {
        /// The config path.
        path: PathBuf,
        /// Line of the third copy.
        line: usize,
    },
    /// The file is not a regular file, too large, or not text.
    #[error(
        "config {path}: {reason} (give another with -c FILE; the default is {DEFAULT_CONFIG_PATH})"
    )]
    Unusable {
        /// The config path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The two copies overlap: a write of one would destroy the other.
    #[error("{path}:{first_line} and {path}:{second_line} describe overlapping regions of {device} ({first}); U-Boot's two copies must not share bytes: fix the offsets")]
    Overlap {
        /// The config path.
        path: PathBuf,
        /// The device.
        device: PathBuf,
        /// Both regions, in words.
        first: String,
        /// Line of copy 1.
        first_line: usize,
        /// Line of copy 2.
        second_line: usize,
    },
    /// Redundant copies of different sizes.
    #[error("{path}: the two copies differ in size ({first:#x} and {second:#x}); U-Boot uses one CONFIG_ENV_SIZE for both")]
    SizeMismatch {
        /// The config path.
        path: PathBuf,
        /// Size of copy 1.
        first: u64,
        /// Size of copy 2.
        second: u64,
    },
}

impl Config {
    /// Read and parse a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let unusable = |reason: String| ConfigError::Unusable {
            path: path.to_owned(),
            reason,
        };
        // Never block on a FIFO or stream a device: a config is a small regular file.
        let bytes = match crate::storage::open_checked(path, false) {
            Ok(Ok((file, meta))) => {
                use std::io::Read;
                if meta.len() > MAX_CONFIG_FILE {
                    return Err(unusable(format!(
                        "{} bytes, more than a config can be ({MAX_CONFIG_FILE}); is it the right file?",
                        meta.len()
                    )));
                }
                let mut buf = Vec::new();
                file.take(MAX_CONFIG_FILE)
                    .read_to_end(&mut buf)
                    .map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?;
                buf
            }
            Ok(Err(kind)) => return Err(unusable(format!("is {kind}, not a regular file"))),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            unusable(format!(
                "not text (invalid UTF-8 at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Config::parse(&text, path)
    }

    /// Parse config text; `path` only names the origin in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref().to_owned();
        let malformed = |line: usize, reason: String| ConfigError::Malformed {
            path: path.clone(),
            line,
            reason,
        };
        let mut copies = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split_once('#').map_or(raw, |(before, _)| before);
            let cols: Vec<&str> = content.split_whitespace().collect();
            if cols.is_empty() {
                continue;
            }
            if copies.len() == 2 {
                return Err(ConfigError::TooManyCopies { path, line });
            }
            if cols.len() < 3 {
                return Err(malformed(
                    line,
                    format!("{} column(s), at least 3 needed", cols.len()),
                ));
            }
            if cols.len() > 5 {
                return Err(malformed(
                    line,
                    format!("{} columns, at most 5 allowed", cols.len()),
                ));
            }
            let offset = parse_c_signed(cols[1]).ok_or_else(|| {
                let what = if looks_numeric(cols[1]) {
                    "is out of range (at most 63 bits)"
                } else {
                    "is not a number"
                };
                malformed(line, format!("offset {:?} {what}", cols[1]))
            })?;
            let hex = |name: &str, s: &str| {
                parse_c_hex(s).ok_or_else(|| {
                    let what = if looks_numeric(s) {
                        "is out of range (at most 64 bits)"
                    } else {
                        "is not a hex number"
                    };
                    malformed(line, format!("{name} {s:?} {what}"))
                })
            };
            let size = hex("env size", cols[2])?;
            if size < MIN_ENV_SIZE {
                return Err(malformed(
                    line,
                    format!("env size {size:#x} is too small (a copy needs at least {MIN_ENV_SIZE:#x} bytes: header and data area)"),
                ));
            }
            if size > MAX_ENV_SIZE {
                return Err(malformed(
                    line,
                    format!("env size {size:#x} is larger than the {MAX_ENV_SIZE:#x} bytes fw-env accepts (U-Boot's CONFIG_ENV_SIZE is kilobytes; the board's is 0x30000)"),
                ));
            }
            if offset >= 0 && offset.checked_add(size as i64).is_none() {
                return Err(malformed(
                    line,
                    format!("offset {offset:#x} + env size {size:#x} does not fit in 63 bits"),
                ));
            }
            if offset < 0 && offset.unsigned_abs() < size {
                return Err(malformed(
                    line,
                    format!("offset {offset} counts back {} bytes from the end, less than the env size {size:#x}: the copy would run past the end of the device", offset.unsigned_abs()),
                ));
            }
            // Informational only (no arithmetic is done with them), but still numbers.
            let sector_size = cols.get(3).map(|s| hex("sector size", s)).transpose()?;
            let sectors = cols.get(4).map(|s| hex("sector count", s)).transpose()?;
            copies.push(CopyLocation {
                device: PathBuf::from(cols[0]),
                offset,
                size,
                sector_size,
                sectors,
                line,
            });
        }
        // The layout rules (one or two copies, equal sizes, no overlap) live in `validate`,
        // which also runs again once links and negative offsets are resolved.
        let config = Config { path, copies };
        config.validate()?;
        Ok(config)
    }

    /// A config for a single copy, built in code (tests, `--file` style use).
    pub fn single(device: impl Into<PathBuf>, offset: i64, size: u64) -> Config {
        Config {
            path: PathBuf::from("<built-in>"),
            copies: vec![CopyLocation {
                device: device.into(),
                offset,
                size,
                sector_size: None,
                sectors: None,
                line: 0,
            }],
        }
    }

    /// A config for two redundant copies, built in code.
    pub fn redundant(first: (PathBuf, i64), second: (PathBuf, i64), size: u64) -> Config {
        let copy = |(device, offset): (PathBuf, i64)| CopyLocation {
            device,
            offset,
            size,
            sector_size: None,
            sectors: None,
            line: 0,
        };
        Config {
            path: PathBuf::from("<built-in>"),
            copies: vec![copy(first), copy(second)],
        }
    }

    /// Check a config however it was made (the parser checks as it reads; configs built in
    /// code are checked here): one or two copies, sizes within bounds and equal, offsets that
    /// fit, no overlap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let path = self.path.clone();
        let malformed = |line: usize, reason: String| ConfigError::Malformed {
            path: path.clone(),
            line,
            reason,
        };
        if self.copies.is_empty() {
            return Err(ConfigError::Empty { path });
        }
        if let Some(third) = self.copies.get(2) {
            return Err(ConfigError::TooManyCopies {
                path,
                line: third.line,
            });
        }
        for c in &self.copies {
            if !(MIN_ENV_SIZE..=MAX_ENV_SIZE).contains(&c.size) {
                return Err(malformed(
                    c.line,
                    format!(
                        "env size {:#x} is outside {MIN_ENV_SIZE:#x}..={MAX_ENV_SIZE:#x}",
                        c.size
                    ),
                ));
            }
            if (c.offset >= 0 && c.offset.checked_add(c.size as i64).is_none())
                || (c.offset < 0 && c.offset.unsigned_abs() < c.size)
            {
                return Err(malformed(
                    c.line,
                    format!(
                        "offset {} and env size {:#x} do not describe a region",
                        c.offset, c.size
                    ),
                ));
            }
        }
        if let [a, b] = self.copies.as_slice() {
            if a.size != b.size {
                return Err(ConfigError::SizeMismatch {
                    path,
                    first: a.size,
                    second: b.size,
                });
            }
            if let Some(region) = overlap(a, b) {
                return Err(ConfigError::Overlap {
                    path,
                    device: a.device.clone(),
                    first: region,
                    first_line: a.line,
                    second_line: b.line,
                });
            }
        }
        Ok(())
    }

    /// Whether there are two copies.
    pub fn is_redundant(&self) -> bool {
        self.copies.len() == 2
    }

    /// Size of each copy.
    pub fn env_size(&self) -> u64 {
        self.copies[0].size
    }
}

/// Whether two copies on the same device path share bytes, judged from the config alone
/// (offsets of the same sign; a positive and a negative offset are compared once the device's
/// length is known, by the store). Returns the two regions in words.
pub fn overlap(a: &CopyLocation, b: &CopyLocation) -> Option<String> {
    if a.device != b.device || (a.offset < 0) != (b.offset < 0) {
        return None;
    }
    let (a0, b0) = (a.offset as i128, b.offset as i128);
    let (a1, b1) = (a0 + a.size as i128, b0 + b.size as i128);
    (a0 < b1 && b0 < a1).then(|| {
        let show = |o: i64, s: u64| {
            if o < 0 {
                format!(
                    "-{:#x}..-{:#x}",
                    o.unsigned_abs(),
                    o.unsigned_abs() - s.min(o.unsigned_abs())
                )
            } else {
                format!("{o:#x}..{:#x}", o as u64 + s)
            }
        };
        format!("{} and {}", show(a.offset, a.size), show(b.offset, b.size))
    })
}

fn looks_numeric(s: &str) -> bool {
    let d = s.trim_start_matches(['-', '+']);
    let d = d
        .strip_prefix("0x")
        .or_else(|| d.strip_prefix("0X"))
        .unwrap_or(d);
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Parse like C's `strtoll(s, .., 0)` over the whole string: optional sign, `0x` hex,
/// leading-`0` octal, else decimal.
pub fn parse_c_signed(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    let value = i64::try_from(magnitude).ok()?;
    Some(if neg { -value } else { value })
}

/// Parse like C's `%lx`: hex digits with an optional `0x`.
pub fn parse_c_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_config_parses() {
        let c = Config::parse(
            "# board\n/bootenv/uboot.env 0x0000 0x4000\n",
            "/etc/fw_env.config",
        )
        .unwrap();
        assert_eq!(c.copies.len(), 1);
        assert_eq!(c.copies[0].device, PathBuf::from("/bootenv/uboot.env"));
        assert_eq!(
            (c.copies[0].offset, c.copies[0].size, c.copies[0].line),
            (0, 0x4000, 2)
        );
    }

    #[test]
    fn hex_columns_without_prefix_and_negative_offsets() {
        let c = Config::parse(
            "/dev/mmcblk0 -0x8000 4000 200 20\n/dev/mmcblk0 -0x4000 0x4000\n",
            "c",
        )
        .unwrap();
        assert!(c.is_redundant());
        assert_eq!(c.copies[0].offset, -0x8000);
        assert_eq!(c.copies[0].size, 0x4000);
        assert_eq!(c.copies[0].sector_size, Some(0x200));
        assert_eq!(c.copies[0].sectors, Some(0x20));
    }

    #[test]
    fn offsets_follow_strtoll_base_zero() {
        assert_eq!(parse_c_signed("16384"), Some(16384));
        assert_eq!(parse_c_signed("0x4000"), Some(0x4000));
        assert_eq!(parse_c_signed("040000"), Some(0o40000));
        assert_eq!(parse_c_signed("-512"), Some(-512));
        assert_eq!(parse_c_signed("0"), Some(0));
        assert_eq!(parse_c_signed("x"), None);
        assert_eq!(parse_c_signed(""), None);
    }

    #[test]
    fn trailing_comments_and_blank_lines_are_fine() {
        let c = Config::parse("\n   \n/f 0 0x4000 # the env\n", "c").unwrap();
        assert_eq!(c.copies[0].line, 3);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = Config::parse("/f 0x0\n", "/etc/fw_env.config").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/fw_env.config:1: 2 column(s)"),
            "{e}"
        );
        let e = Config::parse("# x\n/f zz 0x4000\n", "cfg").unwrap_err();
        assert!(e.to_string().starts_with("cfg:2: offset \"zz\""), "{e}");
        let e = Config::parse("/f 0 0x4g00\n", "cfg").unwrap_err();
        assert!(e.to_string().contains("env size \"0x4g00\""), "{e}");
        assert!(matches!(
            Config::parse("# nothing\n", "cfg"),
            Err(ConfigError::Empty { .. })
        ));
        assert!(matches!(
            Config::parse("/a 0 4000\n/b 0 4000\n/c 0 4000\n", "cfg"),
            Err(ConfigError::TooManyCopies { line: 3, .. })
        ));
        assert!(matches!(
            Config::parse("/a 0 4000\n/b 0 8000\n", "cfg"),
            Err(ConfigError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn absurd_numbers_are_errors_naming_the_line() {
        // (line, what the error says)
        let rows: &[(&str, &str)] = &[
            ("/f 0 0xffffffffffffffff", "larger than"),
            ("/f 0 0x10000000000000000", "out of range"),
            ("/f 0 0", "too small"),
            ("/f 0 7", "too small"),
            ("/f 0x7fffffffffffffff 0x4000", "does not fit"),
            ("/f 9223372036854775807 0x4000", "does not fit"),
            ("/f -0x8000000000000000 0x4000", "out of range"),
            ("/f 0xffffffffffffffff 0x4000", "out of range"),
            ("/f -0x100 0x4000", "counts back"),
            ("/f 0 0x4000 0x1ffffffffffffffff", "sector size"),
            ("/f 0 0x4000 0x200 -1", "sector count"),
        ];
        for (line, want) in rows {
            let e = Config::parse(&format!("# c\n{line}\n"), "/etc/fw_env.config").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("/etc/fw_env.config:2: ") && msg.contains(want),
                "{line}: {msg}"
            );
        }
        // Informational sector values may be anything that parses.
        assert!(Config::parse("/f 0 0x4000 0xffffffffffffffff 0\n", "c").is_ok());
    }

    #[test]
    fn overlapping_copies_are_refused() {
        for (text, overlaps) in [
            ("/f 0 0x4000\n/f 0 0x4000\n", true),
            ("/f 0 0x4000\n/f 0x3fff 0x4000\n", true),
            ("/f -0x8000 0x4000\n/f -0x6000 0x4000\n", true),
            ("/f 0 0x4000\n/f 0x4000 0x4000\n", false),
            ("/f 0 0x4000\n/g 0 0x4000\n", false),
            // different signs: only known once the device's length is (the store checks)
            ("/f 0 0x4000\n/f -0x4000 0x4000\n", false),
        ] {
            let r = Config::parse(text, "cfg");
            assert_eq!(
                matches!(r, Err(ConfigError::Overlap { .. })),
                overlaps,
                "{text}: {r:?}"
            );
        }
        let e = Config::parse("/f 0 0x4000\n/f 0x2000 0x4000\n", "cfg").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cfg:1 and cfg:2 describe overlapping regions of /f (0x0..0x4000 and 0x2000..0x6000)"),
            "{e}"
        );
        // Configs built in code are checked too.
        let c = Config::redundant(("/f".into(), 0), ("/f".into(), 0x10), 0x4000);
        assert!(matches!(c.validate(), Err(ConfigError::Overlap { .. })));
        assert!(Config::single("/f", 0, 0).validate().is_err());
        assert!(Config::single("/f", 0, 0x4000).validate().is_ok());
    }

    #[test]
    fn a_fifo_as_config_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cfg");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = Config::load(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"\xff\xfe0 0 0x4000").unwrap();
        let e = Config::load(&bin).unwrap_err();
        assert!(e.to_string().contains("not text"), "{e}");
    }

    use proptest::prelude::*;

    proptest::proptest! {
        /// Any line of numbers parses to a config within bounds, or an error naming the line;
        /// never a panic.
        #[test]
        fn any_numbers_parse_or_name_the_line(
            offset in proptest::prop_oneof![proptest::num::i64::ANY.prop_map(|v| format!("{v}")),
                                             proptest::num::u64::ANY.prop_map(|v| format!("{v:#x}")),
                                             proptest::num::i64::ANY.prop_map(|v| format!("-{:#x}", v.unsigned_abs()))],
            size in proptest::num::u64::ANY,
            small in 0u64..0x100000,
            second in proptest::bool::ANY,
        ) {
            let size = if second { small } else { size };
            let text = format!("/f {offset} {size:x}\n/f {offset} {small:x}\n");
            match Config::parse(&text, "cfg") {
                Ok(c) => {
                    prop_assert!(c.validate().is_ok());
                    prop_assert!(c.copies.iter().all(|c| c.size <= MAX_ENV_SIZE));
                }
                Err(e) => prop_assert!(e.to_string().starts_with("cfg"), "{}", e),
            }
        }
    }
}
