//! The update lifecycle on the QEMU machine: real U-Boot, Debian's kernel, BusyBox slots with
//! our `fw-env` and `bootcount` (docs/qemu.md). Each test leaves a readable log of every boot
//! in `target/zbot-machine/logs/<test>.log`.
//!
//! Default run (about a minute on 2 cores): scenario 1 (first boot), 2 (update through otafs,
//! committed) and 5 (env file deleted: recovery, repair). Longer variants are `#[ignore]`d:
//! `cargo test -p zbot-tests --test lifecycle -- --ignored`.
//!
//! The boot script is still the placeholder in `qemu/machine/env/placeholder-policy.env` (no
//! boot counting): scenarios 3, 4 and 6 need the generated script of uboot-scripts.

use std::time::Duration;

use zbot_tests::machine::{Ending, Machine, MachineImage, Update};

const STEP: Duration = Duration::from_secs(120);
const VERDICT: &str = "bootcount: health run exited with";

/// `bootcount status --json` inside the guest, parsed crudely (no JSON crate in this package):
/// the value of `"key":` as printed.
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let i = json.find(&pat)? + pat.len();
    let rest = json[i..].trim_start();
    let end = if let Some(r) = rest.strip_prefix('"') {
        return r.find('"').map(|e| &r[..e]);
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Scenario 1: a fresh image boots rootfs, the health check passes, nothing is written to the
/// environment, and `poweroff` ends QEMU.
#[test]
fn first_boot_of_a_fresh_image() {
    let image = MachineImage::shared();
    let mut robot = Machine::new(image, "first_boot_of_a_fresh_image").unwrap();
    let log = robot.log_path().display().to_string();
    let env_before = robot
        .env_file()
        .unwrap()
        .expect("fresh image has /uboot.env");

    let mut boot = robot.boot().unwrap();
    let slot_line = boot
        .wait_for("zbot-machine: booted slot=", STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    assert!(
        slot_line.contains("slot=rootfs image=rootfs v1"),
        "{slot_line}\nlog: {log}"
    );
    let verdict = boot
        .wait_for(VERDICT, STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    assert!(verdict.ends_with("exited with 0"), "{verdict}\nlog: {log}");
    let healthy = boot.wait_for("bootcount: rootfs is healthy", STEP).unwrap();
    assert!(healthy.contains("no trial is active"), "{healthy}");
    let t_verdict = boot.time_of(VERDICT).unwrap();

    let (code, status) = boot
        .run("bootcount status --json", STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    assert_eq!(code, 0, "{status}\nlog: {log}");
    assert_eq!(
        json_field(&status, "booted_slot"),
        Some("rootfs"),
        "{status}"
    );
    assert_eq!(json_field(&status, "trial"), Some("null"), "{status}");
    assert_eq!(
        json_field(&status, "last_rollback"),
        Some("null"),
        "{status}"
    );
    let (code, next) = boot.run("fw_printenv -n next_boot", STEP).unwrap();
    assert_eq!((code, next.trim()), (0, "rootfs"), "log: {log}");

    boot.send_line("poweroff").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::PowerOff, "log: {log}");
    assert!(boot.env_changes().is_empty(), "{:?}", boot.env_changes());
    let env_after = robot.env_file().unwrap().expect("/uboot.env still there");
    assert!(
        env_after == env_before,
        "a healthy boot wrote the environment; log: {log}"
    );
    robot
        .note(&format!(
            "boot-to-health-verdict {:.2} s; env file unchanged",
            t_verdict.as_secs_f64()
        ))
        .unwrap();
    eprintln!(
        "first boot: health verdict {:.2} s after power-on, whole boot {:.2} s (log: {log})",
        t_verdict.as_secs_f64(),
        boot.elapsed().as_secs_f64()
    );
}

/// Scenario 2 as far as the placeholder boot script allows (no boot counting yet): from
/// rootfs `fw-env set next_boot otafs` and reboot; otafs installs the staged good update and
/// starts its trial; the new rootfs passes its health check, which commits the trial; the next
/// boot writes nothing.
#[test]
fn update_through_otafs_is_committed() {
    let image = MachineImage::shared();
    let mut robot = Machine::new(image, "update_through_otafs_is_committed").unwrap();
    let log = robot.log_path().display().to_string();
    robot.stage_update(Update::Good).unwrap();

    // Boot 1: rootfs v1, asks for otafs.
    let mut boot = robot.boot().unwrap();
    boot.wait_for(VERDICT, STEP).unwrap();
    let (code, _) = boot
        .run("fw-env set next_boot otafs && reboot", STEP)
        .unwrap_or((0, String::new()));
    assert_eq!(code, 0);
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "log: {log}");
    assert_eq!(boot.env_changes(), ["next_boot: \"rootfs\" -> \"otafs\""]);

    // Boot 2: otafs installs the update and reboots into the trial.
    let mut boot = robot.boot().unwrap();
    boot.wait_for("zbot-machine: booted slot=otafs", STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    boot.wait_for("zbot-update: starting the trial of rootfs", STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "log: {log}");
    let changes = boot.env_changes().join("; ");
    assert!(
        changes.contains("next_boot: \"otafs\" -> \"rootfs\""),
        "{changes}"
    );
    assert!(
        changes.contains("zbot_trial: (unset) -> \"rootfs\""),
        "{changes}"
    );

    // Boot 3: the trial of rootfs v2 passes its health check and is committed.
    let mut boot = robot.boot().unwrap();
    let l = boot.wait_for("zbot-machine: booted slot=", STEP).unwrap();
    assert!(l.contains("slot=rootfs image=rootfs v2"), "{l}\nlog: {log}");
    let healthy = boot.wait_for("bootcount: rootfs is healthy", STEP).unwrap();
    assert!(
        !healthy.contains("nothing to commit"),
        "{healthy}\nlog: {log}"
    );
    boot.wait_for(VERDICT, STEP).unwrap();
    boot.send_line("poweroff").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::PowerOff);
    let changes = boot.env_changes().join("; ");
    assert!(
        changes.contains("zbot_trial: \"rootfs\" -> (unset)"),
        "{changes}"
    );
    let env_committed = robot.env_file().unwrap().unwrap();

    // Boot 4: healthy, nothing to commit, nothing written.
    let mut boot = robot.boot().unwrap();
    let l = boot.wait_for("zbot-machine: booted slot=", STEP).unwrap();
    assert!(l.contains("slot=rootfs image=rootfs v2"), "{l}");
    boot.wait_for("no trial is active", STEP).unwrap();
    let (_, status) = boot.run("bootcount status --json", STEP).unwrap();
    assert_eq!(json_field(&status, "trial"), Some("null"), "{status}");
    boot.send_line("poweroff").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::PowerOff);
    assert!(boot.env_changes().is_empty(), "{:?}", boot.env_changes());
    assert!(
        robot.env_file().unwrap().unwrap() == env_committed,
        "log: {log}"
    );
}

/// Scenario 5: the env partition's file is gone (or corrupt). U-Boot boots its compiled-in
/// default environment, which names the recovery slot; otafs reports the lost environment and
/// repairs it with one command (`bootcount set-primary rootfs`: the write starts from the
/// default environment); rootfs then boots on trial and commits itself.
fn env_damage_boots_recovery_and_is_repaired(name: &str, damage: impl FnOnce(&Machine)) {
    let image = MachineImage::shared();
    let mut robot = Machine::new(image, name).unwrap();
    let log = robot.log_path().display().to_string();
    damage(&robot);

    let mut boot = robot.boot().unwrap();
    let l = boot.wait_for("zbot-machine: booted slot=", STEP).unwrap();
    assert!(l.contains("slot=otafs"), "{l}\nlog: {log}");
    boot.wait_for(VERDICT, STEP).unwrap();
    let (code, status) = boot
        .run("bootcount status --json 2>/dev/null", STEP)
        .unwrap();
    assert_eq!(code, 0, "{status}");
    assert_eq!(json_field(&status, "env_valid"), Some("false"), "{status}");
    assert_eq!(
        json_field(&status, "booted_slot"),
        Some("otafs"),
        "{status}"
    );
    let (code, out) = boot
        .run("bootcount set-primary rootfs && fw-env check", STEP)
        .unwrap();
    assert_eq!(code, 0, "{out}\nlog: {log}");
    boot.send_line("reboot").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "log: {log}");
    let changes = boot.env_changes().join("; ");
    assert!(changes.ends_with("-> valid"), "{changes}");

    let mut boot = robot.boot().unwrap();
    let l = boot.wait_for("zbot-machine: booted slot=", STEP).unwrap();
    assert!(l.contains("slot=rootfs image=rootfs v1"), "{l}\nlog: {log}");
    let healthy = boot.wait_for("bootcount: rootfs is healthy", STEP).unwrap();
    assert!(
        healthy.contains("committed rootfs"),
        "{healthy}\nlog: {log}"
    );
    boot.wait_for(VERDICT, STEP).unwrap();
    boot.send_line("poweroff").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::PowerOff);
}

