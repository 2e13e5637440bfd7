//! Power loss between any two writes of a repair: for every damage the matrix repairs, and for
//! `grow`, apply the first k writes of the plan for every k and check that
//! - if Linux could read the card before, it still can, and sees either the old or the new
//!   partitions (never a mix, never nothing);
//! - once there was a sound GPT copy, there still is one (a repair can always be resumed);
//! - running `repair` again from that state ends with exactly the same tables.

mod common;
use common::damages::{cases, Repair};
use common::*;
use partctl::check::best_source;
use partctl::disk::{read_sectors, Patched, Snapshot};
use partctl::kernel::{view, KernelTable};
use partctl::repair::{self, Plan};
use std::fs::File;
use std::path::Path;

fn state(img: &Path, writes: &[repair::SectorWrite]) -> Patched<File> {
    let mut p = Patched::new(File::open(img).unwrap());
    for w in writes {
        p.patch(w.lba, &w.data);
    }
    p
}

fn tables(p: &mut Patched<File>, n: u64) -> Vec<u8> {
    let mut v = read_sectors(p, 0, 34).unwrap();
    v.extend(read_sectors(p, n - 33, 33).unwrap());
    v
}

fn check_plan(
    name: &str,
    img: &Path,
    plan: &Plan,
    replan: &dyn Fn(&mut Patched<File>, &Snapshot) -> Plan,
) -> Vec<String> {
    let mut fails = Vec::new();
    let s0 = Snapshot::from_reader(&mut File::open(img).unwrap()).unwrap();
    let n = s0.disk_sectors;
    let v0 = view(&s0, false);
    let mut full = state(img, &plan.writes);
    let sf = Snapshot::from_reader(&mut full).unwrap();
    let vf = view(&sf, false);
    let final_tables = tables(&mut full, n);
    if vf.table != KernelTable::PrimaryGpt || vf.partitions.len() != 6 {
        fails.push(format!("[{name}] after the whole plan Linux sees {vf:?}"));
    }
    for k in 0..=plan.writes.len() {
        let mut p = state(img, &plan.writes[..k]);
        let s = Snapshot::from_reader(&mut p).unwrap();
        let v = view(&s, false);
        if v0.table == KernelTable::PrimaryGpt
            && (v.table != KernelTable::PrimaryGpt
                || (v.partitions != v0.partitions && v.partitions != vf.partitions))
        {
            fails.push(format!(
                "[{name}] after {k} of {} writes Linux sees {:?} {:?} {:?}",
                plan.writes.len(),
                v.table,
                v.partitions,
                v.notes
            ));
        }
        if best_source(&s0).is_some() && best_source(&s).is_none() {
            fails.push(format!("[{name}] after {k} writes no GPT copy is sound"));
        }
        let again = replan(&mut p, &s);
        for w in &again.writes {
            p.patch(w.lba, &w.data);
        }
        let got = tables(&mut p, n);
        if got != final_tables {
            let first = got
                .iter()
                .zip(&final_tables)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            fails.push(format!("[{name}] resuming after {k} writes ends with different tables (first difference at byte {first} of the table areas; plan {})", again.describe()));
        }
    }
    fails
}

