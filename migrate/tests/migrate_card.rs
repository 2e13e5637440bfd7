//! The migration on field cards made by `partctl create` (tests/src/field-card.toml), mounted as
//! the robot mounts them (loop devices: run as root), checked by tools independent of it:
//! mtools, debugfs and e2fsck, the oracle's env reader, libubootenv's and U-Boot's
//! `fw_printenv`, `sgdisk -v`, partctl's check. Then a power cut at every crash point (between
//! the steps, inside each write, after each sector of the GPT resize): the card must boot
//! (the U-Boot its fip.bin designates loads a valid env holding the robot's state) and a rerun
//! must finish the migration with the same end state.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;
use zbot_migrate_env::fault;
use zbot_tests::migration::{CardState, FieldCard, FipState};
use zbot_tests::{run_ok, Peer};

const BIN: &str = env!("CARGO_BIN_EXE_zbot-migrate-env");

fn migrate(card: &FieldCard, crash: Option<&str>, extra: &[&str]) -> Output {
    let m = card.mount().unwrap();
    let mut c = Command::new(BIN);
    c.arg("--card")
        .arg(&card.img)
        .arg("--boot-dir")
        .arg(&card.boot_dir)
        .arg("--old-env")
        .arg(card.bootenv_dir.join("uboot.env"))
        .arg("--fip")
        .arg(&card.new_fip)
        .arg("--layout")
        .arg(&card.new_layout)
        .arg("--config")
        .arg(&card.config)
        .arg("--config-device")
        .arg(&card.img)
        .arg("--env-file")
        .arg(&card.env_file)
        .arg("--lock-file")
        .arg(card.dir.join("fw_env.lock"))
        .args(extra);
    match crash {
        Some(p) => c.env(fault::CRASH_VAR, p),
        None => c.env_remove(fault::CRASH_VAR),
    };
    let out = c.output().unwrap();
    m.unmount().unwrap();
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// "Boots recovery or better": a fip.bin that is one of the two U-Boots, whole; a sound primary
/// GPT with p2 256K or 1M; a clean env ext4; and the env that U-Boot loads valid and holding
/// the robot's state: the field env for the vendor U-Boot, the field env plus the policy for
/// the new one. Returns which U-Boot boots.
fn assert_boots(card: &FieldCard, st: &CardState, what: &str) -> FipState {
    assert!(
        matches!(st.fip, FipState::Old | FipState::New),
        "{what}: fip.bin is {:?}",
        st.fip
    );
    assert!(st.primary_gpt_sound, "{what}: primary GPT not sound");
    assert!(
        matches!(st.env_partition_sectors, Some(512) | Some(2048)),
        "{what}: env partition {:?} sectors",
        st.env_partition_sectors
    );
    assert_eq!(st.ext4_fsck, None, "{what}: the env ext4 is not clean");
    let env = st
        .loaded_env()
        .unwrap_or_else(|| panic!("{what}: the {:?} U-Boot finds no valid env", st.fip));
    let want = match st.fip {
        FipState::Old => card.field_vars(),
        _ => card.wanted_vars(),
    };
    assert_eq!(env, want, "{what}: the env U-Boot loads");
    // The vendor script boots otafs or rootfs from next_boot (anything else: otafs); the
    // policy keeps next_boot: either way a slot that exists.
    assert!(matches!(
        env.get("next_boot").map(String::as_str),
        Some("rootfs") | Some("otafs")
    ));
    // The field env is never written by the migration.
    assert_eq!(st.old_env.as_ref(), Some(&card.field_vars()), "{what}");
    st.fip
}

/// The end state of a migrated card: everything new, both copies valid and equal.
fn assert_migrated(card: &FieldCard, what: &str) -> CardState {
    let st = card.state().unwrap();
    assert_eq!(assert_boots(card, &st, what), FipState::New, "{what}");
    assert_eq!(st.env_partition_sectors, Some(2048), "{what}");
    for (i, c) in st.raw.iter().enumerate() {
        let (flags, vars) = c.as_ref().unwrap_or_else(|| panic!("{what}: copy {i} bad"));
        assert_eq!(*flags, if i == 0 { 1 } else { 0 }, "{what}: copy {i} flags");
        assert_eq!(*vars, card.wanted_vars(), "{what}: copy {i}");
    }
    assert_eq!(
        std::fs::read_to_string(&card.config).unwrap(),
        card.new_config_text(),
        "{what}: fw_env.config"
    );
    st
}

fn fresh(template: &FieldCard, dir: &Path) -> FieldCard {
    template.copy_to(dir).unwrap()
}

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
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
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
