//! The boot policy as pure functions: an environment snapshot in, a decision and the exact
//! [`Changes`] to write out. No I/O here; `docs/boot-contract.md` is the specification and the
//! hush script must agree with [`bootloader_step`] on every input.

use crate::slots::{Role, SlotConfig, SlotId};
use crate::state::{names, BootLimit, BootState, Reason, SlotRef, Tries};
use fw_env::{Changes, Vars};
use std::fmt;

/// Accumulates the minimal changes against a snapshot: a `set` to the current value and an
/// `unset` of an absent variable are dropped, so "no changes" means "no write".
struct Edit<'a> {
    vars: &'a Vars,
    changes: Changes,
}

impl<'a> Edit<'a> {
    fn new(vars: &'a Vars) -> Self {
        Edit {
            vars,
            changes: Changes::new(),
        }
    }
    fn set(&mut self, name: &str, value: &str) {
        debug_assert!(!value.is_empty());
        if self.vars.get_bytes(name.as_bytes()) != Some(value.as_bytes()) {
            self.changes.push(name, Some(value.to_string()));
        }
    }
    fn unset(&mut self, name: &str) {
        if self.vars.contains(name) {
            self.changes.push(name, None);
        }
    }
}

/// Why the bootloader picks its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// `zbot_once` named this slot; it was consumed.
    OneShot,
    /// Attempt `attempt` of `limit` of the active trial.
    TrialAttempt {
        /// 1-based attempt number written to `zbot_tries`.
        attempt: u8,
        /// The trial's limit.
        limit: BootLimit,
    },
    /// The active trial of `failed` was given up; the device falls back.
    GaveUp {
        /// The slot given up.
        failed: SlotId,
        /// [`Reason::LimitReached`] or [`Reason::TriesInvalid`].
        reason: Reason,
    },
    /// `next_boot` names this slot.
    NextBoot,
    /// `next_boot` is unset or not a slot name: the recovery slot.
    Fallback {
        /// The raw `next_boot`, if set.
        next_boot: Option<String>,
    },
}

/// What the bootloader does on one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDecision {
    /// The slot to boot.
    pub slot: SlotId,
    /// Why.
    pub why: Why,
    /// What to save before booting (empty: no `saveenv`).
    pub changes: Changes,
    /// The `root=` arguments: the env variable named after the slot, or the slot file's default.
    pub root_args: String,
}

impl BootDecision {
    /// The slot-dependent tail of the kernel command line: `<root args> zbot.slot=<name>`.
    pub fn kernel_args(&self, cfg: &SlotConfig) -> String {
        format!("{} zbot.slot={}", self.root_args, cfg.name(self.slot))
    }

    /// A sentence explaining the decision.
    pub fn explain(&self, cfg: &SlotConfig) -> String {
        let slot = cfg.name(self.slot);
        match &self.why {
            Why::OneShot => format!("boot {slot} once (zbot_once), then back to next_boot"),
            Why::TrialAttempt { attempt, limit } => {
                format!("boot {slot} on trial: attempt {attempt} of {limit}")
            }
            Why::GaveUp { failed, reason } => format!(
                "give up the trial of {} ({reason}) and boot {slot}",
                cfg.name(*failed)
            ),
            Why::NextBoot => format!("boot {slot} (next_boot)"),
            Why::Fallback { next_boot: None } => {
                format!("next_boot is unset: boot the recovery slot {slot}")
            }
            Why::Fallback { next_boot: Some(v) } => {
                format!(
                    "next_boot={v:?} is not a slot ({}): boot the recovery slot {slot}",
                    cfg.names()
                )
            }
        }
    }
}

fn root_args(cfg: &SlotConfig, vars: &Vars, slot: SlotId) -> String {
    match vars.get(cfg.name(slot)) {
        Some(v) if !v.is_empty() => v.into_owned(),
        _ => cfg.slot(slot).root.clone(),
    }
}

/// Give up the active trial of `t`: record the rollback and fall back (contract step 2).
fn give_up(
    cfg: &SlotConfig,
    st: &BootState,
    edit: &mut Edit,
    t: SlotId,
    reason: &Reason,
) -> SlotId {
    let f = st.fallback_from(t);
    let name = cfg.name(t);
    edit.set(names::NEXT_BOOT, cfg.name(f));
    edit.set(names::RB_SLOT, name);
    edit.set(names::RB_REASON, reason.as_str());
    edit.set(&names::bad(name), reason.as_str());
    edit.unset(names::TRIAL);
    edit.unset(names::TRIES);
    edit.unset(names::PREV);
    f
}

/// The bootloader step (contract section 3): the slot to boot and what to save first.
pub fn bootloader_step(cfg: &SlotConfig, vars: &Vars) -> BootDecision {
    let st = BootState::parse(cfg, vars);
    let mut edit = Edit::new(vars);
    let (slot, why) = if let Some(o) = st.once.slot() {
        edit.unset(names::ONCE);
        (o, Why::OneShot)
    } else if let Some(t) = st.active_trial() {
        match st.tries {
            Tries::Count(n) if n < st.bootlimit.get() => {
                edit.set(names::TRIES, &(n + 1).to_string());
                (
                    t,
                    Why::TrialAttempt {
                        attempt: n + 1,
                        limit: st.bootlimit,
                    },
                )
            }
            ref tries => {
                let reason = match tries {
                    Tries::Count(_) => Reason::LimitReached,
                    Tries::Invalid(_) => Reason::TriesInvalid,
                };
                let f = give_up(cfg, &st, &mut edit, t, &reason);
                (f, Why::GaveUp { failed: t, reason })
            }
        }
    } else {
        match &st.next_boot {
            SlotRef::Slot(n) => (*n, Why::NextBoot),
            SlotRef::Unset => (st.recovery, Why::Fallback { next_boot: None }),
            SlotRef::Other(v) => (
                st.recovery,
                Why::Fallback {
                    next_boot: Some(v.clone()),
                },
            ),
        }
    };
    BootDecision {
        slot,
        why,
        changes: edit.changes,
        root_args: root_args(cfg, vars, slot),
    }
}

