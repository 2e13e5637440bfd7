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

/// Partition 2 of a card image, loop-mounted read-write (needs root, as the card tests do);
/// unmounted when dropped.
struct Mounted {
    dir: tempfile::TempDir,
}

impl Mounted {
    fn new(disk: &DiskImage) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let o = std::process::Command::new("mount")
            .arg("-t")
            .arg("ext4")
            .arg("-o")
            .arg(format!(
                "loop,offset={},sizelimit={}",
                disk.p2_offset(),
                disk.p2_len()
            ))
            .arg(disk.path())
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "loop-mount of partition 2 (needs root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mounted { dir }
    }
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Data blocks of `/uboot.env` on partition 2 as debugfs lists them, and its block size.
fn env_blocks(disk: &DiskImage) -> (usize, u64) {
    let target = format!("{}?offset={}", disk.path().display(), disk.p2_offset());
    let run = |req: &str| {
        let o = std::process::Command::new("debugfs")
            .arg("-R")
            .arg(req)
            .arg(&target)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let blocks = run("blocks /uboot.env").split_whitespace().count();
    let stats = run("stats");
    let bs = stats
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("debugfs stats: block size");
    (blocks, bs)
}

/// The field's case: a 192 KiB `/uboot.env` in the 256K ext4 env partition, 36 KiB free, so a
/// second dense copy does not fit. fw-env replaces it (temporary file, fsync, rename, fsync
/// directory) with a sparse temporary file of a few blocks; real U-Boot loads the sparse file,
/// saves over it (densely), fw-env replaces that again, libubootenv reads it, e2fsck is clean.
#[test]
fn field_env_file_is_replaced_sparsely_and_uboot_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let run = Sandbox::new(&disk)
        .run("setenv from_uboot 1; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    let (dense, bs) = env_blocks(&disk);
    // (debugfs also lists the file's extent-tree block, if it has one.)
    assert!(
        dense as u64 * bs >= ENV_SIZE as u64,
        "U-Boot's saveenv writes the file densely: {dense} blocks of {bs}"
    );

    let write = |name: &str, value: &str| {
        let mnt = Mounted::new(&disk);
        let env = mnt.path().join("uboot.env");
        let cfg = zbot_tests::fw_env_config(dir.path(), &env, ENV_SIZE).unwrap();
        // statvfs: available blocks and their size.
        let o = std::process::Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(mnt.path())
            .output()
            .unwrap();
        let f: Vec<u64> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let free = f[0] * f[1];
        assert!(
            free < ENV_SIZE as u64,
            "no room for a dense second copy: {free} bytes free"
        );
        let store = fw_env::Store::from_config_file(&cfg)
            .unwrap()
            .with_lock_file(None);
        let snap = store.read().unwrap();
        assert!(snap.is_valid());
        assert_eq!(
            snap.copies[0].write_mode,
            fw_env::storage::WriteMode::Replace,
            "the field's env file is replaced, not written in place ({free} bytes free)"
        );
        store
            .apply(&fw_env::Changes::new().set(name, value))
            .unwrap();
        let snap = store.read().unwrap();
        assert_eq!(snap.vars.get(name).as_deref(), Some(value));
        drop(mnt);
        let (blocks, _) = env_blocks(&disk);
        println!(
            "fw-env wrote /uboot.env in {blocks} blocks of {bs} bytes (U-Boot's dense file: {dense}); {free} bytes were free"
        );
        assert!(
            (blocks as u64) * bs < ENV_SIZE as u64 / 4,
            "the file is sparse: {blocks} blocks"
        );
        disk.fsck_p2()
            .expect("e2fsck -fn clean after fw-env's write");
        blocks
    };

    write("from_linux", "sparse-1");
    let run = Sandbox::new(&disk)
        .run("printenv from_uboot from_linux; setenv from_uboot 2; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    assert!(
        run.output.contains("Loading Environment from EXT4... OK"),
        "{}",
        run.output
    );
    assert_eq!(
        run.printed_var("from_linux"),
        Some("sparse-1"),
        "{}",
        run.output
    );
    assert_eq!(run.printed_var("from_uboot"), Some("1"), "{}", run.output);
    disk.fsck_p2()
        .expect("e2fsck -fn clean after U-Boot's saveenv");

    write("from_linux", "sparse-2");
    let run = Sandbox::new(&disk)
        .run("printenv from_uboot from_linux")
        .unwrap();
    assert_eq!(run.printed_var("from_uboot"), Some("2"), "{}", run.output);
    assert_eq!(
        run.printed_var("from_linux"),
        Some("sparse-2"),
        "{}",
        run.output
    );

    // libubootenv reads the same bytes (a copy of the file, as the other peer tests do).
    let env_file = dir.path().join("uboot.env");
    let bytes = disk.read_file("/uboot.env").unwrap().unwrap();
    assert_eq!(bytes.len(), ENV_SIZE);
    std::fs::write(&env_file, bytes).unwrap();
    let cfg = zbot_tests::fw_env_config(dir.path(), &env_file, ENV_SIZE).unwrap();
    let out = zbot_tests::run_ok(
        Peer::LibubootenvPrintenv
            .command()
            .arg("-c")
            .arg(&cfg)
            .arg("from_linux"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from_linux=sparse-2\n"
    );
}
