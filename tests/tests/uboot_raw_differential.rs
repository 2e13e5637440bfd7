//! A sample of the differential's enumeration on the raw-backend U-Boot (docs/env-backend.md,
//! "The policy on the raw backend"): the cases of `zbot_tests::differential::enumeration`, the
//! engine's `expected` and the differential's `compare`, run by the qemu-x86 U-Boot with the
//! redundant raw env (`qemu-x86-mmc-zbot`) instead of the sandbox's ext4 file.
//!
//! One QEMU boot runs the whole sample, as the sandbox differential runs a batch in one U-Boot:
//! the card (the raw test card, grown to a power of two with room after it) holds each case's
//! env data at 4 MiB + 16 KiB x i and a driver script; the env in the copies has
//! `bootcmd` = read the script, `source` it. For each case the script reads the case's data,
//! `env import -d -b` (the whole env replaced, as the sandbox driver does), `run zbot-policy`
//! (whose `saveenv` writes a raw copy), prints the slot and bootargs, and copies both raw copies
//! to a per-case snapshot area on the card. The host then compares, per case: slot, bootargs,
//! `saveenv` calls, the final command run once, and the env U-Boot would load from the
//! snapshot's copies (its rule, `bootloop::uboot_choice`) against the engine's saved env; and,
//! beyond `compare`, that a save rewrote only the copy U-Boot had just loaded's other one.
//!
//! Default `ZBOT_RAW_DIFF` = 60 cases, spread evenly over the enumeration from a seeded start
//! (`ZBOT_RAW_DIFF_SEED`); more, e.g. `ZBOT_RAW_DIFF=150` (the 64 MiB card's room).

use fw_env::codec::{self, Layout};
use proptest::strategy::{Strategy, ValueTree};
use std::time::Instant;
use zbot_tests::bootloop::{uboot_choice, Backend, Robot};
use zbot_tests::differential::{
    base_env, case_outcome, compare, configs, describe, enumeration, expected, seeded_runner,
};
use zbot_tests::ENV_SIZE;

const SECTOR: u64 = 512;
const CASES_AT: u64 = 4 << 20;
const CASE_SLOT: u64 = 16 << 10;
const SCRIPT_AT: u64 = 3 << 20;
const SNAP_AT: u64 = 8 << 20;