/// The slot Linux is running, from the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booted {
    /// The slot.
    pub slot: SlotId,
    /// Learnt from `root=` because `zbot.slot=` is missing: the bootloader is the old script,
    /// which does not count boots.
    pub legacy: bool,
}

/// A userspace operation on the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Commit the booted slot's trial.
    MarkGood,
    /// Abandon the booted slot, with a reason.
    MarkBad {
        /// Why (checked where it was given: [`Reason::parse`]).
        reason: Reason,
    },
    /// Boot a slot on the next boot only.
    BootOnce(String),
    /// Make a slot the persistent choice (verified by a trial unless it is the recovery slot).
    SetPrimary(String),
    /// Start the trial of a freshly installed slot.
    Trial {
        /// The slot just installed.
        slot: String,
        /// Attempts; `None`: keep `zbot_bootlimit` / the default.
        limit: Option<BootLimit>,
    },
    /// Acknowledge (clear) the last rollback record.
    Ack,
}

/// Why an operation is refused. Nothing is written when an operation fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The name is not in the slot file.
    #[error("unknown slot {name:?}: the slots are {known} (see the slot file)")]
    UnknownSlot {
        /// The name given.
        name: String,
        /// The configured names.
        known: String,
    },
    /// The operation needs to know the running slot, and the command line does not say.
    #[error("cannot tell which slot is running: the kernel command line has no zbot.slot= and its root= matches no slot")]
    BootedUnknown,
    /// `mark-good` without an active trial of the booted slot.
    #[error("nothing to commit: {0}")]
    NothingToCommit(String),
    /// The recovery slot cannot be abandoned: it is the last resort.
    #[error(
        "{0} is the recovery slot: it cannot be marked bad (it is what the device falls back to)"
    )]
    RecoveryCannotBeBad(String),
    /// The recovery slot is not installed through trials.
    #[error("{0} is the recovery slot: it is not installed or switched through a trial")]
    RecoveryNoTrial(String),
    /// Installing over the running system.
    #[error("{0} is the running slot: install into another slot (see `bootcount install-target`)")]
    TrialOfBooted(String),
    /// The slot failed or was marked bad.
    #[error("slot {slot} is marked bad ({reason}): install it anew and start a trial (`bootcount trial {slot}`) first")]
    SlotIsBad {
        /// The slot.
        slot: String,
        /// Its recorded reason.
        reason: String,
    },
    /// `install-target` with nothing to install into.
    #[error("no slot to install into: {0} is running and is the only primary slot; boot the recovery slot first (`bootcount boot-once {1} --reboot`)")]
    NoInstallTarget(String, String),
}

/// The result of an operation: the changes (possibly none) and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What to write in one atomic update (empty: no write).
    pub changes: Changes,
    /// One line for the user.
    pub message: String,
}

fn lookup(cfg: &SlotConfig, name: &str) -> Result<SlotId, OpError> {
    cfg.find(name).ok_or_else(|| OpError::UnknownSlot {
        name: name.to_string(),
        known: cfg.names(),
    })
}

fn need_booted(booted: Option<Booted>) -> Result<SlotId, OpError> {
    booted.map(|b| b.slot).ok_or(OpError::BootedUnknown)
}

fn check_not_bad(cfg: &SlotConfig, st: &BootState, id: SlotId) -> Result<(), OpError> {
    match st.bad_reason(id) {
        Some(r) => Err(OpError::SlotIsBad {
            slot: cfg.name(id).to_string(),
            reason: r.to_string(),
        }),
        None => Ok(()),
    }
}

/// Start a trial of `x` (shared by `trial` and `set-primary`).
fn start_trial(cfg: &SlotConfig, st: &BootState, edit: &mut Edit, x: SlotId) {
    let p = st.last_good();
    let name = cfg.name(x);
    edit.set(names::NEXT_BOOT, name);
    edit.set(names::TRIAL, name);
    edit.set(names::TRIES, "0");
    if p == st.recovery || p == x {
        edit.unset(names::PREV);
    } else {
        edit.set(names::PREV, cfg.name(p));
    }
}

/// Apply a userspace operation (contract section 6) to a snapshot: one function per row.
pub fn apply_op(
    cfg: &SlotConfig,
    vars: &Vars,
    booted: Option<Booted>,
    op: &Op,
) -> Result<Outcome, OpError> {
    let st = BootState::parse(cfg, vars);
    let mut edit = Edit::new(vars);
    let e = &mut edit;
    let message = match op {
        Op::MarkGood => mark_good(cfg, &st, e, need_booted(booted)?)?,
        Op::MarkBad { reason } => mark_bad(cfg, vars, &st, e, need_booted(booted)?, reason)?,
        Op::BootOnce(name) => boot_once(cfg, &st, e, name)?,
        Op::SetPrimary(name) => set_primary(cfg, &st, e, name)?,
        Op::Trial { slot, limit } => trial(cfg, &st, e, booted, slot, *limit)?,
        Op::Ack => ack(&st, e),
    };
    Ok(Outcome {
        changes: edit.changes,
        message,
    })
}

/// `mark-good`: commit the running slot's trial.
fn mark_good(
    cfg: &SlotConfig,
    st: &BootState,
    edit: &mut Edit,
    b: SlotId,
) -> Result<String, OpError> {
    match st.active_trial() {
        Some(t) if t == b => {
            edit.unset(names::TRIAL);
            edit.unset(names::TRIES);
            edit.unset(names::PREV);
            Ok(format!(
                "committed {}: it is now the primary slot",
                cfg.name(b)
            ))
        }
        Some(t) => Err(OpError::NothingToCommit(format!(
            "the trial is of {}, but {} is running",
            cfg.name(t),
            cfg.name(b)
        ))),
        None => Err(OpError::NothingToCommit(format!(
            "no trial is active; {} needs no commit",
            cfg.name(b)
        ))),
    }
}

