//! fw-env reads every committed golden fixture (written by real U-Boot, mkenvimage,
//! libubootenv and U-Boot's tools/env; see fixtures/README.md) as the README says, and writes
//! what U-Boot's saveenv writes.

mod common;
use common::*;
use fw_env::codec::{self, Layout};
use fw_env::{Source, Store};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn uboot_sees() -> fw_env::Vars {
    vars(&[
        ("bootlimit", "3"),
        ("bs", r"C:\dir\file"),
        ("eq", "x=y"),
        ("next_boot", "rootfs"),
        ("spaced", "a b  c"),
    ])
}

fn read_single(name: &str) -> fw_env::Snapshot {
    let cfg = fw_env::Config::single(fixture(name), 0, 0x4000);
    Store::open(cfg).with_lock_file(None).read().unwrap()
}

fn read_pair(stem: &str) -> fw_env::Snapshot {
    let cfg = fw_env::Config::redundant(
        (fixture(&format!("{stem}.copy0.bin")), 0),
        (fixture(&format!("{stem}.copy1.bin")), 0),
        0x4000,
    );
    Store::open(cfg).with_lock_file(None).read().unwrap()
}

#[test]
fn single_copy_fixtures_read_as_uboot_sees_them() {
    for name in ["uboot-saveenv.bin", "mkenvimage.bin", "mkenvimage-p00.bin"] {
        let s = read_single(name);
        assert_eq!(s.source, Source::Copy(0), "{name}");
        assert_eq!(codec::uboot_view(&s.vars), uboot_sees(), "{name}");
    }
    // The C tools' writes: changed next_boot, deleted spaced, stale tail after the terminator.
    for name in ["libubootenv-setenv.bin", "ubootools-setenv.bin"] {
        let v = codec::uboot_view(&read_single(name).vars);
        assert_eq!(v.get("next_boot").as_deref(), Some("otafs"), "{name}");
        assert!(
            !v.contains("spaced"),
            "{name}: the stale tail must not resurrect a variable"
        );
    }
}

#[test]
fn bad_crc_fixture_is_no_valid_copy() {
    let s = read_single("single-bad-crc.bin");
    assert_eq!(s.source, Source::Empty);
    assert!(matches!(
        s.copies[0].status,
        fw_env::CopyStatus::BadCrc { .. }
    ));
}

#[test]
fn redundant_fixtures_pick_the_documented_copy() {
    let s = read_pair("redund-wrap-255-0");
    assert_eq!(s.source, Source::Copy(1), "0 follows 255");
    assert_eq!(s.vars.get("which").as_deref(), Some("copy1"));
    let s = read_pair("redund-copy1-bad-crc");
    assert_eq!(s.source, Source::Copy(0), "a valid CRC beats a higher flag");
    let s = read_pair("uboot-redund-saveenv");
    assert_eq!(
        s.source,
        Source::Copy(1),
        "real U-Boot's last save (flag 3) is current"
    );
    assert_eq!(s.vars.get("next_boot").as_deref(), Some("otafs"));
}

/// Encoding U-Boot's variables gives exactly the bytes U-Boot's saveenv wrote.
#[test]
fn our_encoding_is_byte_identical_to_saveenv() {
    let saved = std::fs::read(fixture("uboot-saveenv.bin")).unwrap();
    let stored = codec::decode(&saved, Layout::Single).unwrap().vars;
    assert_eq!(
        codec::encode(&stored, 0x4000, Layout::Single, 0).unwrap(),
        saved
    );
    // And a write through the library (a change and back) reproduces it too.
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, &saved).unwrap();
    let store = Store::open(fw_env::Config::single(&env, 0, 0x4000)).with_lock_file(None);
    store
        .apply(&fw_env::Changes::new().set("next_boot", "otafs"))
        .unwrap();
    store
        .apply(&fw_env::Changes::new().set("next_boot", "rootfs"))
        .unwrap();
    assert_eq!(std::fs::read(&env).unwrap(), saved);
    // The redundant one, too: flags byte included.
    let copy1 = std::fs::read(fixture("uboot-redund-saveenv.copy1.bin")).unwrap();
    let d = codec::decode(&copy1, Layout::Redundant).unwrap();
    assert_eq!(
        codec::encode(&d.vars, 0x4000, Layout::Redundant, d.flags.unwrap()).unwrap(),
        copy1
    );
}
