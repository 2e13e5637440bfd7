//! Power cuts: the writer is crashed at every named point of a write (and killed at random
//! instants), in every storage mode; afterwards the environment must read as the old one or
//! the new one, never as a corrupt or default one. The only exception is the one the docs
//! state: a single copy written in place, torn mid-write, is detected as corrupt.
//!
//! A process crash keeps what was handed to the kernel; losing the page cache too is what
//! the QEMU power-cut campaigns add (`qemu/`).

mod common;
use common::*;
use fw_env::codec::Layout;
use fw_env::fault::POINTS;

use std::path::PathBuf;
use std::time::Duration;

/// One storage mode: how to lay out the old environment and the config describing it.
struct Mode {
    name: &'static str,
    /// Files to create with their content, and the config text.
    setup: fn(&Case) -> String,
    /// Whether a torn in-place write of the only copy is allowed to corrupt it.
    single_in_place: bool,
}

const OLD: &str = "old-value";
/// Longer than a sector, so a torn in-place write mixes old and new sectors.
fn new_value() -> String {
    format!("new-{}", "n".repeat(700))
}

fn old_vars() -> Vec<(&'static str, &'static str)> {
    vec![("a", OLD), ("next_boot", "otafs")]
}

fn big_image(case: &Case, copies: &[(usize, Vec<u8>)]) -> PathBuf {
    let img = case.path("disk.img");
    let mut bytes = vec![0u8; 2 << 20];
    for (off, b) in copies {
        bytes[*off..*off + b.len()].copy_from_slice(b);
    }
    std::fs::write(&img, bytes).unwrap();
    img
}

const MODES: &[Mode] = &[
    Mode {
        name: "env file, one copy (replace)",
        setup: |case| {
            let env = case.path("uboot.env");
            std::fs::write(&env, image(&old_vars(), Layout::Single, 0)).unwrap();
            format!("{} 0 0x4000\n", env.display())
        },
        single_in_place: false,
    },
    Mode {
        name: "env file, two copies in one file (replace)",
        setup: |case| {
            let env = case.path("uboot.env");
            let mut b = image(&old_vars(), Layout::Redundant, 7);
            b.extend(image(&old_vars(), Layout::Redundant, 6));
            std::fs::write(&env, b).unwrap();
            format!("{0} 0 0x4000\n{0} 0x4000 0x4000\n", env.display())
        },
        single_in_place: false,
    },
    Mode {
        name: "two env files (replace each)",
        setup: |case| {
            let (a, b) = (case.path("uboot.env"), case.path("uboot-redund.env"));
            std::fs::write(&a, image(&old_vars(), Layout::Redundant, 255)).unwrap();
            std::fs::write(&b, image(&old_vars(), Layout::Redundant, 254)).unwrap();
            format!("{} 0 0x4000\n{} 0 0x4000\n", a.display(), b.display())
        },
        single_in_place: false,
    },
    Mode {
        name: "image, two copies at offsets (in place)",
        setup: |case| {
            let img = big_image(
                case,
                &[
                    (0x100000, image(&old_vars(), Layout::Redundant, 0)),
                    (0x104000, image(&old_vars(), Layout::Redundant, 255)),
                ],
            );
            format!("{0} 0x100000 0x4000\n{0} 0x104000 0x4000\n", img.display())
        },
        single_in_place: false,
    },
    Mode {
        name: "image, two copies, negative offsets (in place)",
        setup: |case| {
            let len = 2 << 20;
            let img = big_image(
                case,
                &[
                    (len - 0x8000, image(&old_vars(), Layout::Redundant, 3)),
                    (len - 0x4000, vec![0xff; 0x4000]),
                ],
            );
            format!("{0} -0x8000 0x4000\n{0} -0x4000 0x4000\n", img.display())
        },
        single_in_place: false,
    },
    Mode {
        name: "image, one copy (in place)",
        setup: |case| {
            let img = big_image(case, &[(0x100000, image(&old_vars(), Layout::Single, 0))]);
            format!("{} 0x100000 0x4000\n", img.display())
        },
        single_in_place: true,
    },
];

/// What a fresh reader sees: (value of `a`, whether a valid copy was found).
fn observe(_case: &Case, cfg: &str) -> (Option<String>, bool) {
    let store = fw_env::Store::from_config_file(cfg)
        .unwrap()
        .with_lock_file(None);
    let snap = store.read().expect("readable after a crash");
    (snap.vars.get("a").map(|v| v.into_owned()), snap.is_valid())
}