/// `mark-bad`: abandon the running slot (give up its trial, or record it bad).
fn mark_bad(
    cfg: &SlotConfig,
    vars: &Vars,
    st: &BootState,
    edit: &mut Edit,
    b: SlotId,
    reason: &Reason,
) -> Result<String, OpError> {
    if b == st.recovery {
        return Err(OpError::RecoveryCannotBeBad(cfg.name(b).to_string()));
    }
    if st.active_trial() == Some(b) {
        if st.once == SlotRef::Slot(b) {
            edit.unset(names::ONCE);
        }
        let f = give_up(cfg, st, edit, b, reason);
        return Ok(format!(
            "gave up the trial of {}; next boot: {}",
            cfg.name(b),
            cfg.name(f)
        ));
    }
    let name = cfg.name(b);
    edit.set(&names::bad(name), reason.as_str());
    edit.set(names::RB_SLOT, name);
    edit.set(names::RB_REASON, reason.as_str());
    if st.next_boot == SlotRef::Slot(b) {
        edit.set(names::NEXT_BOOT, cfg.name(st.recovery));
    }
    if st.prev == SlotRef::Slot(b) {
        edit.unset(names::PREV);
    }
    if st.trial == SlotRef::Slot(b) {
        edit.unset(names::TRIAL);
        edit.unset(names::TRIES);
    }
    if st.once == SlotRef::Slot(b) {
        edit.unset(names::ONCE);
    }
    let next = BootState::parse(cfg, &after(vars, &edit.changes)).primary();
    Ok(format!("marked {name} bad; next boot: {}", cfg.name(next)))
}

/// `boot-once`: the next boot only.
fn boot_once(
    cfg: &SlotConfig,
    st: &BootState,
    edit: &mut Edit,
    name: &str,
) -> Result<String, OpError> {
    let x = lookup(cfg, name)?;
    check_not_bad(cfg, st, x)?;
    edit.set(names::ONCE, name);
    Ok(format!("the next boot (only) boots {name}"))
}

/// `set-primary`: the persistent choice, through a trial unless it is the recovery slot.
fn set_primary(
    cfg: &SlotConfig,
    st: &BootState,
    edit: &mut Edit,
    name: &str,
) -> Result<String, OpError> {
    let x = lookup(cfg, name)?;
    if x == st.recovery {
        edit.set(names::NEXT_BOOT, name);
        edit.unset(names::TRIAL);
        edit.unset(names::TRIES);
        edit.unset(names::PREV);
        return Ok(format!("{name} (recovery) is now the primary slot"));
    }
    check_not_bad(cfg, st, x)?;
    Ok(if st.active_trial() == Some(x) {
        format!("{name} is already on trial: boot it and mark it good")
    } else if st.active_trial().is_none() && st.next_boot == SlotRef::Slot(x) {
        format!("{name} is already the primary slot")
    } else {
        start_trial(cfg, st, edit, x);
        format!(
            "{name} will boot on trial (at most {} attempts) and become primary once marked good",
            st.bootlimit
        )
    })
}

/// `trial`: start the trial of a freshly installed slot.
fn trial(
    cfg: &SlotConfig,
    st: &BootState,
    edit: &mut Edit,
    booted: Option<Booted>,
    slot: &str,
    limit: Option<BootLimit>,
) -> Result<String, OpError> {
    let x = lookup(cfg, slot)?;
    if cfg.slot(x).role == Role::Recovery {
        return Err(OpError::RecoveryNoTrial(slot.to_owned()));
    }
    let b = need_booted(booted)?;
    if b == x {
        return Err(OpError::TrialOfBooted(slot.to_owned()));
    }
    start_trial(cfg, st, edit, x);
    edit.unset(names::ONCE);
    edit.unset(&names::bad(slot));
    let limit = match limit {
        Some(l) => {
            edit.set(names::BOOTLIMIT, &l.to_string());
            l
        }
        None => st.bootlimit,
    };
    let legacy = if booted.is_some_and(|b| b.legacy) {
        " (warning: the running boot script does not count boots; no automatic rollback)"
    } else {
        ""
    };
    Ok(format!(
        "{slot} is on trial: at most {limit} attempts, then back to {}{legacy}",
        cfg.name(st.last_good_excluding(x))
    ))
}

/// `ack`: clear the rollback record.
fn ack(st: &BootState, edit: &mut Edit) -> String {
    edit.unset(names::RB_SLOT);
    edit.unset(names::RB_REASON);
    match &st.rollback {
        Some(r) => format!("acknowledged the rollback of {} ({})", r.slot, r.reason),
        None => "no rollback to acknowledge".to_string(),
    }
}

fn after(vars: &Vars, changes: &Changes) -> Vars {
    let mut v = vars.clone();
    v.apply(changes).expect("policy variable names are valid");
    v
}

impl BootState {
    /// [`BootState::last_good`], but never `x` (where a trial of `x` falls back to).
    fn last_good_excluding(&self, x: SlotId) -> SlotId {
        let p = self.last_good();
        if p == x {
            self.recovery
        } else {
            p
        }
    }
}

pub use crate::state::REASON_INSTALLING;

/// The slot an updater must write (contract section 6): a primary slot other than the running
/// one, preferring one that is not the last good slot.
///
/// The outcome's changes *reserve* it: it is flagged `installing` (bad) and nothing points at it
/// any more (`next_boot`, `zbot_prev`, `zbot_once`, a trial of it), so a power cut in the middle
/// of writing it never leaves the device booting a half-written slot. [`Op::Trial`] of that slot
/// ends the reservation. Calling it again changes nothing.
pub fn install_target(
    cfg: &SlotConfig,
    vars: &Vars,
    booted: Option<Booted>,
) -> Result<(SlotId, Outcome), OpError> {
    let b = need_booted(booted)?;
    let st = BootState::parse(cfg, vars);
    let good = st.last_good();
    let candidates: Vec<SlotId> = cfg
        .ids()
        .filter(|&id| id != b && cfg.slot(id).role == Role::Primary)
        .collect();
    let t = candidates
        .iter()
        .copied()
        .find(|&id| id != good)
        .or_else(|| candidates.first().copied())
        .ok_or_else(|| {
            OpError::NoInstallTarget(cfg.name(b).to_string(), cfg.name(st.recovery).to_string())
        })?;
    let mut edit = Edit::new(vars);
    let name = cfg.name(t);
    if st.next_boot == SlotRef::Slot(t) {
        edit.set(names::NEXT_BOOT, cfg.name(st.last_good_excluding(t)));
        if st.trial == SlotRef::Slot(t) {
            edit.unset(names::TRIAL);
            edit.unset(names::TRIES);
            edit.unset(names::PREV);
        }
    }
    if st.prev == SlotRef::Slot(t) {
        edit.unset(names::PREV);
    }
    if st.once == SlotRef::Slot(t) {
        edit.unset(names::ONCE);
    }
    edit.set(&names::bad(name), Reason::Installing.as_str());
    let message = format!(
        "install into {name} ({}); it stays unbootable until `bootcount trial {name}`",
        cfg.slot(t).device
    );
    Ok((
        t,
        Outcome {
            changes: edit.changes,
            message,
        },
    ))
}

