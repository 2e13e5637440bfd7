//! The policy's six invariants (docs/boot-contract.md section 6) as proptest properties over
//! arbitrary environments, including unset, empty, garbage, out-of-range and wrapped values.

use crate::engine::test_util::ab;
use crate::engine::{apply_op, bootloader_step, Booted, Op, Why};
use crate::slots::{SlotConfig, SlotId};
use crate::state::{names, BootLimit, BootState, Reason};
use fw_env::Vars;
use proptest::prelude::*;

fn config() -> impl Strategy<Value = SlotConfig> {
    prop_oneof![Just(SlotConfig::builtin()), Just(ab())]
}

/// Values for a variable naming a slot: every slot name, unset, empty and garbage.
fn slot_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        prop::sample::select(vec![
            "rootfs", "otafs", "rootfs_a", "rootfs_b", "ROOTFS", "rootfs ", "x", "zbot"
        ])
        .prop_map(|s| Some(s.to_string())),
    ]
}

/// Values for a counter: every digit, unset, empty, wrapped and out of range.
fn digit_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        (0u8..=9).prop_map(|d| Some(d.to_string())),
        prop::sample::select(vec!["a", "10", "03", "-1", "0x1", " 1", "f", "99"])
            .prop_map(|s| Some(s.to_string())),
    ]
}

fn reason_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("bootlimit".to_string())),
        Just(Some("x y".to_string()))
    ]
}

/// An arbitrary environment over the policy's variables (plus the slots' root arguments).
fn environment() -> impl Strategy<Value = Vars> {
    (
        (
            slot_value(),
            slot_value(),
            slot_value(),
            slot_value(),
            slot_value(),
        ),
        (digit_value(), digit_value()),
        (
            reason_value(),
            reason_value(),
            reason_value(),
            reason_value(),
        ),
    )
        .prop_map(
            |((nb, once, trial, prev, rb), (tries, limit), (rbr, b1, b2, b3))| {
                let mut pairs: Vec<(String, String)> = vec![
                    ("rootfs".into(), "root=/dev/mmcblk0p4 rootwait rw".into()),
                    ("otafs".into(), "root=/dev/mmcblk0p3 rootwait rw".into()),
                ];
                let mut put = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        pairs.push((k.to_string(), v));
                    }
                };
                put(names::NEXT_BOOT, nb);
                put(names::ONCE, once);
                put(names::TRIAL, trial);
                put(names::PREV, prev);
                put(names::RB_SLOT, rb);
                put(names::TRIES, tries);
                put(names::BOOTLIMIT, limit);
                put(names::RB_REASON, rbr);
                put("zbot_bad_rootfs", b1);
                put("zbot_bad_rootfs_a", b2);
                put("zbot_bad_rootfs_b", b3);
                pairs.into_iter().collect()
            },
        )
}

fn apply(vars: &mut Vars, c: &fw_env::Changes) {
    vars.apply(c).unwrap();
}

fn any_op(slot: usize) -> impl Strategy<Value = Op> {
    let names = ["rootfs", "otafs", "rootfs_a", "rootfs_b", "bogus"];
    let name = prop::sample::select(names.to_vec()).prop_map(str::to_string);
    let _ = slot;
    prop_oneof![
        Just(Op::MarkGood),
        Just(Op::MarkBad {
            reason: Reason::parse("health: x failed").unwrap()
        }),
        name.clone().prop_map(Op::BootOnce),
        name.clone().prop_map(Op::SetPrimary),
        // limit 0 cannot be made any more (BootLimit); state.rs tests its refusal
        (name, prop::option::of(1u8..=9)).prop_map(|(slot, limit)| Op::Trial {
            slot,
            limit: limit.map(|l| BootLimit::new(l).unwrap())
        }),
        Just(Op::Ack),
    ]
}

/// One step of a device's life: a boot, or an operation run by the running system.
#[derive(Debug, Clone)]
enum Step {
    Boot,
    Op(Op),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![2 => Just(Step::Boot), 3 => any_op(0).prop_map(Step::Op)],
        0..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// 1. A healthy boot (no valid one-shot, no active trial) writes nothing.
    #[test]
    fn p1_healthy_boot_writes_nothing(cfg in config(), vars in environment()) {
        let st = BootState::parse(&cfg, &vars);
        let d = bootloader_step(&cfg, &vars);
        if st.once.slot().is_none() && st.active_trial().is_none() {
            prop_assert!(d.changes.is_empty(), "{:?}", d);
        } else {
            prop_assert!(!d.changes.is_empty());
        }
    }

    /// 2. A trial boot writes once in the bootloader (only the counter), the commit once in
    /// userspace, and nothing is written after that.
    #[test]
    fn p2_trial_writes_once_then_commit_once(cfg in config(), vars in environment(), from in 0usize..3, to in 0usize..3) {
        let from = SlotId(from % cfg.slots.len());
        let to = SlotId(to % cfg.slots.len());
        let mut vars = vars;
        let booted = Some(Booted { slot: from, legacy: false });
        let Ok(out) = apply_op(&cfg, &vars, booted, &Op::Trial { slot: cfg.name(to).into(), limit: None }) else { return Ok(()) };
        apply(&mut vars, &out.changes);
        let d = bootloader_step(&cfg, &vars);
        prop_assert_eq!(d.slot, to);
        prop_assert_eq!(d.changes.len(), 1);
        prop_assert_eq!(d.changes.iter_bytes().next().unwrap(), (names::TRIES.as_bytes(), Some(&b"1"[..])));
        apply(&mut vars, &d.changes);
        let out = apply_op(&cfg, &vars, Some(Booted { slot: to, legacy: false }), &Op::MarkGood).unwrap();
        prop_assert!(!out.changes.is_empty());
        apply(&mut vars, &out.changes);
        for _ in 0..3 {
            let d = bootloader_step(&cfg, &vars);
            prop_assert_eq!(d.slot, to);
            prop_assert!(d.changes.is_empty());
        }
        let again = apply_op(&cfg, &vars, Some(Booted { slot: to, legacy: false }), &Op::MarkGood);
        prop_assert!(again.is_err());
    }

