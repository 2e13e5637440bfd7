//! Real peers: images made by `partctl create` pass `sgdisk -v` and read the same in sfdisk and
//! parted; partctl reads images made by genimage (Debian's) and by sgdisk/sfdisk.
//! U-Boot's `part list` (sandbox U-Boot): tests/uboot.rs. Wherever sfdisk reads a card, the
//! `gpt` and `mbrman` crates read it too (common::independent_readers_agree).

mod common;
use common::*;
use partctl::check::check;
use std::path::Path;

/// `(number, start, size, type, uuid, name)` as sfdisk --json reports them.
fn sfdisk_parts(img: &Path) -> Vec<Part> {
    let o = peer(Peer::Sfdisk, &["--json", img.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let num: u32 = node[node.trim_end_matches(|c: char| c.is_ascii_digit()).len()..]
                .parse()
                .unwrap();
            (
                num,
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_uppercase(),
                p["uuid"].as_str().unwrap().to_uppercase(),
                p["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn created_image_reads_the_same_in_sgdisk_sfdisk_parted() {
    let img = golden();
    let (clean, text) = sgdisk_clean(img);
    assert!(clean, "{text}");
    let l = small_layout();
    let ours = partctl_parts(img);
    assert_eq!(ours.len(), 6);
    assert_eq!(sfdisk_parts(img), ours);
    assert_eq!(independent_readers_agree(img).unwrap(), sfdisk_parts(img));
    for ((n, start, size, _, uuid, name), (spec, pl)) in
        ours.iter().zip(l.partitions.iter().zip(l.place()))
    {
        assert_eq!(
            (*n, *start, *size, uuid.as_str(), name.as_str()),
            (
                pl.number,
                pl.first,
                pl.last + 1 - pl.first,
                spec.uuid.to_string().as_str(),
                spec.name.as_str()
            )
        );
    }
    // sfdisk on the nested MBR: slot 1 is FAT32 LBA, bootable, same sectors as GPT p1; slot 2 is 0xEE from LBA 1.
    let o = peer(
        Peer::Sfdisk,
        &["--label-nested", "dos", "-d", img.to_str().unwrap()],
    );
    assert!(
        o.stdout
            .contains("img1 : start=        2048, size=       69632, type=c, bootable"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("img2 : start=           1, size=        2047, type=ee"),
        "{}",
        o.stdout
    );
    // parted -m: number:start:end:size:fs:name:flags
    let o = peer(
        Peer::Parted,
        &["-m", "-s", img.to_str().unwrap(), "unit", "s", "print"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().skip(2).collect();
    assert_eq!(lines.len(), 6, "{}", o.stdout);
    for (line, (n, start, size, _, _, name)) in lines.iter().zip(&ours) {
        let f: Vec<&str> = line.trim_end_matches(';').split(':').collect();
        assert_eq!(f[0], n.to_string());
        assert_eq!(f[1], format!("{start}s"));
        assert_eq!(f[2], format!("{}s", start + size - 1));
        assert_eq!(f[5], name);
    }
    assert!(
        lines[0].contains("fat32") && lines[0].contains("esp"),
        "{}",
        lines[0]
    );
    // Linux-model agrees too.
    let r = check(&snapshot(img), Some(&l));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn board_layout_image_with_content() {
    let d = tmp();
    let input = d.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("fip.bin"), b"FIP").unwrap();
    std::fs::write(input.join("boot.sd"), b"FIT").unwrap();
    std::fs::write(input.join("uboot.env"), vec![0u8; 0x30000]).unwrap();
    for fs in ["otafs.ext4", "rootfs.ext4"] {
        let p = input.join(fs);
        std::fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
        assert_eq!(
            peer(
                Peer::Mke2fs,
                &["-q", "-F", "-t", "ext4", "-L", fs, p.to_str().unwrap()]
            )
            .code,
            0
        );
    }
    let img = d.path().join("zbot.img");
    let fstab = d.path().join("fstab");
    let o = partctl(&[
        "create",
        BOARD,
        img.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--emit",
        &format!("fstab={}", fstab.display()),
    ]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(std::fs::read_to_string(&fstab)
        .unwrap()
        .contains("/bootenv"));
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
    let c = partctl(&["check", img.to_str().unwrap(), "--layout", BOARD]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    assert!(c.stdout.contains("No problems found."), "{}", c.stdout);
    assert_eq!(sfdisk_parts(&img), partctl_parts(&img));
    assert_eq!(independent_readers_agree(&img).unwrap(), sfdisk_parts(&img));
    // Pull the partitions out and look inside with the filesystem tools.
    let l = partctl::layout::Layout::load(Path::new(BOARD)).unwrap();
    let pl = l.place();
    let extract = |i: usize, name: &str| {
        let out = d.path().join(name);
        let o = sh(
            "dd",
            &[
                &format!("if={}", img.display()),
                &format!("of={}", out.display()),
                "bs=512",
                &format!("skip={}", pl[i].first),
                &format!("count={}", pl[i].last + 1 - pl[i].first),
                "status=none",
            ],
        );
        assert_eq!(o.code, 0);
        out
    };
    let boot = extract(0, "boot.part");
    let o = peer(Peer::Mdir, &["-i", boot.to_str().unwrap(), "-b", "::/"]);
    assert!(
        o.stdout.contains("FIP.BIN") || o.stdout.contains("fip.bin"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    let o = peer(Peer::FsckVfat, &["-n", boot.to_str().unwrap()]);
    assert!(o.stdout.contains("32") || o.code == 0, "{}", o.stdout);
    let env = extract(1, "env.part");
    let o = peer(Peer::E2fsck, &["-fn", env.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = peer(Peer::Dumpe2fs, &["-h", env.to_str().unwrap()]);
    let features = o
        .stdout
        .lines()
        .find(|l| l.starts_with("Filesystem features"))
        .unwrap()
        .to_string();
    assert!(
        !features.contains("metadata_csum") && !features.contains("has_journal"),
        "{features}"
    );
    let o = peer(
        Peer::Debugfs,
        &["-R", "stat /uboot.env", env.to_str().unwrap()],
    );
    assert!(
        o.stdout.contains("Size: 196608"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    let data = extract(4, "data.part");
    assert_eq!(peer(Peer::E2fsck, &["-fn", data.to_str().unwrap()]).code, 0);
    let root = extract(3, "rootfs.part");
    let o = peer(Peer::Dumpe2fs, &["-h", root.to_str().unwrap()]);
    assert!(
        o.stdout.contains("rootfs.ext4"),
        "raw image copied: {}",
        o.stdout
    );
}

#[test]
fn reads_genimage_hybrid_image() {
    let d = tmp();
    let dir = d.path();
    for sub in ["in", "root", "out"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    let boot = dir.join("in/boot.vfat");
    std::fs::File::create(&boot)
        .unwrap()
        .set_len(34 << 20)
        .unwrap();
    assert_eq!(
        peer(
            Peer::MkfsVfat,
            &["-F", "32", "-s", "1", boot.to_str().unwrap()]
        )
        .code,
        0
    );
    let cfg = dir.join("genimage.cfg");
    std::fs::write(
        &cfg,
        r#"image sdcard.img {
  hdimage {
    partition-table-type = "hybrid"
    align = 1M
    disk-uuid = "5a8b0c00-0d05-4b0a-9c3e-0000000000aa"
  }
  partition boot { partition-type = 0xC partition-type-uuid = "U" bootable = true image = "boot.vfat" }
  partition env { partition-type-uuid = "L" size = 256K }
  partition otafs { partition-type-uuid = "L" size = 2M }
  partition rootfs { partition-type-uuid = "L" size = 3M }
  partition data { partition-type-uuid = "L" size = 1M }
  partition staging { partition-type-uuid = "L" size = 2M }
}
"#,
    )
    .unwrap();
    let o = peer(
        Peer::Genimage,
        &[
            "--config",
            cfg.to_str().unwrap(),
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
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let img = dir.join("out/sdcard.img");
    let ours = partctl_parts(&img);
    assert_eq!(ours.len(), 6);
    assert_eq!(sfdisk_parts(&img), ours);
    assert_eq!(independent_readers_agree(&img).unwrap(), sfdisk_parts(&img));
    // genimage's 0xEE entry covers only the GPT (LBA 1..33): legal, reported as a warning.
    let c = partctl(&["check", "--json", img.to_str().unwrap()]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    let kinds: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mbr-protective-size"]);
    assert_eq!(v["linux"]["table"], "primary-gpt");
    // With a layout of the same geometry, the comparison sees the random partition GUIDs.
    let c = partctl(&["check", img.to_str().unwrap(), "--layout", SMALL]);
    assert_eq!(c.code, 1);
    assert!(c.stdout.contains("layout-mismatch"), "{}", c.stdout);
    // A sound table that differs from the layout is never rewritten to the layout's positions.
    let before = file_crc(&img);
    let r = partctl(&["repair", img.to_str().unwrap(), "--yes", "--layout", SMALL]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("partctl does not move partitions"),
        "{}",
        r.stderr
    );
    assert_eq!(file_crc(&img), before);
}

#[test]
fn reads_sgdisk_hybrid_and_sfdisk_images_and_repairs_them_into_board_hybrids() {
    let d = tmp();
    // sgdisk, then `sgdisk -h 1`: its hybrid puts 0xEE in slot 1 and the ESP (type 0xEF, not
    // bootable) in slot 2, which the boot ROM does not accept.
    let img = d.path().join("sgdisk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(45 << 20)
        .unwrap();
    let s = img.to_str().unwrap();
    let o = peer(
        Peer::Sgdisk,
        &[
            "-o",
            "-n",
            "1:2048:+34M",
            "-t",
            "1:ef00",
            "-c",
            "1:boot",
            "-n",
            "2:0:+256K",
            "-c",
            "2:env",
            "-n",
            "3:0:+2M",
            "-c",
            "3:otafs",
            "-n",
            "4:0:+3M",
            "-c",
            "4:rootfs",
            "-n",
            "5:0:+1M",
            "-c",
            "5:data",
            "-n",
            "6:0:+2M",
            "-c",
            "6:staging",
            s,
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(peer(Peer::Sgdisk, &["-h", "1", s]).code, 0);
    assert_eq!(partctl_parts(&img), sfdisk_parts(&img));
    let c = partctl(&["check", "--json", s]);
    assert_eq!(c.code, 1);
    assert!(c.stdout.contains("\"mbr-hybrid-slot\""), "{}", c.stdout);
    let before = partition_crcs(&img, &small_layout());
    let r = partctl(&[
        "repair",
        s,
        "--yes",
        "--backup",
        d.path().join("b1").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(partition_crcs(&img, &small_layout()), before);
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
    assert_eq!(independent_readers_agree(&img).unwrap(), sfdisk_parts(&img));
    let m = snapshot(&img).mbr;
    assert_eq!(
        (
            m.entries[0].boot,
            m.entries[0].kind,
            m.entries[0].start,
            m.entries[0].size
        ),
        (0x80, 0x0C, 2048, 69632)
    );
    assert_eq!((m.entries[1].kind, m.entries[1].start), (0xEE, 1));

    // sfdisk: a plain GPT with a protective MBR (what parted or sfdisk leave behind).
    let img = d.path().join("sfdisk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(45 << 20)
        .unwrap();
    let s = img.to_str().unwrap();
    let script = "label: gpt\nfirst-lba: 34\nstart=2048, size=69632, type=U, name=boot\nsize=512, type=L, name=env\nstart=73728, size=4096, type=L, name=otafs\nsize=6144, type=L, name=rootfs\n";
    let mut child = Peer::Sfdisk
        .command()
        .arg(s)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(partctl_parts(&img), sfdisk_parts(&img));
    let c = partctl(&["check", "--json", s]);
    assert_eq!(c.code, 1, "{}", c.stdout);
    let v: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    let kinds: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mbr-hybrid-missing"], "{}", c.stdout);
    let r = partctl(&[
        "repair",
        s,
        "--yes",
        "--backup",
        d.path().join("b2").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
    assert_eq!(partctl_parts(&img), sfdisk_parts(&img));
    assert_eq!(independent_readers_agree(&img).unwrap(), sfdisk_parts(&img));
    let o = peer(Peer::Sfdisk, &["--label-nested", "dos", "-d", s]);
    assert!(
        o.stdout
            .contains("start=        2048, size=       69632, type=c, bootable"),
        "{}",
        o.stdout
    );
}

#[test]
fn parted_destroys_the_hybrid_and_repair_rebuilds_it() {
    // "parted silently replaces a hybrid MBR by a protective one": rename a partition with it.
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let s = img.to_str().unwrap();
    let o = peer(Peer::Parted, &["-s", s, "name", "6", "staging"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let c = partctl(&["check", "--json", s]);
    assert_eq!(c.code, 1);
    assert!(c.stdout.contains("\"mbr-hybrid-missing\""), "{}", c.stdout);
    let r = partctl(&[
        "repair",
        s,
        "--yes",
        "--backup",
        d.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        read_sector(&img, 0),
        read_sector(golden(), 0),
        "golden hybrid MBR back"
    );
    let (clean, text) = sgdisk_clean(&img);
    assert!(clean, "{text}");
}