/// The status shown by `bootcount status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The running slot, if the command line tells.
    pub booted_slot: Option<String>,
    /// Whether the running boot script is the old one (no `zbot.slot=`; no counting).
    pub legacy_bootloader: bool,
    /// What the next boot will boot.
    pub next_boot_slot: String,
    /// Why, in words.
    pub next_boot_reason: String,
    /// `resolve(next_boot)`.
    pub primary_slot: String,
    /// The active trial.
    pub trial: Option<TrialStatus>,
    /// The one-shot slot pending, if any.
    pub boot_once: Option<String>,
    /// The last rollback, until acknowledged.
    pub last_rollback: Option<RollbackStatus>,
    /// Slots that must be installed anew before they boot again.
    pub bad_slots: Vec<RollbackStatus>,
}

/// An active trial.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrialStatus {
    /// The slot on trial.
    pub slot: String,
    /// Attempts started (an invalid counter shows as the limit: the trial ends at the next boot).
    pub attempts: u8,
    /// Its limit.
    pub limit: BootLimit,
}

/// A slot with a reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RollbackStatus {
    /// The slot.
    pub slot: String,
    /// Why.
    pub reason: String,
}

/// Build the status of a snapshot.
pub fn status(cfg: &SlotConfig, vars: &Vars, booted: Option<Booted>) -> Status {
    let st = BootState::parse(cfg, vars);
    let d = bootloader_step(cfg, vars);
    Status {
        booted_slot: booted.map(|b| cfg.name(b.slot).to_string()),
        legacy_bootloader: booted.is_some_and(|b| b.legacy),
        next_boot_slot: cfg.name(d.slot).to_string(),
        next_boot_reason: d.explain(cfg),
        primary_slot: cfg.name(st.primary()).to_string(),
        trial: st.active_trial().map(|t| TrialStatus {
            slot: cfg.name(t).to_string(),
            attempts: match st.tries {
                Tries::Count(n) => n,
                Tries::Invalid(_) => st.bootlimit.get(),
            },
            limit: st.bootlimit,
        }),
        boot_once: st.once.slot().map(|o| cfg.name(o).to_string()),
        last_rollback: st.rollback.clone().map(|r| RollbackStatus {
            slot: r.slot,
            reason: r.reason,
        }),
        bad_slots: cfg
            .ids()
            .filter_map(|id| {
                st.bad_reason(id).map(|r| RollbackStatus {
                    slot: cfg.name(id).to_string(),
                    reason: r.to_string(),
                })
            })
            .collect(),
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let booted = self.booted_slot.as_deref().unwrap_or("unknown");
        writeln!(
            f,
            "booted slot:   {booted}{}",
            if self.legacy_bootloader {
                " (old boot script: no boot counting)"
            } else {
                ""
            }
        )?;
        writeln!(f, "primary slot:  {}", self.primary_slot)?;
        writeln!(f, "next boot:     {}", self.next_boot_reason)?;
        match &self.trial {
            Some(t) => writeln!(
                f,
                "trial:         {} ({} of {} attempts used)",
                t.slot, t.attempts, t.limit
            )?,
            None => writeln!(f, "trial:         none")?,
        }
        if let Some(o) = &self.boot_once {
            writeln!(f, "boot once:     {o}")?;
        }
        match &self.last_rollback {
            Some(r) => writeln!(
                f,
                "last rollback: {} ({}); clear with `bootcount ack`",
                r.slot, r.reason
            )?,
            None => writeln!(f, "last rollback: none")?,
        }
        for b in &self.bad_slots {
            writeln!(f, "bad slot:      {} ({})", b.slot, b.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub fn env(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().copied().collect()
    }

    pub fn ab() -> SlotConfig {
        SlotConfig::from_toml(include_str!("../dist/slots-ab.toml"), "ab").unwrap()
    }

    /// The changes as a sorted name -> value-after map, so rows do not depend on order.
    pub fn diff(c: &Changes) -> Vec<(String, Option<String>)> {
        let mut m = std::collections::BTreeMap::new();
        for (k, v) in c.iter() {
            m.insert(k.to_string(), v.as_deref().map(str::to_string));
        }
        m.into_iter().collect()
    }

    pub fn want(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod decision_table {
    use super::test_util::*;
    use super::*;

    const SEED: &[(&str, &str)] = &[
        ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
        ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
        ("root", "root=/dev/mmcblk0p4 rootwait rw"),
        ("first_boot", "1"),
    ];

    /// One row: the env (on top of the seed's slot variables), the slot chosen, the changes.
    struct Row {
        what: &'static str,
        env: &'static [(&'static str, &'static str)],
        boots: &'static str,
        writes: &'static [(&'static str, Option<&'static str>)],
    }

    const GIVE_UP_ROOTFS: &[(&str, Option<&str>)] = &[
        ("next_boot", Some("otafs")),
        ("zbot_rb_slot", Some("rootfs")),
        ("zbot_rb_reason", Some("bootlimit")),
        ("zbot_bad_rootfs", Some("bootlimit")),
        ("zbot_trial", None),
        ("zbot_tries", None),
    ];
    const INVALID_ROOTFS: &[(&str, Option<&str>)] = &[
        ("next_boot", Some("otafs")),
        ("zbot_rb_slot", Some("rootfs")),
        ("zbot_rb_reason", Some("tries-invalid")),
        ("zbot_bad_rootfs", Some("tries-invalid")),
        ("zbot_trial", None),
        ("zbot_tries", None),
    ];
    const TRIAL: (&str, &str) = ("zbot_trial", "rootfs");
    const NB_ROOTFS: (&str, &str) = ("next_boot", "rootfs");

    #[rustfmt::skip]
    const ROWS: &[Row] = &[
        // --- normal boots: never a write ---
        Row { what: "field robot, seed env: boot rootfs, write nothing", env: &[NB_ROOTFS], boots: "rootfs", writes: &[] },
        Row { what: "seed update flow: next_boot=otafs boots otafs", env: &[("next_boot", "otafs")], boots: "otafs", writes: &[] },
        Row { what: "next_boot unset (lost env without defaults): recovery", env: &[], boots: "otafs", writes: &[] },
        Row { what: "next_boot empty is unset", env: &[("next_boot", "")], boots: "otafs", writes: &[] },
        Row { what: "next_boot with a trailing space is not a slot", env: &[("next_boot", "rootfs ")], boots: "otafs", writes: &[] },
        Row { what: "slot names are case sensitive", env: &[("next_boot", "ROOTFS")], boots: "otafs", writes: &[] },
        Row { what: "a counter without a trial is inert", env: &[NB_ROOTFS, ("zbot_tries", "7")], boots: "rootfs", writes: &[] },
        Row { what: "a rollback record does not change the boot", env: &[("next_boot", "otafs"), ("zbot_rb_slot", "rootfs"), ("zbot_rb_reason", "bootlimit"), ("zbot_bad_rootfs", "bootlimit")], boots: "otafs", writes: &[] },
        Row { what: "garbage trial slot is inert", env: &[NB_ROOTFS, ("zbot_trial", "rootfs_b"), ("zbot_tries", "2")], boots: "rootfs", writes: &[] },
        Row { what: "trial suspended by a manual next_boot=otafs: boot otafs, no count", env: &[("next_boot", "otafs"), TRIAL, ("zbot_tries", "1")], boots: "otafs", writes: &[] },
        Row { what: "trial of rootfs with garbage next_boot: inactive, recovery", env: &[("next_boot", "x"), TRIAL], boots: "otafs", writes: &[] },
        // --- one-shot ---
        Row { what: "boot-once otafs: consumed, boots otafs", env: &[NB_ROOTFS, ("zbot_once", "otafs")], boots: "otafs", writes: &[("zbot_once", None)] },
        Row { what: "boot-once the primary itself: still consumed", env: &[NB_ROOTFS, ("zbot_once", "rootfs")], boots: "rootfs", writes: &[("zbot_once", None)] },
        Row { what: "one-shot garbage is ignored without a write", env: &[NB_ROOTFS, ("zbot_once", "foo")], boots: "rootfs", writes: &[] },
        Row { what: "one-shot empty is unset", env: &[NB_ROOTFS, ("zbot_once", "")], boots: "rootfs", writes: &[] },
        Row { what: "one-shot wins over a trial and does not count an attempt", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "1"), ("zbot_once", "otafs")], boots: "otafs", writes: &[("zbot_once", None)] },
        // --- trial attempts ---
        Row { what: "trial, counter unset = 0: attempt 1", env: &[NB_ROOTFS, TRIAL], boots: "rootfs", writes: &[("zbot_tries", Some("1"))] },
        Row { what: "trial, counter empty = 0: attempt 1", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "")], boots: "rootfs", writes: &[("zbot_tries", Some("1"))] },
        Row { what: "trial, 0 of 3: attempt 1", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "0")], boots: "rootfs", writes: &[("zbot_tries", Some("1"))] },
        Row { what: "trial, 2 of 3: last attempt", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "2")], boots: "rootfs", writes: &[("zbot_tries", Some("3"))] },
        Row { what: "limit 9, 8 used: attempt 9 (decimal = hex)", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "8"), ("zbot_bootlimit", "9")], boots: "rootfs", writes: &[("zbot_tries", Some("9"))] },
        Row { what: "limit 0 is invalid: default 3 applies", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "2"), ("zbot_bootlimit", "0")], boots: "rootfs", writes: &[("zbot_tries", Some("3"))] },
        Row { what: "limit 10 is invalid: default 3", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "2"), ("zbot_bootlimit", "10")], boots: "rootfs", writes: &[("zbot_tries", Some("3"))] },
        Row { what: "limit a (hex ten) is invalid: default 3", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "2"), ("zbot_bootlimit", "a")], boots: "rootfs", writes: &[("zbot_tries", Some("3"))] },
        Row { what: "limit 1: one attempt", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "0"), ("zbot_bootlimit", "1")], boots: "rootfs", writes: &[("zbot_tries", Some("1"))] },
        // --- giving up ---
        Row { what: "3 of 3 used: give up, back to recovery (prev unset)", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "3")], boots: "otafs", writes: GIVE_UP_ROOTFS },
        Row { what: "limit 1, 1 used: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "1"), ("zbot_bootlimit", "1")], boots: "otafs", writes: GIVE_UP_ROOTFS },
        Row { what: "more used than the limit (limit lowered): give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "7")], boots: "otafs", writes: GIVE_UP_ROOTFS },
        Row { what: "9 of 9: give up (no wrap to 10)", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "9"), ("zbot_bootlimit", "9")], boots: "otafs", writes: GIVE_UP_ROOTFS },
        Row { what: "counter a (setexpr's 9+1) is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "a")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "counter 10 is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "10")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "counter 03 (octal-looking) is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "03")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "counter -1 is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "-1")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "counter 0x1 is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "0x1")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "counter with a space is invalid: give up", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", " 1")], boots: "otafs", writes: INVALID_ROOTFS },
        Row { what: "give up overwrites an older rollback record", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "3"), ("zbot_rb_slot", "x"), ("zbot_rb_reason", "old")], boots: "otafs", writes: GIVE_UP_ROOTFS },
        Row { what: "give up with garbage prev: recovery, prev cleared", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "3"), ("zbot_prev", "zz")],
              boots: "otafs", writes: &[("next_boot", Some("otafs")), ("zbot_rb_slot", Some("rootfs")), ("zbot_rb_reason", Some("bootlimit")), ("zbot_bad_rootfs", Some("bootlimit")), ("zbot_trial", None), ("zbot_tries", None), ("zbot_prev", None)] },
        Row { what: "trial of the recovery slot (manual) given up: still boots recovery", env: &[("next_boot", "otafs"), ("zbot_trial", "otafs"), ("zbot_tries", "3")],
              boots: "otafs", writes: &[("zbot_rb_slot", Some("otafs")), ("zbot_rb_reason", Some("bootlimit")), ("zbot_bad_otafs", Some("bootlimit")), ("zbot_trial", None), ("zbot_tries", None)] },
    ];

    #[test]
    fn bootloader_decision_table() {
        let cfg = SlotConfig::builtin();
        for row in ROWS {
            let mut vars = env(SEED);
            for (k, v) in row.env {
                vars.set(*k, *v).unwrap();
                if v.is_empty() {
                    // keep `name=` as a stored image may hold it
                    vars = vars
                        .iter()
                        .map(|(a, b)| (a.to_vec(), b.to_vec()))
                        .chain([(k.as_bytes().to_vec(), vec![])])
                        .collect();
                }
            }
            let d = bootloader_step(&cfg, &vars);
            assert_eq!(cfg.name(d.slot), row.boots, "{}", row.what);
            assert_eq!(diff(&d.changes), want(row.writes), "{}", row.what);
        }
    }

    #[rustfmt::skip]
    const AB_ROWS: &[Row] = &[
        Row { what: "A/B trial of b, attempt 1 keeps prev", env: &[("next_boot", "rootfs_b"), ("zbot_trial", "rootfs_b"), ("zbot_prev", "rootfs_a")], boots: "rootfs_b", writes: &[("zbot_tries", Some("1"))] },
        Row { what: "A/B trial of b given up: back to the last good a", env: &[("next_boot", "rootfs_b"), ("zbot_trial", "rootfs_b"), ("zbot_tries", "3"), ("zbot_prev", "rootfs_a")],
              boots: "rootfs_a", writes: &[("next_boot", Some("rootfs_a")), ("zbot_rb_slot", Some("rootfs_b")), ("zbot_rb_reason", Some("bootlimit")), ("zbot_bad_rootfs_b", Some("bootlimit")), ("zbot_trial", None), ("zbot_tries", None), ("zbot_prev", None)] },
        Row { what: "A/B prev equal to the trial: recovery", env: &[("next_boot", "rootfs_b"), ("zbot_trial", "rootfs_b"), ("zbot_tries", "3"), ("zbot_prev", "rootfs_b")],
              boots: "otafs", writes: &[("next_boot", Some("otafs")), ("zbot_rb_slot", Some("rootfs_b")), ("zbot_rb_reason", Some("bootlimit")), ("zbot_bad_rootfs_b", Some("bootlimit")), ("zbot_trial", None), ("zbot_tries", None), ("zbot_prev", None)] },
        Row { what: "A/B: seed slot name rootfs is not a slot here: recovery", env: &[("next_boot", "rootfs")], boots: "otafs", writes: &[] },
    ];

    #[test]
    fn bootloader_decision_table_ab() {
        let cfg = ab();
        for row in AB_ROWS {
            let d = bootloader_step(&cfg, &env(row.env));
            assert_eq!(cfg.name(d.slot), row.boots, "{}", row.what);
            assert_eq!(diff(&d.changes), want(row.writes), "{}", row.what);
        }
    }

    #[test]
    fn root_args_come_from_the_env_else_the_slot_file() {
        let cfg = SlotConfig::builtin();
        let d = bootloader_step(
            &cfg,
            &env(&[("next_boot", "rootfs"), ("rootfs", "root=/dev/sda2 ro")]),
        );
        assert_eq!(d.kernel_args(&cfg), "root=/dev/sda2 ro zbot.slot=rootfs");
        let d = bootloader_step(&cfg, &env(&[("next_boot", "rootfs")]));
        assert_eq!(
            d.kernel_args(&cfg),
            "root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs"
        );
        let d = bootloader_step(&cfg, &env(&[]));
        assert_eq!(
            d.kernel_args(&cfg),
            "root=/dev/mmcblk0p3 rootwait rw zbot.slot=otafs"
        );
    }

    /// One userspace row: env, running slot, operation, and the changes or the refusal.
    struct OpRow {
        what: &'static str,
        env: &'static [(&'static str, &'static str)],
        booted: Option<&'static str>,
        op: fn() -> Op,
        result: Result<&'static [(&'static str, Option<&'static str>)], &'static str>,
    }

    fn mark_bad() -> Op {
        Op::MarkBad {
            reason: Reason::parse("health: net failed").unwrap(),
        }
    }
    fn trial_rootfs() -> Op {
        Op::Trial {
            slot: "rootfs".into(),
            limit: None,
        }
    }

    #[rustfmt::skip]
    const OP_ROWS: &[OpRow] = &[
        // mark-good
        OpRow { what: "commit the trial being booted", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "1")], booted: Some("rootfs"), op: || Op::MarkGood,
                result: Ok(&[("zbot_trial", None), ("zbot_tries", None)]) },
        OpRow { what: "mark-good on a healthy normal boot: nothing to commit", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::MarkGood, result: Err("nothing to commit") },
        OpRow { what: "mark-good from otafs during rootfs's (suspended) trial: nothing", env: &[("next_boot", "otafs"), TRIAL], booted: Some("otafs"), op: || Op::MarkGood, result: Err("nothing to commit") },
        OpRow { what: "mark-good with an unknown running slot", env: &[NB_ROOTFS, TRIAL], booted: None, op: || Op::MarkGood, result: Err("cannot tell") },
        // mark-bad
        OpRow { what: "mark-bad during the trial: give up now with the reason", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "1")], booted: Some("rootfs"), op: mark_bad,
                result: Ok(&[("next_boot", Some("otafs")), ("zbot_rb_slot", Some("rootfs")), ("zbot_rb_reason", Some("health: net failed")), ("zbot_bad_rootfs", Some("health: net failed")), ("zbot_trial", None), ("zbot_tries", None)]) },
        OpRow { what: "mark-bad a committed primary: recovery becomes next_boot", env: &[NB_ROOTFS], booted: Some("rootfs"), op: mark_bad,
                result: Ok(&[("next_boot", Some("otafs")), ("zbot_rb_slot", Some("rootfs")), ("zbot_rb_reason", Some("health: net failed")), ("zbot_bad_rootfs", Some("health: net failed"))]) },
        OpRow { what: "mark-bad the recovery slot is refused", env: &[("next_boot", "otafs")], booted: Some("otafs"), op: mark_bad, result: Err("recovery slot") },
        // "mark-bad with a multi-line reason is refused" and "trial limit 0 is refused": no
        // such Op can be made any more (state.rs: `reasons_and_limits_are_checked_once`).
        OpRow { what: "mark-bad clears a pending one-shot into the bad slot", env: &[NB_ROOTFS, ("zbot_once", "rootfs")], booted: Some("rootfs"), op: mark_bad,
                result: Ok(&[("next_boot", Some("otafs")), ("zbot_rb_slot", Some("rootfs")), ("zbot_rb_reason", Some("health: net failed")), ("zbot_bad_rootfs", Some("health: net failed")), ("zbot_once", None)]) },
        // trial
        OpRow { what: "otafs installed rootfs (seed flow): trial, prev = recovery (unset)", env: &[("next_boot", "otafs")], booted: Some("otafs"), op: trial_rootfs,
                result: Ok(&[("next_boot", Some("rootfs")), ("zbot_trial", Some("rootfs")), ("zbot_tries", Some("0"))]) },
        OpRow { what: "trial after boot-once otafs: rootfs overwritten, so fall back to recovery", env: &[NB_ROOTFS], booted: Some("otafs"), op: trial_rootfs,
                result: Ok(&[("zbot_trial", Some("rootfs")), ("zbot_tries", Some("0"))]) },
        OpRow { what: "trial clears the bad flag (installed anew) and a pending one-shot", env: &[("next_boot", "otafs"), ("zbot_bad_rootfs", "bootlimit"), ("zbot_once", "otafs"), ("zbot_rb_slot", "rootfs")], booted: Some("otafs"), op: trial_rootfs,
                result: Ok(&[("next_boot", Some("rootfs")), ("zbot_trial", Some("rootfs")), ("zbot_tries", Some("0")), ("zbot_bad_rootfs", None), ("zbot_once", None)]) },
        OpRow { what: "trial with a limit writes it", env: &[("next_boot", "otafs")], booted: Some("otafs"), op: || Op::Trial { slot: "rootfs".into(), limit: Some(BootLimit::new(5).unwrap()) },
                result: Ok(&[("next_boot", Some("rootfs")), ("zbot_trial", Some("rootfs")), ("zbot_tries", Some("0")), ("zbot_bootlimit", Some("5"))]) },
        OpRow { what: "trial restarts a stale counter", env: &[("next_boot", "otafs"), TRIAL, ("zbot_tries", "2")], booted: Some("otafs"), op: trial_rootfs,
                result: Ok(&[("next_boot", Some("rootfs")), ("zbot_tries", Some("0"))]) },
        OpRow { what: "trial of the running slot is refused", env: &[NB_ROOTFS], booted: Some("rootfs"), op: trial_rootfs, result: Err("running slot") },
        OpRow { what: "trial of the recovery slot is refused", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::Trial { slot: "otafs".into(), limit: None }, result: Err("recovery slot") },
        OpRow { what: "trial of an unknown slot names the slots", env: &[NB_ROOTFS], booted: Some("otafs"), op: || Op::Trial { slot: "rootfs_b".into(), limit: None }, result: Err("rootfs, otafs") },
        // boot-once
        OpRow { what: "boot-once otafs", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::BootOnce("otafs".into()), result: Ok(&[("zbot_once", Some("otafs"))]) },
        OpRow { what: "boot-once a bad slot is refused", env: &[("next_boot", "otafs"), ("zbot_bad_rootfs", "x")], booted: Some("otafs"), op: || Op::BootOnce("rootfs".into()), result: Err("marked bad") },
        OpRow { what: "boot-once recovery even if flagged bad", env: &[NB_ROOTFS, ("zbot_bad_otafs", "x")], booted: Some("rootfs"), op: || Op::BootOnce("otafs".into()), result: Ok(&[("zbot_once", Some("otafs"))]) },
        OpRow { what: "boot-once needs no known running slot", env: &[NB_ROOTFS], booted: None, op: || Op::BootOnce("otafs".into()), result: Ok(&[("zbot_once", Some("otafs"))]) },
        // set-primary
        OpRow { what: "set-primary otafs (the seed's fw_setenv next_boot otafs)", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::SetPrimary("otafs".into()), result: Ok(&[("next_boot", Some("otafs"))]) },
        OpRow { what: "set-primary otafs ends a trial", env: &[NB_ROOTFS, TRIAL, ("zbot_tries", "1")], booted: Some("rootfs"), op: || Op::SetPrimary("otafs".into()),
                result: Ok(&[("next_boot", Some("otafs")), ("zbot_trial", None), ("zbot_tries", None)]) },
        OpRow { what: "set-primary rootfs from otafs is verified by a trial", env: &[("next_boot", "otafs")], booted: Some("otafs"), op: || Op::SetPrimary("rootfs".into()),
                result: Ok(&[("next_boot", Some("rootfs")), ("zbot_trial", Some("rootfs")), ("zbot_tries", Some("0"))]) },
        OpRow { what: "set-primary of the current primary: no write", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::SetPrimary("rootfs".into()), result: Ok(&[]) },
        OpRow { what: "set-primary of a bad slot is refused", env: &[("next_boot", "otafs"), ("zbot_bad_rootfs", "x")], booted: Some("otafs"), op: || Op::SetPrimary("rootfs".into()), result: Err("marked bad") },
        // ack
        OpRow { what: "ack clears the rollback record", env: &[("next_boot", "otafs"), ("zbot_rb_slot", "rootfs"), ("zbot_rb_reason", "bootlimit"), ("zbot_bad_rootfs", "bootlimit")], booted: Some("otafs"), op: || Op::Ack,
                result: Ok(&[("zbot_rb_slot", None), ("zbot_rb_reason", None)]) },
        OpRow { what: "ack without a record writes nothing", env: &[NB_ROOTFS], booted: Some("rootfs"), op: || Op::Ack, result: Ok(&[]) },
    ];

    #[test]
    fn userspace_decision_table() {
        let cfg = SlotConfig::builtin();
        for row in OP_ROWS {
            let booted = row.booted.map(|b| Booted {
                slot: cfg.find(b).unwrap(),
                legacy: false,
            });
            match (
                apply_op(&cfg, &env(row.env), booted, &(row.op)()),
                row.result,
            ) {
                (Ok(out), Ok(w)) => assert_eq!(diff(&out.changes), want(w), "{}", row.what),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{}: {e}", row.what),
                (got, _) => panic!("{}: got {got:?}", row.what),
            }
        }
    }

    #[test]
    fn install_target_is_never_the_running_slot() {
        let cfg = SlotConfig::builtin();
        let b = |n: &str| {
            Some(Booted {
                slot: cfg.find(n).unwrap(),
                legacy: false,
            })
        };
        assert_eq!(
            cfg.name(
                install_target(&cfg, &env(&[("next_boot", "otafs")]), b("otafs"))
                    .unwrap()
                    .0
            ),
            "rootfs"
        );
        let e = install_target(&cfg, &env(&[NB_ROOTFS]), b("rootfs")).unwrap_err();
        assert!(e.to_string().contains("boot-once otafs"), "{e}");
        let cfg = ab();
        let b = |n: &str| {
            Some(Booted {
                slot: cfg.find(n).unwrap(),
                legacy: false,
            })
        };
        let t = |e: &[(&str, &str)], n| {
            cfg.name(install_target(&cfg, &env(e), b(n)).unwrap().0)
                .to_string()
        };
        assert_eq!(t(&[("next_boot", "rootfs_a")], "rootfs_a"), "rootfs_b");
        assert_eq!(t(&[("next_boot", "rootfs_b")], "rootfs_b"), "rootfs_a");
        // from recovery: keep the last good one
        assert_eq!(t(&[("next_boot", "rootfs_a")], "otafs"), "rootfs_b");
        assert_eq!(t(&[("next_boot", "rootfs_b")], "otafs"), "rootfs_a");
        // during a trial of b from a: a is the last good one, so b again
        assert_eq!(
            t(
                &[
                    ("next_boot", "rootfs_b"),
                    ("zbot_trial", "rootfs_b"),
                    ("zbot_prev", "rootfs_a")
                ],
                "otafs"
            ),
            "rootfs_b"
        );
    }

    #[test]
    fn install_target_reserves_the_slot() {
        let cfg = SlotConfig::builtin();
        let otafs = Some(Booted {
            slot: cfg.find("otafs").unwrap(),
            legacy: false,
        });
        // boot-once otafs for an update: next_boot still names rootfs, which is about to be overwritten
        let (t, out) = install_target(&cfg, &env(&[NB_ROOTFS]), otafs).unwrap();
        assert_eq!(cfg.name(t), "rootfs");
        assert_eq!(
            diff(&out.changes),
            want(&[
                ("next_boot", Some("otafs")),
                ("zbot_bad_rootfs", Some("installing"))
            ])
        );
        let mut v = env(&[NB_ROOTFS]);
        v.apply(&out.changes).unwrap();
        assert!(
            install_target(&cfg, &v, otafs)
                .unwrap()
                .1
                .changes
                .is_empty(),
            "idempotent"
        );
        assert!(
            apply_op(&cfg, &v, otafs, &Op::BootOnce("rootfs".into())).is_err(),
            "reserved slot is not bootable"
        );
        // a trial of the reserved slot
        let (t, out) =
            install_target(&cfg, &env(&[NB_ROOTFS, TRIAL, ("zbot_tries", "2")]), otafs).unwrap();
        assert_eq!(cfg.name(t), "rootfs");
        assert_eq!(
            diff(&out.changes),
            want(&[
                ("next_boot", Some("otafs")),
                ("zbot_bad_rootfs", Some("installing")),
                ("zbot_trial", None),
                ("zbot_tries", None)
            ])
        );
        let out = apply_op(&cfg, &v, otafs, &trial_rootfs()).unwrap();
        assert_eq!(
            diff(&out.changes),
            want(&[
                ("next_boot", Some("rootfs")),
                ("zbot_trial", Some("rootfs")),
                ("zbot_tries", Some("0")),
                ("zbot_bad_rootfs", None)
            ])
        );
    }

    #[test]
    fn ab_trial_remembers_the_last_good_slot() {
        let cfg = ab();
        let booted = Some(Booted {
            slot: cfg.find("rootfs_a").unwrap(),
            legacy: false,
        });
        let out = apply_op(
            &cfg,
            &env(&[("next_boot", "rootfs_a")]),
            booted,
            &Op::Trial {
                slot: "rootfs_b".into(),
                limit: None,
            },
        )
        .unwrap();
        assert_eq!(
            diff(&out.changes),
            want(&[
                ("next_boot", Some("rootfs_b")),
                ("zbot_trial", Some("rootfs_b")),
                ("zbot_tries", Some("0")),
                ("zbot_prev", Some("rootfs_a"))
            ])
        );
    }
}
