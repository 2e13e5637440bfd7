//! The policy's QEMU boot loops on the recommended raw backend (issue 14 item 5,
//! docs/env-backend.md): qemu-x86 + an SD card behind `sdhci-pci` made by partctl from
//! `tests/src/test-card-raw.toml`, U-Boot 2023.01 with its redundant raw env (two 192 KiB
//! copies at p2 + 0x40000 and + 0x70000, `qemu/build-uboot.sh qemu-x86-mmc-zbot`) and the
//! generated default environment compiled in. Each "boot" is a QEMU run on the same card: U-Boot
//! loads the copy it prefers, runs `bootcmd=run zbot-policy`, and the final command reports the
//! slot and bootargs and resets (QEMU exits). Between boots `bootcount` plays Linux, writing the
//! copies in the card through the layout's emitted two-line `fw_env.config`.
//!
//! The same scenarios as `uboot_qemu_loops.rs` (ext4 backend), the kit's `zbot_tests::loops`,
//! and every boot checked there against the engine (`bootloader_step` on what U-Boot loaded: slot, bootargs, saves) and at the card's
//! bytes: no write at all when the engine says none; otherwise exactly one `saveenv`, which
//! rewrote only the copy U-Boot did not load, with flags one more than the loaded copy's and the
//! engine's variables, and left every other byte of the card (the loaded copy included) alone.

use zbot_tests::bootloop::{raw_card, Backend};
use zbot_tests::loops::{self, boot, get, robot, SLOTS};

const B: Backend = Backend::Raw;

#[test]
fn healthy_boot_writes_nothing_and_the_card_stays_byte_identical() {
    loops::healthy_boots_write_nothing(B);
}

#[test]
fn next_boot_otafs_boots_recovery_without_writing() {
    loops::next_boot_otafs_boots_recovery_without_writing(B);
}

#[test]
fn one_shot_boots_once_then_back() {
    loops::one_shot_boots_once_then_back(B);
}

#[test]
fn trial_then_commit_by_bootcount() {
    loops::trial_then_commit_by_bootcount(B);
}

#[test]
fn trial_never_committed_rolls_back_after_bootlimit_with_its_reason() {
    loops::trial_never_committed_rolls_back_after_bootlimit_with_its_reason(B);
}

#[test]
fn mark_bad_during_a_trial_falls_back_to_recovery() {
    loops::mark_bad_during_a_trial_falls_back_to_recovery(B);
}

#[test]
fn both_copies_corrupt_boot_recovery_from_the_compiled_in_default() {
    loops::lost_env_boots_recovery_from_the_compiled_in_default(B);
}

#[test]
fn ab_slots_fall_back_to_the_previous_slot() {
    loops::ab_slots_fall_back_to_the_previous_slot(B);
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
fn a_torn_newer_copy_loads_the_older_one() {
    // What a cut inside a save leaves: the copy being written fails its CRC, the other one is
    // the env before the save. Here the older copy has a trial attempt under way.
    let r = robot(
        B,
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
