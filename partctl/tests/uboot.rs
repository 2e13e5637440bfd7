//! Real U-Boot (the sandbox build from `qemu/build-uboot.sh`): `part list` reads created and
//! repaired images like partctl does, falls back to the backup GPT where Linux does not, and
//! U-Boot's ext4 writer accepts the env filesystem. The sandbox U-Boot is found by
//! `zbot_tests::Peer::Sandbox`; a missing build fails the tests and says how to build it.

mod common;
use common::damages::{cases, Repair};
use common::*;
use partctl::kernel::KernelTable;
use std::path::Path;

fn uboot(u: &Path, script: &str) -> String {
    let o = std::process::Command::new(u)
        .args(["-T", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `(number, first LBA, last LBA, name)` from `part list`.
fn part_list(u: &Path, img: &Path) -> Vec<(u32, u64, u64, String)> {
    let out = uboot(
        u,
        &format!("host bind 0 {}; part list host 0", img.display()),
    );
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 4 && f[1].starts_with("0x") && f[3].starts_with('"') {
                Some((
                    f[0].parse().ok()?,
                    u64::from_str_radix(&f[1][2..], 16).ok()?,
                    u64::from_str_radix(&f[2][2..], 16).ok()?,
                    f[3].trim_matches('"').to_string(),
                ))
            } else {
                None
            }
        })
        .collect()
}

fn ours(img: &Path) -> Vec<(u32, u64, u64, String)> {
    partctl::check::check(&snapshot(img), None)
        .partitions
        .into_iter()
        .map(|(n, e)| (n, e.first_lba, e.last_lba, e.name))
        .collect()
}

#[test]
fn uboot_reads_created_and_repaired_images() {
    let u = Peer::Sandbox.require();
    let golden_list = part_list(&u, golden());
    assert_eq!(
        golden_list.len(),
        6,
        "U-Boot part list of the created image"
    );
    assert_eq!(golden_list, ours(golden()));
    let mut fails = Vec::new();
    for case in cases().into_iter().filter(|c| c.repair != Repair::Refused) {
        let d = tmp();
        let img = d.path().join("card.img");
        copy_image(golden(), &img);
        (case.damage)(&img);
        let mut args = vec!["repair", img.to_str().unwrap(), "--yes", "--backup"];
        let bk = d.path().join("b");
        args.push(bk.to_str().unwrap());
        if case.repair == Repair::NeedsLayout {
            args.extend(["--layout", SMALL]);
        }
        assert_eq!(partctl(&args).code, 0, "{}", case.name);
        if part_list(&u, &img) != golden_list {
            fails.push(case.name);
        }
    }
    assert!(
        fails.is_empty(),
        "U-Boot reads these repaired images differently: {fails:?}"
    );
}

#[test]
fn uboot_falls_back_to_the_backup_where_linux_does_not() {
    let u = Peer::Sandbox.require();
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    write_at(&img, 1, &[0; 512]);
    assert_eq!(part_list(&u, &img).len(), 6, "U-Boot uses the backup GPT");
    let r = partctl::check::check(&snapshot(&img), None);
    assert_eq!(
        r.linux.table,
        KernelTable::None,
        "Linux without `gpt` sees nothing"
    );
    assert_eq!(r.linux_with_gpt_option.table, KernelTable::AlternateGpt);
}

#[test]
fn uboot_ext4_writer_accepts_the_env_filesystem() {
    let u = Peer::Sandbox.require();
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let out = uboot(&u, &format!("host bind 0 {}; mw.b ${{loadaddr}} 0x41 0x30000; ext4write host 0:2 ${{loadaddr}} /uboot.env 0x30000; ext4ls host 0:2 /", img.display()));
    assert!(
        out.contains("196608 bytes written") && out.contains("196608 uboot.env"),
        "{out}"
    );
    let pl = small_layout().place();
    let env = d.path().join("env.part");
    let o = sh(
        "dd",
        &[
            &format!("if={}", img.display()),
            &format!("of={}", env.display()),
            "bs=512",
            &format!("skip={}", pl[1].first),
            &format!("count={}", pl[1].last + 1 - pl[1].first),
            "status=none",
        ],
    );
    assert_eq!(o.code, 0);
    let o = peer(Peer::E2fsck, &["-fn", env.to_str().unwrap()]);
    assert_eq!(
        o.code, 0,
        "e2fsck after U-Boot's write: {}{}",
        o.stdout, o.stderr
    );
    // And U-Boot's write did not disturb the tables.
    assert_eq!(
        partctl(&["check", img.to_str().unwrap(), "--layout", SMALL]).code,
        0
    );
}
