//! uboot-scripts' artefacts against the real tools and U-Boot: `boot.scr` is what `mkimage`
//! makes; the generated default environment is what `mkenvimage` makes (and fw-env's
//! `mkimage`), real U-Boot loads it and boots recovery from it; fw-env and bootcount read what
//! the script's `saveenv` wrote (values with spaces, `=` and backslashes intact); and what
//! hush does to values the policy cannot compare (measured, see docs/uboot-scripts.md).

use bootcount::SlotConfig;
use fw_env::codec::{self, uboot_view};
use fw_env::{Layout, Vars};
use std::process::Command;
use uboot_scripts::{Board, Generated};
use zbot_tests::{find_program, mkenvimage, run_ok, DiskImage, Sandbox, ENV_SIZE};

fn sandbox_gen() -> Generated {
    Generated::new(&SlotConfig::builtin(), &Board::sandbox(), "slots.toml").unwrap()
}

#[test]
fn boot_scr_is_byte_identical_to_mkimage() {
    let mkimage = find_program("mkimage")
        .expect("mkimage not found: install Debian package u-boot-tools (scripts/setup-debian.sh)");
    let dir = tempfile::tempdir().unwrap();
    for cfg in [
        SlotConfig::builtin(),
        SlotConfig::from_toml(include_str!("../../bootcount/dist/slots-ab.toml"), "ab").unwrap(),
    ] {
        let g = Generated::new(&cfg, &Board::milkv_duos(), "slots.toml").unwrap();
        let cmd = dir.path().join("boot.cmd");
        let scr = dir.path().join("boot.scr");
        std::fs::write(&cmd, g.boot_cmd()).unwrap();
        run_ok(
            Command::new(&mkimage)
                .env("SOURCE_DATE_EPOCH", "0")
                .args([
                    "-A", "riscv", "-O", "linux", "-T", "script", "-C", "none", "-n",
                ])
                .arg("zbot boot script")
                .arg("-d")
                .arg(&cmd)
                .arg(&scr),
        );
        let ours =
            uboot_scripts::image::script_image(g.boot_cmd().as_bytes(), "zbot boot script", 0);
        assert_eq!(ours, std::fs::read(&scr).unwrap());
        assert_eq!(
            uboot_scripts::image::script_of(&ours),
            Some(g.boot_cmd().as_bytes())
        );
    }
}

#[test]
fn default_env_is_what_mkenvimage_makes_and_uboot_boots_recovery_from_it() {
    let g = sandbox_gen();
    let text = g.default_env_text();
    let theirs = mkenvimage(&text, ENV_SIZE, &[]).unwrap();
    // mkenvimage pads with 0xff unless told otherwise.
    let ours = codec::mkimage_from_text(text.as_bytes(), ENV_SIZE, Layout::Single, 0xff).unwrap();
    assert!(
        ours == theirs,
        "fw-env mkimage != mkenvimage for the generated default env"
    );

    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    disk.write_file("/uboot.env", &theirs).unwrap();
    // What U-Boot loaded, exported to a host file (printenv truncates long lines).
    let run = Sandbox::new(&disk)
        .run("env export -b 0x100000; save hostfs - 0x100000 exported ${filesize}; run zbot-policy; printenv bootargs")
        .unwrap();
    assert!(
        run.output.contains("Loading Environment from EXT4... OK"),
        "{}",
        run.output
    );
    let (loaded, _) = codec::parse_data(&std::fs::read(dir.path().join("exported")).unwrap());
    for (n, v) in &g.default_env {
        assert_eq!(loaded.get(n).as_deref(), Some(v.as_str()), "{n}");
    }
    assert!(
        run.script_output().contains("@@zbot-bootm"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("Saving Environment"),
        "the default env is healthy: no save"
    );
    let bootargs = run
        .script_output()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("bootargs="));
    assert_eq!(
        bootargs,
        Some("console=ttyS0,115200 earlycon=sbi root=/dev/mmcblk0p3 rootwait rw zbot.slot=otafs")
    );
    assert_eq!(
        disk.read_file("/uboot.env").unwrap().unwrap(),
        theirs,
        "file untouched"
    );
}

