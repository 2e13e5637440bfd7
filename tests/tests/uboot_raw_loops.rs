//! The policy's QEMU boot loops on the recommended raw backend (issue 14 item 5,
//! docs/env-backend.md): qemu-x86 + an SD card behind `sdhci-pci` made by partctl from
//! `tests/src/test-card-raw.toml`, U-Boot 2023.01 with its redundant raw env (two 192 KiB
//! copies at p2 + 0x40000 and + 0x70000, `qemu/build-uboot.sh qemu-x86-mmc-zbot`) and the
//! generated default environment compiled in. Each "boot" is a QEMU run on the same card: U-Boot
//! loads the copy it prefers, runs `bootcmd=run zbot-policy`, and the final command reports the
//! slot and bootargs and resets (QEMU exits). Between boots `bootcount` plays Linux, writing the
//! copies in the card through the layout's emitted two-line `fw_env.config`.
//!
//! The same scenarios as `uboot_qemu_loops.rs` (ext4 backend), and every boot checked against
//! the engine (`bootloader_step` on what U-Boot loaded: slot, bootargs, saves) and at the card's
//! bytes: no write at all when the engine says none; otherwise exactly one `saveenv`, which
//! rewrote only the copy U-Boot did not load, with flags one more than the loaded copy's and the
//! engine's variables, and left every other byte of the card (the loaded copy included) alone.

use bootcount::bootloader_step;
use fw_env::codec::{decode, uboot_view, Layout};
use zbot_tests::bootloop::{raw_card, uboot_choice, Backend, Boot, Robot};
use zbot_tests::ENV_SIZE;

const SLOTS: &str = bootcount::slots::BUILTIN_TOML;
const BASE: &str = "console=ttyS0,115200 earlycon=sbi";
const ROOTFS: &str = "root=/dev/mmcblk0p4 rootwait rw";
const OTAFS: &str = "root=/dev/mmcblk0p3 rootwait rw";

fn args(slot: &str, root: &str) -> String {
    format!("{BASE} {root} zbot.slot={slot}")
}

fn robot(slots: &str, overrides: &[(&str, Option<&str>)]) -> Robot {
    Robot::with_backend(Backend::Raw, slots, overrides).unwrap()
}

