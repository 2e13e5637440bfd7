//! On a real block device (a loop device over a copy of the golden image): size from
//! BLKGETSIZE64, check, repair with fsync and BLKRRPART, restore. Skipped (with a message) when
//! loop devices are not available (not root, no /dev/loop-control).

mod common;
use common::*;
use std::io::{Seek, SeekFrom, Write};

struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

#[test]
fn check_and_repair_a_loop_device() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    let o = sh("losetup", &["-f", "--show", img.to_str().unwrap()]);
    if o.code != 0 {
        eprintln!("SKIPPED: cannot attach a loop device: {}", o.stderr.trim());
        return;
    }
    let dev = Loop(o.stdout.trim().to_string());
    let c = partctl(&["check", &dev.0, "--layout", SMALL]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    assert!(
        c.stdout.contains("92160 sectors"),
        "size from BLKGETSIZE64: {}",
        c.stdout
    );
    // Damage through the block device itself.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&dev.0)
            .unwrap();
        f.seek(SeekFrom::Start(512)).unwrap();
        f.write_all(&[0u8; 512]).unwrap();
        f.sync_all().unwrap();
    }
    let c = partctl(&["check", &dev.0]);
    assert_eq!(c.code, 1, "{}", c.stdout);
    let bk = d.path().join("b.bin");
    let r = partctl(&["repair", &dev.0, "--yes", "--backup", bk.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(partctl(&["check", &dev.0, "--layout", SMALL]).code, 0);
    let r = partctl(&["restore", bk.to_str().unwrap(), &dev.0]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(partctl(&["check", &dev.0]).code, 1);
}