#[test]
fn fw_env_and_bootcount_read_what_the_scripts_saveenv_wrote() {
    let g = sandbox_gen();
    // A trial starting, plus odd values elsewhere in the env (as stored on disk: U-Boot's
    // escaping doubles the backslash).
    let mut stored: Vars = g
        .default_env
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    for (n, v) in [
        ("next_boot", "rootfs"),
        ("zbot_trial", "rootfs"),
        ("zbot_tries", "0"),
        ("zbot_prev", "otafs"),
        ("spaced", "a b  c"),
        ("equals", "root=/dev/x a=b"),
        ("bs", r"C:\\dir\\x"),
    ] {
        stored.set(n, v).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    disk.write_file(
        "/uboot.env",
        &codec::encode(&stored, ENV_SIZE, Layout::Single, 0).unwrap(),
    )
    .unwrap();
    let run = Sandbox::new(&disk)
        .run("run zbot-policy; printenv bootargs")
        .unwrap();
    assert_eq!(
        run.output.matches("Saving Environment to").count(),
        1,
        "{}",
        run.output
    );

    let saved = disk.read_file("/uboot.env").unwrap().unwrap();
    let d = codec::decode(&saved, Layout::Single).expect("valid CRC");
    assert_eq!(d.vars.get("zbot_tries").as_deref(), Some("1"));
    assert_eq!(d.vars.get("spaced").as_deref(), Some("a b  c"));
    assert_eq!(d.vars.get("equals").as_deref(), Some("root=/dev/x a=b"));
    assert_eq!(
        d.vars.get("bs").as_deref(),
        Some(r"C:\\dir\\x"),
        "stored escaped, as before"
    );
    let view = uboot_view(&d.vars);
    assert_eq!(
        view.get("bs").as_deref(),
        Some(r"C:\dir\x"),
        "what U-Boot and fw-env get show"
    );

    // bootcount (through fw-env's Store) on the file U-Boot wrote.
    let host = dir.path().join("uboot.env");
    std::fs::write(&host, &saved).unwrap();
    let cfg = zbot_tests::fw_env_config(dir.path(), &host, ENV_SIZE).unwrap();
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        "console=ttyS0,115200 earlycon=sbi root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs\n",
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
    assert!(out.contains("\"rootfs\""), "{out}");
    assert!(out.contains("\"env_valid\": true"), "{out}");
    assert!(out.contains("\"attempts\": 1"), "{out}");
}

/// Characterisation of old hush, the reason the policy's values exclude backslashes: hush
/// removes a backslash from every substituted value, so a stored `next_boot=root\\fs` (U-Boot
/// holds `root\fs`, which is not a slot name) compares equal to `rootfs`. The engine boots the
/// recovery slot; this U-Boot boots rootfs. Only a hand-made value can look like this (bootcount
/// writes slot names); if this test starts failing, hush changed: update docs/uboot-scripts.md.
#[test]
fn hush_drops_backslashes_from_substituted_values() {
    let g = sandbox_gen();
    let mut stored: Vars = g
        .default_env
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    stored.set("next_boot", r"root\\fs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    disk.write_file(
        "/uboot.env",
        &codec::encode(&stored, ENV_SIZE, Layout::Single, 0).unwrap(),
    )
    .unwrap();
    let run = Sandbox::new(&disk)
        .run("run zbot-policy; echo slot=${zb_slot}")
        .unwrap();
    let engine = bootcount::bootloader_step(&SlotConfig::builtin(), &uboot_view(&stored));
    assert_eq!(SlotConfig::builtin().name(engine.slot), "otafs");
    assert!(
        run.script_output().contains("slot=rootfs"),
        "{}",
        run.output
    );
}

/// A robot in the field: its env holds the seed's variables and the seed's own `bootcmd`
/// (saved on every boot by the old script). After `uboot-scripts env-update` is applied (as
/// `fw_setenv -s -` would), U-Boot runs the policy and the robot's state is unchanged.
#[test]
fn seed_env_plus_env_update_runs_the_policy() {
    let cfg = SlotConfig::builtin();
    let g = sandbox_gen();
    let mut stored: Vars = [
        ("next_boot", "rootfs"),
        ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
        ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
        ("root", "root=/dev/mmcblk0p4 rootwait rw"),
        ("first_boot", "1"),
        (
            "bootcmd",
            "if test ${next_boot} = otafs; then setenv root ${otafs}; else setenv root ${rootfs}; fi; saveenv; echo @@seed-boot",
        ),
    ]
    .into_iter()
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    let write = |v: &Vars| {
        disk.write_file(
            "/uboot.env",
            &codec::encode(v, ENV_SIZE, Layout::Single, 0).unwrap(),
        )
        .unwrap()
    };
    write(&stored);
    let run = Sandbox::new(&disk).run("run bootcmd").unwrap();
    assert!(
        run.output.contains("@@seed-boot"),
        "before the update the seed's bootcmd runs"
    );
    write(&stored);
    for (n, v) in g.script_vars(&cfg) {
        stored.set(n, v).unwrap();
    }
    write(&stored);
    let before = disk.read_file("/uboot.env").unwrap();
    let run = Sandbox::new(&disk)
        .run("run bootcmd; printenv bootargs")
        .unwrap();
    assert!(
        run.script_output().contains("@@zbot-bootm"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("Saving Environment"),
        "healthy: no write"
    );
    assert!(run.output.contains("zbot.slot=rootfs"), "{}", run.output);
    assert_eq!(disk.read_file("/uboot.env").unwrap(), before);
}

/// Why the script does not use the quoted comparison `test "${x}" = "name"` (which the
/// contract's first hush notes suggested): in old hush a value is re-parsed inside single
/// quotes, so `x' = 'x' -o 'a` makes it true (injection), a lone `'` is a syntax error whose
/// `then` branch still runs, and an unset variable unquoted vanishes (`test = rootfs` is true).
/// The generated form `test x${x} = xname` under `HUSH_NO_EVAL=1` is false for all three.
#[test]
fn quoted_comparisons_are_unsafe_in_old_hush_and_the_generated_form_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
    std::fs::write(dir.path().join("vals"), "a=x' = 'x' -o 'a\nq=it's\n").unwrap();
    let check = |cond: &str| format!("if {cond}; then echo @@true; else echo @@false; fi");
    let run = Sandbox::new(&disk)
        .run(
            &[
                "load hostfs - 0x100000 vals; env import -d -t 0x100000 ${filesize}".to_string(),
                check("test \"${a}\" = \"rootfs\""),
                check("test \"${q}\" = \"rootfs\""),
                check("test ${nope} = rootfs"),
                "HUSH_NO_EVAL=1".to_string(),
                check("test x${a} = xrootfs"),
                check("test x${q} = xrootfs"),
                check("test x${nope} = xrootfs"),
                check("test x${nope} = x"),
            ]
            .join("; "),
        )
        .unwrap();
    let got: Vec<&str> = run
        .script_output()
        .lines()
        .filter_map(|l| l.strip_prefix("@@"))
        .collect();
    assert_eq!(
        got,
        ["true", "true", "true", "false", "false", "false", "true"],
        "{}",
        run.output
    );
}