#[test]
fn crash_at_every_point_in_every_mode_leaves_old_or_new() {
    let mut report = Vec::new();
    for mode in MODES {
        for point in POINTS {
            let case = Case::new();
            let cfg_text = (mode.setup)(&case);
            let cfg = case.config(&cfg_text);
            let cfg = cfg.to_str().unwrap();
            let o = case
                .cmd("fw-env")
                .env("FW_ENV_TEST_CRASH_AT", point)
                .args(["-c", cfg, "set", "a", &new_value()])
                .output()
                .unwrap();
            let crashed = !o.status.success();
            let (value, valid) = observe(&case, cfg);
            let torn_single = mode.single_in_place && *point == "copy-half-written";
            if torn_single {
                assert!(
                    !valid,
                    "{}: a torn single copy must be detected as corrupt",
                    mode.name
                );
                let check = case.run("fw-env", &["-c", cfg, "check"]);
                assert_eq!(check.status.code(), Some(1));
            } else {
                assert!(
                    valid,
                    "{} / {point}: no valid copy after the crash",
                    mode.name
                );
                assert!(
                    value.as_deref() == Some(OLD) || value.as_deref() == Some(new_value().as_str()),
                    "{} / {point}: a = {value:?}",
                    mode.name
                );
                if !crashed {
                    assert_eq!(
                        value.as_deref(),
                        Some(new_value().as_str()),
                        "{} / {point}: completed but not new",
                        mode.name
                    );
                }
                // Whatever survived, the next write succeeds and is the new value.
                let o = case.run("fw-env", &["-c", cfg, "set", "a", "after"]);
                assert!(o.status.success(), "{}", stderr(&o));
                assert_eq!(observe(&case, cfg).0.as_deref(), Some("after"));
            }
            report.push(format!(
                "{:48} {:18} crashed={crashed:5} -> {}",
                mode.name,
                point,
                if torn_single {
                    "corrupt (detected)".into()
                } else if value.as_deref() == Some(OLD) {
                    "old".to_string()
                } else {
                    "new".to_string()
                }
            ));
        }
    }
    // The table is printed for the docs (cargo test -- --nocapture).
    println!("{}", report.join("\n"));
}

#[test]
fn stale_temporary_file_from_a_crash_does_not_pile_up() {
    let case = Case::new();
    let cfg = case.config(&(MODES[0].setup)(&case));
    let cfg = cfg.to_str().unwrap();
    for _ in 0..3 {
        let o = case
            .cmd("fw-env")
            .env("FW_ENV_TEST_CRASH_AT", "temp-synced")
            .args(["-c", cfg, "set", "a", &new_value()])
            .output()
            .unwrap();
        assert!(!o.status.success());
    }
    let temps = std::fs::read_dir(case.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("fw-env-tmp")
        })
        .count();
    assert_eq!(temps, 1, "one fixed temporary name, replaced by each write");
    assert!(case
        .run("fw-env", &["-c", cfg, "set", "a", &new_value()])
        .status
        .success());
    let temps = std::fs::read_dir(case.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("fw-env-tmp")
        })
        .count();
    assert_eq!(temps, 0, "a completed write leaves no temporary file");
}

/// SIGKILL the writer at pseudo-random instants (seeded, reproducible) in every mode.
#[test]
fn random_kills_never_corrupt() {
    let mut seed: u64 = 0x5eed_f00d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut outcomes = [0usize; 2];
    for mode in MODES.iter().filter(|m| !m.single_in_place) {
        let case = Case::new();
        let cfg = case.config(&(mode.setup)(&case));
        let cfg = cfg.to_str().unwrap();
        let mut last_done = OLD.to_string();
        for i in 0..25 {
            let value = format!("v{i}");
            let mut child = case
                .cmd("fw-env")
                .args(["-c", cfg, "set", "a", &value])
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(next() % 3000));
            let _ = child.kill();
            let status = child.wait().unwrap();
            let (seen, valid) = observe(&case, cfg);
            assert!(valid, "{}: no valid copy after kill {i}", mode.name);
            let seen = seen.unwrap();
            assert!(
                seen == last_done || seen == value,
                "{}: a = {seen}, expected {last_done} or {value}",
                mode.name
            );
            if status.success() {
                assert_eq!(seen, value);
            }
            outcomes[(seen == value) as usize] += 1;
            last_done = seen;
        }
    }
    println!(
        "random kills: {} left the old value, {} the new",
        outcomes[0], outcomes[1]
    );
}

