//! The committed golden fixtures (fw-env/tests/fixtures) say what their README says, checked
//! against the real peers: CRCs, flags, the copy each peer picks, and what U-Boot loads.

use std::path::Path;
use zbot_tests::oracle::{crc_ok, parse_env_vars};
use zbot_tests::{fixtures_dir, run_ok, DiskImage, Peer, Sandbox};

fn fixture(name: &str) -> Vec<u8> {
    let p = fixtures_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A 16 KiB fixture as the sandbox U-Boot (built with the field's `ENV_SIZE`) stores it: the data
/// area zero-padded to the larger size, the CRC recomputed if it was valid and left (so still
/// wrong) if it was not; the flags byte of a redundant copy (`data_start` 5) kept.
fn for_uboot(data_start: usize, f: &[u8]) -> Vec<u8> {
    let mut out = f.to_vec();
    out.resize(zbot_tests::ENV_SIZE, 0);
    if crc_ok(data_start, f) {
        let crc = crc32fast::hash(&out[data_start..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

#[test]
fn fixture_crcs_and_flags_are_as_documented() {
    for single in [
        "uboot-saveenv.bin",
        "mkenvimage.bin",
        "mkenvimage-p00.bin",
        "libubootenv-setenv.bin",
        "ubootools-setenv.bin",
    ] {
        let f = fixture(single);
        assert_eq!(f.len(), 0x4000, "{single}");
        assert!(crc_ok(4, &f), "{single}: CRC");
    }
    assert!(!crc_ok(4, &fixture("single-bad-crc.bin")));
    for (name, flag, ok) in [
        ("mkenvimage-redund.bin", 1, true),
        ("redund-wrap-255-0.copy0.bin", 255, true),
        ("redund-wrap-255-0.copy1.bin", 0, true),
        ("redund-copy1-bad-crc.copy0.bin", 1, true),
        ("redund-copy1-bad-crc.copy1.bin", 2, false),
        ("uboot-redund-saveenv.copy0.bin", 2, true),
        ("uboot-redund-saveenv.copy1.bin", 3, true),
    ] {
        let f = fixture(name);
        assert_eq!(f[4], flag, "{name}: flag");
        assert_eq!(crc_ok(5, &f), ok, "{name}: CRC");
    }
    assert_eq!(
        fixture("uboot-saveenv.bin"),
        fixture("mkenvimage-p00.bin"),
        "U-Boot's ext4 saveenv is byte-identical to mkenvimage -p 0x00 of sorted input"
    );
}

fn redund_config(dir: &Path, stem: &str) -> std::path::PathBuf {
    let cfg = dir.join("fw_env.config");
    let d = fixtures_dir();
    std::fs::write(
        &cfg,
        format!(
            "{0}/{stem}.copy0.bin 0x0 0x4000\n{0}/{stem}.copy1.bin 0x0 0x4000\n",
            d.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn both_fw_printenv_peers_pick_the_documented_redundant_copy() {
    let dir = tempfile::tempdir().unwrap();
    for (stem, want) in [
        ("redund-wrap-255-0", "copy1"),
        ("redund-copy1-bad-crc", "copy0"),
    ] {
        let cfg = redund_config(dir.path(), stem);
        for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
            let out = run_ok(peer.command().arg("-c").arg(&cfg).arg("which"));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("which={want}\n"),
                "{stem} {peer:?}"
            );
        }
    }
}

#[test]
fn real_uboot_picks_the_documented_redundant_copy() {
    let dir = tempfile::tempdir().unwrap();
    for (stem, want) in [
        ("redund-wrap-255-0", "copy1"),
        ("redund-copy1-bad-crc", "copy0"),
    ] {
        let disk = DiskImage::create(dir.path().join(format!("{stem}.img"))).unwrap();
        disk.mkfs_p1_fat().unwrap();
        disk.write_fat_file(
            "uboot.env",
            &for_uboot(5, &fixture(&format!("{stem}.copy0.bin"))),
        )
        .unwrap();
        disk.write_fat_file(
            "uboot-redund.env",
            &for_uboot(5, &fixture(&format!("{stem}.copy1.bin"))),
        )
        .unwrap();
        let run = Sandbox::redundant(&disk)
            .run("printenv which; saveenv")
            .unwrap();
        assert!(run.success(), "{}", run.output);
        assert_eq!(
            run.printed_var("which"),
            Some(want),
            "{stem}: {}",
            run.output
        );
        // The write goes to the other copy, flag = current + 1.
        let (other, flag) = if want == "copy1" {
            ("uboot.env", 1)
        } else {
            ("uboot-redund.env", 2)
        };
        let written = disk.read_fat_file(other).unwrap().unwrap();
        assert_eq!(written[4], flag, "{stem}: flag written to {other}");
        assert!(crc_ok(5, &written));
    }
}

#[test]
fn real_uboot_unescapes_backslashes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    disk.write_file("/uboot.env", &for_uboot(4, &fixture("uboot-saveenv.bin")))
        .unwrap();
    let run = Sandbox::new(&disk).run("printenv bs spaced eq").unwrap();
    assert_eq!(
        run.printed_var("bs"),
        Some(r"C:\dir\file"),
        "{}",
        run.output
    );
    assert_eq!(run.printed_var("spaced"), Some("a b  c"));
    assert_eq!(run.printed_var("eq"), Some("x=y"));
    // ...and the fw tools show the on-disk (escaped) form.
    let vars = parse_env_vars(&fixture("uboot-saveenv.bin")[4..]);
    assert!(
        vars.contains(&("bs".into(), r"C:\\dir\\file".into())),
        "{vars:?}"
    );
}