#[test]
fn env_file_deleted_boots_recovery_and_is_repaired() {
    env_damage_boots_recovery_and_is_repaired("env_file_deleted", |m| {
        m.part(2).remove("/uboot.env").unwrap()
    });
}

#[test]
#[ignore = "about 25 s of QEMU, same path as env_file_deleted; run with --ignored"]
fn env_file_corrupt_boots_recovery_and_is_repaired() {
    env_damage_boots_recovery_and_is_repaired("env_file_corrupt", |m| {
        let mut env = m.env_file().unwrap().unwrap();
        env[100] ^= 0x55;
        m.part(2).write("/uboot.env", &env).unwrap()
    });
}

#[test]
fn json_field_reads_values() {
    let j = r#"{"booted_slot":"rootfs","trial":null,"n":3}"#;
    assert_eq!(json_field(j, "booted_slot"), Some("rootfs"));
    assert_eq!(json_field(j, "trial"), Some("null"));
    assert_eq!(json_field(j, "n"), Some("3"));
    assert_eq!(json_field(j, "x"), None);
}

/// Scenario 7: the card image was `dd`'d to a larger card (the image file grown by 16 MiB):
/// `partctl check` in the running system reports the misplaced backup GPT, `partctl repair`
/// fixes it in place, and the next boot's check is clean.
#[test]
fn grown_card_is_reported_and_repaired_from_the_running_system() {
    let image = MachineImage::shared();
    let mut robot = Machine::new(image, "grown_card_repaired").unwrap();
    let log = robot.log_path().display().to_string();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(robot.disk())
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + (16 << 20)).unwrap();
    drop(f);

    let mut boot = robot.boot().unwrap();
    boot.wait_for(VERDICT, STEP)
        .unwrap_or_else(|e| panic!("{e}\nlog: {log}"));
    let (code, out) = boot.run("partctl check /dev/vda", STEP).unwrap();
    assert_eq!(code, 1, "{out}\nlog: {log}");
    assert!(out.contains("backup-not-at-end"), "{out}\nlog: {log}");
    let (code, out) = boot
        .run(
            "partctl repair /dev/vda --layout /etc/zbot-layout.toml --backup /data/gpt-backup.bin --yes",
            STEP,
        )
        .unwrap();
    assert_eq!(code, 0, "{out}\nlog: {log}");
    boot.send_line("reboot").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "log: {log}");
    assert!(boot.env_changes().is_empty(), "{:?}", boot.env_changes());

    let mut boot = robot.boot().unwrap();
    let l = boot.wait_for("zbot-machine: booted slot=", STEP).unwrap();
    assert!(l.contains("slot=rootfs"), "{l}\nlog: {log}");
    boot.wait_for(VERDICT, STEP).unwrap();
    let (code, out) = boot.run("partctl check /dev/vda", STEP).unwrap();
    assert_eq!(code, 0, "{out}\nlog: {log}");
    boot.send_line("poweroff").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::PowerOff);
}