/// Partition 2 of a card image, loop-mounted read-write (needs root); unmounted when dropped.
struct Mounted(tempfile::TempDir);

impl Mounted {
    fn new(disk: &zbot_tests::DiskImage) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "ext4", "-o"])
            .arg(format!(
                "loop,offset={},sizelimit={}",
                disk.p2_offset(),
                disk.p2_len()
            ))
            .arg(disk.path())
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "loop-mount of the env partition (needs root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mounted(dir)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// The field's filesystem: the 192 KiB `/uboot.env` in the 256K env partition made by partctl
/// (1 KiB blocks, no journal, 36 KiB free: no room for a dense second copy), loop-mounted. The
/// write mode chosen there is replace (a sparse temporary file), and a crash at every point
/// leaves the old environment or the new one, never a torn one; e2fsck is clean afterwards.
#[test]
fn crash_at_every_point_on_the_field_ext4_leaves_old_or_new() {
    const FIELD_SIZE: usize = 0x30000;
    let case = Case::new();
    let disk = zbot_tests::DiskImage::create(case.path("card.img")).unwrap();
    // The old environment as U-Boot's saveenv writes it (zero padding) and as the card is made
    // (`fw-env mkimage`, like mkenvimage, pads with 0xff): both written densely.
    let text = "a=old-value\nnext_boot=otafs\n";
    let olds = [
        (
            "saveenv",
            fw_env::codec::encode(&vars(&old_vars()), FIELD_SIZE, Layout::Single, 0).unwrap(),
        ),
        (
            "mkimage",
            fw_env::codec::mkimage_from_text(text.as_bytes(), FIELD_SIZE, Layout::Single, 0xff)
                .unwrap(),
        ),
    ];
    disk.write_file("/uboot.env", &olds[0].1).unwrap();
    let mut report = Vec::new();
    {
        let mnt = Mounted::new(&disk);
        let env = mnt.0.path().join("uboot.env");
        let cfg = case.config(&format!("{} 0 {FIELD_SIZE:#x}\n", env.display()));
        let cfg = cfg.to_str().unwrap();
        for (point, (how, old)) in POINTS.iter().flat_map(|p| olds.iter().map(move |o| (p, o))) {
            std::fs::write(&env, old).unwrap();
            let store = fw_env::Store::from_config_file(cfg)
                .unwrap()
                .with_lock_file(None);
            assert_eq!(
                store.read().unwrap().copies[0].write_mode,
                fw_env::storage::WriteMode::Replace,
                "{how}: the field's env file is replaced"
            );
            let o = case
                .cmd("fw-env")
                .env("FW_ENV_TEST_CRASH_AT", point)
                .args(["-c", cfg, "set", "a", &new_value()])
                .output()
                .unwrap();
            let crashed = !o.status.success();
            let (value, valid) = observe(&case, cfg);
            assert!(valid, "{how} / {point}: no valid copy after the crash");
            assert!(
                value.as_deref() == Some(OLD) || value.as_deref() == Some(new_value().as_str()),
                "{how} / {point}: a = {value:?}"
            );
            if !crashed {
                assert_eq!(
                    value.as_deref(),
                    Some(new_value().as_str()),
                    "{how} / {point}"
                );
            }
            let o = case.run("fw-env", &["-c", cfg, "set", "a", "after"]);
            assert!(o.status.success(), "{point}: {}", stderr(&o));
            assert_eq!(observe(&case, cfg).0.as_deref(), Some("after"));
            assert_eq!(std::fs::metadata(&env).unwrap().len(), FIELD_SIZE as u64);
            report.push(format!(
                "field ext4, old by {how:7} {point:18} crashed={crashed:5} -> {}",
                if value.as_deref() == Some(OLD) {
                    "old"
                } else {
                    "new"
                }
            ));
        }
    }
    disk.fsck_p2().expect("e2fsck -fn clean after the crashes");
    println!("{}", report.join("\n"));
}
