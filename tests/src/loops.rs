//! The policy's boot-loop scenarios, written once and run on each env backend by
//! `uboot_qemu_loops.rs` (the field's ext4 file, qemu-riscv64) and `uboot_raw_loops.rs` (the
//! raw redundant copies, qemu-x86 + SD card). Every boot goes through [`boot`], which checks it
//! against the engine (`bootloader_step` on what U-Boot loaded: slot, bootargs, saves) and at
//! the backend's bytes: nothing written when the engine says no write; otherwise one save
//! holding the engine's variables (ext4: the file; raw: only the copy U-Boot did not load,
//! with the next flags, nothing else on the card).

use crate::bootloop::{uboot_choice, Backend, Boot, Robot};
use crate::ENV_SIZE;
use bootcount::bootloader_step;
use fw_env::codec::{decode, uboot_view, Layout};
use fw_env::Vars;

/// The default slot file (rootfs + otafs).
pub const SLOTS: &str = bootcount::slots::BUILTIN_TOML;
/// The kernel command line before the slot's part (board preset `qemu`).
pub const BASE: &str = "console=ttyS0,115200 earlycon=sbi";
/// rootfs's root, as the slot file says.
pub const ROOTFS: &str = "root=/dev/mmcblk0p4 rootwait rw";
/// otafs's root.
pub const OTAFS: &str = "root=/dev/mmcblk0p3 rootwait rw";

/// The command line U-Boot gives `slot` whose root is `root`.
pub fn args(slot: &str, root: &str) -> String {
    format!("{BASE} {root} zbot.slot={slot}")
}

/// A robot on `backend` (see [`Robot::with_backend`]).
pub fn robot(backend: Backend, slots: &str, overrides: &[(&str, Option<&str>)]) -> Robot {
    Robot::with_backend(backend, slots, overrides).unwrap()
}

/// One variable of the env as Linux reads it (`None`: unset, or no valid env).
pub fn get(r: &Robot, name: &str) -> Option<String> {
    r.env_vars()
        .unwrap()
        .and_then(|v| v.get(name).map(|s| s.into_owned()))
}

/// The bytes a boot must leave alone when the engine says "no write": the env file (ext4; the
/// rest of that card is not the env's), or the whole card (raw: the copies are blocks on it).
pub fn stored(r: &Robot) -> Vec<u8> {
    match r.backend {
        Backend::Ext4 => r.env_bytes().unwrap().unwrap_or_default(),
        Backend::Raw => std::fs::read(r.disk.path()).unwrap(),
    }
}

/// Boot once and check it against the engine and at the backend's bytes (see the module doc).
pub fn boot(r: &Robot) -> Boot {
    let before = stored(r);
    // Which raw copy U-Boot loads (raw), or whether the file is valid (ext4).
    let chosen = match r.backend {
        Backend::Raw => {
            let [c0, c1] = r.raw_copies().unwrap();
            uboot_choice(&c0, &c1).map(|(i, flags, _)| (i, flags))
        }
        Backend::Ext4 => r.env_vars().unwrap().map(|_| (0, 0)),
    };
    let vars = r.effective_vars().unwrap();
    let d = bootloader_step(&r.cfg, &vars);
    let b = r.boot().unwrap();
    assert_eq!(
        b.slot.as_deref(),
        Some(r.cfg.name(d.slot)),
        "engine: {}\n{}",
        d.explain(&r.cfg),
        b.output
    );
    assert_eq!(
        b.bootargs.as_deref(),
        Some(format!("{BASE} {}", d.kernel_args(&r.cfg)).as_str()),
        "{}",
        b.output
    );
    assert_eq!(b.env_loaded, chosen.is_some(), "{}", b.output);
    assert_eq!(b.saves, usize::from(!d.changes.is_empty()), "{}", b.output);
    let after = stored(r);
    if d.changes.is_empty() {
        assert!(
            after == before,
            "no write expected: the env's bytes changed"
        );
        return b;
    }
    let have = match r.backend {
        Backend::Ext4 => r.env_vars().unwrap().expect("saveenv left a valid file"),
        Backend::Raw => {
            // One save: the copy U-Boot did not load, and nothing else on the card.
            let (active, flags) =
                chosen.expect("the engine never saves over the compiled-in default");
            let inactive = r.copies.unwrap()[1 - active] as usize;
            let outside = before
                .iter()
                .zip(&after)
                .enumerate()
                .find(|(i, (x, y))| x != y && !(inactive..inactive + ENV_SIZE).contains(i));
            assert!(
                outside.is_none(),
                "saveenv changed byte {:#x}, outside the inactive copy at {inactive:#x}",
                outside.unwrap().0
            );
            let new = decode(&after[inactive..inactive + ENV_SIZE], Layout::Redundant)
                .expect("saveenv left a valid inactive copy");
            assert_eq!(
                new.flags,
                Some(flags.wrapping_add(1)),
                "the new copy's flags"
            );
            let [n0, n1] = r.raw_copies().unwrap();
            assert_eq!(
                uboot_choice(&n0, &n1).map(|(i, ..)| i),
                Some(1 - active),
                "the next boot loads the new copy"
            );
            uboot_view(&new.vars)
        }
    };
    assert_engine_vars(&vars, &d.changes, &have);
    b
}

