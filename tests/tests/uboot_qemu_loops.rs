//! QEMU boot loops: riscv64 `virt` + OpenSBI + the ext4-env U-Boot with the generated default
//! environment compiled in. Each "boot" is a QEMU run on the same disk image: U-Boot loads
//! `/uboot.env` from partition 2, runs `bootcmd=run zbot-policy`, and the final command reports
//! the slot and bootargs and powers off. Between boots, `bootcount` plays Linux on the env file.
//! Every boot is also checked against the engine (`bootloader_step` on what U-Boot loaded).

use bootcount::bootloader_step;
use fw_env::codec::uboot_view;
use zbot_tests::bootloop::{Boot, Robot};

const SLOTS: &str = bootcount::slots::BUILTIN_TOML;
const BASE: &str = "console=ttyS0,115200 earlycon=sbi";

fn args(slot: &str, root: &str) -> String {
    format!("{BASE} {root} zbot.slot={slot}")
}
const ROOTFS: &str = "root=/dev/mmcblk0p4 rootwait rw";
const OTAFS: &str = "root=/dev/mmcblk0p3 rootwait rw";

/// Boot once and check it against the engine: slot, bootargs, and the env file (changed
/// exactly as the engine says, or byte-identical when it says "no write").
fn boot(r: &Robot) -> Boot {
    let before = r.env_bytes().unwrap();
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
    assert_eq!(b.saves, usize::from(!d.changes.is_empty()), "{}", b.output);
    if d.changes.is_empty() {
        assert_eq!(
            r.env_bytes().unwrap(),
            before,
            "no write expected: the env file changed"
        );
    } else {
        let mut want = vars.clone();
        want.apply(&d.changes).unwrap();
        let have = r.env_vars().unwrap().expect("saveenv left a valid file");
        // U-Boot also saves what it adds at run time (fdtcontroladdr, stdin, ...): compare
        // the variables the engine knows, and that nothing the engine removed is back.
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
    }
    b
}

fn get(r: &Robot, name: &str) -> Option<String> {
    r.env_vars()
        .unwrap()
        .and_then(|v| v.get(name).map(|s| s.into_owned()))
}

#[test]
fn healthy_boot_writes_nothing_and_the_file_stays_byte_identical() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("rootfs"))]).unwrap();
    let before = r.env_bytes().unwrap().unwrap();
    for _ in 0..3 {
        let b = boot(&r);
        assert!(b.env_loaded, "{}", b.output);
        assert_eq!(b.slot.as_deref(), Some("rootfs"));
        assert_eq!(b.bootargs.unwrap(), args("rootfs", ROOTFS));
        assert_eq!(b.saves, 0);
    }
    assert_eq!(
        r.env_bytes().unwrap().unwrap(),
        before,
        "byte-identical after 3 boots"
    );
    assert_eq!(r.fsck(), None);
}

#[test]
fn next_boot_otafs_boots_recovery_without_writing() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("otafs"))]).unwrap();
    let b = boot(&r);
    assert_eq!(b.slot.as_deref(), Some("otafs"));
    assert_eq!(b.bootargs.unwrap(), args("otafs", OTAFS));
    assert_eq!(b.saves, 0);
}

#[test]
fn one_shot_boots_once_then_back() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("rootfs"))]).unwrap();
    let (code, _, err) = r
        .bootcount(&args("rootfs", ROOTFS), &["boot-once", "otafs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 1));
    assert_eq!(get(&r, "zbot_once"), None, "consumed");
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
}

#[test]
fn trial_then_commit_by_bootcount() {
    // Running the recovery system, which has just installed rootfs.
    let r = Robot::new(SLOTS, &[("next_boot", Some("otafs"))]).unwrap();
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
    let committed = r.env_bytes().unwrap();
    for _ in 0..2 {
        let b = boot(&r);
        assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 0));
    }
    assert_eq!(
        r.env_bytes().unwrap(),
        committed,
        "healthy after commit: no writes"
    );
}

#[test]
fn trial_never_committed_rolls_back_after_bootlimit_with_its_reason() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("otafs"))]).unwrap();
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
        // rootfs hangs before its health check: nobody commits.
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
fn deleted_env_file_boots_recovery_from_the_compiled_in_default() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("rootfs"))]).unwrap();
    r.disk.remove_file("/uboot.env").unwrap();
    let b = boot(&r);
    assert!(!b.env_loaded, "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 0));
    assert_eq!(r.env_bytes().unwrap(), None, "nothing written");
    // Recovery gets the robot back: the first write from Linux stores a whole env again.
    let (code, _, err) = r
        .bootcount(&b.bootargs.unwrap(), &["trial", "rootfs"])
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let env = r
        .env_vars()
        .unwrap()
        .expect("bootcount wrote a complete env");
    assert_eq!(env.get("bootcmd").as_deref(), Some("run zbot-policy"));
    let b = boot(&r);
    assert!(b.env_loaded);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
}

#[test]
fn corrupt_env_file_boots_recovery() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("rootfs"))]).unwrap();
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
    let r = Robot::new(
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
    )
    .unwrap();
    let img = uboot_scripts::image::script_image(r.gen.boot_cmd().as_bytes(), "zbot", 0);
    r.disk.write_file("/boot.scr", &img).unwrap();
    let b = boot(&r);
    assert!(b.output.contains("## Executing script at"), "{}", b.output);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("rootfs"), 1));
    assert_eq!(get(&r, "zbot_tries").as_deref(), Some("3"));
    let b = boot(&r);
    assert_eq!((b.slot.as_deref(), b.saves), (Some("otafs"), 1));
    assert_eq!(get(&r, "zbot_rb_reason").as_deref(), Some("bootlimit"));
    let _ = uboot_view; // (the engine's view is used through Robot::effective_vars)
}

#[test]
fn ab_slots_fall_back_to_the_previous_slot() {
    let ab = include_str!("../../bootcount/dist/slots-ab.toml");
    let r = Robot::new(ab, &[("next_boot", Some("rootfs_a"))]).unwrap();
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
