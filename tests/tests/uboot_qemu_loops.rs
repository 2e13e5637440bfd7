//! QEMU boot loops on the field's backend: riscv64 `virt` + OpenSBI + the ext4-env U-Boot with
//! the generated default environment compiled in. Each "boot" is a QEMU run on the same disk
//! image: U-Boot loads `/uboot.env` from partition 2, runs `bootcmd=run zbot-policy`, and the
//! final command reports the slot and bootargs and powers off. Between boots, `bootcount` plays
//! Linux on the env file. The scenarios are the kit's (`zbot_tests::loops`, also run on the raw
//! backend by `uboot_raw_loops.rs`); every boot is checked against the engine there. Below them,
//! what only the ext4 file has: a corrupt file, and `boot.scr` on the env partition.

use zbot_tests::bootloop::Backend;
use zbot_tests::loops::{self, boot, get, robot, SLOTS};

const B: Backend = Backend::Ext4;

#[test]
fn healthy_boot_writes_nothing_and_the_file_stays_byte_identical() {
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
fn deleted_env_file_boots_recovery_from_the_compiled_in_default() {
    loops::lost_env_boots_recovery_from_the_compiled_in_default(B);
}

#[test]
fn ab_slots_fall_back_to_the_previous_slot() {
    loops::ab_slots_fall_back_to_the_previous_slot(B);
}

#[test]
fn corrupt_env_file_boots_recovery() {
    let r = robot(B, SLOTS, &[("next_boot", Some("rootfs"))]);
    let mut bytes = r.env_bytes().unwrap().unwrap();
    bytes[100] ^= 0x20;
    r.disk.write_file("/uboot.env", &bytes).unwrap();
    let b = boot(&r);
    assert!(b.output.contains("bad CRC"), "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 0));
    assert_eq!(
        r.env_bytes().unwrap().unwrap(),
        bytes,
        "the corrupt file is left alone"
    );
}

#[test]
fn boot_scr_on_partition_2_runs_the_same_policy() {
    // boot.scr made by uboot-scripts (no mkimage), `source`d by the real U-Boot.
    let r = robot(
        B,
        SLOTS,
        &[
            ("next_boot", Some("rootfs")),
            ("zbot_trial", Some("rootfs")),
            ("zbot_tries", Some("2")),
            (
                "bootcmd",
                Some("ext4load virtio 0:2 0x84000000 /boot.scr && source 0x84000000"),
            ),
        ],
    );
    let img = uboot_scripts::image::script_image(r.gen.boot_cmd().as_bytes(), "zbot", 0);
    r.disk.write_file("/boot.scr", &img).unwrap();
    let b = boot(&r);
    assert!(b.output.contains("## Executing script at"), "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("3"));
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 1));
    assert_eq!(get(&r, "zbot_rb_reason").as_deref(), Some("bootlimit"));
}
