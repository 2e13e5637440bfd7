//! Which of two redundant copies is current, and what flags byte a write gives the next one.
//!
//! Pure functions over `(crc ok?, flags)` pairs, following U-Boot itself (`env/common.c`
//! `env_check_redund` for block devices and files, `env/flash.c` for the NOR boolean scheme).
//! U-Boot's `tools/env` agrees with U-Boot on every case; where libubootenv differs we follow
//! U-Boot (see `docs/fw-env.md`).

/// How the flags byte of a redundant copy is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagScheme {
    /// A counter incremented (mod 256) on every write; the higher one is newer, and 0 is
    /// newer than 255. Used by U-Boot for block devices, files, NAND and UBI.
    #[default]
    Counter,
    /// NOR flash: the new copy is written `ACTIVE` (1), then the old copy's byte is
    /// programmed to `OBSOLETE` (0), which NOR can do without an erase.
    Boolean,
}

/// The boolean scheme's "this copy is current".
pub const FLAG_ACTIVE: u8 = 1;
/// The boolean scheme's "this copy is superseded".
pub const FLAG_OBSOLETE: u8 = 0;

/// What is known of one copy for choosing: its flags byte if its CRC is good, else `None`.
pub type CopyState = Option<u8>;

/// Which copy is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Choice {
    /// Copy 0 (the first config line).
    First,
    /// Copy 1 (the second config line).
    Second,
    /// Neither copy has a good CRC: U-Boot uses its compiled-in default environment.
    Neither,
}

impl Choice {
    /// The index of the chosen copy.
    pub fn index(self) -> Option<usize> {
        match self {
            Choice::First => Some(0),
            Choice::Second => Some(1),
            Choice::Neither => None,
        }
    }
}

/// Choose the current copy exactly as U-Boot does.
pub fn choose(scheme: FlagScheme, first: CopyState, second: CopyState) -> Choice {
    match (first, second) {
        (None, None) => Choice::Neither,
        (Some(_), None) => Choice::First,
        (None, Some(_)) => Choice::Second,
        (Some(a), Some(b)) => match scheme {
            FlagScheme::Counter => {
                if a == 255 && b == 0 {
                    Choice::Second
                } else if b == 255 && a == 0 {
                    Choice::First
                } else if b > a {
                    Choice::Second
                } else {
                    // a > b, or equal ("almost impossible"): U-Boot takes the first.
                    Choice::First
                }
            }
            FlagScheme::Boolean => {
                if a == FLAG_ACTIVE && b == FLAG_OBSOLETE {
                    Choice::First
                } else if a == FLAG_OBSOLETE && b == FLAG_ACTIVE {
                    Choice::Second
                } else if a == b || a == 0xff {
                    Choice::First
                } else if b == 0xff {
                    Choice::Second
                } else {
                    Choice::First
                }
            }
        },
    }
}

/// The flags byte for the copy about to be written, given the current copy's flags
/// (`None` when no copy is valid and the write starts from defaults).
pub fn next_flags(scheme: FlagScheme, current: Option<u8>) -> u8 {
    match scheme {
        FlagScheme::Counter => current.map_or(1, |f| f.wrapping_add(1)),
        FlagScheme::Boolean => FLAG_ACTIVE,
    }
}

/// Which copy a write goes to: always the one that is not current, so the current copy stays
/// intact until the new one is complete. With no valid copy, the first.
pub fn write_target(choice: Choice) -> usize {
    match choice {
        Choice::First => 1,
        Choice::Second | Choice::Neither => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use FlagScheme::*;

    /// One row per case of U-Boot's `env_check_redund`.
    #[test]
    fn counter_decision_table() {
        let rows: &[(CopyState, CopyState, Choice)] = &[
            (None, None, Choice::Neither),          // both CRCs bad: defaults
            (Some(3), None, Choice::First),         // only the first is valid
            (None, Some(3), Choice::Second),        // only the second is valid
            (Some(4), Some(3), Choice::First),      // higher counter is newer
            (Some(3), Some(4), Choice::Second),     // higher counter is newer
            (Some(255), Some(0), Choice::Second),   // wrapped: 0 follows 255
            (Some(0), Some(255), Choice::First),    // wrapped: 0 follows 255
            (Some(7), Some(7), Choice::First),      // equal: the first
            (Some(255), Some(255), Choice::First),  // both erased-looking but valid: the first
            (Some(0), Some(0), Choice::First),      // equal zero: the first
            (Some(254), Some(255), Choice::Second), // no wrap below 255
            (Some(1), Some(255), Choice::Second),   // only (0,255) is a wrap, (1,255) is not
        ];
        for (i, &(a, b, want)) in rows.iter().enumerate() {
            assert_eq!(choose(Counter, a, b), want, "row {i}: {a:?} {b:?}");
        }
    }

    /// One row per case of U-Boot's `env/flash.c` selection.
    #[test]
    fn boolean_decision_table() {
        let rows: &[(CopyState, CopyState, Choice)] = &[
            (Some(1), Some(0), Choice::First),     // active / obsolete
            (Some(0), Some(1), Choice::Second),    // obsolete / active
            (Some(1), Some(1), Choice::First),     // power cut before marking obsolete
            (Some(0xff), Some(0), Choice::First),  // first erased flag wins
            (Some(0), Some(0xff), Choice::Second), // second erased flag wins
            (Some(0xff), Some(0xff), Choice::First),
            (Some(5), Some(6), Choice::First), // nonsense: the first
            (None, Some(0), Choice::Second),
        ];
        for (i, &(a, b, want)) in rows.iter().enumerate() {
            assert_eq!(choose(Boolean, a, b), want, "row {i}: {a:?} {b:?}");
        }
    }

    proptest! {
        /// After a write (new copy = inactive one, flags bumped), the new copy is chosen,
        /// whatever the starting flags: the counter survives every wrap.
        #[test]
        fn a_written_copy_becomes_current(a in any::<u8>(), b in any::<u8>(), a_ok: bool, b_ok: bool) {
            for scheme in [Counter, Boolean] {
                let states = [a_ok.then_some(a), b_ok.then_some(b)];
                let choice = choose(scheme, states[0], states[1]);
                let current = choice.index().and_then(|i| states[i]);
                let target = write_target(choice);
                let mut after = states;
                after[target] = Some(next_flags(scheme, current));
                if scheme == Boolean {
                    if let Some(i) = choice.index() { after[i] = Some(FLAG_OBSOLETE); }
                }
                prop_assert_eq!(choose(scheme, after[0], after[1]).index(), Some(target));
            }
        }

        /// A crash after writing the new copy but before touching anything else leaves
        /// either the new copy or the old one current, never "neither".
        #[test]
        fn never_neither_after_a_write(a in any::<u8>(), b in any::<u8>(), a_ok: bool) {
            let states = [a_ok.then_some(a), Some(b)];
            prop_assert_ne!(choose(Counter, states[0], states[1]), Choice::Neither);
        }
    }
}
