//! Software versions as SWUpdate 2022.12 orders them.
//!
//! SWUpdate compares two all-numeric dotted versions field by field as integers: at most four
//! fields of 16 bits each, packed into one 64-bit number (`version_to_number` in
//! `core/util.c`), so "1.01" equals "1.1" and "1.10" is newer than "1.9". Anything else
//! (letters, a fifth field, a field over 65535, empty fields) falls to other rules or silently
//! saturates. We accept only what that numeric rule orders unambiguously.

use std::cmp::Ordering;
use std::fmt;

/// A clean dotted version: 1 to 4 decimal fields, each 0..=65535.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    text: String,
    fields: [u16; 4],
}

/// Why a version string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not digits and dots, or an empty field.
    #[error("version {0:?} is not a dotted number like 1.2.3 (digits and dots only, no empty fields): SWUpdate would not order it numerically")]
    Syntax(String),
    /// More than four fields.
    #[error("version {0:?} has more than 4 fields: SWUpdate ignores the fifth and later ones")]
    TooManyFields(String),
    /// A field over 65535.
    #[error("version {0:?} has a field over 65535: SWUpdate keeps 16 bits per field")]
    FieldTooLarge(String),
}

impl Version {
    /// Parse and check a version string.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let parts: Vec<&str> = s.split('.').collect();
        if s.is_empty()
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(VersionError::Syntax(s.to_string()));
        }
        if parts.len() > 4 {
            return Err(VersionError::TooManyFields(s.to_string()));
        }
        let mut fields = [0u16; 4];
        for (i, p) in parts.iter().enumerate() {
            let digits = p.trim_start_matches('0');
            if digits.len() > 5 {
                return Err(VersionError::FieldTooLarge(s.to_string()));
            }
            let n: u32 = if digits.is_empty() {
                0
            } else {
                digits.parse().expect("digits")
            };
            fields[i] = u16::try_from(n).map_err(|_| VersionError::FieldTooLarge(s.to_string()))?;
        }
        Ok(Version {
            text: s.to_string(),
            fields,
        })
    }

    /// The number SWUpdate compares.
    pub fn number(&self) -> u64 {
        self.fields
            .iter()
            .fold(0u64, |acc, f| acc << 16 | *f as u64)
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Check that `self` is strictly newer than `previous` as SWUpdate sees it.
    pub fn check_newer_than(&self, previous: &Version) -> Result<(), String> {
        match self.number().cmp(&previous.number()) {
            Ordering::Greater => Ok(()),
            Ordering::Equal => Err(format!(
                "version {} is the same as the previous {} for SWUpdate (fields compare as integers: \"1.01\" == \"1.1\"); choose a higher one",
                self.text, previous.text
            )),
            Ordering::Less => Err(format!(
                "version {} is older than the previous {} for SWUpdate (fields compare as integers: \"1.10\" > \"1.9\"); a robot running with no-downgrade would refuse it",
                self.text, previous.text
            )),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn swupdate_numeric_order() {
        // "1.01" and "1.1" are the same version for SWUpdate.
        assert_eq!(v("1.01").number(), v("1.1").number());
        assert!(v("1.1").check_newer_than(&v("1.01")).is_err());
        // "1.10" is newer than "1.9" (not a string compare).
        assert!(v("1.10").check_newer_than(&v("1.9")).is_ok());
        assert!(v("1.9").check_newer_than(&v("1.10")).is_err());
        // Missing fields are zero: "2" == "2.0.0.0".
        assert_eq!(v("2").number(), v("2.0.0.0").number());
        assert!(v("1.0.1").check_newer_than(&v("1")).is_ok());
        assert_eq!(v("0007").number(), v("7").number());
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "1..2",
            ".1",
            "1.",
            "v1.2",
            "1.2-rc1",
            "1.2.3.4.5",
            "1.65536",
            "1. 2",
            "+1",
            "1.2a",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Version::parse("65535.65535.65535.65535").is_ok());
        assert!(Version::parse("000000000001.2").is_ok());
    }

    proptest! {
        #[test]
        fn order_is_fieldwise(a in proptest::collection::vec(0u16..=65535, 1..=4),
                              b in proptest::collection::vec(0u16..=65535, 1..=4),
                              zeros in 0usize..3) {
            let pad = "0".repeat(zeros);
            let sa = a.iter().map(|f| format!("{pad}{f}")).collect::<Vec<_>>().join(".");
            let sb = b.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(".");
            let (va, vb) = (Version::parse(&sa).unwrap(), Version::parse(&sb).unwrap());
            let mut fa = a.clone(); fa.resize(4, 0);
            let mut fb = b.clone(); fb.resize(4, 0);
            prop_assert_eq!(va.number().cmp(&vb.number()), fa.cmp(&fb));
        }

        #[test]
        fn parse_never_panics(s in "[0-9.a-z]{0,24}") {
            let _ = Version::parse(&s);
        }
    }
}
