//! Shared test harness: a fresh temp dir per case, the partctl binary, the golden small image,
//! the peers (sgdisk, sfdisk, parted, ..., found by `zbot_tests::Peer`) and the independent readers (the `gpt` and `mbrman`
//! crates).
#![allow(dead_code)]

pub mod damages;

use partctl::check::check;
use partctl::disk::{read_sectors, Snapshot};
use partctl::gpt::{parse_header, GptHeader};
use partctl::layout::Layout;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
pub use zbot_tests::Peer;

pub const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/zbot-duos-small.toml");
pub const BOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/zbot-duos.toml");

pub fn small_layout() -> Layout {
    Layout::load(Path::new(SMALL)).unwrap()
}

pub use zbot_tests::target::{target_bin, target_command};

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

/// Run a test peer, found where every crate's tests find it (`zbot_tests::Peer`: a missing
/// one fails the test and says how to install it).
pub fn peer(p: Peer, args: &[&str]) -> Out {
    let o = p
        .command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{p:?}: {e}"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// Run a base system program (coreutils, util-linux), not a peer.
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
    let o = peer(Peer::Sgdisk, &["-v", img.to_str().unwrap()]);
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

/// A GPT partition as `(number, start, size, type, uuid, name)`, GUIDs in capitals (as sfdisk
/// --json reports them).
pub type Part = (u32, u64, u64, String, String, String);

/// The partitions as partctl itself reads them.
pub fn partctl_parts(img: &Path) -> Vec<Part> {
    let r = check(&snapshot(img), None);
    r.partitions
        .iter()
        .map(|(n, e)| {
            (
                *n,
                e.first_lba,
                e.last_lba - e.first_lba + 1,
                e.type_guid.to_string(),
                e.uuid.to_string(),
                e.name.clone(),
            )
        })
        .collect()
}

/// Read `img` with the `gpt` and `mbrman` crates, which share no code with partctl's
/// hand-written codecs, and compare with partctl's own reading: both GPT headers valid (CRCs,
/// signature, the crate's own checks) with the same disk GUID, usable range and entry array;
/// the same partitions; the same four MBR entries, disk signature and CHS addresses (255
/// heads, 63 sectors, saturated as fdisk does). Returns the partitions, or what disagrees.
pub fn independent_readers_agree(img: &Path) -> Result<Vec<Part>, String> {
    let ours = partctl_parts(img);
    let s = snapshot(img);
    let disk = gpt::GptConfig::new()
        .writable(false)
        .only_valid_headers(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open(img)
        .map_err(|e| format!("gpt crate cannot read {}: {e}", img.display()))?;
    let theirs: Vec<Part> = disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(n, p)| {
            (
                *n,
                p.first_lba,
                p.last_lba - p.first_lba + 1,
                p.part_type_guid.guid.to_string().to_uppercase(),
                p.part_guid.to_string().to_uppercase(),
                p.name.clone(),
            )
        })
        .collect();
    if theirs != ours {
        return Err(format!(
            "gpt crate reads {theirs:?}\npartctl reads {ours:?}"
        ));
    }
    let ours_h = &s
        .primary
        .raw
        .as_ref()
        .ok_or("partctl: no primary header")?
        .header;
    for (which, h) in [
        ("primary", disk.primary_header()),
        ("backup", disk.backup_header()),
    ] {
        let h = h.map_err(|e| format!("gpt crate: {which} header: {e}"))?;
        let seen = (
            h.disk_guid.to_string().to_uppercase(),
            h.first_usable,
            h.last_usable,
            h.num_parts,
            h.part_size,
        );
        let want = (
            ours_h.disk_guid.to_string(),
            ours_h.first_usable,
            ours_h.last_usable,
            ours_h.num_entries,
            ours_h.entry_size,
        );
        if seen != want {
            return Err(format!(
                "{which} header: gpt crate {seen:?}, partctl {want:?}"
            ));
        }
    }
    mbrman_agrees(img, &s)?;
    Ok(ours)
}

/// The MBR as mbrman reads it against partctl's reading `s`: see [`independent_readers_agree`].
fn mbrman_agrees(img: &Path, s: &Snapshot) -> Result<(), String> {
    let mbr = mbrman::MBR::read_from(&mut File::open(img).unwrap(), 512)
        .map_err(|e| format!("mbrman cannot read {}: {e}", img.display()))?;
    if mbr.header.disk_signature != s.mbr.disk_signature.to_le_bytes() {
        return Err(format!(
            "disk signature: mbrman {:02x?}, partctl {:08x}",
            mbr.header.disk_signature, s.mbr.disk_signature
        ));
    }
    if !mbr.logical_partitions.is_empty() {
        return Err(format!(
            "mbrman finds logical partitions: {:?}",
            mbr.logical_partitions
        ));
    }
    let chs = |lba: u32| {
        mbrman::CHS::from_lba_exact(lba, 1024, 255, 63).unwrap_or(mbrman::CHS::new(1023, 254, 63))
    };
    for (i, e) in s.mbr.entries.iter().enumerate() {
        let m = mbr.get(i + 1).unwrap();
        let seen = (m.boot, m.sys, m.starting_lba, m.sectors);
        let want = (e.boot, e.kind, e.start, e.size);
        if seen != want {
            return Err(format!(
                "MBR entry {}: mbrman {seen:?}, partctl {want:?}",
                i + 1
            ));
        }
        if !e.is_empty() && (m.first_chs, m.last_chs) != (chs(e.start), chs(e.start + e.size - 1)) {
            return Err(format!(
                "MBR entry {}: CHS {:?}..{:?} for LBA {}+{}",
                i + 1,
                m.first_chs,
                m.last_chs,
                e.start,
                e.size
            ));
        }
    }
    Ok(())
}
