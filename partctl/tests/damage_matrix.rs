//! The damage matrix: for each damage, `check` finds it (message, exit code 1); `repair` gives
//! back tables `sgdisk -v` finds clean and the `gpt` and `mbrman` crates read as partctl does, the golden MBR (and golden tables), unchanged partition
//! contents; the backup file restores the damaged state byte for byte.

mod common;
use common::damages::{cases, Repair};
use common::*;

#[test]
fn damage_matrix() {
    let golden = golden();
    let (clean, text) = sgdisk_clean(golden);
    assert!(clean, "golden image not clean for sgdisk: {text}");
    let l = small_layout();
    let gold_tables = table_sectors(golden);
    let gold_mbr = read_sector(golden, 0);
    let gold_crcs = partition_crcs(golden, &l);
    let mut failures = Vec::new();
    for case in cases() {
        let d = tmp();
        let img = d.path().join("card.img");
        let imgs = img.to_str().unwrap();
        copy_image(golden, &img);
        (case.damage)(&img);
        let damaged_crc = file_crc(&img);
        let mut fail = |m: String| failures.push(format!("[{}] {m}", case.name));

        // check: exit 1, the right codes, the right words.
        let c = partctl(&["check", imgs]);
        if c.code != 1 {
            fail(format!("check exit {} (want 1):\n{}", c.code, c.stdout));
        }
        if !c.stdout.contains(case.message) {
            fail(format!(
                "check output lacks {:?}:\n{}",
                case.message, c.stdout
            ));
        }
        let j = partctl(&["check", "--json", imgs]);
        let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
        let kinds: Vec<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect();
        for k in case.kinds {
            if !kinds.contains(k) {
                fail(format!("check --json lacks {k}: {kinds:?}"));
            }
        }

        // repair.
        let bk = d.path().join("backup.bin");
        let bks = bk.to_str().unwrap();
        let r = partctl(&["repair", imgs, "--yes", "--backup", bks]);
        match case.repair {
            Repair::Refused => {
                if r.code != 1 || bk.exists() || file_crc(&img) != damaged_crc {
                    fail(format!(
                        "repair should refuse and write nothing: exit {}\n{}{}",
                        r.code, r.stdout, r.stderr
                    ));
                }
                let r = partctl(&["repair", imgs, "--yes", "--layout", SMALL, "--backup", bks]);
                if r.code != 1 || file_crc(&img) != damaged_crc {
                    fail(format!(
                        "repair --layout should refuse: exit {}\n{}{}",
                        r.code, r.stdout, r.stderr
                    ));
                }
                continue;
            }
            Repair::NeedsLayout => {
                if r.code != 1 || file_crc(&img) != damaged_crc || !r.stderr.contains("--layout") {
                    fail(format!(
                        "repair without layout should refuse and ask for --layout: exit {}\n{}{}",
                        r.code, r.stdout, r.stderr
                    ));
                    continue;
                }
                let r = partctl(&["repair", imgs, "--yes", "--layout", SMALL, "--backup", bks]);
                if r.code != 0 {
                    fail(format!(
                        "repair --layout exit {}:\n{}{}",
                        r.code, r.stdout, r.stderr
                    ));
                }
            }
            Repair::Golden | Repair::Larger => {
                if r.code != 0 {
                    fail(format!("repair exit {}:\n{}{}", r.code, r.stdout, r.stderr));
                }
            }
        }
        let (clean, text) = sgdisk_clean(&img);
        if !clean {
            fail(format!("sgdisk -v after repair: {text}"));
        }
        if let Err(e) = independent_readers_agree(&img) {
            fail(format!("gpt/mbrman after repair: {e}"));
        }
        let c = partctl(&["check", imgs, "--layout", SMALL]);
        if c.code != 0 {
            fail(format!("check after repair exit {}:\n{}", c.code, c.stdout));
        }
        if read_sector(&img, 0) != gold_mbr {
            fail("MBR differs from the golden one".into());
        }
        if case.repair == Repair::Larger {
            // The primary header changes (AlternateLBA, LastUsableLBA); MBR and array do not.
            let (now, gold) = (&table_sectors(&img)[0], &gold_tables[0]);
            if now[1024..] != gold[1024..] {
                fail("primary entry array differs from golden".into());
            }
            let s = snapshot(&img);
            let h = &s.primary.raw.as_ref().unwrap().header;
            if h.alternate_lba != s.last_lba() || h.last_usable != s.last_lba() - 33 {
                fail(format!("primary header not moved to the new end: {h:?}"));
            }
            if s.alternate.is_some() || read_sector(&img, 92160 - 1) != vec![0; 512] {
                fail("stale backup header not cleared".into());
            }
        } else if table_sectors(&img) != gold_tables {
            fail("table sectors differ from the golden ones".into());
        }
        if partition_crcs(&img, &l) != gold_crcs {
            fail("partition contents changed".into());
        }
        // restore gives back the damaged state byte for byte.
        let r = partctl(&["restore", bks, imgs]);
        if r.code != 0 || file_crc(&img) != damaged_crc {
            fail(format!(
                "restore did not give back the damaged image: exit {}\n{}{}",
                r.code, r.stdout, r.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Issue 10: a header revision other than 1.0 is invalid for sgdisk; `check` must not exit 0
/// for it (it used to be a warning whose fix was `partctl repair`), and repair makes sgdisk
/// happy again.
#[test]
fn header_revision_agrees_with_sgdisk() {
    let d = tmp();
    let img = d.path().join("card.img");
    let imgs = img.to_str().unwrap();
    copy_image(golden(), &img);
    edit_header(&img, 1, |h| h.revision = 0x0000_6300);
    let (clean, text) = sgdisk_clean(&img);
    assert!(!clean, "sgdisk accepts revision 0.99? {text}");
    let c = partctl(&["check", imgs]);
    assert_eq!(c.code, 1, "{}", c.stdout);
    assert!(c.stdout.contains("error[header-revision]"), "{}", c.stdout);
    assert_eq!(
        partctl(&[
            "repair",
            imgs,
            "--yes",
            "--backup",
            d.path().join("b").to_str().unwrap()
        ])
        .code,
        0
    );
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
}