#[test]
fn raw_backend_uboot_agrees_with_the_engine_on_a_sample_of_the_enumeration() {
    let n = zbot_tests::env_number::<usize>("ZBOT_RAW_DIFF", 60);
    let seed = zbot_tests::env_number::<usize>("ZBOT_RAW_DIFF_SEED", 20261201) as u64;
    let cfgs = configs();
    let (cfg, gen) = &cfgs[0];
    let base = base_env(gen);
    let all = enumeration(&base);
    // Where the stride starts in the enumeration, drawn from the seed.
    let start = (0..all.len())
        .new_tree(&mut seeded_runner(seed))
        .expect("a range never rejects")
        .current();
    let stride = (all.len() / n.max(1)).max(1);
    let cases: Vec<_> = (0..n.min(all.len()))
        .map(|i| all[(start + i * stride) % all.len()].clone())
        .collect();

    let r = Robot::with_backend(Backend::Raw, bootcount::slots::BUILTIN_TOML, &[]).unwrap();
    let copies = r.copies.unwrap();
    assert_eq!(
        copies[1],
        copies[0] + ENV_SIZE as u64,
        "the copies are adjacent"
    );
    let snap_len = 2 * ENV_SIZE as u64;
    let need = SNAP_AT + snap_len * cases.len() as u64;
    let size = need.next_power_of_two(); // QEMU's SD card wants a power of two
    std::fs::OpenOptions::new()
        .write(true)
        .open(r.disk.path())
        .unwrap()
        .set_len(size)
        .unwrap();
    assert!(cases.len() as u64 * CASE_SLOT <= SNAP_AT - CASES_AT);

    // The driver script, one line per case.
    let hex = |b: u64| format!("{:#x}", b / SECTOR);
    let mut script = String::new();
    for (i, c) in cases.iter().enumerate() {
        let data = codec::encode_data(c, c.encoded_len()).unwrap();
        assert!(data.len() as u64 <= CASE_SLOT);
        let at = CASES_AT + CASE_SLOT * i as u64;
        r.write_at(at, &data).unwrap();
        script.push_str(&format!(
            "echo @@case {i}; HUSH_NO_EVAL=0; mmc read 0x3000000 {} {}; \
             env import -d -b 0x3000000 {:#x}; run zbot-policy; HUSH_NO_EVAL=0; \
             echo @@slot ${{zb_slot}}; printenv bootargs; mmc read 0x4000000 {} {}; \
             mmc write 0x4000000 {} {}; echo @@end {i}\n",
            hex(at),
            hex(CASE_SLOT),
            data.len(),
            hex(copies[0]),
            hex(snap_len),
            hex(SNAP_AT + snap_len * i as u64),
            hex(snap_len),
        ));
    }
    script.push_str("echo @@done; reset\n");
    let img = uboot_scripts::image::script_image(script.as_bytes(), "raw-diff", 0);
    assert!(img.len() as u64 <= CASES_AT - SCRIPT_AT);
    r.write_at(SCRIPT_AT, &img).unwrap();
    let mut boot_env = base.clone();
    boot_env
        .set(
            b"bootcmd".to_vec(),
            format!(
                "mmc dev 0; mmc read 0x2000000 {} {}; source 0x2000000",
                hex(SCRIPT_AT),
                hex((img.len() as u64).div_ceil(SECTOR) * SECTOR)
            )
            .into_bytes(),
        )
        .unwrap();
    r.write_env(&boot_env).unwrap();
    let before = std::fs::read(r.disk.path()).unwrap();

    let t0 = Instant::now();
    let out = r.boot_raw().unwrap();
    let elapsed = t0.elapsed();
    assert!(out.contains("@@done"), "the driver did not finish:\n{out}");
    let card = std::fs::read(r.disk.path()).unwrap();

    // The copies before the first case: what U-Boot loaded at power-on.
    let c = |img: &[u8], o: u64| img[o as usize..o as usize + ENV_SIZE].to_vec();
    let mut prev = (c(&before, copies[0]), c(&before, copies[1]));
    let single = |a: &[u8], b: &[u8]| {
        uboot_choice(a, b).map(|(j, ..)| {
            let d = codec::decode(if j == 0 { a } else { b }, Layout::Redundant).unwrap();
            codec::encode(&d.vars, ENV_SIZE, Layout::Single, 0).unwrap()
        })
    };
    let mut failures = Vec::new();
    let mut saves = 0;
    for (i, stored) in cases.iter().enumerate() {
        let mut o =
            case_outcome(&out, i).unwrap_or_else(|| panic!("no output for case {i}:\n{out}"));
        let snap = SNAP_AT + snap_len * i as u64;
        let now = (c(&card, snap), c(&card, snap + ENV_SIZE as u64));
        o.file = single(&now.0, &now.1);
        saves += o.saves;
        let exp = expected(cfg, stored);
        let prev_file = single(&prev.0, &prev.1);
        let mut res = compare(&exp, &o, prev_file.as_deref());
        // The raw backend's own rule: a save rewrites only the copy U-Boot would not load.
        if res.is_ok() && o.saves == 1 {
            let (active, ..) = uboot_choice(&prev.0, &prev.1).unwrap();
            let kept = if active == 0 { &now.0 } else { &now.1 };
            let old = if active == 0 { &prev.0 } else { &prev.1 };
            if kept != old {
                res = Err("the save rewrote the copy U-Boot had loaded".into());
            }
        }
        if let Err(e) = res {
            failures.push(format!("case {i}: {e}\n  env: {}", describe(stored, &base)));
        }
        prev = now;
    }
    eprintln!(
        "raw differential: {} of {} enumerated cases (start {start}, stride {stride}, seed {seed}) \
         in one boot of {elapsed:.1?}: {} agree, {} disagree; {saves} saveenv calls",
        cases.len(),
        all.len(),
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
