//! `bootcount/dist/fsck-bootenv` on the field's env filesystem (the 256K ext4 partctl makes,
//! `/uboot.env` in it), run as the robot runs it before `mount -a`.
//!
//! The QEMU power-cut campaign (docs/qemu.md) found a cut that left an unattached inode on the
//! env filesystem: the boot's repair reconnected it to `lost+found`, where its blocks stayed, and
//! the next saves failed with ENOSPC, so the robot could not leave recovery. Here the same
//! state is made with debugfs (a dense 192 KiB file unlinked without freeing its inode: what a
//! cut leaves of the old `/uboot.env` U-Boot was deleting), and the script must repair it, clear
//! `lost+found`, keep `/uboot.env` byte for byte, and leave room for a whole save again.

use std::path::Path;
use std::process::Command;
use zbot_tests::{repo_root, DiskImage, Peer, ENV_SIZE};

/// Run debugfs `request` (writable) on the filesystem image `fs`; debugfs reports failed
/// requests on stderr only.
fn debugfs(fs: &Path, request: &str) -> String {
    let out = Command::new(Peer::Debugfs.require())
        .args(["-w", "-R", request])
        .arg(fs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(problems.is_empty(), "debugfs {request}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Free blocks and the block size, from `dumpe2fs -h`.
fn free_bytes(fs: &Path) -> u64 {
    let out = Command::new("dumpe2fs").arg("-h").arg(fs).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("dumpe2fs -h {}: no {name}\n{text}", fs.display()))
    };
    field("Free blocks:") * field("Block size:")
}

fn e2fsck_clean(fs: &Path) -> bool {
    Command::new("e2fsck")
        .arg("-fn")
        .arg(fs)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_repair_clears_lost_found_and_gives_the_next_save_its_room() {
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    assert_eq!(
        String::from_utf8_lossy(&uid).trim(),
        "0",
        "fsck-bootenv mounts the filesystem: run as root (CI and the dev machines are)"
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("card.img")).unwrap();
    // The env as fw-env's sparse replace leaves it (its zero padding is holes).
    let mut env = vec![0u8; ENV_SIZE];
    env[4..40].copy_from_slice(b"next_boot=otafs\0zbot_trial=rootfs\0\0\0");
    disk.write_file("/uboot.env", &env).unwrap();
    let fs = dir.path().join("p2.ext4");
    std::fs::write(&fs, disk.p2_bytes().unwrap()).unwrap();
    let room_before = free_bytes(&fs);

    // What a cut leaves of the old, dense file: an inode still allocated with no name.
    let stale = dir.path().join("stale");
    std::fs::write(&stale, vec![0x5a; ENV_SIZE - 8 * 1024]).unwrap();
    debugfs(&fs, &format!("write {} stale.env", stale.display()));
    debugfs(&fs, "unlink /stale.env");
    assert!(
        !e2fsck_clean(&fs),
        "the unattached inode makes the filesystem inconsistent"
    );
    assert!(
        room_before >= ENV_SIZE as u64 && free_bytes(&fs) < ENV_SIZE as u64,
        "a whole save fits beside the env, and no longer once the stale inode holds its room"
    );

    let out = Command::new("sh")
        .arg(repo_root().join("bootcount/dist/fsck-bootenv"))
        .env("BOOTENV_DEV", &fs)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fsck-bootenv failed:\n{text}");
    assert!(text.contains("repaired"), "{text}");
    assert!(
        text.contains("removing what the repair put in lost+found"),
        "{text}"
    );

    assert!(e2fsck_clean(&fs), "sound after the repair");
    let listing = debugfs(&fs, "ls -l /lost+found");
    let names: Vec<&str> = listing
        .lines()
        // debugfs lists the directory's unused slots as inode 0 with no name.
        .filter(|l| l.split_whitespace().next().is_some_and(|ino| ino != "0"))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| *n != "." && *n != "..")
        .collect();
    assert!(names.is_empty(), "lost+found cleared: {listing}");
    let dump = dir.path().join("uboot.env.out");
    debugfs(&fs, &format!("dump /uboot.env {}", dump.display()));
    assert_eq!(
        std::fs::read(&dump).unwrap(),
        env,
        "/uboot.env kept byte for byte"
    );
    assert_eq!(
        free_bytes(&fs),
        room_before,
        "all the stale inode's blocks are free again"
    );

    // A sound filesystem is only checked: nothing written (flash wear), nothing said.
    let before = std::fs::read(&fs).unwrap();
    let out = Command::new("sh")
        .arg(repo_root().join("bootcount/dist/fsck-bootenv"))
        .env("BOOTENV_DEV", &fs)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&fs).unwrap(),
        before,
        "a sound filesystem is not written"
    );
}
