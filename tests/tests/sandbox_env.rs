//! The helpers work against the real sandbox U-Boot: its `saveenv` puts `/uboot.env` on
//! partition 2, the image's CRC is zlib's crc32, and it loads what `mkenvimage` wrote.

use zbot_tests::oracle::{crc_ok, parse_env_vars};
use zbot_tests::{mkenvimage, DiskImage, Peer, Sandbox, ENV_SIZE};

#[test]
fn sandbox_saveenv_creates_uboot_env_on_partition_2() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    assert_eq!(
        disk.read_file("/uboot.env").unwrap(),
        None,
        "fresh fs has no env"
    );

    let run = Sandbox::new(&disk)
        .run("setenv next_boot rootfs; setenv spaced 'a b=c'; saveenv")
        .unwrap();
    assert!(run.success(), "saveenv failed:\n{}", run.output);

    let env = disk
        .read_file("/uboot.env")
        .unwrap()
        .expect("saveenv wrote /uboot.env");
    assert_eq!(
        env.len(),
        ENV_SIZE,
        "ext4 saveenv writes exactly CONFIG_ENV_SIZE bytes"
    );
    assert!(
        crc_ok(4, &env),
        "CRC of U-Boot's saveenv is zlib crc32 over the data area"
    );
    let vars = parse_env_vars(&env[4..]);
    assert!(
        vars.contains(&("next_boot".into(), "rootfs".into())),
        "{vars:?}"
    );
    assert!(
        vars.contains(&("spaced".into(), "a b=c".into())),
        "{vars:?}"
    );
    let mut names: Vec<_> = vars.iter().map(|(n, _)| n.clone()).collect();
    let stored = names.clone();
    names.sort();
    assert_eq!(stored, names, "U-Boot exports sorted by name");
    let used: usize = vars
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum::<usize>()
        + 1;
    assert!(
        env[4 + used..].iter().all(|&b| b == 0),
        "unused area is zero-filled"
    );
    disk.fsck_p2().expect("U-Boot leaves a clean ext4");
}

#[test]
fn sandbox_loads_env_written_by_mkenvimage_and_saves_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let image = mkenvimage("next_boot=otafs\nbootlimit=3\n", ENV_SIZE, &[]).unwrap();
    disk.write_file("/uboot.env", &image).unwrap();

    let run = Sandbox::new(&disk)
        .run("printenv next_boot bootlimit; setenv next_boot rootfs; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    assert!(
        run.output.contains("Loading Environment from EXT4... OK"),
        "{}",
        run.output
    );
    assert_eq!(
        run.printed_var("next_boot"),
        Some("otafs"),
        "{}",
        run.output
    );
    assert_eq!(run.printed_var("bootlimit"), Some("3"), "{}", run.output);

    let run = Sandbox::new(&disk).run("printenv next_boot").unwrap();
    assert_eq!(
        run.printed_var("next_boot"),
        Some("rootfs"),
        "{}",
        run.output
    );
}

#[test]
fn sandbox_without_env_file_uses_defaults_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let run = Sandbox::new(&disk).run("printenv bootcmd").unwrap();
    assert!(
        run.output.contains("** File not found /uboot.env **"),
        "{}",
        run.output
    );
    assert!(
        run.printed_var("bootcmd").is_some(),
        "default env present: {}",
        run.output
    );
}

#[test]
fn both_fw_printenv_peers_read_what_uboot_saved() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let run = Sandbox::new(&disk)
        .run("setenv zbot_peer_check 42; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    let env_file = dir.path().join("uboot.env");
    std::fs::write(&env_file, disk.read_file("/uboot.env").unwrap().unwrap()).unwrap();
    let cfg = zbot_tests::fw_env_config(dir.path(), &env_file, ENV_SIZE).unwrap();
    for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
        let out = zbot_tests::run_ok(peer.command().arg("-c").arg(&cfg).arg("zbot_peer_check"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "zbot_peer_check=42\n",
            "{peer:?}"
        );
    }
}
