//! The chosen backend under power cuts on real U-Boot (docs/env-backend.md): U-Boot's standard
//! redundant environment in raw blocks (`CONFIG_ENV_IS_IN_MMC` + `CONFIG_SYS_REDUNDAND_ENVIRONMENT`),
//! two copies of the field's 192 KiB (`ENV_SIZE`) right after the 256K ext4 env filesystem, on
//! an SD card behind QEMU's `sdhci-pci` (`qemu/build-uboot.sh qemu-x86-mmc`,
//! `qemu/configs/qemu-x86-env-mmc-redund.config`).
//!
//! The build's bootcmd loads the env, prints `gen`, saves `gen=new` and resets (`-no-reboot`
//! ends QEMU). Each cut: a fresh copy of the pristine card (copy 1 `gen=older`, flags 1; copy 2
//! `gen=old`, flags 2: U-Boot loads copy 2 and its save overwrites copy 1), QEMU is SIGKILLed a
//! seeded delay after U-Boot prints `@@saving`, its echo just before `saveenv`; every write QEMU issued before is
//! in the image file, nothing after. The next boot prints what U-Boot then loads: `old`, `new`,
//! or nothing (the env lost). Delays are uniform in 0..(1.25 x the median complete save); cuts
//! go on (up to 4 x `ZBOT_ENV_CUTS`) until half of `ZBOT_ENV_CUTS` landed inside the save.
//!
//! Default `ZBOT_ENV_CUTS` = 12 (about 2 minutes with the replay); the campaign:
//! ```sh
//! ZBOT_ENV_CUTS=300 cargo test -p zbot-tests --release --test env_backend_mmc -- --nocapture
//! ```
//! Also measured: the save's time in QEMU, and what it writes: exactly the inactive copy (the
//! card compared before and after), whose every sector-prefix is then loaded by the real U-Boot
//! (`ZBOT_ENV_REPLAY` points, default 8, `all` = every one of its 384 sectors).

use fw_env::codec::{encode, Layout};
use fw_env::Vars;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zbot_tests::cuts::{replay_points, replay_prefixes, seeded_cuts};
use zbot_tests::{find_program, DiskImage, Peer, ENV_SIZE};

fn raw_card() -> partctl::layout::Layout {
    partctl::layout::Layout::from_toml(zbot_tests::TEST_CARD_RAW_LAYOUT).unwrap()
}

/// The env of the pristine copies: `gen`, the build's bootcmd, and 40 KiB of padding variables
/// sorted after `gen`, so that a change of `gen`'s length moves about 80 sectors of the copy.
fn vars(gen: &str) -> Vars {
    let mut v = Vars::new();
    for i in 0..40 {
        v.set(
            format!("zb_pad{i}").into_bytes(),
            "x".repeat(1000 + i).into_bytes(),
        )
        .unwrap();
    }
    v.set(b"gen".to_vec(), gen.as_bytes().to_vec()).unwrap();
    v.set(b"bootdelay".to_vec(), b"0".to_vec()).unwrap();
    v.set(
        b"bootcmd".to_vec(),
        zbot_tests::mmc_redund_bootcmd().into_bytes(),
    )
    .unwrap();
    v
}

struct Boot {
    /// `gen` as U-Boot loaded it (`None`: the env was lost, defaults in place).
    loaded: Option<String>,
    save_started: bool,
    save_time: Option<Duration>,
    output: String,
}

