//! Measurements for docs/uboot-scripts.md (not timed tests: ignored by default). Run with
//!
//! ```sh
//! cargo test -p zbot-tests --release --test uboot_measure -- --ignored --nocapture
//! ```
//!
//! - env writes and changed disk sectors per healthy boot and per trial boot (QEMU);
//! - the time the policy script adds to a boot: `run zbot-policy` N times in one QEMU boot
//!   against the same loop without it, divided by N (TCG, so an emulated-CPU figure).

use std::time::{Duration, Instant};
use zbot_tests::bootloop::Robot;

const SLOTS: &str = bootcount::slots::BUILTIN_TOML;

fn changed_sectors(a: &[u8], b: &[u8]) -> usize {
    a.chunks(512)
        .zip(b.chunks(512))
        .filter(|(x, y)| x != y)
        .count()
}

#[test]
#[ignore = "measurement, run by hand (see the file's doc)"]
fn measure_env_writes_per_boot() {
    let r = Robot::new(SLOTS, &[("next_boot", Some("rootfs"))]).unwrap();
    let img = || std::fs::read(r.disk.path()).unwrap();
    let before = img();
    let b = r.boot().unwrap();
    let after = img();
    eprintln!(
        "healthy boot: saveenv x{}, {} sectors of the disk image changed",
        b.saves,
        changed_sectors(&before, &after)
    );
    let (code, _, err) = r
        .bootcount(
            "console=ttyS0,115200 root=/dev/mmcblk0p3 rootwait rw zbot.slot=otafs",
            &["trial", "rootfs"],
        )
        .unwrap();
    assert_eq!(code, 0, "{err}");
    for attempt in 1..=4 {
        let before = img();
        let b = r.boot().unwrap();
        let after = img();
        eprintln!(
            "trial boot {attempt} (slot {:?}): saveenv x{}, {} sectors changed",
            b.slot,
            b.saves,
            changed_sectors(&before, &after)
        );
    }
}

fn boot_time(r: &Robot, runs: usize) -> Duration {
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let b = r.boot_raw().unwrap();
            assert!(b.contains("@@measure-done"), "{b}");
            t.elapsed()
        })
        .collect();
    v.sort();
    v[runs / 2]
}

#[test]
#[ignore = "measurement, run by hand (see the file's doc)"]
fn measure_script_time_in_qemu() {
    let n = 200;
    let list: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let list = list.join(" ");
    let with = format!("for i in {list}; do run zbot-policy; done; echo @@measure-done; poweroff");
    let without =
        format!("for i in {list}; do run zbot-bootm; done; echo @@measure-done; poweroff");
    let mk = |cmd: &str| {
        Robot::new(
            SLOTS,
            &[
                ("next_boot", Some("rootfs")),
                ("bootcmd", Some(cmd)),
                ("zbot-bootm", Some("echo")),
            ],
        )
        .unwrap()
    };
    let (a, b) = (mk(&with), mk(&without));
    let ta = boot_time(&a, 7);
    let tb = boot_time(&b, 7);
    let per = ta.saturating_sub(tb) / n as u32;
    eprintln!(
        "QEMU (TCG) boot with {n} policy runs: {ta:.1?}, without: {tb:.1?} (medians of 7): \
         the policy (healthy path, incl. root/bootargs) costs {per:.2?} per boot"
    );
}
