//! The command-line tools end to end: behaviour, output, exit codes, and every bad input
//! leaving the bytes on disk unchanged.

mod common;
use common::*;
use fw_env::codec::Layout;

fn board(case: &Case) -> (std::path::PathBuf, String) {
    let env = case.path("uboot.env");
    std::fs::write(
        &env,
        image(
            &[
                ("next_boot", "otafs"),
                ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
                ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
            ],
            Layout::Single,
            0,
        ),
    )
    .unwrap();
    let cfg = case.config(&format!("# board\n{} 0x0000 0x4000\n", env.display()));
    (env, cfg.display().to_string())
}

#[test]
fn the_line_users_know() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let o = case.run("fw-env", &["-c", &cfg, "set", "next_boot", "rootfs"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_copy(&env, 0, Layout::Single)
            .unwrap()
            .vars
            .get("next_boot")
            .as_deref(),
        Some("rootfs")
    );
    let o = case.run("fw-env", &["-c", &cfg, "get", "next_boot"]);
    assert_eq!(stdout(&o), "rootfs\n");
}

#[test]
fn printenv_output_and_exit_codes() {
    let case = Case::new();
    let (_, cfg) = board(&case);
    let o = case.run("fw_printenv", &["-c", &cfg]);
    assert_eq!(
        stdout(&o),
        "next_boot=otafs\notafs=root=/dev/mmcblk0p3 rootwait rw\nrootfs=root=/dev/mmcblk0p4 rootwait rw\n"
    );
    assert_eq!(o.status.code(), Some(0));
    // libubootenv (the default): a missing variable is `NAME=`, exit 0.
    let o = case.run("fw_printenv", &["-c", &cfg, "next_boot", "missing"]);
    assert_eq!(stdout(&o), "next_boot=otafs\nmissing=\n");
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
    let o = case.run("fw_printenv", &["-n", "next_boot", "-c", &cfg]);
    assert_eq!(stdout(&o), "otafs\n");
    let o = case.run("fw_printenv", &["-c", &cfg, "-n", "next_boot", "missing"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("otafs\n\n", Some(0))
    );
    let o = case.run("fw_printenv", &["-c", &cfg, "-n"]);
    assert_eq!(o.status.code(), Some(1), "-n alone would be ignored");
    // U-Boot's tools/env, on request.
    let uboot = |args: &[&str]| {
        case.cmd("fw_printenv")
            .env("FW_ENV_DROPIN", "uboot-tools")
            .args(args)
            .output()
            .unwrap()
    };
    let o = uboot(&["-c", &cfg, "next_boot", "missing"]);
    assert_eq!(stdout(&o), "next_boot=otafs\n");
    assert_eq!(stderr(&o), "## Error: \"missing\" not defined\n");
    assert_eq!(o.status.code(), Some(1));
    let o = uboot(&["-c", &cfg, "-n", "a", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("requires exactly one argument"));
    let o = case.run("fw_printenv", &["--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    let o = case.run("fw_printenv", &["-h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("Usage: fw_printenv"));
    let o = case.run("fw_setenv", &["-V"]);
    assert!(stdout(&o).starts_with("fw_setenv (fw-env)"));
}

#[test]
fn setenv_pairs_or_joins_values_and_deletes() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    // libubootenv (the default): name/value pairs, an empty value is stored.
    let o = case.run(
        "fw_setenv",
        &[
            "-c",
            &cfg,
            "bootargs",
            "console=ttyS0,115200 quiet",
            "empty",
            "",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = case.run("fw_setenv", &["-c", &cfg, "next_boot"]);
    assert!(o.status.success());
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(
        d.vars.get("bootargs").as_deref(),
        Some("console=ttyS0,115200 quiet")
    );
    assert_eq!(d.vars.get_bytes(b"empty"), Some(&b""[..]), "kept as empty=");
    assert!(!d.vars.contains("next_boot"));
    // U-Boot's tools/env: values joined, an empty value deletes.
    let o = case
        .cmd("fw_setenv")
        .env("FW_ENV_DROPIN", "uboot-tools")
        .args(["-c", &cfg, "bootargs", "console=ttyS0", "quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = case
        .cmd("fw_setenv")
        .env("FW_ENV_DROPIN", "uboot-tools")
        .args(["-c", &cfg, "empty", ""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(
        d.vars.get("bootargs").as_deref(),
        Some("console=ttyS0 quiet")
    );
    assert!(!d.vars.contains("empty"));
}

#[test]
fn script_sets_everything_in_one_write() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let script = case.path("script.txt");
    std::fs::write(
        &script,
        "# update\nnext_boot=rootfs\nupgrade_available=1\notafs=\n",
    )
    .unwrap();
    let ino_before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&env).unwrap());
    let o = case.run("fw_setenv", &["-c", &cfg, "-s", script.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(d.vars.get("next_boot").as_deref(), Some("rootfs"));
    assert_eq!(d.vars.get("upgrade_available").as_deref(), Some("1"));
    assert!(!d.vars.contains("otafs"));
    assert_ne!(
        ino_before,
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&env).unwrap()),
        "replaced once"
    );
    // From stdin too.
    let mut child = case
        .cmd("fw_setenv")
        .args(["-c", &cfg, "-s", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from_stdin=yes\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        read_copy(&env, 0, Layout::Single)
            .unwrap()
            .vars
            .get("from_stdin")
            .as_deref(),
        Some("yes")
    );
}

#[test]
fn friendly_set_many_print_json_unset_and_check() {
    let case = Case::new();
    let (_, cfg) = board(&case);
    assert!(case
        .run(
            "fw-env",
            &["-c", &cfg, "set", "a=1", "b=two words", "c=x=y"]
        )
        .status
        .success());
    let o = case.run("fw-env", &["-c", &cfg, "print", "--json", "a", "b", "c"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": "1", "b": "two words", "c": "x=y"})
    );
    assert!(case
        .run("fw-env", &["-c", &cfg, "unset", "a", "b"])
        .status
        .success());
    let o = case.run("fw-env", &["-c", &cfg, "get", "a"]);
    assert_eq!(o.status.code(), Some(1));
    let o = case.run("fw-env", &["-c", &cfg, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("CRC ok"));
    assert!(stdout(&o).contains("[active]"));
}

#[test]
fn backslashes_as_uboot_sees_them() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    assert!(case
        .run("fw-env", &["-c", &cfg, "set", "p", r"C:\dir"])
        .status
        .success());
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(
        d.vars.get("p").as_deref(),
        Some(r"C:\\dir"),
        "stored the way U-Boot's saveenv stores it"
    );
    assert_eq!(
        stdout(&case.run("fw-env", &["-c", &cfg, "get", "p"])),
        "C:\\dir\n"
    );
    assert_eq!(
        stdout(&case.run("fw-env", &["-c", &cfg, "get", "--raw", "p"])),
        "C:\\\\dir\n"
    );
    assert_eq!(
        stdout(&case.run("fw_printenv", &["-c", &cfg, "p"])),
        "p=C:\\\\dir\n",
        "drop-in shows bytes like the C tools"
    );
}

#[test]
fn redundant_check_reports_both_copies() {
    let case = Case::new();
    let img = case.path("disk.img");
    let mut bytes = vec![0u8; 2 << 20];
    bytes[0x100000..0x104000].copy_from_slice(&image(&[("a", "1")], Layout::Redundant, 4));
    bytes[0x104000..0x108000].copy_from_slice(&[0xff; 0x4000]);
    std::fs::write(&img, &bytes).unwrap();
    let cfg = case.config(&format!(
        "{0} 0x100000 0x4000\n{0} 0x104000 0x4000\n",
        img.display()
    ));
    let cfg = cfg.to_str().unwrap();
    let o = case.run("fw-env", &["-c", cfg, "check"]);
    assert_eq!(o.status.code(), Some(1), "a bad copy is a problem found");
    let out = stdout(&o);
    assert!(
        out.contains("copy 1:") && out.contains("flags 4") && out.contains("[active]"),
        "{out}"
    );
    assert!(out.contains("copy 2:") && out.contains("BAD CRC"), "{out}");
    let o = case.run("fw-env", &["-c", cfg, "check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["copies"][1]["status"]["state"], "bad-crc");
    // The next write repairs the bad copy, with the next flag.
    assert!(case
        .run("fw-env", &["-c", cfg, "set", "b", "2"])
        .status
        .success());
    let o = case.run("fw-env", &["-c", cfg, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("flags 5"));
}

#[test]
fn no_valid_copy_warns_and_writes_from_defaults() {
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, vec![0u8; 0x4000]).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", env.display()));
    let cfg = cfg.to_str().unwrap();
    let defaults = case.path("u-boot-initial-env");
    std::fs::write(&defaults, "next_boot=otafs\nbootdelay=1\n").unwrap();
    let o = case.run(
        "fw_printenv",
        &["-c", cfg, "-f", defaults.to_str().unwrap()],
    );
    assert!(
        stderr(&o).contains("no valid environment"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "bootdelay=1\nnext_boot=otafs\n");
    let o = case.run(
        "fw-env",
        &[
            "-c",
            cfg,
            "--defaults",
            defaults.to_str().unwrap(),
            "set",
            "next_boot",
            "rootfs",
        ],
    );
    assert!(o.status.success());
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(d.vars, vars(&[("bootdelay", "1"), ("next_boot", "rootfs")]));
    let o = case.run("fw-env", &["-c", cfg, "check"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn flags_violations_write_nothing() {
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(
        &env,
        image(
            &[(".flags", "serial#:so,count:d"), ("serial#", "A1")],
            Layout::Single,
            0,
        ),
    )
    .unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", env.display()));
    let cfg = cfg.to_str().unwrap();
    let before = std::fs::read(&env).unwrap();
    for args in [
        vec!["-c", cfg, "serial#", "B2"],
        vec!["-c", cfg, "serial#"],
        vec!["-c", cfg, "count", "12x"],
    ] {
        let o = case.run("fw_setenv", &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("serial#") || stderr(&o).contains("type: d"),
            "{}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(&env).unwrap(), before);
    }
    assert!(case
        .run("fw_setenv", &["-c", cfg, "count", "12"])
        .status
        .success());
}

/// Every bad input: a clear error naming the thing, exit 1, and the bytes on disk unchanged.
#[test]
fn bad_input_is_refused_and_nothing_changes() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let before = std::fs::read(&env).unwrap();
    let unchanged = |what: &str| {
        assert_eq!(
            std::fs::read(&env).unwrap(),
            before,
            "{what}: bytes changed"
        )
    };

    let o = case.run("fw_setenv", &["-c", &cfg, "a=b", "c"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("contains '='"), "{}", stderr(&o));
    unchanged("name with =");

    let o = case.run("fw-env", &["-c", &cfg, "set", "=x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be empty"), "{}", stderr(&o));
    unchanged("empty name");

    let big = "x".repeat(0x4000);
    let o = case.run("fw-env", &["-c", &cfg, "set", "big", &big]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("environment full: needs"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("uboot.env"), "{}", stderr(&o));
    unchanged("too big");

    let o = case.run("fw-env", &["-c", "/nonexistent/fw_env.config", "print"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/fw_env.config"),
        "{}",
        stderr(&o)
    );

    let bad_cfg = case.path("bad.config");
    std::fs::write(&bad_cfg, format!("# x\n{} zz 0x4000\n", env.display())).unwrap();
    let o = case.run("fw_setenv", &["-c", bad_cfg.to_str().unwrap(), "a", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.config:2: offset"),
        "{}",
        stderr(&o)
    );
    unchanged("malformed config");

    let img = case.path("small.img");
    std::fs::write(&img, vec![0u8; 2 << 20]).unwrap();
    let short_cfg = case.path("short.config");
    std::fs::write(&short_cfg, format!("{} 0x1FF000 0x4000\n", img.display())).unwrap();
    let o = case.run(
        "fw-env",
        &["-c", short_cfg.to_str().unwrap(), "set", "a", "1"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("shorter than offset"), "{}", stderr(&o));

    let wrong_size = case.path("wrong.config");
    std::fs::write(&wrong_size, format!("{} 0 0x2000\n", env.display())).unwrap();
    let o = case.run(
        "fw-env",
        &["-c", wrong_size.to_str().unwrap(), "set", "a", "1"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("valid with size 0x4000"),
        "{}",
        stderr(&o)
    );
    unchanged("env size mismatch");

    let script = case.path("bad-script");
    std::fs::write(&script, "a=1\n=oops\n").unwrap();
    let o = case.run("fw_setenv", &["-c", &cfg, "-s", script.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad-script:2"), "{}", stderr(&o));
    unchanged("bad script line");
}

#[test]
fn permission_denied_names_the_file() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let before = std::fs::read(&env).unwrap();
    // The directory and the file are read-only; root ignores modes, so it runs as nobody.
    let ro = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    ro(&env, 0o444);
    ro(case.dir.path(), 0o555);
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_fw-env"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_fw-env"))
    };
    let lock = std::env::temp_dir().join(format!("fw-env-test-perm-{}.lock", std::process::id()));
    let o = cmd
        .args(["-c", &cfg, "set", "a", "1"])
        .env("FW_ENV_LOCK_FILE", &lock)
        .output()
        .unwrap();
    ro(case.dir.path(), 0o755);
    let _ = std::fs::remove_file(&lock);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ermission denied"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(case.dir.path().to_str().unwrap()),
        "names the place: {}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&env).unwrap(), before);
}

#[test]
fn lock_held_too_long_is_an_error() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let before = std::fs::read(&env).unwrap();
    let lock = std::fs::File::create(case.path("lock")).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let o = case
        .cmd("fw-env")
        .env("FW_ENV_LOCK_TIMEOUT", "0.3")
        .args(["-c", &cfg, "set", "a", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("held by another process"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&env).unwrap(), before);
}

#[test]
fn mkimage_writes_an_image_fw_env_reads() {
    let case = Case::new();
    let txt = case.path("env.txt");
    std::fs::write(&txt, "next_boot=otafs\n").unwrap();
    let out = case.path("env.bin");
    let o = case.run(
        "fw-env",
        &[
            "mkimage",
            "-s",
            "0x4000",
            txt.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_copy(&out, 0, Layout::Single).unwrap().vars,
        vars(&[("next_boot", "otafs")])
    );
    // An existing, larger output is replaced whole (no stale tail), with its mode kept.
    std::fs::write(&out, vec![0xAA; 0x8000]).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    assert!(case
        .run(
            "fw-env",
            &["mkimage", txt.to_str().unwrap(), out.to_str().unwrap()]
        )
        .status
        .success());
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 0x4000);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640);
    // Input that does not fit: the error names the input and the exact need; output untouched.
    let before = std::fs::read(&out).unwrap();
    let o = case.run(
        "fw-env",
        &[
            "mkimage",
            "-s",
            "0x10",
            txt.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("env.txt: environment full: needs 17 bytes, 12 available"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
}
