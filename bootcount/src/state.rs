//! The policy's variables, parsed once from an environment snapshot into typed values.
//!
//! Every raw value has a meaning, including unset, empty and garbage (see the table in
//! `docs/boot-contract.md`). Unset and empty are the same: hush cannot tell them apart.

use crate::slots::{SlotConfig, SlotId};
use fw_env::Vars;

/// Names of the environment variables of the contract.
pub mod names {
    /// The persistent slot selection (seed variable).
    pub const NEXT_BOOT: &str = "next_boot";
    /// Slot to boot on the next boot only.
    pub const ONCE: &str = "zbot_once";
    /// Slot on trial.
    pub const TRIAL: &str = "zbot_trial";
    /// Trial attempts already started, one decimal digit.
    pub const TRIES: &str = "zbot_tries";
    /// Attempts a trial gets, one decimal digit 1..9.
    pub const BOOTLIMIT: &str = "zbot_bootlimit";
    /// Where to go when the trial fails.
    pub const PREV: &str = "zbot_prev";
    /// Last rollback: the slot that failed.
    pub const RB_SLOT: &str = "zbot_rb_slot";
    /// Last rollback: why.
    pub const RB_REASON: &str = "zbot_rb_reason";
    /// Prefix of the per-slot "bad" flags (`zbot_bad_<slot>`).
    pub const BAD_PREFIX: &str = "zbot_bad_";

    /// The bad-flag variable of a slot.
    pub fn bad(slot: &str) -> String {
        format!("{BAD_PREFIX}{slot}")
    }
}

/// Reason written by the bootloader when a trial runs out of attempts ([`Reason::LimitReached`]).
pub const REASON_BOOTLIMIT: &str = "bootlimit";
/// Reason written by the bootloader when an active trial's counter is not a digit
/// ([`Reason::TriesInvalid`]).
pub const REASON_TRIES_INVALID: &str = "tries-invalid";
/// Reason stored in `zbot_bad_<slot>` while a slot is being written by an updater
/// ([`Reason::Installing`]).
pub const REASON_INSTALLING: &str = "installing";
/// Reason of a rollback whose `zbot_rb_reason` is missing (shown only, never written).
pub const REASON_UNKNOWN: &str = "unknown";

/// The most bytes a [`Reason`] may have (it is kept in two variables of a small environment).
pub const MAX_REASON_BYTES: usize = 200;

/// Attempts a trial gets (`zbot_bootlimit`, the slot file's `bootlimit`, `trial --limit`): one
/// decimal digit `1`..`9`, the only values hush's string comparison of `zbot_tries` agrees with.
/// Checked once, where it is parsed; everything downstream is in range.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct BootLimit(u8);

/// A boot limit out of `1..=9`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the boot limit must be 1..9, got {0}")]
pub struct BadLimit(pub String);

impl BootLimit {
    /// The smallest limit: one attempt.
    pub const MIN: BootLimit = BootLimit(1);
    /// The largest limit: one decimal digit.
    pub const MAX: BootLimit = BootLimit(9);

    /// `n` if it is `1..=9`.
    pub fn new(n: u8) -> Result<Self, BadLimit> {
        if (Self::MIN.0..=Self::MAX.0).contains(&n) {
            Ok(BootLimit(n))
        } else {
            Err(BadLimit(n.to_string()))
        }
    }

    /// The environment's encoding (`zbot_bootlimit`): exactly one character `1`..`9`, else
    /// `None` (the slot file's default applies).
    pub fn from_env(raw: &str) -> Option<Self> {
        digit(raw, Self::MIN.0).map(BootLimit)
    }

    /// The number of attempts.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for BootLimit {
    type Error = BadLimit;
    fn try_from(n: u8) -> Result<Self, BadLimit> {
        BootLimit::new(n)
    }
}

impl From<BootLimit> for u8 {
    fn from(l: BootLimit) -> u8 {
        l.0
    }
}

impl From<BootLimit> for usize {
    fn from(l: BootLimit) -> usize {
        usize::from(l.0)
    }
}

/// An attempt count against the limit (`attempt > limit`).
impl PartialEq<BootLimit> for u8 {
    fn eq(&self, other: &BootLimit) -> bool {
        *self == other.0
    }
}

/// An attempt count against the limit (`attempt > limit`).
impl PartialOrd<BootLimit> for u8 {
    fn partial_cmp(&self, other: &BootLimit) -> Option<std::cmp::Ordering> {
        self.partial_cmp(&other.0)
    }
}

