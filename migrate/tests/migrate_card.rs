//! The migration on field cards made by `partctl create` (tests/src/field-card.toml), mounted as
//! the robot mounts them (loop devices: run as root), checked by tools independent of it:
//! mtools, debugfs and e2fsck, the oracle's env reader, libubootenv's and U-Boot's
//! `fw_printenv`, `sgdisk -v`, partctl's check. Then a power cut at every crash point (between
//! the steps, inside each write, after each sector of the GPT resize): the card must boot
//! (the U-Boot its fip.bin designates loads a valid env holding the robot's state) and a rerun
//! must finish the migration with the same end state.

mod common;

use common::{assert_boots, assert_migrated, fresh, migrate, migrate_killed, text};
use std::time::Instant;
use zbot_migrate_env::fault;
use zbot_tests::migration::{FieldCard, FipState};
use zbot_tests::{run_ok, Peer};

#[test]
fn migrates_a_field_card_and_every_reader_agrees() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let card = FieldCard::create(dir.path()).unwrap();
    let before = card.state().unwrap();
    assert_eq!(assert_boots(&card, &before, "field card"), FipState::Old);
    assert_eq!(before.env_partition_sectors, Some(512));

    // --dry-run: the plan, nothing written.
    let out = migrate(&card, None, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for step in [
        "state: the field's card, nothing migrated yet",
        "1. write both raw env copies",
        "2. replace fip.bin",
        "3. grow the env partition",
        "4. switch",
    ] {
        assert!(s.contains(step), "{step}: {s}");
    }
    let after_dry = card.state().unwrap();
    assert_eq!(after_dry.fip, FipState::Old);
    assert!(after_dry.raw.iter().all(Option::is_none));
    assert_eq!(after_dry.env_partition_sectors, Some(512));

    let out = migrate(&card, None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_migrated(&card, "migrated");

    // Independent readers through the new fw_env.config.
    let cfg = card.config.clone();
    for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
        let out = run_ok(
            peer.command()
                .env("FW_ENV_LOCK_FILE", card.dir.join("fw_env.lock"))
                .arg("-c")
                .arg(&cfg),
        );
        let got = zbot_tests::migration::text_vars(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(got, card.wanted_vars(), "{peer:?}");
    }
    let out = run_ok(Peer::Sgdisk.command().arg("-v").arg(&card.img));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("No problems found"), "sgdisk -v: {s}");
    let mut f = std::fs::File::open(&card.img).unwrap();
    let snap = partctl::disk::Snapshot::from_reader(&mut f).unwrap();
    let report = partctl::check::check(&snap, Some(&card.new));
    assert!(
        report.is_sound(),
        "partctl check with the target layout: {:?}",
        report.problems
    );

    // A rerun changes nothing.
    let tables = card.table_bytes().unwrap();
    let out = migrate(&card, None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("state: migrated")
            && String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out)
    );
    assert!(
        card.table_bytes().unwrap() == tables,
        "the rerun changed the tables"
    );
    assert_migrated(&card, "rerun");
    eprintln!("full migration and readers: {:.1?}", t0.elapsed());
}

#[test]
fn refuses_a_card_it_does_not_know_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let card = FieldCard::create(dir.path()).unwrap();
    // A config that is neither the field's nor the new one.
    std::fs::write(&card.config, "/dev/mtd0 0x0 0x4000 0x1000\n").unwrap();
    let out = migrate(&card, None, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&card.config.display().to_string())
            && e.contains("neither the field's fw_env.config"),
        "{e}"
    );
    // An env partition of another size (512K): not a field card, not a migrated one.
    let d2 = tempfile::tempdir().unwrap();
    let other = fresh(&card, d2.path());
    std::fs::write(
        &other.config,
        format!("{}/uboot.env 0x0 0x30000\n", other.bootenv_dir.display()),
    )
    .unwrap();
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&other.img)
            .unwrap();
        let s = partctl::disk::Snapshot::from_reader(&mut f).unwrap();
        let first = other.old.place()[1].first;
        let (p, _, _) = partctl::repair::plan_resize(&mut f, &s, "env", first + 1023).unwrap();
        partctl::repair::apply(&mut f, &p, |_| Ok(())).unwrap();
    }
    let out = migrate(&other, None, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("neither the field's 256K") && e.contains("512 KiB"),
        "{e}"
    );
    assert_eq!(other.state().unwrap().fip, FipState::Old, "nothing written");
}