/// Boot once and check it against the engine and at the card's bytes (see the file's doc).
fn boot(r: &Robot) -> Boot {
    let card_before = std::fs::read(r.disk.path()).unwrap();
    let [c0, c1] = r.raw_copies().unwrap();
    let chosen = uboot_choice(&c0, &c1);
    let vars = r.effective_vars().unwrap();
    let d = bootloader_step(&r.cfg, &vars);
    let b = r.boot().unwrap();
    let want_slot = r.cfg.name(d.slot);
    assert_eq!(
        b.slot.as_deref(),
        Some(want_slot),
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
    let card_after = std::fs::read(r.disk.path()).unwrap();
    if d.changes.is_empty() {
        assert!(
            card_after == card_before,
            "no write expected: the card changed"
        );
        return b;
    }
    // One save: the copy U-Boot did not load, and nothing else on the card.
    let (active, flags, _) = chosen.expect("the engine never saves over the compiled-in default");
    let inactive = r.copies.unwrap()[1 - active] as usize;
    for (i, (x, y)) in card_before.iter().zip(&card_after).enumerate() {
        if *x != *y {
            assert!(
                (inactive..inactive + ENV_SIZE).contains(&i),
                "saveenv changed byte {i:#x}, outside the inactive copy at {inactive:#x}"
            );
        }
    }
    let new = decode(
        &card_after[inactive..inactive + ENV_SIZE],
        Layout::Redundant,
    )
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
    let have = uboot_view(&new.vars);
    let mut want = vars.clone();
    want.apply(&d.changes).unwrap();
    // U-Boot also saves what it adds at run time: compare the variables the engine knows, and
    // that nothing the engine removed is back.
    for (n, v) in want.iter() {
        assert_eq!(have.get_bytes(n), Some(v), "{}", String::from_utf8_lossy(n));
    }
    for (n, _) in vars.iter() {
        if want.get_bytes(n).is_none() {
            assert_eq!(
                have.get_bytes(n),
                None,
                "{} should be unset",
                String::from_utf8_lossy(n)
            );
        }
    }
    b
}

fn get(r: &Robot, name: &str) -> Option<String> {
    r.env_vars()
        .unwrap()
        .and_then(|v| v.get(name).map(|s| s.into_owned()))
}

#[test]
fn the_build_uses_the_layouts_offsets() {
    let frag = std::fs::read_to_string(
        zbot_tests::repo_root().join("qemu/configs/qemu-x86-env-mmc-zbot.config"),
    )
    .unwrap();
    let emitted = partctl::emit::emit(&raw_card(), partctl::emit::EmitKind::UbootFragment);
    for l in emitted.lines().filter(|l| l.starts_with("CONFIG_ENV_")) {
        assert!(
            frag.lines().any(|f| f == l),
            "{l} (partctl emit uboot-fragment of tests/src/test-card-raw.toml) missing from the fragment"
        );
    }
}

#[test]
fn healthy_boot_writes_nothing_and_the_card_stays_byte_identical() {
    let r = robot(SLOTS, &[("next_boot", Some("rootfs"))]);
    let before = std::fs::read(r.disk.path()).unwrap();
    for _ in 0..3 {
        let b = boot(&r);
        assert!(b.env_loaded, "{}", b.output);
        assert_eq!(b.slot.as_deref(), Some("rootfs"));
        assert_eq!(b.bootargs.unwrap(), args("rootfs", ROOTFS));
        assert_eq!(b.saves, 0);
    }
    assert!(
        std::fs::read(r.disk.path()).unwrap() == before,
        "byte-identical after 3 boots"
    );
}

#[test]
fn next_boot_otafs_boots_recovery_without_writing() {
    let r = robot(SLOTS, &[("next_boot", Some("otafs"))]);
    let b = boot(&r);
    assert_eq!(b.slot.as_deref(), Some("otafs"));
    assert_eq!(b.bootargs.unwrap(), args("otafs", OTAFS));
    assert_eq!(b.saves, 0);
}

#[test]
fn one_shot_boots_once_then_back() {
    let r = robot(SLOTS, &[("next_boot", Some("rootfs"))]);
    let (code, _, err) = r
        .bootcount(&args("rootfs", ROOTFS), &["boot-once", "otafs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    // fw-env wrote the inactive copy (copy 1) with the next flags: U-Boot loads it.
    let [c0, c1] = r.raw_copies().unwrap();
    assert_eq!(uboot_choice(&c0, &c1).map(|(i, f, _)| (i, f)), Some((1, 2)));
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 1));
    assert_eq!(get(&r, "zbot_once"), None, "consumed");
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
}

#[test]
fn trial_then_commit_by_bootcount() {
    let r = robot(SLOTS, &[("next_boot", Some("otafs"))]);
    let (code, _, err) = r
        .bootcount(&args("otafs", OTAFS), &["trial", "rootfs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("rootfs"), 1),
        "one write per trial boot"
    );
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("1"));
    let (code, _, err) = r.bootcount(&b.bootargs.unwrap(), &["mark-good"]).unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(get(&r, "zbot_trial"), None);
    let committed = std::fs::read(r.disk.path()).unwrap();
    for _ in 0..2 {
        let b = boot(&r);
        assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
    }
    assert!(
        std::fs::read(r.disk.path()).unwrap() == committed,
        "healthy after commit: no writes"
    );
}

#[test]
fn trial_never_committed_rolls_back_after_bootlimit_with_its_reason() {
    let r = robot(SLOTS, &[("next_boot", Some("otafs"))]);
    let (code, _, err) = r
        .bootcount(&args("otafs", OTAFS), &["trial", "rootfs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
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
    let (code, out, err) = r.bootcount(&b.bootargs.unwrap(), &["status"]).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bootlimit"), "status shows the reason: {out}");
    let b = boot(&r);
    assert_eq!(
        (b.slot.as_deref(), b.saves),
        (Some("otafs"), 0),
        "settled: no more writes"
    );
}

#[test]
fn mark_bad_during_a_trial_falls_back_to_recovery() {
    let r = robot(SLOTS, &[("next_boot", Some("otafs"))]);
    let (code, _, err) = r
        .bootcount(&args("otafs", OTAFS), &["trial", "rootfs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    let (code, _, err) = r
        .bootcount(&b.bootargs.unwrap(), &["mark-bad", "--reason", "health"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let b = boot(&r);
    assert_eq!(b.slot.as_deref(), Some("otafs"), "{}", b.output);
    assert_eq!(get(&r, "zbot_trial"), None);
    assert_eq!(get(&r, "zbot_rb_reason").as_deref(), Some("health"));
}

#[test]
fn both_copies_corrupt_boot_recovery_from_the_compiled_in_default() {
    let r = robot(SLOTS, &[("next_boot", Some("rootfs"))]);
    for off in r.copies.unwrap() {
        r.write_at(off + 100, b"torn").unwrap();
    }
    let before = std::fs::read(r.disk.path()).unwrap();
    let b = boot(&r);
    assert!(!b.env_loaded, "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 0));
    assert!(
        std::fs::read(r.disk.path()).unwrap() == before,
        "nothing written"
    );
    // Recovery gets the robot back: the first write from Linux stores a whole env again.
    let (code, _, err) = r
        .bootcount(&b.bootargs.unwrap(), &["trial", "rootfs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let env = r
        .env_vars()
        .unwrap()
        .expect("bootcount wrote a complete copy");
    assert_eq!(env.get("bootcmd").as_deref(), Some("run zbot-policy"));
    let b = boot(&r);
    assert!(b.env_loaded);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
}

#[test]
fn a_torn_newer_copy_loads_the_older_one() {
    // What a cut inside a save leaves: the copy being written fails its CRC, the other one is
    // the env before the save. Here the older copy has a trial attempt under way.
    let r = robot(
        SLOTS,
        &[
            ("next_boot", Some("rootfs")),
            ("zbot_trial", Some("rootfs")),
            ("zbot_tries", Some("1")),
            ("zbot_prev", Some("otafs")),
        ],
    );
    let b = boot(&r); // attempt 2: saved into copy 1
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("2"));
    r.write_at(r.copies.unwrap()[1] + 4096, b"torn").unwrap();
    // U-Boot loads copy 0 (tries=1) and counts attempt 2 again, into copy 1.
    let b = boot(&r);
    assert!(b.env_loaded, "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("2"));
}

#[test]
fn ab_slots_fall_back_to_the_previous_slot() {
    let ab = include_str!("../../bootcount/dist/slots-ab.toml");
    let r = robot(ab, &[("next_boot", Some("rootfs_a"))]);
    let a = "root=/dev/mmcblk0p4 rootwait rw";
    let (code, _, err) = r
        .bootcount(&args("rootfs_a", a), &["trial", "rootfs_b", "--limit", "1"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
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
