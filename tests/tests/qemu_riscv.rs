//! The qemu-riscv64 U-Boot built with the board's env backend loads `/uboot.env` from the
//! ext4 on virtio partition 2 at boot, runs its `bootcmd`, and its `saveenv` writes back.

use zbot_tests::oracle::parse_env_vars;
use zbot_tests::{mkenvimage, DiskImage, QemuRiscv, ENV_SIZE};

#[test]
fn qemu_riscv_boots_with_env_from_ext4_partition_2() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let env = "bootdelay=0\n\
               marker=from-disk\n\
               bootcmd=echo ZBOT marker=${marker}; setenv marker saved-by-qemu; saveenv; poweroff\n";
    disk.write_file("/uboot.env", &mkenvimage(env, ENV_SIZE, &[]).unwrap())
        .unwrap();

    let run = QemuRiscv::new(&disk).run().unwrap();
    assert!(
        run.success(),
        "QEMU did not power off cleanly:\n{}",
        run.output
    );
    assert!(
        run.output.contains("Loading Environment from EXT4... OK"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("ZBOT marker=from-disk"),
        "{}",
        run.output
    );

    let saved = disk.read_file("/uboot.env").unwrap().unwrap();
    assert_eq!(saved.len(), ENV_SIZE);
    let vars = parse_env_vars(&saved[4..]);
    assert!(
        vars.contains(&("marker".into(), "saved-by-qemu".into())),
        "{vars:?}"
    );
    disk.fsck_p2().unwrap();
}
