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

/// Reason written by the bootloader when a trial runs out of attempts.
pub const REASON_BOOTLIMIT: &str = "bootlimit";
/// Reason written by the bootloader when an active trial's counter is not a digit.
pub const REASON_TRIES_INVALID: &str = "tries-invalid";
/// Reason of a rollback whose `zbot_rb_reason` is missing.
pub const REASON_UNKNOWN: &str = "unknown";

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
    pub bootlimit: u8,
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
            .and_then(|v| digit(&v, 1))
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
        assert_eq!(s.bootlimit, 3);
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
        assert_eq!(s.bootlimit, 3);
        assert_eq!(s.primary(), s.recovery);
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
