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
    std::fs::write(&defaults, "next_boot=otafs\nbootdelay=1\nbootcmd=boot\n").unwrap();
    let o = case.run(
        "fw_printenv",
        &["-c", cfg, "-f", defaults.to_str().unwrap()],
    );
    assert!(
        stderr(&o).contains("no valid environment"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "bootcmd=boot\nbootdelay=1\nnext_boot=otafs\n");
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
    assert!(o.status.success(), "{}", stderr(&o));
    let d = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(
        d.vars,
        vars(&[
            ("bootcmd", "boot"),
            ("bootdelay", "1"),
            ("next_boot", "rootfs")
        ])
    );
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

// ---- Issue 10: reliability. Each test names the class of problem it keeps from coming back.

/// Run with a deadline: a hang (a FIFO opened blocking, an unbounded wait) fails the test
/// instead of hanging the suite.
fn run_bounded(
    case: &Case,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut c = case.cmd(name);
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{name} {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A refusal: exit 1 (never a panic's 101), the message contains every `want`.
fn assert_refused(o: &std::process::Output, wants: &[&str], what: &str) {
    assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(o));
    for w in wants {
        assert!(
            stderr(o).contains(w),
            "{what}: wanted {w:?} in: {}",
            stderr(o)
        );
    }
}

/// The two write commands, as users type them.
fn set_cmds<'a>(cfg: &'a str, extra: &[&'a str]) -> Vec<(&'static str, Vec<&'a str>)> {
    let mut friendly = vec!["-c", cfg];
    // fw-env spells the defaults option --defaults; the drop-in -f.
    friendly.extend(
        extra
            .iter()
            .map(|a| if *a == "-f" { "--defaults" } else { a }),
    );
    friendly.extend(["set", "next_boot", "rootfs"]);
    let mut dropin = vec!["-c", cfg];
    dropin.extend_from_slice(extra);
    dropin.extend(["next_boot", "rootfs"]);
    vec![("fw-env", friendly), ("fw_setenv", dropin)]
}

#[test]
fn useless_defaults_file_is_refused_after_an_env_loss() {
    // An empty, comment-only, garbage or bootcmd-less defaults file used to be accepted, and
    // the first write stored an environment with only the new variable: U-Boot stopped at its
    // prompt.
    let case = Case::new();
    let env = case.path("uboot.env");
    let lost = vec![0u8; 0x4000];
    std::fs::write(&env, &lost).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", env.display()));
    let cfg = cfg.to_str().unwrap();
    let defaults = case.path("u-boot-initial-env");
    let d = defaults.to_str().unwrap();
    let rows: &[(&str, &str)] = &[
        ("", "defines no variable"),
        ("# only comments\n\n# here\n", "defines no variable"),
        ("\x7fELF\x02\x01\x01\x00\x00garbage", "NUL byte"),
        ("next_boot=otafs\nbootdelay=1\n", "no bootcmd"),
        (
            "bootcmd=run sdboot\nnext_boot=otafs\n",
            "bootcmd runs sdboot, which it does not define",
        ),
        (
            "bootcmd=boot\nthis is not a variable\n",
            "u-boot-initial-env:2: `this is not a variable` is not NAME=VALUE",
        ),
    ];
    for (text, why) in rows {
        std::fs::write(&defaults, text).unwrap();
        for (name, args) in set_cmds(cfg, &["-f", d]) {
            let o = case.run(name, &args);
            assert_refused(
                &o,
                &[why, d, "given with -f/--defaults", "refusing to write"],
                &format!("{name} with {text:?}"),
            );
            // The warning before the refusal must not promise a write.
            assert!(!stderr(&o).contains("starts from"), "{}", stderr(&o));
            assert!(
                stderr(&o).contains("a write will be refused"),
                "{}",
                stderr(&o)
            );
            assert_eq!(
                std::fs::read(&env).unwrap(),
                lost,
                "{name} {text:?}: nothing written"
            );
        }
    }
    // Reading still works, with a warning saying the file is not usable.
    let o = case.run("fw_printenv", &["-c", cfg, "-f", d]);
    assert!(stderr(&o).contains("not usable"), "{}", stderr(&o));
    // A usable one is accepted.
    std::fs::write(&defaults, "bootcmd=run sdboot\nsdboot=boot\n").unwrap();
    for (name, args) in set_cmds(cfg, &["-f", d]) {
        let o = case.run(name, &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
    let copy = read_copy(&env, 0, Layout::Single).unwrap();
    assert_eq!(copy.vars.get("bootcmd").as_deref(), Some("run sdboot"));
}

#[test]
fn no_defaults_warning_does_not_contradict_the_refusal() {
    // The warning used to say "a write starts from an empty environment" just before the
    // write was refused.
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, vec![0xffu8; 0x4000]).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", env.display()));
    for (name, args) in set_cmds(cfg.to_str().unwrap(), &[]) {
        let o = case.run(name, &args);
        assert_refused(
            &o,
            &["no default environment configured", "will be refused"],
            name,
        );
        assert!(!stderr(&o).contains("starts from"), "{}", stderr(&o));
    }
}

#[test]
fn write_through_a_symlinked_env_path_reaches_the_real_file() {
    // The temporary file used to be renamed over the symlink: U-Boot's file kept the old
    // value and the tool exited 0.
    let case = Case::new();
    let (real, _) = board(&case);
    std::fs::create_dir(case.path("bootenv")).unwrap();
    let link = case.path("bootenv/uboot.env");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", link.display()));
    let cfg = cfg.to_str().unwrap();
    for (name, value) in [("fw-env", "one"), ("fw_setenv", "two")] {
        let args: Vec<&str> = if name == "fw-env" {
            vec!["-c", cfg, "set", "next_boot", value]
        } else {
            vec!["-c", cfg, "next_boot", value]
        };
        let o = case.run(name, &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name}: link kept"
        );
        let copy = read_copy(&real, 0, Layout::Single).unwrap();
        assert_eq!(copy.vars.get("next_boot").as_deref(), Some(value), "{name}");
    }
    assert!(!case.path("bootenv/.uboot.env.fw-env-tmp").exists());
    assert!(!case.path(".uboot.env.fw-env-tmp").exists());
    // A dangling link is a clear error, nothing is created.
    let dangling = case.path("bootenv/gone.env");
    std::os::unix::fs::symlink(case.path("nowhere/uboot.env"), &dangling).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", dangling.display()));
    let defaults = case.path("defaults");
    std::fs::write(&defaults, "bootcmd=boot\n").unwrap();
    for (name, args) in set_cmds(cfg.to_str().unwrap(), &["-f", defaults.to_str().unwrap()]) {
        let o = case.run(name, &args);
        assert_refused(&o, &["gone.env", "symbolic link", "does not exist"], name);
    }
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn hard_linked_env_file_is_refused() {
    // A rename would leave the other name (which U-Boot might read) with the old value.
    let case = Case::new();
    let (env, cfg) = board(&case);
    let other = case.path("other-name.env");
    std::fs::hard_link(&env, &other).unwrap();
    let before = std::fs::read(&env).unwrap();
    for (name, args) in set_cmds(&cfg, &[]) {
        let o = case.run(name, &args);
        assert_refused(&o, &["2 hard links", "uboot.env"], name);
        assert_eq!(std::fs::read(&env).unwrap(), before);
        assert_eq!(std::fs::read(&other).unwrap(), before);
    }
    // Reading is harmless and allowed.
    let o = case.run("fw_printenv", &["-c", &cfg, "next_boot"]);
    assert_eq!(stdout(&o), "next_boot=otafs\n");
}

#[test]
fn config_layout_mismatch_never_overwrites_a_valid_env() {
    // A wrong offset, a redundant config over a single-copy env, a single config over a
    // redundant copy, or two lines naming the same region used to let a write (from the
    // defaults) destroy a valid environment.
    let case = Case::new();
    let defaults = case.path("defaults");
    std::fs::write(&defaults, "bootcmd=boot\n").unwrap();
    let d = defaults.to_str().unwrap();
    let env = case.path("uboot.env");
    let env2 = case.path("uboot2.env");
    let single = image(&[("next_boot", "otafs")], Layout::Single, 0);
    let redundant = image(&[("next_boot", "otafs")], Layout::Redundant, 1);
    let e = env.display();
    let e2 = env2.display();
    // (what is on disk, config, what the refusal says)
    let rows: Vec<(Vec<u8>, String, Vec<&str>)> = vec![
        // wrong offset: the env is at 0, the config says 0x4000 (past the end of the file)
        (
            single.clone(),
            format!("{e} 0x4000 0x4000\n"),
            vec!["at offset 0x0", "says offset 0x4000"],
        ),
        // the env file holds two single-size areas, env in the second; config says the first
        (
            [vec![0u8; 0x4000], single.clone()].concat(),
            format!("{e} 0 0x4000\n"),
            vec!["at offset 0x4000", "says offset 0x0"],
        ),
        // redundant config over a single-copy env
        (
            single.clone(),
            format!("{e} 0 0x4000\n{e2} 0 0x4000\n"),
            vec!["valid single-copy environment", "two copies (redundant)"],
        ),
        // single config over a redundant copy
        (
            redundant.clone(),
            format!("{e} 0 0x4000\n"),
            vec!["valid redundant", "one copy (non-redundant)"],
        ),
        // the board's size mistake: 0x30000 file, config 0x4000 (message of the size check)
        (
            codec_image_of_size(0x30000),
            format!("{e} 0 0x4000\n"),
            vec!["valid with size 0x30000", "says 0x4000"],
        ),
        // two lines naming the same region
        (
            single.clone(),
            format!("{e} 0 0x4000\n{e} 0 0x4000\n"),
            vec!["overlapping regions", "fw_env.config:1 and"],
        ),
        // overlapping, not identical
        (
            single.clone(),
            format!("{e} 0 0x4000\n{e} 0x2000 0x4000\n"),
            vec!["overlapping regions"],
        ),
    ];
    for (bytes, cfg_text, wants) in rows {
        std::fs::write(&env, &bytes).unwrap();
        let _ = std::fs::remove_file(&env2);
        let cfg = case.config(&cfg_text);
        for (name, args) in set_cmds(cfg.to_str().unwrap(), &["-f", d]) {
            let o = case.run(name, &args);
            assert_refused(&o, &wants, &format!("{name} with {cfg_text:?}"));
            assert_eq!(
                std::fs::read(&env).unwrap(),
                bytes,
                "{name} {cfg_text:?}: nothing written"
            );
            assert!(!env2.exists());
        }
    }
    // The same file under two names (a symlink) overlapping: found once resolved.
    std::fs::write(&env, &single).unwrap();
    let alias = case.path("alias.env");
    std::os::unix::fs::symlink(&env, &alias).unwrap();
    let cfg = case.config(&format!("{e} 0 0x4000\n{} 0 0x4000\n", alias.display()));
    for (name, args) in set_cmds(cfg.to_str().unwrap(), &["-f", d]) {
        assert_refused(&case.run(name, &args), &["overlapping regions"], name);
        assert_eq!(std::fs::read(&env).unwrap(), single);
    }
}

fn codec_image_of_size(size: usize) -> Vec<u8> {
    fw_env::codec::encode(&vars(&[("next_boot", "otafs")]), size, Layout::Single, 0).unwrap()
}

#[test]
fn absurd_config_numbers_are_errors_naming_file_and_line() {
    // Sizes and offsets used to reach allocations and arithmetic unchecked (panics, OOM).
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, image(&[("a", "1")], Layout::Single, 0)).unwrap();
    let e = env.display();
    let rows: Vec<(String, &str)> = vec![
        (format!("{e} 0 0xffffffffffffffff\n"), "larger than"),
        (format!("{e} 0 0x10000000000000000\n"), "out of range"),
        (format!("{e} 0 0\n"), "too small"),
        (format!("{e} 0 4\n"), "too small"),
        (format!("{e} 0x7fffffffffffffff 0x4000\n"), "does not fit"),
        (format!("{e} -0x8000000000000000 0x4000\n"), "out of range"),
        (format!("{e} 0xffffffffffffffff 0x4000\n"), "out of range"),
        (format!("{e} -0x100 0x4000\n"), "counts back"),
        (format!("{e} 0 0x4000 zz\n"), "sector size"),
        (
            format!("{e} 0 0x4000 0x200 0x1ffffffffffffffff\n"),
            "out of range",
        ),
    ];
    for (text, want) in rows {
        let cfg = case.config(&format!("# comment\n{text}"));
        let c = cfg.to_str().unwrap();
        for (name, args) in set_cmds(c, &[]) {
            let o = run_bounded(&case, name, &args, &[]);
            assert_refused(&o, &[want, &format!("{c}:2")], &format!("{name} {text:?}"));
        }
        let o = run_bounded(&case, "fw_printenv", &["-c", c], &[]);
        assert_refused(&o, &[want], &text);
    }
    // Harmless absurd sector values are accepted (they are informational).
    let cfg = case.config(&format!("{e} 0 0x4000 0xffffffffffffffff 0\n"));
    let o = case.run("fw_printenv", &["-c", cfg.to_str().unwrap(), "a"]);
    assert_eq!(stdout(&o), "a=1\n", "{}", stderr(&o));
}

#[test]
fn unusable_lock_timeout_is_an_error_not_ignored() {
    let case = Case::new();
    let (env, cfg) = board(&case);
    let before = std::fs::read(&env).unwrap();
    for bad in ["abc", "", "-1", "inf", "NaN", "1e300", "99999"] {
        for (name, args) in set_cmds(&cfg, &[]) {
            let o = run_bounded(&case, name, &args, &[("FW_ENV_LOCK_TIMEOUT", bad)]);
            assert_refused(&o, &["FW_ENV_LOCK_TIMEOUT"], &format!("{name} {bad:?}"));
            assert_eq!(std::fs::read(&env).unwrap(), before);
        }
    }
    let o = run_bounded(
        &case,
        "fw-env",
        &["-c", &cfg, "get", "next_boot"],
        &[("FW_ENV_LOCK_TIMEOUT", "2.5")],
    );
    assert_eq!(stdout(&o), "otafs\n", "{}", stderr(&o));
}

#[test]
fn special_files_are_refused_without_hanging() {
    // A FIFO as env device, lock file, config or defaults file used to block in open().
    let case = Case::new();
    let (env, cfg) = board(&case);
    let fifo = case.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let f = fifo.to_str().unwrap();
    // env device: a FIFO, a directory, a character device
    for (device, want) in [
        (f, "FIFO"),
        (case.dir.path().to_str().unwrap(), "directory"),
        ("/dev/null", "character device"),
    ] {
        let c = case.config(&format!("{device} 0 0x4000\n"));
        let c = c.to_str().unwrap();
        for (name, args) in set_cmds(c, &[]) {
            assert_refused(&run_bounded(&case, name, &args, &[]), &[want, device], name);
        }
        assert_refused(
            &run_bounded(&case, "fw_printenv", &["-c", c], &[]),
            &[want],
            device,
        );
    }
    // lock file
    for (name, args) in set_cmds(&cfg, &[]) {
        let o = run_bounded(&case, name, &args, &[("FW_ENV_LOCK_FILE", f)]);
        assert_refused(&o, &["lock file", "FIFO"], name);
    }
    // config file
    for (name, args) in set_cmds(f, &[]) {
        assert_refused(
            &run_bounded(&case, name, &args, &[]),
            &["FIFO", "not a regular file"],
            name,
        );
    }
    // defaults file
    for (name, args) in set_cmds(&cfg, &["-f", f]) {
        assert_refused(
            &run_bounded(&case, name, &args, &[]),
            &["FIFO", "defaults file"],
            name,
        );
    }
    // fw_setenv -s: a FIFO or a device as the script
    let before = std::fs::read(&env).unwrap();
    for (script, want) in [(f, "FIFO"), ("/dev/zero", "character device")] {
        let o = run_bounded(&case, "fw_setenv", &["-c", &cfg, "-s", script], &[]);
        assert_refused(&o, &[want, "script", script], script);
        assert_eq!(std::fs::read(&env).unwrap(), before, "nothing written");
    }
}

#[test]
fn read_only_filesystem_is_reported_as_such() {
    // EROFS used to be reported as "cannot remove stale temporary file".
    if !std::process::Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: needs unshare -m (root)");
        return;
    }
    let case = Case::new();
    let (env, cfg) = board(&case);
    let before = std::fs::read(&env).unwrap();
    let dir = case.dir.path().display().to_string();
    for (name, args) in set_cmds(&cfg, &[]) {
        let bin = case.bin(name);
        let script = format!(
            "mount --bind {dir} {dir} && mount -o remount,bind,ro {dir} && exec \"$0\" \"$@\""
        );
        let o = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .arg(&bin)
            .args(&args)
            .env("FW_ENV_LOCK_FILE", "/tmp/fw-env-erofs-test.lock")
            .output()
            .unwrap();
        assert_refused(&o, &["read-only filesystem"], name);
        assert!(!stderr(&o).contains("stale"), "{}", stderr(&o));
        assert_eq!(std::fs::read(&env).unwrap(), before);
    }
}

#[test]
fn offset_past_the_end_of_the_file_is_not_called_a_crc_error() {
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, vec![0u8; 0x100]).unwrap();
    let cfg = case.config(&format!("{} 0x4000 0x4000\n", env.display()));
    let o = case.run("fw-env", &["-c", cfg.to_str().unwrap(), "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("PAST THE END"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("CRC"), "{}", stdout(&o));
    let o = case.run("fw_printenv", &["-c", cfg.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("ends before the configured offset"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("CRC"), "{}", stderr(&o));
}

#[test]
fn mkimage_refuses_absurd_sizes_and_special_inputs() {
    // `-s` sized an allocation unchecked; a FIFO input blocked forever.
    let case = Case::new();
    let txt = case.path("env.txt");
    std::fs::write(&txt, "bootcmd=boot\n").unwrap();
    let out = case.path("env.bin");
    let o = run_bounded(
        &case,
        "fw-env",
        &[
            "mkimage",
            "-s",
            "0xffffffffffffffff",
            txt.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));
    let fifo = case.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let o = run_bounded(
        &case,
        "fw-env",
        &["mkimage", fifo.to_str().unwrap(), out.to_str().unwrap()],
        &[],
    );
    assert_refused(&o, &["FIFO"], "mkimage from a FIFO");
    assert!(!out.exists());
}