/// The saved env holds what the engine wrote. U-Boot also saves what it adds at run time
/// (fdtcontroladdr, stdin, ...): compare the variables the engine knows, and check that
/// nothing the engine removed is back.
fn assert_engine_vars(before: &Vars, changes: &fw_env::Changes, have: &Vars) {
    let mut want = before.clone();
    want.apply(changes).unwrap();
    for (n, v) in want.iter() {
        assert_eq!(have.get_bytes(n), Some(v), "{}", String::from_utf8_lossy(n));
    }
    for (n, _) in before.iter() {
        if want.get_bytes(n).is_none() {
            assert_eq!(
                have.get_bytes(n),
                None,
                "{} should be unset",
                String::from_utf8_lossy(n)
            );
        }
    }
}

/// `bootcount ARGS` as Linux on the slot booted with `bootargs` runs it; must exit 0.
fn bootcount_ok(r: &Robot, bootargs: &str, args: &[&str]) -> String {
    let (code, out, err) = r.bootcount(bootargs, args).unwrap();
    assert_eq!(code, 0, "bootcount {args:?}: {err}");
    out
}

/// Healthy boots write nothing: the env's bytes are identical after three of them.
pub fn healthy_boots_write_nothing(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("rootfs"))]);
    let before = stored(&r);
    for _ in 0..3 {
        let b = boot(&r);
        assert!(b.env_loaded, "{}", b.output);
        assert_eq!(b.slot.as_deref(), Some("rootfs"));
        assert_eq!(b.bootargs.unwrap(), args("rootfs", ROOTFS));
        assert_eq!(b.saves, 0);
    }
    assert!(stored(&r) == before, "byte-identical after 3 boots");
    if backend == Backend::Ext4 {
        assert_eq!(r.fsck(), None);
    }
}

/// `next_boot=otafs` boots recovery and writes nothing.
pub fn next_boot_otafs_boots_recovery_without_writing(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("otafs"))]);
    let b = boot(&r);
    assert_eq!(b.slot.as_deref(), Some("otafs"));
    assert_eq!(b.bootargs.unwrap(), args("otafs", OTAFS));
    assert_eq!(b.saves, 0);
}

/// `bootcount boot-once otafs`: one boot of recovery (consumed by U-Boot's save), then back.
pub fn one_shot_boots_once_then_back(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("rootfs"))]);
    bootcount_ok(&r, &args("rootfs", ROOTFS), &["boot-once", "otafs"]);
    if backend == Backend::Raw {
        // fw-env wrote the inactive copy (copy 1) with the next flags: U-Boot loads it.
        let [c0, c1] = r.raw_copies().unwrap();
        assert_eq!(uboot_choice(&c0, &c1).map(|(i, f, _)| (i, f)), Some((1, 2)));
    }
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 1));
    assert_eq!(get(&r, "zbot_once"), None, "consumed");
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
}

/// A trial started from recovery, one counted attempt, committed by `mark-good`; then no writes.
pub fn trial_then_commit_by_bootcount(backend: Backend) {
    // Running the recovery system, which has just installed rootfs.
    let r = robot(backend, SLOTS, &[("next_boot", Some("otafs"))]);
    bootcount_ok(&r, &args("otafs", OTAFS), &["trial", "rootfs"]);
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("rootfs"), 1),
        "one write per trial boot"
    );
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("1"));
    bootcount_ok(&r, &b.bootargs.unwrap(), &["mark-good"]);
    assert_eq!(get(&r, "zbot_trial"), None);
    let committed = stored(&r);
    for _ in 0..2 {
        let b = boot(&r);
        assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
    }
    assert!(stored(&r) == committed, "healthy after commit: no writes");
}

