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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
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
            let offset = parse_c_signed(cols[1])
                .ok_or_else(|| malformed(line, format!("offset {:?} is not a number", cols[1])))?;
            let hex = |name: &str, s: &str| {
                parse_c_hex(s)
                    .ok_or_else(|| malformed(line, format!("{name} {s:?} is not a hex number")))
            };
            let size = hex("env size", cols[2])?;
            if size < 8 {
                return Err(malformed(line, format!("env size {size:#x} is too small")));
            }
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
        match copies.as_slice() {
            [] => Err(ConfigError::Empty { path }),
            [a, b] if a.size != b.size => Err(ConfigError::SizeMismatch {
                path,
                first: a.size,
                second: b.size,
            }),
            _ => Ok(Config { path, copies }),
        }
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

    /// Whether there are two copies.
    pub fn is_redundant(&self) -> bool {
        self.copies.len() == 2
    }

    /// Size of each copy.
    pub fn env_size(&self) -> u64 {
        self.copies[0].size
    }
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
}