impl std::str::FromStr for BootLimit {
    type Err = BadLimit;
    /// A decimal number (as `--limit` and the slot file write it), then the range.
    fn from_str(s: &str) -> Result<Self, BadLimit> {
        s.parse::<u8>()
            .map_err(|_| BadLimit(s.to_string()))
            .and_then(BootLimit::new)
    }
}

impl std::fmt::Display for BootLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a slot was given up or marked bad: the value written to `zbot_rb_reason` and
/// `zbot_bad_<slot>`. The policy's own words are variants (the hush script writes the same
/// words, [`REASON_BOOTLIMIT`] and [`REASON_TRIES_INVALID`]); anything else is text given by a
/// user or the health service, checked once by [`Reason::parse`]. Each encoding has exactly one
/// value: the text `bootlimit` parses to [`Reason::LimitReached`].
///
/// What is *read back* from the environment stays raw text ([`Rollback::reason`],
/// [`BootState::bad_reason`]): anyone can store anything there with `fw_setenv`, and it is only
/// shown, never written again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The bootloader gave up a trial after its attempts (`bootlimit`).
    LimitReached,
    /// The bootloader gave up a trial whose counter is not a digit (`tries-invalid`).
    TriesInvalid,
    /// An updater is writing the slot (`installing`, by `install-target`).
    Installing,
    /// Any other text (`mark-bad --reason`, the health service's `health: ...`).
    Given(GivenReason),
}

/// The text of a [`Reason::Given`]: one printable line, no backslash, 1..=200 bytes, none of the
/// policy's words. Made only by [`Reason::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GivenReason(String);

/// A reason that cannot be stored as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the reason must be one line of printable text without backslashes, 1..200 bytes")]
pub struct BadReason;

impl Reason {
    /// Check a reason given as text: one printable line without backslashes (hush and fw-env's
    /// script format would read a backslash as an escape), 1..=[`MAX_REASON_BYTES`] bytes.
    pub fn parse(text: &str) -> Result<Self, BadReason> {
        if text.is_empty()
            || text.len() > MAX_REASON_BYTES
            || text.chars().any(|c| c.is_control() || c == '\\')
        {
            return Err(BadReason);
        }
        Ok(match text {
            REASON_BOOTLIMIT => Reason::LimitReached,
            REASON_TRIES_INVALID => Reason::TriesInvalid,
            REASON_INSTALLING => Reason::Installing,
            _ => Reason::Given(GivenReason(text.to_string())),
        })
    }

    /// Make a reason out of any text: control characters and backslashes dropped, cut to
    /// [`MAX_REASON_BYTES`] on a character boundary; `None` if nothing is left.
    pub fn sanitised(text: &str) -> Option<Self> {
        let mut s: String = text
            .chars()
            .filter(|&c| !c.is_control() && c != '\\')
            .collect();
        if s.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Reason::parse(&s).ok()
    }

    /// The value stored in the environment.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::LimitReached => REASON_BOOTLIMIT,
            Reason::TriesInvalid => REASON_TRIES_INVALID,
            Reason::Installing => REASON_INSTALLING,
            Reason::Given(GivenReason(s)) => s,
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = BadReason;
    fn from_str(s: &str) -> Result<Self, BadReason> {
        Reason::parse(s)
    }
}

impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// A variable that should name a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotRef {
    /// Unset or empty.
    Unset,
    /// A slot of the configuration.
    Slot(SlotId),
    /// Anything else, kept for display. Treated like [`SlotRef::Unset`] by the policy.
    Other(String),
}

impl SlotRef {
    fn parse(cfg: &SlotConfig, raw: Option<&str>) -> Self {
        match raw {
            None | Some("") => SlotRef::Unset,
            Some(v) => cfg
                .find(v)
                .map(SlotRef::Slot)
                .unwrap_or_else(|| SlotRef::Other(v.to_string())),
        }
    }

    /// The slot, if this names one.
    pub fn slot(&self) -> Option<SlotId> {
        match self {
            SlotRef::Slot(id) => Some(*id),
            _ => None,
        }
    }
}

/// The trial attempt counter `zbot_tries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tries {
    /// Unset/empty (0) or one of `0`..`9`.
    Count(u8),
    /// Anything else: an active trial with this counter is given up.
    Invalid(String),
}

/// The last rollback, as recorded until `ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The slot that failed (raw: shown even if it is no longer a slot name).
    pub slot: String,
    /// Why; [`REASON_UNKNOWN`] if the reason variable is missing.
    pub reason: String,
}