fn find(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

fn boot(card: &Path, cut: Option<Duration>) -> Boot {
    let qemu =
        find_program("qemu-system-x86_64").expect("qemu-system-x86_64 (scripts/setup-debian.sh)");
    let mut child = Command::new(qemu)
        .args(["-M", "pc", "-m", "256M", "-smp", "1", "-accel", "tcg"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-no-reboot", "-nic", "none", "-bios"])
        .arg(Peer::QemuX86MmcUboot.require())
        .args(["-device", "sdhci-pci", "-drive"])
        .arg(format!("if=none,id=sd,format=raw,file={}", card.display()))
        .args(["-device", "sd-card,drive=sd"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(u8, Instant)>();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (mut s, mut e) = (false, false);
        while let Ok(n) = so.read(&mut buf) {
            if n == 0 {
                break;
            }
            let now = Instant::now();
            seen.extend_from_slice(&buf[..n]);
            if !s && find(&seen, b"@@saving") {
                s = true;
                let _ = tx.send((0, now));
            }
            if !e && find(&seen, b"@@saved") {
                e = true;
                let _ = tx.send((1, now));
            }
        }
        String::from_utf8_lossy(&seen).replace('\r', "")
    });
    let start = rx
        .recv_timeout(Duration::from_secs(120))
        .ok()
        .map(|(_, t)| t);
    match (start, cut) {
        (Some(t), Some(d)) => {
            let until = t + d;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let _ = child.kill();
        }
        (None, _) => {
            let _ = child.kill();
        }
        // No cut: wait for the reset that ends QEMU (bounded).
        (Some(_), None) => {
            let deadline = Instant::now() + Duration::from_secs(120);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
        }
    }
    child.wait().unwrap();
    let output = reader.join().unwrap();
    let end = rx.try_iter().find(|(k, _)| *k == 1).map(|(_, t)| t);
    let loaded = output
        .split("@@loaded")
        .nth(1)
        .and_then(|a| a.lines().find_map(|l| l.trim().strip_prefix("gen=")))
        .map(String::from);
    Boot {
        loaded,
        save_started: start.is_some(),
        save_time: start.zip(end).map(|(s, e)| e - s),
        output,
    }
}

/// What the next power-on loads, without keeping its own save: boot a scratch copy.
fn loaded_after(card: &Path) -> Option<String> {
    let probe = card.with_extension("probe");
    std::fs::copy(card, &probe).unwrap();
    let b = boot(&probe, None);
    assert!(
        b.output.contains("@@loaded"),
        "the probe boot did not reach the env load:\n{}",
        b.output
    );
    b.loaded
}

#[test]
fn raw_redundant_env_survives_saveenv_cuts() {
    let cuts = zbot_tests::env_number::<usize>("ZBOT_ENV_CUTS", 12);
    let seed = zbot_tests::env_number::<usize>("ZBOT_ENV_CUT_SEED", 1414) as u64;
    let dir = tempfile::tempdir().unwrap();
    // The raw test card made by partctl (tests/src/test-card-raw.toml; its copies' offsets are
    // the build's, tests/tests/card.rs), the copies then written as the scenario needs.
    let card = raw_card();
    let offsets = partctl::emit::raw_copies(&card).unwrap();
    let disk = DiskImage::create_from(dir.path().join("pristine.img"), &card).unwrap();
    let mut img = std::fs::read(disk.path()).unwrap();
    for (k, (gen, flags)) in [("older", 1u8), ("old", 2u8)].into_iter().enumerate() {
        let c = encode(&vars(gen), ENV_SIZE, Layout::Redundant, flags).unwrap();
        let o = offsets[k] as usize;
        img[o..o + ENV_SIZE].copy_from_slice(&c);
    }
    let pristine = dir.path().join("pristine-redund.img");
    std::fs::write(&pristine, &img).unwrap();
    let work = dir.path().join("work.img");

    // The complete save: time, bytes changed, and the new env loaded after it.
    let mut times = Vec::new();
    for _ in 0..3 {
        std::fs::copy(&pristine, &work).unwrap();
        let b = boot(&work, None);
        assert_eq!(b.loaded.as_deref(), Some("old"), "{}", b.output);
        times.push(
            b.save_time
                .unwrap_or_else(|| panic!("no complete save:\n{}", b.output)),
        );
        assert_eq!(loaded_after(&work).as_deref(), Some("new"));
    }
    let after = std::fs::read(&work).unwrap();
    let changed_sectors = img
        .chunks(512)
        .zip(after.chunks(512))
        .filter(|(a, b)| a != b)
        .count();
    // U-Boot's save wrote the inactive copy (copy 0, flags 1 < 2) and nothing else on the card:
    // env/mmc.c writes the whole copy, CONFIG_ENV_SIZE bytes, in one block write.
    let o0 = offsets[0] as usize;
    let diff_outside = img
        .iter()
        .zip(&after)
        .enumerate()
        .any(|(i, (a, b))| a != b && !(o0..o0 + ENV_SIZE).contains(&i));
    assert!(
        !diff_outside,
        "the save changed the card outside the inactive copy"
    );
    assert_eq!(
        after[o0 + 4],
        3,
        "the new copy's flags: the active one's + 1"
    );

    // Every block of that write: the card cut after k of its 384 sectors (sector-atomic, in
    // order), loaded by the real U-Boot. `ZBOT_ENV_REPLAY` points (default 8; `all`: 385).
    let sectors = ENV_SIZE / 512;
    let (want, points) = replay_points(sectors, 8, true);
    // The save is one write of the whole inactive copy.
    let writes = [(o0 as u64, after[o0..o0 + ENV_SIZE].to_vec())];
    let [mut r_old, mut r_new] = [0usize; 2];
    replay_prefixes(&img, &writes, &points, &work, |k| {
        // Old, or new once every sector that differs is written (the padding after the
        // variables is the same zeros in both copies); never lost.
        let cut = std::fs::read(&work).unwrap();
        let complete = cut[o0..o0 + ENV_SIZE] == after[o0..o0 + ENV_SIZE];
        match loaded_after(&work).as_deref() {
            Some("old") if !complete => r_old += 1,
            Some("new") if complete => r_new += 1,
            other => panic!("cut after {k} of {sectors} sectors of the copy (complete: {complete}): U-Boot loads {other:?}"),
        }
    });
    eprintln!(
        "raw redundant env, every block of the save (ZBOT_ENV_REPLAY={want}): {} cut points, old {r_old}, new {r_new} (every changed sector written), LOST 0; \
         bytes written per save {ENV_SIZE} (one copy, {sectors} sectors)",
        points.len()
    );
    // The range comes from the median complete save (one slow boot under load must not
    // stretch it), and the cuts go on, up to 4 x `cuts`, until half of `cuts` landed inside
    // the save: how many land there depends on the host's load, what the test proves must not.
    times.sort();
    let median = times[times.len() / 2];
    let range_us = (median.as_micros() as u64 * 5 / 4).max(1);
    let want_inside = cuts.div_ceil(2);

    let [mut old, mut new, mut lost, mut inside, mut tried] = [0usize; 5];
    let mut failures = Vec::new();
    for cut in seeded_cuts(seed, cuts * 4, 1, Duration::from_micros(range_us)) {
        if tried >= cuts && inside >= want_inside {
            break;
        }
        tried += 1;
        let (i, delay) = (cut.index, cut.delay);
        std::fs::copy(&pristine, &work).unwrap();
        let b = boot(&work, Some(delay));
        assert!(b.save_started, "cut {i}: no save:\n{}", b.output);
        if b.save_time.is_none() {
            inside += 1;
        }
        match loaded_after(&work).as_deref() {
            Some("old") => old += 1,
            Some("new") => new += 1,
            None => {
                lost += 1;
                failures.push(format!("cut {i} ({delay:?}): the env was lost"));
            }
            Some(x) => failures.push(format!("cut {i} ({delay:?}): loaded gen={x}")),
        }
    }
    eprintln!(
        "raw redundant env on SD (qemu-x86, sdhci-pci): {cuts} cuts (seed {seed}, delays 0..{range_us} us), env {ENV_SIZE:#x} x 2\n  \
         {tried} cuts run: old {old}  new {new}  LOST {lost}  killed inside the save {inside}; complete save {:?} (of {times:?}); \
         card sectors changed per save {changed_sectors} ({} bytes)",
        times[0],
        changed_sectors * 512
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        inside >= want_inside,
        "only {inside} of {tried} cuts landed inside the save (wanted {want_inside}): the cut range is wrong"
    );
}
