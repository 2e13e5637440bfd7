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
    // A dry run that succeeds exits 0 (issue 12: it used to exit 1, like a refusal): it exits
    // as the repair would, here with sound tables after the plan.
    let o = partctl(&["repair", img.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("After the repair:")
            && o.stdout.contains("No problems found.")
            && o.stdout.contains("Nothing written (dry run)."),
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
    assert!(o.stdout.contains("/bootenv/uboot.env 0x0000 0x30000"));
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
    // The gpt and mbrman crates read the grown card as partctl does: staging ends at the last
    // usable sector rounded down to the 1 MiB alignment.
    let grown = independent_readers_agree(&img).unwrap();
    let (_, start, size, _, _, name) = grown.last().unwrap();
    assert_eq!(
        (name.as_str(), start + size),
        ("staging", (sectors(&img) - 33) / 2048 * 2048)
    );
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

/// Run partctl, failing the test if it does not finish within 10 s (a FIFO used to hang it).
fn partctl_bounded(args: &[&str]) -> Out {
    let mut child = target_command(&target_bin("partctl", env!("CARGO_BIN_EXE_partctl")))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            panic!("partctl {args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// Regression (issue 10): a FIFO as the target (or as an input file) hung partctl in open().
#[test]
fn special_files_are_refused_before_any_blocking_open() {
    let d = tmp();
    let fifo = d.path().join("fifo");
    let f = fifo.to_str().unwrap();
    assert_eq!(sh("mkfifo", &[f]).code, 0);
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let i = img.to_str().unwrap();
    let bk = d.path().join("bk.bin");
    for args in [
        vec!["check", f],
        vec!["repair", f, "--yes", "--backup", bk.to_str().unwrap()],
        vec!["repair", f, "--dry-run"],
        vec!["grow", "staging", f, "--yes"],
        vec!["restore", f, i],
        vec!["check", i, "--layout", f],
        vec!["check", "/dev/null"],
        vec!["check", d.path().to_str().unwrap()],
    ] {
        let o = partctl_bounded(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains(" is a FIFO: give ")
                || o.stderr.contains(" is a character device: give ")
                || o.stderr.contains(" is a directory: give "),
            "{args:?}: {}",
            o.stderr
        );
    }
    assert_eq!(file_crc(&img), file_crc(golden()));
}

/// Regression (issue 10): `grow --align 0` was silently taken as 1.
#[test]
fn grow_align_must_be_a_power_of_two_in_range() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let i = img.to_str().unwrap();
    for bad in [
        "0",
        "3",
        "2049",
        "4194304",
        "-1",
        "18446744073709551616",
        "1M",
        "",
    ] {
        let o = partctl(&["grow", "staging", i, "--dry-run", &format!("--align={bad}")]);
        assert_eq!(o.code, 2, "--align {bad}: {}", o.stderr);
        assert_eq!(file_crc(&img), file_crc(golden()));
    }
    let o = partctl(&["grow", "staging", i, "--dry-run", "--align=0"]);
    assert!(
        o.stderr
            .contains("must be a power of two from 1 to 2097152"),
        "{}",
        o.stderr
    );
    let o = partctl(&["grow", "staging", i, "--dry-run", "--align=1"]);
    assert_eq!(o.code, 0, "a dry run that succeeds exits 0: {}", o.stderr);
}

#[test]
fn absurd_create_sizes_are_clear_errors() {
    let d = tmp();
    let out = d.path().join("out.img");
    for (bad, want) in [
        ("1000", "not a card size"),
        ("0", "not a card size"),
        ("200T", "not a card size"),
        ("16777215T", "not a card size"),
        ("99999999999999999999T", "bad --size"),
        ("12Q", "bad --size"),
    ] {
        let o = partctl(&["create", SMALL, out.to_str().unwrap(), "--size", bad]);
        assert_eq!(o.code, 2, "--size {bad}: {}", o.stderr);
        assert!(o.stderr.contains(want), "--size {bad}: {}", o.stderr);
        assert!(!out.exists());
    }
}

/// Layout numbers that used to overflow (or allocate) later are refused when the file is read.
#[test]
fn absurd_layout_numbers_are_refused_at_load() {
    let d = tmp();
    let base = std::fs::read_to_string(SMALL).unwrap();
    let cases = [
        (
            base.replace("align = \"1M\"", "align = \"8G\""),
            "larger than 1 GiB",
        ),
        (
            base.replace("align = \"1M\"", "align = 0"),
            "not a positive multiple of 512",
        ),
        (
            base.replace("size = \"2M\"", "size = \"17000000T\""),
            "bad size",
        ),
        (
            base.replace("size = \"2M\"", "size = \"9000000T\""),
            "do not fit on a card",
        ),
        (
            base.replace("size = 0x30000", "size = 0xFFFFFFFFFFFF"),
            "env size",
        ),
        (base.replace("size = 0x30000", "size = 0"), "env size"),
        (
            base.replace("entries = 128", "entries = 4294967295"),
            "entries = 4294967295",
        ),
        (
            base.replace("entries = 128", "entries = 99999999999999999999"),
            "entries",
        ),
        (
            base.replace("align = \"1M\"", "align = \"1M\"\nsize = \"1M\""),
            "disk size",
        ),
        (
            base.replace("align = \"1M\"", "align = \"1M\"\nsize = 1000000001"),
            "disk size",
        ),
        (
            base.replace("size = \"34M\"", "size = \"3000G\""),
            "past the MBR's 2 TiB limit",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_ne!(*text, base, "case {i} did not change the layout");
        let l = d.path().join(format!("l{i}.toml"));
        std::fs::write(&l, text).unwrap();
        let o = partctl(&["emit", "fstab", l.to_str().unwrap()]);
        assert_eq!(o.code, 2, "case {i}: {}", o.stderr);
        assert!(o.stderr.contains(want), "case {i} ({want}): {}", o.stderr);
    }
}

/// A crafted backup file (CRC fixed up) must not make `restore` seek to an overflowing offset
/// or write past the card.
#[test]
fn restore_refuses_sectors_past_the_card() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let n = std::fs::metadata(&img).unwrap().len();
    let craft = |lba: u64, disk: u64, count: u32| {
        let mut v = b"PARTCTL1".to_vec();
        v.extend_from_slice(&disk.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        v.extend_from_slice(&lba.to_le_bytes());
        v.extend_from_slice(&[0xAB; 512]);
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    };
    for (b, want) in [
        (craft(u64::MAX / 2, n, 1), "past the end"),
        (craft(n / 512, n, 1), "past the end"),
        (craft(1, 0, 1), "not a card size"),
        (craft(1, n, u32::MAX), "at most 8192"),
    ] {
        let p = d.path().join("bk.bin");
        std::fs::write(&p, &b).unwrap();
        let o = partctl(&["restore", p.to_str().unwrap(), img.to_str().unwrap()]);
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(o.stderr.contains(want), "{want}: {}", o.stderr);
        assert_eq!(file_crc(&img), file_crc(golden()));
    }
}

/// Options that would be ignored are usage errors: `--dry-run` writes nothing, so `--yes` and
/// `--backup` beside it mean the user expected something else.
#[test]
fn dry_run_with_options_it_would_ignore_is_a_usage_error() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let i = img.to_str().unwrap();
    for args in [
        vec!["repair", i, "--dry-run", "--yes"],
        vec!["repair", i, "--dry-run", "--backup", "b.bin"],
        vec!["grow", "staging", i, "--dry-run", "--yes"],
        vec!["grow", "staging", i, "--dry-run", "--backup", "b.bin"],
    ] {
        let o = partctl(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("cannot be used with"), "{}", o.stderr);
    }
    assert_eq!(file_crc(&img), file_crc(golden()));
}
