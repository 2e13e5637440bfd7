//! End to end on the board's architecture: a card made by `partctl create` (with a default
//! environment made from text by fw-env's mkimage) boots the qemu-riscv64 U-Boot built with the
//! board's env backend (ext4 file on virtio 0:2). U-Boot loads the environment from the env
//! filesystem, lists the GPT partitions, and its `saveenv` writes back; the card stays sound.
//! QEMU, OpenSBI and the U-Boot build are found by `zbot_tests::Peer`: a missing one fails.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn qemu_riscv_uboot_boots_a_created_card() {
    // A missing peer fails the test and says how to install or build it.
    let opensbi = Peer::Opensbi.require();
    let ub = Peer::QemuRiscvUboot.require();
    let d = tmp();
    let input = d.path();
    std::fs::write(input.join("env.txt"), "bootdelay=0\nmarker=from-partctl\nbootcmd=echo ZBOT marker=${marker}; part list virtio 0; setenv marker saved-by-uboot; saveenv; poweroff\n").unwrap();
    // The env comes from text, made into the image by fw-env's mkimage inside `create`.
    let layout = std::fs::read_to_string(SMALL).unwrap().replace(
        "size = 0x30000, mount = \"/bootenv\" }",
        "size = 0x30000, text = \"env.txt\", mount = \"/bootenv\" }",
    );
    assert!(layout.contains("text = \"env.txt\""));
    let lp = input.join("layout.toml");
    std::fs::write(&lp, layout).unwrap();
    let img = input.join("card.img");
    let o = partctl(&["create", lp.to_str().unwrap(), img.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);

    let mut child = Peer::QemuSystemRiscv64
        .command()
        .args([
            "-M",
            "virt",
            "-m",
            "256M",
            "-nographic",
            "-no-reboot",
            "-bios",
        ])
        .arg(&opensbi)
        .arg("-kernel")
        .arg(&ub)
        .args([
            "-drive",
            &format!("file={},format=raw,if=none,id=hd0", img.display()),
            "-device",
            "virtio-blk-device,drive=hd0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait: kill our own QEMU if U-Boot never powers off.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Loading Environment from EXT4... OK"),
        "{text}"
    );
    assert!(text.contains("ZBOT marker=from-partctl"), "{text}");
    for name in [
        "\"boot\"",
        "\"env\"",
        "\"otafs\"",
        "\"rootfs\"",
        "\"data\"",
        "\"staging\"",
    ] {
        assert!(text.contains(name), "part list lacks {name}: {text}");
    }
    // U-Boot's saveenv rewrote the file; the filesystem and the tables are still sound.
    let pl = small_layout().place();
    let env = input.join("env.part");
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
    assert_eq!(peer(Peer::E2fsck, &["-fn", env.to_str().unwrap()]).code, 0);
    let o = peer(
        Peer::Debugfs,
        &["-R", "cat /uboot.env", env.to_str().unwrap()],
    );
    assert!(
        o.stdout.contains("marker=saved-by-uboot"),
        "saveenv wrote back"
    );
    assert_eq!(
        partctl(&[
            "check",
            img.to_str().unwrap(),
            "--layout",
            lp.to_str().unwrap()
        ])
        .code,
        0
    );
}