#[test]
fn power_loss_between_any_two_writes() {
    let layout = small_layout();
    let mut fails = Vec::new();
    let mut checked = 0;
    for case in cases().into_iter().filter(|c| c.repair != Repair::Refused) {
        let d = tmp();
        let img = d.path().join("card.img");
        copy_image(golden(), &img);
        (case.damage)(&img);
        let l = (case.repair == Repair::NeedsLayout).then_some(&layout);
        let s = snapshot(&img);
        let plan = repair::plan(&mut File::open(&img).unwrap(), &s, l).unwrap();
        assert!(!plan.is_empty(), "[{}] empty plan", case.name);
        checked += plan.writes.len() + 1;
        fails.extend(check_plan(case.name, &img, &plan, &|p, s| {
            repair::plan(p, s, l).unwrap()
        }));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    assert!(checked > 100, "only {checked} states checked");
}

#[test]
fn power_loss_during_grow() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let r = partctl(&[
        "repair",
        img.to_str().unwrap(),
        "--yes",
        "--backup",
        d.path().join("b1").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let s = snapshot(&img);
    let (plan, num, start, size) =
        repair::plan_grow(&mut File::open(&img).unwrap(), &s, "staging", 2048).unwrap();
    assert_eq!((num, start), (6, 86016));
    assert_eq!(
        start + size,
        (64 << 20) / 512 - 2048,
        "aligned down to 1 MiB below the backup GPT"
    );
    // The primary array changes while Linux reads the primary: the plan must bounce through the
    // backup array.
    assert!(
        plan.writes.iter().any(|w| w.what.contains("temporarily")),
        "{}",
        plan.describe()
    );
    let fails = check_plan("grow", &img, &plan, &|p, s| {
        // Resuming a cut grow: `repair` finishes it (primary wins once its header is written;
        // before that the backup, already grown, is identical to it except for the array).
        // Once the primary shows the grown entry, grow plans nothing ("already grown") and
        // `repair` finishes the rest.
        match repair::plan_grow(p, s, "staging", 2048) {
            Ok((pl, ..)) if !pl.is_empty() => pl,
            _ => repair::plan(p, s, None).unwrap(),
        }
    });
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    // And through the CLI, on the image: sgdisk agrees.
    let r = partctl(&[
        "grow",
        "staging",
        img.to_str().unwrap(),
        "--yes",
        "--backup",
        d.path().join("b2").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
    let s = snapshot(&img);
    assert_eq!(s.mbr.entries[0].start, 2048, "the FAT mirror is untouched");
}

/// The same through the real command: `partctl repair` is killed after k synced writes
/// (`PARTCTL_FAULT_AFTER_WRITES`), for every k. The backup file is complete before the first
/// write (restore gives back the damaged card), Linux's view never gets worse, and a second
/// `partctl repair` finishes the job with the golden tables.
#[test]
fn cli_repair_cut_after_every_write() {
    let gold = table_sectors(golden());
    let mut cuts = 0;
    for case in cases().into_iter().filter(|c| {
        matches!(
            c.name,
            "primary array zeroed" | "MBR entries swapped" | "overlap" | "both headers gone"
        )
    }) {
        let d = tmp();
        let damaged = d.path().join("damaged.img");
        copy_image(golden(), &damaged);
        (case.damage)(&damaged);
        let layout = (case.repair == Repair::NeedsLayout).then_some(SMALL);
        let s0 = snapshot(&damaged);
        let n = repair::plan(
            &mut File::open(&damaged).unwrap(),
            &s0,
            layout.map(|_| small_layout()).as_ref(),
        )
        .unwrap()
        .writes
        .len();
        let readable0 = view(&s0, false).table == KernelTable::PrimaryGpt;
        for k in 1..n {
            let img = d.path().join(format!("cut{k}.img"));
            copy_image(&damaged, &img);
            let bk = d.path().join(format!("b{k}"));
            let mut args = vec![
                "repair",
                img.to_str().unwrap(),
                "--yes",
                "--backup",
                bk.to_str().unwrap(),
            ];
            if let Some(l) = layout {
                args.extend(["--layout", l]);
            }
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_partctl"))
                .args(&args)
                .env("PARTCTL_FAULT_AFTER_WRITES", k.to_string())
                .output()
                .unwrap();
            assert!(
                !o.status.success(),
                "[{}] cut at {k} did not stop",
                case.name
            );
            let v = view(&snapshot(&img), false);
            assert!(
                !readable0 || v.table == KernelTable::PrimaryGpt,
                "[{}] cut at {k}: Linux sees {v:?}",
                case.name
            );
            // The backup taken before the first write undoes the partial repair.
            let cut = d.path().join(format!("cut{k}-restored.img"));
            copy_image(&img, &cut);
            assert_eq!(
                partctl(&["restore", bk.to_str().unwrap(), cut.to_str().unwrap()]).code,
                0
            );
            assert_eq!(
                file_crc(&cut),
                file_crc(&damaged),
                "[{}] cut at {k}: restore",
                case.name
            );
            // Resume.
            let bk2 = d.path().join(format!("b{k}-2"));
            let mut args = vec![
                "repair",
                img.to_str().unwrap(),
                "--yes",
                "--backup",
                bk2.to_str().unwrap(),
            ];
            if let Some(l) = layout {
                args.extend(["--layout", l]);
            }
            let o = partctl(&args);
            assert_eq!(
                o.code, 0,
                "[{}] resume after cut at {k}: {}{}",
                case.name, o.stdout, o.stderr
            );
            assert_eq!(
                table_sectors(&img),
                gold,
                "[{}] resume after cut at {k}",
                case.name
            );
            cuts += 1;
        }
    }
    assert!(cuts >= 5, "only {cuts} cuts exercised");
}