/// A trial nobody commits (rootfs hangs before its health check): three counted attempts,
/// then recovery with the rollback and its reason, then no more writes.
pub fn trial_never_committed_rolls_back_after_bootlimit_with_its_reason(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("otafs"))]);
    bootcount_ok(&r, &args("otafs", OTAFS), &["trial", "rootfs"]);
    for attempt in 1..=3 {
        let b = boot(&r);
        assert_eq!(
            (b.slot.as_deref(), b.saves),
            (Some("rootfs"), 1),
            "attempt {attempt}"
        );
        assert_eq!(get(&r, "zbot_tries"), Some(attempt.to_string()));
    }
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("otafs"), 1),
        "given up after 3"
    );
    assert_eq!(get(&r, "next_boot").as_deref(), Some("otafs"));
    assert_eq!(get(&r, "zbot_rb_slot").as_deref(), Some("rootfs"));
    assert_eq!(get(&r, "zbot_rb_reason").as_deref(), Some("bootlimit"));
    assert_eq!(get(&r, "zbot_bad_rootfs").as_deref(), Some("bootlimit"));
    assert_eq!(get(&r, "zbot_trial"), None);
    let out = bootcount_ok(&r, &b.bootargs.unwrap(), &["status"]);
    assert!(out.contains("bootlimit"), "status shows the reason: {out}");
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("otafs"), 0),
        "settled: no more writes"
    );
}

/// `mark-bad` during a trial: the next boot is recovery, with the reason recorded.
pub fn mark_bad_during_a_trial_falls_back_to_recovery(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("otafs"))]);
    bootcount_ok(&r, &args("otafs", OTAFS), &["trial", "rootfs"]);
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    bootcount_ok(
        &r,
        &b.bootargs.unwrap(),
        &["mark-bad", "--reason", "health"],
    );
    let b = boot(&r);
    assert_eq!(b.slot.as_deref(), Some("otafs"), "{}", b.output);
    assert_eq!(get(&r, "zbot_trial"), None);
    assert_eq!(get(&r, "zbot_rb_reason").as_deref(), Some("health"));
}

/// No valid env on the card (ext4: the file deleted; raw: both copies torn): U-Boot boots
/// recovery from its compiled-in default and writes nothing; the first write from Linux
/// stores a whole env again, which the next boot loads.
pub fn lost_env_boots_recovery_from_the_compiled_in_default(backend: Backend) {
    let r = robot(backend, SLOTS, &[("next_boot", Some("rootfs"))]);
    match backend {
        Backend::Ext4 => r.disk.remove_file("/uboot.env").unwrap(),
        Backend::Raw => {
            for off in r.copies.unwrap() {
                r.write_at(off + 100, b"torn").unwrap();
            }
        }
    }
    let before = stored(&r);
    let b = boot(&r);
    assert!(!b.env_loaded, "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 0));
    assert!(stored(&r) == before, "nothing written");
    bootcount_ok(&r, &b.bootargs.unwrap(), &["trial", "rootfs"]);
    let env = r
        .env_vars()
        .unwrap()
        .expect("bootcount wrote a complete env");
    assert_eq!(env.get("bootcmd").as_deref(), Some("run zbot-policy"));
    let b = boot(&r);
    assert!(b.env_loaded);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
}

/// A/B slots: a trial of rootfs_b with limit 1 that fails goes back to `zbot_prev`, not to
/// recovery.
pub fn ab_slots_fall_back_to_the_previous_slot(backend: Backend) {
    let ab = include_str!("../../bootcount/dist/slots-ab.toml");
    let r = robot(backend, ab, &[("next_boot", Some("rootfs_a"))]);
    let a = "root=/dev/mmcblk0p4 rootwait rw";
    bootcount_ok(
        &r,
        &args("rootfs_a", a),
        &["trial", "rootfs_b", "--limit", "1"],
    );
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs_b"), 1));
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("rootfs_a"), 1),
        "back to zbot_prev, not recovery"
    );
    assert_eq!(get(&r, "zbot_bad_rootfs_b").as_deref(), Some("bootlimit"));
}

/// A power-cut scenario: its name and the env overrides that make U-Boot save.
pub type SaveScenario = (
    &'static str,
    &'static [(&'static str, Option<&'static str>)],
);

/// The saves U-Boot's policy does, where the power-cut tests cut (`uboot_power_cut.rs` on the
/// ext4 file, `uboot_raw_power_cut.rs` on the raw copies): a trial attempt, a one-shot, giving
/// a trial up.
pub const SAVE_SCENARIOS: &[SaveScenario] = &[
    (
        "trial attempt",
        &[
            ("next_boot", Some("rootfs")),
            ("zbot_trial", Some("rootfs")),
            ("zbot_tries", Some("1")),
            ("zbot_prev", Some("otafs")),
        ],
    ),
    (
        "one-shot",
        &[("next_boot", Some("rootfs")), ("zbot_once", Some("otafs"))],
    ),
    (
        "give up",
        &[
            ("next_boot", Some("rootfs")),
            ("zbot_trial", Some("rootfs")),
            ("zbot_tries", Some("3")),
        ],
    ),
];
