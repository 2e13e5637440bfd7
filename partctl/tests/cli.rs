//! The command line as an interface: exit codes, refusals, emitted files.

mod common;
use common::*;
use std::path::Path;

#[test]
fn check_exit_2_when_it_cannot_check() {
    let d = tmp();
    let missing = d.path().join("missing.img");
    let o = partctl(&["check", missing.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("missing.img"),
        "names the file: {}",
        o.stderr
    );
    let tiny = d.path().join("tiny.img");
    std::fs::write(&tiny, [0u8; 1000]).unwrap();
    assert_eq!(partctl(&["check", tiny.to_str().unwrap()]).code, 2);
    let bad_layout = d.path().join("bad.toml");
    std::fs::write(&bad_layout, "[disk]\nguid = \"nope\"\n").unwrap();
    let o = partctl(&[
        "check",
        golden().to_str().unwrap(),
        "--layout",
        bad_layout.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("bad.toml"), "{}", o.stderr);
    assert_eq!(partctl(&["check"]).code, 2, "usage error");
}

#[test]
fn check_exit_0_on_a_zeroed_card_is_impossible() {
    let d = tmp();
    let img = d.path().join("zero.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let o = partctl(&["check", img.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("no-gpt") && o.stdout.contains("Linux sees: NO partition table"),
        "{}",
        o.stdout
    );
    // Without a layout there is nothing to rebuild from; with one, there is.
    let o = partctl(&["repair", img.to_str().unwrap(), "--yes"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("both GPT copies are unusable and no layout was given"),
        "{}",
        o.stderr
    );
    let o = partctl(&["repair", img.to_str().unwrap(), "--yes", "--layout", SMALL]);
    assert_eq!(
        o.code, 1,
        "card smaller than the layout: {}{}",
        o.stdout, o.stderr
    );
    assert!(o.stderr.contains("smaller than the layout"), "{}", o.stderr);
}

#[test]
fn repair_without_yes_writes_nothing() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    write_at(&img, 0, &[0; 512]);
    let before = file_crc(&img);
    let o = partctl(&["repair", img.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("write LBA 0: hybrid MBR") && o.stdout.contains("rerun with --yes"),
        "{}",
        o.stdout
    );
    assert_eq!(file_crc(&img), before);
    let o = partctl(&["repair", img.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("After the repair:") && o.stdout.contains("No problems found."),
        "{}",
        o.stdout
    );
    assert_eq!(file_crc(&img), before);
    // A sound card: nothing to do, exit 0.
    let o = partctl(&["repair", golden().to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.contains("nothing to write"));
}

#[test]
fn card_smaller_than_the_layout() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(80000 * 512)
        .unwrap();
    let o = partctl(&["check", "--json", img.to_str().unwrap(), "--layout", SMALL]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("\"card-smaller-than-layout\"") && o.stdout.contains("\"card-smaller\""),
        "{}",
        o.stdout
    );
}

#[test]
fn restore_refuses_a_foreign_or_corrupt_backup() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let bk = d.path().join("b.bin");
    std::fs::write(&bk, b"PARTCTL1garbage garbage garbage").unwrap();
    let o = partctl(&["restore", bk.to_str().unwrap(), img.to_str().unwrap()]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("corrupt"), "{}", o.stderr);
}

#[test]
fn emit_outputs() {
    let o = partctl(&["emit", "fw_env.config", BOARD]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("/bootenv/uboot.env 0x0000 0x4000"));
    let o = partctl(&["emit", "uboot-fragment", BOARD]);
    assert!(o.stdout.contains("CONFIG_ENV_EXT4_FILE=\"/uboot.env\""));
    let o = partctl(&["emit", "fstab", BOARD]);
    assert!(o.stdout.contains("/dev/mmcblk0p1    /boot        vfat"));
}

#[test]
fn create_is_reproducible() {
    let d = tmp();
    let a = d.path().join("a.img");
    let b = d.path().join("b.img");
    assert_eq!(partctl(&["create", SMALL, a.to_str().unwrap()]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(partctl(&["create", SMALL, b.to_str().unwrap()]).code, 0);
    assert_eq!(file_crc(&a), file_crc(&b), "two runs of create differ");
}

#[test]
fn grow_refuses_before_repair_on_a_larger_card() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let o = partctl(&["grow", "staging", img.to_str().unwrap(), "--yes"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("run `partctl repair` first"),
        "{}",
        o.stderr
    );
    assert_eq!(
        partctl(&[
            "repair",
            img.to_str().unwrap(),
            "--yes",
            "--backup",
            d.path().join("b1").to_str().unwrap()
        ])
        .code,
        0
    );
    let grow_staging = |backup: &Path| {
        partctl(&[
            "grow",
            "staging",
            img.to_str().unwrap(),
            "--yes",
            "--backup",
            backup.to_str().unwrap(),
        ])
    };
    let o = grow_staging(&d.path().join("b2"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = partctl(&["check", img.to_str().unwrap(), "--layout", SMALL]);
    assert_eq!(
        o.code, 0,
        "growable staging may exceed the layout: {}",
        o.stdout
    );
    // Already grown: a no-op that succeeds (reruns of `grow ... && resize2fs` are safe),
    // writes nothing and leaves no backup file.
    let crc = file_crc(&img);
    let b3 = d.path().join("b3");
    let o = grow_staging(&b3);
    assert_eq!(o.code, 0, "already grown: {}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("already ends at LBA") && o.stdout.contains("nothing to write"),
        "{}",
        o.stdout
    );
    assert!(!b3.exists(), "no backup file for a no-op");
    assert_eq!(file_crc(&img), crc, "the image is unchanged");
    let o = partctl(&["grow", "data", img.to_str().unwrap(), "--yes"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("only the last partition can grow"),
        "{}",
        o.stderr
    );
}

#[test]
fn create_refuses_a_device() {
    let o = partctl(&["create", SMALL, "/dev/null"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
}

#[test]
fn repair_with_layout_fixes_the_disk_guid_but_keeps_a_grown_partition() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let s = img.to_str().unwrap();
    assert_eq!(
        partctl(&[
            "repair",
            s,
            "--yes",
            "--backup",
            d.path().join("b1").to_str().unwrap()
        ])
        .code,
        0
    );
    assert_eq!(
        partctl(&[
            "grow",
            "staging",
            s,
            "--yes",
            "--backup",
            d.path().join("b2").to_str().unwrap()
        ])
        .code,
        0
    );
    let grown = snapshot(&img);
    edit_header(&img, 1, |h| h.disk_guid.0[0] ^= 1);
    edit_header(&img, sectors(&img) - 1, |h| h.disk_guid.0[0] ^= 1);
    let o = partctl(&["check", s, "--layout", SMALL]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("disk GUID is"), "{}", o.stdout);
    let o = partctl(&[
        "repair",
        s,
        "--yes",
        "--layout",
        SMALL,
        "--backup",
        d.path().join("b3").to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let after = snapshot(&img);
    assert_eq!(
        after.primary.array.as_ref().unwrap(),
        grown.primary.array.as_ref().unwrap(),
        "staging stays grown"
    );
    assert_eq!(read_sector(&img, 1), read_sector_of(&grown));
}

fn read_sector_of(s: &partctl::disk::Snapshot) -> Vec<u8> {
    s.primary.sector.clone()
}
