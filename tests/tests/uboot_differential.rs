//! The generated hush script, run by the real (sandbox) U-Boot 2023.01, agrees with the Rust
//! engine `bootcount::bootloader_step` on every case: the chosen slot, `bootargs`, whether
//! `saveenv` ran (counted on the console) and what it wrote (read back from the ext4 file).
//!
//! Default run: the bounded enumeration (see `zbot_tests::differential::enumeration`) plus
//! `ZBOT_DIFF_RANDOM` (default 5000) random cases over the rootfs+otafs and A/B slot files,
//! drawn from proptest strategies by a runner seeded with `ZBOT_DIFF_SEED` (a failing case is
//! shrunk with its proptest value tree). Full campaign (documented in docs/uboot-scripts.md):
//!
//! ```sh
//! ZBOT_DIFF_RANDOM=100000 ZBOT_DIFF_SEED=7 cargo test -p zbot-tests --release \
//!     --test uboot_differential -- --nocapture
//! ```

use std::time::Instant;
use zbot_tests::differential::{
    base_env, campaign_disk, cases_strategy, compare, configs, describe, enumeration, expected,
    random_cases, run_batch, seeded_runner, shrink,
};

#[test]
fn generated_script_agrees_with_the_engine() {
    let cfgs = configs();
    let bases: Vec<_> = cfgs.iter().map(|(_, g)| base_env(g)).collect();
    let mut cases: Vec<(usize, fw_env::Vars)> =
        enumeration(&bases[0]).into_iter().map(|v| (0, v)).collect();
    let enumerated = cases.len();
    let seed = zbot_tests::env_number::<usize>("ZBOT_DIFF_SEED", 20261124) as u64;
    let random = zbot_tests::env_number::<usize>("ZBOT_DIFF_RANDOM", 5000);
    let mut runner = seeded_runner(seed);
    let mut trees = random_cases(&mut runner, &cases_strategy(&cfgs, &bases), random);
    cases.extend(trees.iter().map(|t| {
        let c = t.current();
        (c.cfg, c.stored)
    }));
    let batch = zbot_tests::env_number::<usize>("ZBOT_DIFF_BATCH", 1500);

    let dir = tempfile::tempdir().unwrap();
    let (disk, init) = campaign_disk(dir.path()).unwrap();
    let t0 = Instant::now();
    let mut prev_file = init;
    let mut failures = Vec::new();
    let mut saves = 0;
    for (bi, chunk) in cases.chunks(batch).enumerate() {
        let envs: Vec<_> = chunk.iter().map(|(_, v)| v.clone()).collect();
        let got = run_batch(&disk, dir.path(), &envs).unwrap();
        for (j, ((c, stored), o)) in chunk.iter().zip(&got).enumerate() {
            let exp = expected(&cfgs[*c].0, stored);
            saves += o.saves;
            if let Err(e) = compare(&exp, o, Some(&prev_file)) {
                failures.push((bi * batch + j, *c, stored.clone(), e));
            }
            if let Some(f) = &o.file {
                prev_file = f.clone();
            }
        }
    }
    let elapsed = t0.elapsed();
    eprintln!(
        "differential: {} cases ({enumerated} enumerated, {random} random, seed {seed}) in {:.1?}: \
         {} agree, {} disagree; {saves} saveenv calls",
        cases.len(),
        elapsed,
        cases.len() - failures.len(),
        failures.len()
    );
    if let Some((i, c, stored, e)) = failures.first() {
        let sdir = tempfile::tempdir().unwrap();
        let (sdisk, _) = campaign_disk(sdir.path()).unwrap();
        let mut msg = format!(
            "{} of {} cases disagree. First: case {i} ({}): {e}\n  env: {}\n",
            failures.len(),
            cases.len(),
            if *c == 0 {
                "slots.toml"
            } else {
                "slots-ab.toml"
            },
            describe(stored, &bases[*c])
        );
        // An enumerated case is its own reproducer; a random one is shrunk by its value tree.
        let shrunk = match i.checked_sub(enumerated) {
            Some(r) => shrink(&sdisk, sdir.path(), &cfgs, trees[r].as_mut(), 200),
            None => Err(zbot_tests::HelperError(
                "an enumerated case: not shrunk".into(),
            )),
        };
        match shrunk {
            Ok((min, exp, got)) => {
                msg += &format!(
                    "  minimal reproducer: {}\n  engine: {} -> slot {}, bootargs {:?}, saves {:?}\n  U-Boot: {}\n",
                    describe(&min.stored, &bases[*c]),
                    exp.explain,
                    exp.slot,
                    exp.bootargs,
                    exp.saved.as_ref().map(|s| describe(s, &bases[*c])),
                    got.summary(&bases[*c])
                )
            }
            Err(e) => msg += &format!("  (shrinking failed: {e})\n"),
        }
        for (i, _, stored, e) in failures.iter().skip(1).take(5) {
            msg += &format!("case {i}: {e}\n  env: {}\n", describe(stored, &bases[0]));
        }
        panic!("{msg}");
    }
}
