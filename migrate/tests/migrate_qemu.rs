//! The migration under real U-Boot: after each power cut (crash points of the binary, as in
//! migrate_card.rs), a boot-ROM model reads `fip.bin` from the card's FAT and boots the U-Boot
//! it designates under QEMU (qemu-x86, the card as an SD card behind sdhci-pci): the vendor's
//! stand-in reading the field's ext4 env on mmc 0:2 (`qemu/build-uboot.sh qemu-x86-mmc-field`),
//! or the new one reading the raw copies (`qemu-x86-mmc-migrated`). U-Boot must load the env
//! the card holds at init ("OK", no bad CRC, the robot's serial and `next_boot` printed) and
//! run its bootcmd: the vendor's script (slot from `next_boot`, `saveenv` as on every boot of a
//! field robot: the rerun after it must still finish) or the policy's `zbot_boot`.
//! The default run boots a sample of the cut points; `ZBOT_MIGRATE_QEMU=all` boots every one,
//! and the card again after each rerun.

mod common;

use common::{assert_boots, fresh, migrate, text};
use std::time::{Duration, Instant};
use zbot_migrate_env::fault;
use zbot_tests::migration::{FieldCard, FipState, RomBoot};

fn assert_uboot(b: &RomBoot, what: &str) {
    let ctx = || format!("{what}: {:?} U-Boot; console:\n{}", b.fip, b.output);
    // Loaded at init from the card, not the compiled-in defaults (whose bootcmd would print
    // `@@uboot ...`).
    let loaded = match b.fip {
        FipState::Old => "Loading Environment from EXT4... OK",
        _ => "Loading Environment from MMC... OK",
    };
    assert!(b.output.contains(loaded), "{}", ctx());
    for bad in ["bad CRC", "using default environment", "@@uboot "] {
        assert!(!b.output.contains(bad), "{bad:?}: {}", ctx());
    }
    // The robot's state: its serial (in no default env) and next_boot.
    assert_eq!(b.printed("zbot_serial"), Some("ZB-0042"), "{}", ctx());
    assert_eq!(b.printed("next_boot"), Some("rootfs"), "{}", ctx());
    match b.fip {
        // The vendor's script chose the main slot (and saved the env, as it does every boot).
        FipState::Old => assert!(
            b.output
                .contains("@@vendor-boot root=/dev/mmcblk0p4 rootwait rw"),
            "{}",
            ctx()
        ),
        // The migrated env's bootcmd ran the policy's variable.
        _ => {
            assert_eq!(b.printed("bootlimit"), Some("3"), "{}", ctx());
            assert!(b.output.contains("@@policy next_boot=rootfs"), "{}", ctx());
        }
    }
}

/// The new U-Boot's offsets (its config fragment) are the layout's.
fn check_build_offsets(card: &FieldCard) {
    let p = zbot_tests::repo_root().join("qemu/configs/qemu-x86-env-mmc-migrated.config");
    let t = std::fs::read_to_string(&p).unwrap();
    let get = |k: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=0x")))
            .map(|v| u64::from_str_radix(v, 16).unwrap())
            .unwrap_or_else(|| panic!("{}: no {k}", p.display()))
    };
    assert_eq!(
        [get("CONFIG_ENV_OFFSET"), get("CONFIG_ENV_OFFSET_REDUND")],
        card.copies(),
        "{} disagrees with `partctl emit uboot-fragment` of the target layout",
        p.display()
    );
}

#[test]
fn real_uboot_loads_the_env_after_every_cut_and_after_the_rerun() {
    let t0 = Instant::now();
    let all = std::env::var("ZBOT_MIGRATE_QEMU").is_ok_and(|v| v == "all");
    let tdir = tempfile::tempdir().unwrap();
    let template = FieldCard::create(tdir.path()).unwrap();
    check_build_offsets(&template);

    // On a copy: the vendor's script saves the env (adding U-Boot's `fdtcontroladdr`), and
    // the template must stay the field card partctl made.
    let fdir = tempfile::tempdir().unwrap();
    let b = fresh(&template, fdir.path()).boot_rom().unwrap();
    assert_eq!(b.fip, FipState::Old);
    assert_uboot(&b, "the field card");
    let mut boot_times = vec![b.time];

    let points: Vec<String> = if all {
        let mut v: Vec<String> = fault::POINTS.iter().map(|s| s.to_string()).collect();
        v.extend((1..=8).map(|k| format!("{}{k}", fault::GPT_WRITE_PREFIX)));
        v
    } else {
        [
            "copy0-half-written",
            "after-copies",
            "fip-temp-half-written",
            "fip-renamed",
            "gpt-write-3",
            "config-renamed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut rows = Vec::new();
    for p in &points {
        let dir = tempfile::tempdir().unwrap();
        let card = fresh(&template, dir.path());
        let out = migrate(&card, Some(p), &[]);
        if out.status.success() {
            assert!(
                p.starts_with(fault::GPT_WRITE_PREFIX),
                "{p}: {}",
                text(&out)
            );
            continue;
        }
        let st = card.state().unwrap();
        let fip = assert_boots(&card, &st, &format!("cut at {p}"));
        let b = card.boot_rom().unwrap();
        assert_eq!(b.fip, fip, "{p}");
        assert_uboot(&b, &format!("cut at {p}"));
        boot_times.push(b.time);
        let out = migrate(&card, None, &[]);
        assert!(out.status.success(), "rerun after {p}: {}", text(&out));
        if all {
            let b = card.boot_rom().unwrap();
            assert_eq!(b.fip, FipState::New, "rerun after {p}");
            assert_uboot(&b, &format!("rerun after {p}"));
            boot_times.push(b.time);
        }
        rows.push(format!(
            "  {p:<24} {:?} U-Boot loads the env, slot rootfs",
            fip
        ));
    }
    // The whole migration, then the new U-Boot.
    let dir = tempfile::tempdir().unwrap();
    let card = fresh(&template, dir.path());
    let out = migrate(&card, None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let b = card.boot_rom().unwrap();
    assert_eq!(b.fip, FipState::New);
    assert_uboot(&b, "the migrated card");
    boot_times.push(b.time);
    let max = boot_times.iter().max().copied().unwrap_or(Duration::ZERO);
    eprintln!(
        "real U-Boot after {} cuts{} and on the field and migrated cards: {} boots, all loaded the card's env (max {:.1?} per boot); {:.1?}\n{}",
        rows.len(),
        if all { " and their reruns" } else { "" },
        boot_times.len(),
        max,
        t0.elapsed(),
        rows.join("\n")
    );
}