    /// 3. A trial never marked good is given up after exactly `bootlimit` attempts; the device
    /// then boots the last good slot (or recovery) and stays there without writing.
    #[test]
    fn p3_unconfirmed_trial_ends_after_exactly_bootlimit(cfg in config(), vars in environment(), from in 0usize..3, to in 0usize..3, limit in prop::option::of(1u8..=9)) {
        let from = SlotId(from % cfg.slots.len());
        let to = SlotId(to % cfg.slots.len());
        let mut vars = vars;
        let before = BootState::parse(&cfg, &vars);
        let Ok(out) = apply_op(&cfg, &vars, Some(Booted { slot: from, legacy: false }), &Op::Trial { slot: cfg.name(to).into(), limit: limit.map(|l| BootLimit::new(l).unwrap()) }) else { return Ok(()) };
        apply(&mut vars, &out.changes);
        let limit = BootState::parse(&cfg, &vars).bootlimit;
        let mut attempts = 0;
        let landed = loop {
            let d = bootloader_step(&cfg, &vars);
            apply(&mut vars, &d.changes);
            if d.slot != to {
                prop_assert!(matches!(d.why, Why::GaveUp { .. }), "{:?}", d.why);
                break d.slot;
            }
            attempts += 1;
            prop_assert!(attempts <= 9);
        };
        prop_assert_eq!(attempts, limit.get());
        let good = before.last_good();
        prop_assert!(landed == good || landed == before.recovery, "landed {:?}, last good {:?}", landed, good);
        let d = bootloader_step(&cfg, &vars);
        prop_assert_eq!(d.slot, landed);
        prop_assert!(d.changes.is_empty());
    }

    /// 4. Every environment boots a configured slot, and without any userspace help the
    /// bootloader settles (stops writing) within 12 boots: at most one one-shot write, a trial
    /// of at most 9 attempts (the largest `zbot_bootlimit`), one give-up write, then a boot
    /// that writes nothing. Recovery can always be requested.
    #[test]
    fn p4_always_boots_and_settles(cfg in config(), vars in environment()) {
        let mut vars = vars;
        let mut settled = false;
        for _ in 0..(1 + 9 + 1 + 1) {
            let d = bootloader_step(&cfg, &vars);
            prop_assert!(d.slot.0 < cfg.slots.len());
            if d.changes.is_empty() { settled = true; break; }
            apply(&mut vars, &d.changes);
        }
        prop_assert!(settled);
        let r = cfg.recovery();
        let out = apply_op(&cfg, &vars, None, &Op::BootOnce(cfg.name(r).into())).unwrap();
        apply(&mut vars, &out.changes);
        prop_assert_eq!(bootloader_step(&cfg, &vars).slot, r);
    }

    /// 5. A slot the policy gave up or marked bad is not booted again until a trial installs it
    /// anew; 6. every such rollback leaves its slot and a reason, kept until `ack`.
    #[test]
    fn p5_p6_bad_slots_stay_out_and_rollbacks_are_recorded(cfg in config(), vars in environment(), first in 0usize..3, steps in steps()) {
        let mut vars = vars;
        let mut booted = Some(Booted { slot: SlotId(first % cfg.slots.len()), legacy: false });
        let mut bad: Vec<SlotId> = Vec::new();
        let mut record: Option<(String, String)> = None;
        for step in steps {
            match step {
                Step::Boot => {
                    let d = bootloader_step(&cfg, &vars);
                    prop_assert!(!bad.contains(&d.slot), "booted bad slot {} in {:?}", cfg.name(d.slot), vars);
                    if let Why::GaveUp { failed, reason } = d.why {
                        if failed != cfg.recovery() { bad.push(failed); }
                        record = Some((cfg.name(failed).into(), reason.to_string()));
                    }
                    apply(&mut vars, &d.changes);
                    booted = Some(Booted { slot: d.slot, legacy: false });
                }
                Step::Op(op) => {
                    if let Ok(out) = apply_op(&cfg, &vars, booted, &op) {
                        apply(&mut vars, &out.changes);
                        match &op {
                            Op::MarkBad { reason } => {
                                let b = booted.unwrap().slot;
                                bad.push(b);
                                record = Some((cfg.name(b).into(), reason.to_string()));
                            }
                            Op::Trial { slot, .. } => bad.retain(|&s| cfg.name(s) != slot),
                            Op::Ack => record = None,
                            _ => {}
                        }
                    }
                }
            }
            if let Some((slot, reason)) = &record {
                let rb = BootState::parse(&cfg, &vars).rollback;
                prop_assert_eq!(rb.as_ref().map(|r| (&r.slot, &r.reason)), Some((slot, reason)));
                prop_assert!(!reason.is_empty());
            }
        }
    }
}
