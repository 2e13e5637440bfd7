//! Shared test harness: a fresh temp dir per case, the partctl binary, the golden small image,
//! and the peers (sgdisk, sfdisk, parted).
#![allow(dead_code)]

pub mod damages;

use partctl::disk::{read_sectors, Snapshot};
use partctl::gpt::{parse_header, GptHeader};
use partctl::layout::Layout;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/zbot-duos-small.toml");
pub const BOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/zbot-duos.toml");

pub fn small_layout() -> Layout {
    Layout::load(Path::new(SMALL)).unwrap()
}

/// The binaries under test: the host build (`CARGO_BIN_EXE_*`), or the robot's static riscv64
/// build when `scripts/test-riscv64.sh` sets `ZBOT_TARGET_BIN_DIR` (the directory of
/// `scripts/build-riscv64.sh`) and `ZBOT_TARGET_RUNNER` (`qemu-riscv64-static`).
pub fn target_bin(name: &str, host: &str) -> std::path::PathBuf {
    match std::env::var_os("ZBOT_TARGET_BIN_DIR") {
        Some(d) => {
            let p = std::path::Path::new(&d).join(name);
            assert!(
                p.is_file(),
                "ZBOT_TARGET_BIN_DIR={}: {name} is not there (run scripts/build-riscv64.sh)",
                p.display()
            );
            p
        }
        None => host.into(),
    }
}

/// A command running `program` (a path from [`target_bin`], or a link to it: argv[0] is kept),
/// through `ZBOT_TARGET_RUNNER` when it is set.
pub fn target_command(program: &std::path::Path) -> std::process::Command {
    match std::env::var_os("ZBOT_TARGET_RUNNER") {
        Some(r) if !r.is_empty() => {
            let mut c = std::process::Command::new(r);
            c.arg(program);
            c
        }
        _ => std::process::Command::new(program),
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn partctl(args: &[&str]) -> Out {
    let o = target_command(&target_bin("partctl", env!("CARGO_BIN_EXE_partctl")))
        .args(args)
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> Out {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// `sgdisk -v` exits 0 even when it finds problems: parse its output.
pub fn sgdisk_clean(img: &Path) -> (bool, String) {
    let o = sh("sgdisk", &["-v", img.to_str().unwrap()]);
    let text = format!("{}{}", o.stdout, o.stderr);
    (
        text.contains("No problems found")
            && !text.contains("Warning")
            && !text.contains("Problem:"),
        text,
    )
}

/// A temp dir kept for the test's lifetime.
pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("partctl-test-")
        .tempdir()
        .unwrap()
}

/// The golden image made once by `partctl create` from the small layout.
pub fn golden() -> &'static Path {
    static G: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &G.get_or_init(|| {
        let d = tmp();
        let p = d.path().join("golden.img");
        let o = partctl(&["create", SMALL, p.to_str().unwrap()]);
        assert_eq!(o.code, 0, "create failed: {}{}", o.stdout, o.stderr);
        // Give every partition recognisable content beyond what mkfs wrote, so that "contents
        // unchanged" means something for the empty ones too.
        let l = small_layout();
        let mut f = OpenOptions::new().write(true).open(&p).unwrap();
        for pl in l.place() {
            f.seek(SeekFrom::Start(pl.last * 512)).unwrap();
            f.write_all(&[pl.number as u8 ^ 0x5A; 512]).unwrap();
        }
        (d, p)
    })
    .1
}

/// Copy an image keeping it sparse.
pub fn copy_image(src: &Path, dst: &Path) {
    let o = sh(
        "cp",
        &[
            "--sparse=always",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
}

pub fn sectors(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len() / 512
}

pub fn read_sector(p: &Path, lba: u64) -> Vec<u8> {
    read_sectors(&mut File::open(p).unwrap(), lba, 1).unwrap()
}

pub fn write_at(p: &Path, lba: u64, data: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(p).unwrap();
    f.seek(SeekFrom::Start(lba * 512)).unwrap();
    f.write_all(data).unwrap();
}

pub fn snapshot(p: &Path) -> Snapshot {
    Snapshot::from_reader(&mut File::open(p).unwrap()).unwrap()
}

/// Edit the header at `lba` and rewrite it with a correct CRC.
pub fn edit_header(p: &Path, lba: u64, f: impl FnOnce(&mut GptHeader)) {
    let mut h = parse_header(&read_sector(p, lba)).unwrap().header;
    f(&mut h);
    write_at(p, lba, &h.encode());
}

/// Edit the entry array of the header at `lba` (entries 128 bytes) and fix both CRCs.
pub fn edit_array(p: &Path, lba: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let h = parse_header(&read_sector(p, lba)).unwrap().header;
    let mut a = read_sectors(
        &mut File::open(p).unwrap(),
        h.entries_lba,
        h.array_sectors(),
    )
    .unwrap();
    f(&mut a);
    write_at(p, h.entries_lba, &a);
    edit_header(p, lba, |h| {
        h.entries_crc = crc32fast::hash(&a[..h.array_bytes() as usize])
    });
}

/// CRC32 of each layout partition's bytes.
pub fn partition_crcs(p: &Path, l: &Layout) -> Vec<u32> {
    let mut f = File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    l.place()
        .iter()
        .map(|pl| {
            let mut h = crc32fast::Hasher::new();
            let start = pl.first * 512;
            let end = ((pl.last + 1) * 512).min(len);
            if start < end {
                f.seek(SeekFrom::Start(start)).unwrap();
                let mut buf = vec![0u8; (end - start) as usize];
                f.read_exact(&mut buf).unwrap();
                h.update(&buf);
            }
            h.finalize()
        })
        .collect()
}

/// The table sectors of an image: MBR, primary header+array, backup array+header.
pub fn table_sectors(p: &Path) -> Vec<Vec<u8>> {
    let n = sectors(p);
    let mut f = File::open(p).unwrap();
    let mut v = vec![read_sectors(&mut f, 0, 34).unwrap()];
    v.push(read_sectors(&mut f, n - 33, 33).unwrap());
    v
}

pub fn file_crc(p: &Path) -> u32 {
    crc32fast::hash(&std::fs::read(p).unwrap())
}
