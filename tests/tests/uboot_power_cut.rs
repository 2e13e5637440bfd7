//! Power cuts during U-Boot's own `saveenv` (ext4: delete `/uboot.env`, then write it again).
//! QEMU is killed (SIGKILL) a seeded random delay after U-Boot prints "Saving Environment to";
//! every write QEMU issued before that is in the image, nothing after. After each cut the
//! robot boots again and must boot a valid slot, the one the engine picks from whatever U-Boot
//! then loads (the old env, the new env, or its compiled-in default when the file is gone or
//! torn), and never more trial attempts than the limit.
//!
//! Default: `ZBOT_CUTS` = 100 cuts, seed `ZBOT_CUT_SEED`. The delays are reproducible from the
//! seed; where exactly a delay lands in U-Boot's save shifts a little with host load, so the
//! counts per outcome vary slightly between runs (the invariants may not). Full campaign:
//!
//! ```sh
//! ZBOT_CUTS=1000 cargo test -p zbot-tests --release --test uboot_power_cut -- --nocapture
//! ```

use bootcount::bootloader_step;
use fw_env::codec::uboot_view;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use zbot_tests::bootloop::{classify, loaded_vars, FileState, Robot};
use zbot_tests::cuts::seeded_cuts;
use zbot_tests::loops::SAVE_SCENARIOS as SCENARIOS;

/// A scenario: its name and the variables set on top of the default environment.
#[test]
fn power_cut_during_saveenv_still_boots_a_valid_slot() {
    let cuts = zbot_tests::env_number::<usize>("ZBOT_CUTS", 100);
    let seed = zbot_tests::env_number::<usize>("ZBOT_CUT_SEED", 4242) as u64;
    // 150 ms: the field's 192 KiB save (ENV_SIZE) takes this long under QEMU; 15 ms, enough for
    // 16 KiB, no longer reached its writes (all 10 cuts of a check run left the old file).
    let max_delay_us = zbot_tests::env_number::<usize>("ZBOT_CUT_MAX_US", 150_000) as u64;
    let slots = bootcount::slots::BUILTIN_TOML;
    let r = Robot::new(slots, &[]).unwrap();
    let disk = r.disk.path().to_path_buf();
    // One pristine image per scenario; each cut starts from a copy.
    let mut pristine = Vec::new();
    for (k, (_, ov)) in SCENARIOS.iter().enumerate() {
        let mut v = r.default_vars();
        for (n, val) in *ov {
            match val {
                Some(x) => v.set(n.as_bytes().to_vec(), x.as_bytes().to_vec()).unwrap(),
                None => {
                    v.remove(n);
                }
            }
        }
        r.write_env(&v).unwrap();
        let p = r.path().join(format!("pristine{k}.img"));
        std::fs::copy(&disk, &p).unwrap();
        let bytes = r.env_bytes().unwrap().unwrap();
        let vars = loaded_vars(&bytes).unwrap();
        pristine.push((p, bytes, vars));
    }

    let mut by_state: BTreeMap<(&str, FileState, bool), usize> = BTreeMap::new();
    let mut dirty_fs = 0;
    let mut dirty_after_next_boot = 0;
    let mut finished_before_kill = 0;
    let mut failures = Vec::new();
    let t0 = Instant::now();
    for cut in seeded_cuts(
        seed,
        cuts,
        SCENARIOS.len(),
        Duration::from_micros(max_delay_us),
    ) {
        let (i, k, delay) = (cut.index, cut.choice, cut.delay);
        let (img, old, old_vars) = &pristine[k];
        std::fs::copy(img, &disk).unwrap();
        let d = bootloader_step(&r.cfg, old_vars);
        let mut new_vars = old_vars.clone();
        new_vars.apply(&d.changes).unwrap();

        let cut = r.boot_and_cut(delay).unwrap();
        assert!(
            cut.save_started,
            "cut {i}: U-Boot never started saveenv:\n{}",
            cut.output
        );
        if !cut.killed {
            finished_before_kill += 1;
        }
        let after_cut = r.env_bytes().unwrap();
        let state = classify(after_cut.as_deref(), old, old_vars, &new_vars);
        let fsck = r.fsck();
        *by_state
            .entry((SCENARIOS[k].0, state, fsck.is_some()))
            .or_default() += 1;
        if fsck.is_some() {
            dirty_fs += 1;
        }

        // The next power-on: what does U-Boot load, what does it boot?
        let loaded = after_cut
            .as_deref()
            .and_then(loaded_vars)
            .unwrap_or_else(|| uboot_view(&r.default_vars()));
        let want = bootloader_step(&r.cfg, &loaded);
        let b = r.boot().unwrap();
        let why = format!(
            "cut {i} ({}, {delay:?} after the save started, file {state:?}, fsck {}): ",
            SCENARIOS[k].0,
            if fsck.is_some() { "dirty" } else { "clean" }
        );
        let allowed: Vec<&str> = match state {
            FileState::Old => vec![r.cfg.name(d.slot)],
            FileState::New => vec![r.cfg.name(bootloader_step(&r.cfg, &new_vars).slot)],
            FileState::Missing | FileState::Corrupt => vec!["otafs"],
            FileState::Other => vec![],
        };
        if state == FileState::Other {
            failures.push(format!(
                "{why}a valid env that is neither the old nor the new one"
            ));
        }
        match b.slot.as_deref() {
            Some(s) if s == r.cfg.name(want.slot) && allowed.contains(&s) => {}
            other => failures.push(format!(
                "{why}booted {other:?}, engine on the loaded env says {} (allowed {allowed:?})\n{}",
                r.cfg.name(want.slot),
                b.output
            )),
        }
        if b.saves != usize::from(!want.changes.is_empty()) {
            failures.push(format!(
                "{why}saveenv x{} after the cut, engine says {}",
                b.saves,
                want.changes.len()
            ));
        }
        let after_boot = r.env_bytes().unwrap();
        let after_vars = after_boot.as_deref().and_then(loaded_vars);
        if b.saves > 0 && after_vars.is_none() {
            failures.push(format!(
                "{why}the save after the cut did not leave a valid env"
            ));
        }
        if r.fsck().is_some() {
            dirty_after_next_boot += 1;
        }
        // Never more attempts than the limit: the counter U-Boot now holds is at most 3.
        if let Some(v) = after_vars {
            if let Some(t) = v.get("zbot_tries") {
                if t.parse::<u8>().map_or(true, |n| n > 3) {
                    failures.push(format!("{why}zbot_tries={t} beyond the limit"));
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    eprintln!(
        "power cuts: {cuts} cuts (seed {seed}, delays 0..{max_delay_us} us after \"Saving Environment\") in {elapsed:.1?}; \
         QEMU had already finished in {finished_before_kill}; ext4 left dirty (e2fsck -fn) in {dirty_fs}, \
         still dirty after the next boot in {dirty_after_next_boot}"
    );
    for ((sc, st, dirty), n) in &by_state {
        eprintln!(
            "  {sc:14} file {st:?}, e2fsck {}: {n}",
            if *dirty { "dirty" } else { "clean" }
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {cuts} cuts broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