#[test]
fn power_cut_at_every_point_boots_and_a_rerun_finishes() {
    let t0 = Instant::now();
    let tdir = tempfile::tempdir().unwrap();
    let template = FieldCard::create(tdir.path()).unwrap();
    // The reference end state.
    let rdir = tempfile::tempdir().unwrap();
    let reference = fresh(&template, rdir.path());
    let out = migrate(&reference, None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ref_tables = reference.table_bytes().unwrap();

    let mut points: Vec<String> = fault::POINTS.iter().map(|s| s.to_string()).collect();
    points.extend((1..=16).map(|k| format!("{}{k}", fault::GPT_WRITE_PREFIX)));
    let (mut cuts, mut old, mut new, mut gpt_writes) = (0, 0, 0, 0);
    for p in &points {
        let dir = tempfile::tempdir().unwrap();
        let card = fresh(&template, dir.path());
        let out = migrate(&card, Some(p), &[]);
        if out.status.success() {
            // No such point on this run (past the last GPT write).
            assert!(
                p.starts_with(fault::GPT_WRITE_PREFIX),
                "{p}: {}",
                text(&out)
            );
            continue;
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("crashing at"),
            "{p}: {}",
            text(&out)
        );
        if p.starts_with(fault::GPT_WRITE_PREFIX) {
            gpt_writes += 1;
        }
        cuts += 1;
        let st = card.state().unwrap();
        match assert_boots(&card, &st, &format!("cut at {p}")) {
            FipState::Old => old += 1,
            _ => new += 1,
        }
        let out = migrate(&card, None, &[]);
        assert!(out.status.success(), "rerun after {p}: {}", text(&out));
        assert_migrated(&card, &format!("rerun after {p}"));
        assert!(
            card.table_bytes().unwrap() == ref_tables,
            "the partition tables after the rerun that followed the cut at {p} differ from the reference migration's"
        );
    }
    assert!(gpt_writes >= 2, "the resize wrote {gpt_writes} sectors");
    eprintln!(
        "power cuts: {cuts} cut points ({gpt_writes} inside the GPT resize): vendor U-Boot boots {old}, new U-Boot boots {new}, lost 0; every rerun finished; {:.1?}",
        t0.elapsed()
    );
}

/// SIGKILL at seeded random instants over a whole run (`ZBOT_MIGRATE_KILLS`, default 8): the
/// cuts the named points do not choose. Same checks as above.
#[test]
fn killed_at_random_instants_boots_and_a_rerun_finishes() {
    let t0 = Instant::now();
    let kills: u32 = zbot_tests::env_number("ZBOT_MIGRATE_KILLS", 8);
    let tdir = tempfile::tempdir().unwrap();
    let template = FieldCard::create(tdir.path()).unwrap();
    // How long a whole run takes here (the binary, not the mounts).
    let rdir = tempfile::tempdir().unwrap();
    let reference = fresh(&template, rdir.path());
    let t = Instant::now();
    let out = migrate(&reference, None, &[]);
    let full = t.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let ref_tables = reference.table_bytes().unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut old, mut new, mut finished) = (0, 0, 0);
    for i in 0..kills {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Over the first three quarters of a run: the rest is mostly after the last write.
        let delay = full.mul_f64(0.75 * (x % 10_000) as f64 / 10_000.0);
        let dir = tempfile::tempdir().unwrap();
        let card = fresh(&template, dir.path());
        if migrate_killed(&card, delay) {
            finished += 1;
        }
        let what = format!("kill {i} after {delay:?}");
        match assert_boots(&card, &card.state().unwrap(), &what) {
            FipState::Old => old += 1,
            _ => new += 1,
        }
        let out = migrate(&card, None, &[]);
        assert!(out.status.success(), "rerun after {what}: {}", text(&out));
        assert_migrated(&card, &format!("rerun after {what}"));
        assert!(
            card.table_bytes().unwrap() == ref_tables,
            "tables after {what}"
        );
    }
    eprintln!(
        "random kills: {kills} over a {full:.1?} run: vendor U-Boot boots {old}, new U-Boot boots {new} ({finished} had finished), lost 0; every rerun finished; {:.1?}",
        t0.elapsed()
    );
}