/// The policy's view of one environment snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    /// `next_boot`.
    pub next_boot: SlotRef,
    /// `zbot_once`.
    pub once: SlotRef,
    /// `zbot_trial`.
    pub trial: SlotRef,
    /// `zbot_tries`.
    pub tries: Tries,
    /// `zbot_bootlimit` if it is `1`..`9`, else the slot file's default.
    pub bootlimit: BootLimit,
    /// `zbot_prev`.
    pub prev: SlotRef,
    /// `zbot_rb_slot` / `zbot_rb_reason`.
    pub rollback: Option<Rollback>,
    /// `zbot_bad_<slot>` per slot id (the reason), ignoring the recovery slot's.
    pub bad: Vec<Option<String>>,
    /// The recovery slot.
    pub recovery: SlotId,
}

/// A single decimal digit in `lo..=9`, as the contract's counters are; anything else is `None`.
pub fn digit(raw: &str, lo: u8) -> Option<u8> {
    match raw.as_bytes() {
        [c @ b'0'..=b'9'] if c - b'0' >= lo => Some(c - b'0'),
        _ => None,
    }
}

impl BootState {
    /// Parse the policy's variables out of `vars`.
    pub fn parse(cfg: &SlotConfig, vars: &Vars) -> Self {
        let get = |n: &str| vars.get(n).map(|v| v.into_owned());
        let slot = |n: &str| SlotRef::parse(cfg, get(n).as_deref());
        let tries = match get(names::TRIES).as_deref() {
            None | Some("") => Tries::Count(0),
            Some(v) => digit(v, 0)
                .map(Tries::Count)
                .unwrap_or_else(|| Tries::Invalid(v.to_string())),
        };
        let bootlimit = get(names::BOOTLIMIT)
            .and_then(|v| BootLimit::from_env(&v))
            .unwrap_or(cfg.bootlimit);
        let rollback = match get(names::RB_SLOT) {
            Some(s) if !s.is_empty() => Some(Rollback {
                slot: s,
                reason: get(names::RB_REASON)
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| REASON_UNKNOWN.to_string()),
            }),
            _ => None,
        };
        let recovery = cfg.recovery();
        let bad = cfg
            .ids()
            .map(|id| {
                if id == recovery {
                    return None;
                }
                get(&names::bad(cfg.name(id))).filter(|r| !r.is_empty())
            })
            .collect();
        BootState {
            next_boot: slot(names::NEXT_BOOT),
            once: slot(names::ONCE),
            trial: slot(names::TRIAL),
            tries,
            bootlimit,
            prev: slot(names::PREV),
            rollback,
            bad,
            recovery,
        }
    }

    /// `resolve(next_boot)`: the slot `next_boot` names, else the recovery slot.
    pub fn primary(&self) -> SlotId {
        self.next_boot.slot().unwrap_or(self.recovery)
    }

    /// The slot on trial, if a trial is active (`zbot_trial` is a slot and `next_boot` names it).
    pub fn active_trial(&self) -> Option<SlotId> {
        match (&self.trial, &self.next_boot) {
            (SlotRef::Slot(t), SlotRef::Slot(n)) if t == n => Some(*t),
            _ => None,
        }
    }

    /// Where a failed trial of `t` goes: `zbot_prev` if it is a slot other than `t`, else recovery.
    pub fn fallback_from(&self, t: SlotId) -> SlotId {
        match self.prev {
            SlotRef::Slot(p) if p != t => p,
            _ => self.recovery,
        }
    }

    /// The last good slot `P`: where the device goes if what is being tried fails.
    pub fn last_good(&self) -> SlotId {
        let p = match self.active_trial() {
            Some(t) => self.fallback_from(t),
            None => self.primary(),
        };
        if self.is_bad(p) {
            self.recovery
        } else {
            p
        }
    }

    /// Whether the slot is flagged bad (never true for the recovery slot).
    pub fn is_bad(&self, id: SlotId) -> bool {
        self.bad[id.0].is_some()
    }

    /// The bad reason of a slot.
    pub fn bad_reason(&self, id: SlotId) -> Option<&str> {
        self.bad[id.0].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pairs: &[(&str, &str)]) -> BootState {
        BootState::parse(&SlotConfig::builtin(), &pairs.iter().copied().collect())
    }

    #[test]
    fn digits_are_exactly_one_decimal_character() {
        for (raw, lo, want) in [
            ("0", 0, Some(0)),
            ("9", 0, Some(9)),
            ("0", 1, None),
            ("10", 0, None),
            ("03", 0, None),
            ("a", 0, None),
            (" 1", 0, None),
            ("1 ", 0, None),
            ("-1", 0, None),
            ("0x1", 0, None),
            ("", 0, None),
            ("\u{0663}", 0, None), // Arabic-Indic three: a digit to Unicode, not to hush
        ] {
            assert_eq!(digit(raw, lo), want, "{raw:?}");
        }
    }

    #[test]
    fn seed_environment_means_no_trial_no_rollback() {
        let s = st(&[
            ("next_boot", "rootfs"),
            ("first_boot", "1"),
            ("root", "root=/dev/mmcblk0p4 rootwait rw"),
        ]);
        assert_eq!(s.next_boot, SlotRef::Slot(SlotId(0)));
        assert_eq!(s.tries, Tries::Count(0));
        assert_eq!(s.bootlimit.get(), 3);
        assert_eq!(s.active_trial(), None);
        assert_eq!(s.rollback, None);
        assert_eq!(s.last_good(), SlotId(0));
    }

    #[test]
    fn empty_is_unset_and_garbage_is_kept_for_display() {
        let s = st(&[
            ("next_boot", ""),
            ("zbot_once", "ROOTFS"),
            ("zbot_tries", "a"),
            ("zbot_bootlimit", "0"),
        ]);
        assert_eq!(s.next_boot, SlotRef::Unset);
        assert_eq!(s.once, SlotRef::Other("ROOTFS".into()));
        assert_eq!(s.tries, Tries::Invalid("a".into()));
        assert_eq!(s.bootlimit.get(), 3);
        assert_eq!(s.primary(), s.recovery);
    }

    /// Moved from engine.rs's operation table ("mark-bad with a multi-line reason is refused",
    /// "trial limit 0 is refused"): the checks happen where the text is parsed.
    #[test]
    fn reasons_and_limits_are_checked_once() {
        assert!(Reason::parse("a\nb")
            .unwrap_err()
            .to_string()
            .contains("one line"));
        for bad in ["", "a\\b", "tab\there", &"x".repeat(201)] {
            assert_eq!(Reason::parse(bad), Err(BadReason), "{bad:?}");
        }
        assert_eq!(Reason::parse(&"x".repeat(200)).unwrap().len(), 200);
        // one value per encoding: the policy's words are its variants
        assert_eq!(Reason::parse("bootlimit"), Ok(Reason::LimitReached));
        assert_eq!(Reason::parse("tries-invalid"), Ok(Reason::TriesInvalid));
        assert_eq!(Reason::parse("installing"), Ok(Reason::Installing));
        let given = Reason::parse("health: x failed").unwrap();
        assert!(matches!(given, Reason::Given(_)));
        assert_eq!(given, "health: x failed");
        for r in [
            Reason::LimitReached,
            Reason::TriesInvalid,
            Reason::Installing,
            given,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Ok(r.clone()), "round trip");
        }
        // sanitised: what health's verdict stores
        assert_eq!(Reason::sanitised("a\nb\\c").unwrap(), "abc");
        assert_eq!(Reason::sanitised(&"\u{e9}".repeat(101)).unwrap().len(), 200);
        assert_eq!(Reason::sanitised("\n"), None);

        assert!(BootLimit::new(0).unwrap_err().to_string().contains("1..9"));
        assert!(BootLimit::new(10).is_err());
        assert_eq!(BootLimit::new(9), Ok(BootLimit::MAX));
        assert_eq!("5".parse::<BootLimit>().map(BootLimit::get), Ok(5));
        for bad in ["0", "10", "-1", "a", "", "300"] {
            assert!(bad.parse::<BootLimit>().is_err(), "{bad:?}");
        }
        // the environment's encoding is one character, as hush compares it
        assert_eq!(BootLimit::from_env("3"), BootLimit::new(3).ok());
        for bad in ["0", "03", "10", "a", " 3"] {
            assert_eq!(BootLimit::from_env(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn recovery_is_never_bad_and_rollback_reason_defaults() {
        let s = st(&[
            ("zbot_bad_otafs", "x"),
            ("zbot_bad_rootfs", "y"),
            ("zbot_rb_slot", "rootfs"),
        ]);
        assert!(!s.is_bad(s.recovery));
        assert!(s.is_bad(SlotId(0)));
        assert_eq!(s.rollback.unwrap().reason, REASON_UNKNOWN);
    }
}
