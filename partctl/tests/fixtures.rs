//! Committed fixtures: the table sectors (LBA 0-33 and the last 33) of images made by
//! genimage 16 (hybrid), by `sgdisk` + `sgdisk -h 1`, by sfdisk, and by `partctl create` with
//! the small layout, stored in partctl's backup-file format (card size + sectors). They keep
//! the reader honest without the peers installed, and pin partctl's own output byte for byte.
//! Regenerate with `PARTCTL_BLESS=1 cargo test -p partctl --test fixtures` (needs the peers).

mod common;
use common::*;
use partctl::check::check;
use partctl::disk::Snapshot;
use partctl::model::Tables;
use partctl::repair::Backup;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tables_of(img: &Path) -> Backup {
    let n = sectors(img);
    let sectors = (0..34)
        .chain(n - 33..n)
        .map(|l| (l, read_sector(img, l)))
        .collect();
    Backup {
        disk_bytes: n * 512,
        sectors,
    }
}

/// A sparse card holding only the fixture's sectors.
fn card(b: &Backup) -> std::io::Cursor<Vec<u8>> {
    let mut v = vec![0u8; b.disk_bytes as usize];
    for (l, d) in &b.sectors {
        v[(*l * 512) as usize..(*l * 512 + 512) as usize].copy_from_slice(d);
    }
    std::io::Cursor::new(v)
}

fn load(name: &str) -> Backup {
    Backup::from_bytes(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

fn bless() {
    let d = tmp();
    let dir = d.path();
    // partctl itself
    std::fs::write(
        fixture("partctl-small.tables"),
        tables_of(golden()).to_bytes(),
    )
    .unwrap();
    // genimage
    for sub in ["in", "root", "out"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    std::fs::File::create(dir.join("in/boot.vfat"))
        .unwrap()
        .set_len(34 << 20)
        .unwrap();
    std::fs::write(dir.join("g.cfg"), "image sdcard.img {\n hdimage {\n  partition-table-type = \"hybrid\"\n  align = 1M\n  disk-uuid = \"5a8b0c00-0d05-4b0a-9c3e-0000000000aa\"\n }\n partition boot { partition-type = 0xC partition-type-uuid = \"U\" bootable = true image = \"boot.vfat\" partition-uuid = \"5a8b0c00-0d05-4b0a-9c3e-0000000000a1\" }\n partition env { partition-type-uuid = \"L\" size = 256K partition-uuid = \"5a8b0c00-0d05-4b0a-9c3e-0000000000a2\" }\n partition rootfs { partition-type-uuid = \"L\" size = 3M partition-uuid = \"5a8b0c00-0d05-4b0a-9c3e-0000000000a4\" }\n}\n").unwrap();
    let o = peer(
        Peer::Genimage,
        &[
            "--config",
            dir.join("g.cfg").to_str().unwrap(),
            "--inputpath",
            dir.join("in").to_str().unwrap(),
            "--outputpath",
            dir.join("out").to_str().unwrap(),
            "--rootpath",
            dir.join("root").to_str().unwrap(),
            "--tmppath",
            dir.join("tmp").to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    std::fs::write(
        fixture("genimage16-hybrid.tables"),
        tables_of(&dir.join("out/sdcard.img")).to_bytes(),
    )
    .unwrap();
    // sgdisk hybrid
    let img = dir.join("s.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(45 << 20)
        .unwrap();
    let s = img.to_str().unwrap();
    assert_eq!(
        peer(
            Peer::Sgdisk,
            &[
                "-o",
                "-U",
                "5A8B0C00-0D05-4B0A-9C3E-0000000000BB",
                "-n",
                "1:2048:+34M",
                "-t",
                "1:ef00",
                "-c",
                "1:boot",
                "-u",
                "1:5A8B0C00-0D05-4B0A-9C3E-0000000000B1",
                "-n",
                "2:0:+256K",
                "-c",
                "2:env",
                "-u",
                "2:5A8B0C00-0D05-4B0A-9C3E-0000000000B2",
                s
            ]
        )
        .code,
        0
    );
    assert_eq!(peer(Peer::Sgdisk, &["-h", "1", s]).code, 0);
    std::fs::write(fixture("sgdisk-hybrid.tables"), tables_of(&img).to_bytes()).unwrap();
}

#[test]
fn fixtures() {
    if std::env::var_os("PARTCTL_BLESS").is_some() {
        bless();
    }
    // partctl's own output is pinned.
    let l = small_layout();
    let ours = load("partctl-small.tables");
    let t = Tables::from_layout(&l, ours.disk_bytes / 512);
    for (lba, data) in t.sectors() {
        let f = ours.sectors.iter().find(|(l, _)| *l == lba).unwrap();
        assert_eq!(
            &f.1, &data,
            "sector {lba} differs from the committed fixture"
        );
    }
    // genimage 16 hybrid: read, sound, warning for its small 0xEE entry only.
    let g = load("genimage16-hybrid.tables");
    let s = Snapshot::from_reader(&mut card(&g)).unwrap();
    let r = check(&s, None);
    assert!(r.is_sound(), "{:?}", r.problems);
    assert_eq!(
        r.partitions
            .iter()
            .map(|(_, e)| e.name.as_str())
            .collect::<Vec<_>>(),
        ["boot", "env", "rootfs"]
    );
    assert_eq!(
        r.partitions[0].1.uuid.to_string(),
        "5A8B0C00-0D05-4B0A-9C3E-0000000000A1"
    );
    assert!(r.has(partctl::check::Kind::MbrProtectiveSize));
    assert_eq!(
        (
            s.mbr.entries[0].kind,
            s.mbr.entries[0].boot,
            s.mbr.entries[0].start
        ),
        (0x0C, 0x80, 2048)
    );
    // sgdisk -h 1: the FAT entry is in slot 2, type 0xEF, not bootable -> mbr-hybrid-slot;
    // the repair plan turns it into the board's hybrid.
    let sg = load("sgdisk-hybrid.tables");
    let mut c = card(&sg);
    let s = Snapshot::from_reader(&mut c).unwrap();
    let r = check(&s, None);
    assert!(
        r.has(partctl::check::Kind::MbrHybridSlot),
        "{:?}",
        r.problems
    );
    assert_eq!(r.partitions.len(), 2);
    let plan = partctl::repair::plan(&mut c, &s, None).unwrap();
    assert_eq!(
        plan.writes.iter().map(|w| w.lba).collect::<Vec<_>>(),
        [0],
        "only the MBR changes"
    );
    let m = partctl::mbr::parse(&plan.writes[0].data);
    assert_eq!(
        (m.entries[0].kind, m.entries[0].boot, m.entries[0].start),
        (0x0C, 0x80, 2048)
    );
}
