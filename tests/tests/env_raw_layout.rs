//! The recommended env layout (raw redundant copies, docs/env-backend.md) is read and written by
//! every peer through the `fw_env.config` partctl emits for it: fw-env (library), bootcount,
//! libubootenv's fw_printenv/fw_setenv (SWUpdate's writer) and U-Boot's tools/env, and the real
//! U-Boot (qemu-x86-mmc: the raw redundant env on an SD card) loads what the Linux writers wrote,
//! and they read what U-Boot saved. The card is made by `partctl create` from
//! `tests/src/test-card-raw.toml` with the default env as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zbot_tests::{find_program, run_ok, DiskImage, Peer, ENV_SIZE};

fn card(dir: &Path) -> (DiskImage, PathBuf) {
    let mut l = partctl::layout::Layout::from_toml(zbot_tests::TEST_CARD_RAW_LAYOUT).unwrap();
    // The default env as text, made into both copies (and the ext4 file) by partctl create.
    std::fs::write(
        dir.join("env.txt"),
        format!(
            "gen=created\nbootdelay=0\nbootcmd={}\n",
            zbot_tests::mmc_redund_bootcmd()
        ),
    )
    .unwrap();
    if let partctl::layout::Content::Env { text, .. } = &mut l.partitions[1].content {
        *text = Some("env.txt".into());
    }
    let img = dir.join("card.img");
    let disk = DiskImage::create_from(&img, &l).unwrap();
    // partctl's fw_env.config for the card, the device being the image file here.
    let cfg = dir.join("fw_env.config");
    let text = partctl::emit::emit(&l, partctl::emit::EmitKind::FwEnvConfig)
        .replace(&l.disk.linux_device, disk.path().to_str().unwrap());
    assert_eq!(
        text.lines().filter(|x| !x.starts_with('#')).count(),
        2,
        "{text}"
    );
    std::fs::write(&cfg, text).unwrap();
    (disk, cfg)
}

fn fw_env_get(cfg: &Path, name: &str) -> Option<String> {
    let store = fw_env::OpenOptions {
        config: cfg.to_path_buf(),
        lock_file: cfg.with_file_name("lock"),
        ..Default::default()
    }
    .open()
    .unwrap();
    let s = store.read().unwrap();
    assert!(s.is_valid(), "fw-env: no valid copy");
    assert_eq!(s.layout, fw_env::Layout::Redundant);
    s.vars.get(name).map(|v| v.to_string())
}

fn fw_env_set(cfg: &Path, name: &str, value: &str) {
    let store = fw_env::OpenOptions {
        config: cfg.to_path_buf(),
        lock_file: cfg.with_file_name("lock"),
        ..Default::default()
    }
    .open()
    .unwrap();
    store
        .apply(&fw_env::Changes::new().set(name, value))
        .unwrap();
}

fn printenv(peer: Peer, cfg: &Path, name: &str) -> String {
    let out = run_ok(
        peer.command()
            .env("FW_ENV_LOCK_FILE", cfg.with_file_name("lock"))
            .arg("-c")
            .arg(cfg)
            .arg(name),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn setenv(peer: Peer, cfg: &Path, name: &str, value: &str) {
    run_ok(peer.command().arg("-c").arg(cfg).arg(name).arg(value));
}

/// Boot the qemu-x86-mmc U-Boot on the card: it loads the env, prints `gen`, saves `gen=new`.
fn uboot_boot(card: &Path) -> String {
    let qemu = find_program("qemu-system-x86_64").expect("qemu-system-x86_64");
    let mut c = Command::new(qemu);
    c.args(["-M", "pc", "-m", "256M", "-smp", "1", "-accel", "tcg"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-no-reboot", "-nic", "none", "-bios"])
        .arg(Peer::QemuX86MmcUboot.require())
        .args(["-device", "sdhci-pci", "-drive"])
        .arg(format!("if=none,id=sd,format=raw,file={}", card.display()))
        .args(["-device", "sd-card,drive=sd"])
        .stdin(Stdio::null());
    let o = zbot_tests::run_ok(&mut c);
    String::from_utf8_lossy(&o.stdout).replace('\r', "")
}

fn loaded_gen(out: &str) -> Option<&str> {
    out.split("@@loaded")
        .nth(1)?
        .lines()
        .find_map(|l| l.trim().strip_prefix("gen="))
}

/// A named writer of `gen`.
type Writer<'a> = (&'a str, &'a dyn Fn(&str));

#[test]
fn every_peer_reads_and_writes_the_raw_redundant_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, cfg) = card(dir.path());
    let img = disk.path().to_path_buf();
    // partctl's card: both copies hold the text env; the ext4 file too (the field's U-Boot).
    assert_eq!(fw_env_get(&cfg, "gen").as_deref(), Some("created"));
    let file = disk
        .read_file("/uboot.env")
        .unwrap()
        .expect("the ext4 file");
    assert_eq!(file.len(), ENV_SIZE);
    let single = fw_env::codec::decode(&file, fw_env::Layout::Single).unwrap();
    assert_eq!(single.vars.get("gen").as_deref(), Some("created"));
    for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
        assert_eq!(printenv(peer, &cfg, "gen"), "gen=created", "{peer:?}");
    }

    // Each writer in turn; every reader sees each write.
    let writers: [Writer; 3] = [
        ("fw-env", &|v| fw_env_set(&cfg, "gen", v)),
        ("libubootenv", &|v| {
            setenv(Peer::LibubootenvSetenv, &cfg, "gen", v)
        }),
        ("U-Boot tools/env", &|v| {
            setenv(Peer::UbootSetenv, &cfg, "gen", v)
        }),
    ];
    for round in 0..2 {
        for (who, write) in &writers {
            let v = format!("{who}-{round}").replace([' ', '/'], "_");
            write(&v);
            assert_eq!(
                fw_env_get(&cfg, "gen").as_deref(),
                Some(v.as_str()),
                "{who}"
            );
            for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
                assert_eq!(
                    printenv(peer, &cfg, "gen"),
                    format!("gen={v}"),
                    "{who} then {peer:?}"
                );
            }
        }
    }
    let last = "U-Boot_tools_env-1";

    // The real U-Boot loads what Linux wrote, and Linux reads what U-Boot saved.
    let out = uboot_boot(&img);
    assert_eq!(loaded_gen(&out), Some(last), "{out}");
    assert!(out.contains("@@saved"), "{out}");
    assert_eq!(fw_env_get(&cfg, "gen").as_deref(), Some("new"));
    for peer in [Peer::LibubootenvPrintenv, Peer::UbootPrintenv] {
        assert_eq!(printenv(peer, &cfg, "gen"), "gen=new", "{peer:?}");
    }
    // And once more the other way round, over U-Boot's save (its flag counter).
    setenv(Peer::LibubootenvSetenv, &cfg, "gen", "after-uboot");
    assert_eq!(loaded_gen(&uboot_boot(&img)), Some("after-uboot"));

    // bootcount reads the env through the same config.
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        "root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs\n",
    )
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut reboot = || Ok(());
    let code = bootcount::cli::main_with(
        [
            "bootcount",
            "-c",
            cfg.to_str().unwrap(),
            "--cmdline",
            cmdline.to_str().unwrap(),
            "status",
            "--json",
        ]
        .into_iter()
        .map(Into::into)
        .collect(),
        &mut bootcount::cli::Ctx {
            out: &mut out,
            err: &mut err,
            reboot: &mut reboot,
        },
    );
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(out.contains("\"env_valid\": true"), "{out}");
}
