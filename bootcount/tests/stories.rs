//! CLI stories on env image files (single and redundant): the `bootcount` binary drives the
//! environment as Linux would, and its `bootloader-step` plays U-Boot between "boots". Power
//! cuts are fw-env's named crash points, fired inside every write of every story.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const SIZE: usize = 0x4000;

struct Dev {
    dir: tempfile::TempDir,
    redundant: bool,
}

fn seed_vars(next_boot: &str) -> fw_env::Vars {
    [
        ("next_boot", next_boot),
        ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
        ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
        ("root", "root=/dev/mmcblk0p4 rootwait rw"),
        ("first_boot", "1"),
        ("bootcmd", "run boot-zbot"),
        ("console", "ttyS0,115200"),
    ]
    .into_iter()
    .collect()
}

impl Dev {
    /// A device whose env holds the seed's variables (a robot in the field).
    fn new(redundant: bool) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let d = Dev { dir, redundant };
        let vars = seed_vars("rootfs");
        let layout = if redundant {
            fw_env::Layout::Redundant
        } else {
            fw_env::Layout::Single
        };
        let img = fw_env::codec::encode(&vars, SIZE, layout, 1).unwrap();
        if redundant {
            std::fs::write(d.path("env0"), &img).unwrap();
            let old = fw_env::codec::encode(&vars, SIZE, layout, 0).unwrap();
            std::fs::write(d.path("env1"), old).unwrap();
            std::fs::write(
                d.path("fw_env.config"),
                format!(
                    "{} 0 0x4000\n{} 0 0x4000\n",
                    d.path("env0").display(),
                    d.path("env1").display()
                ),
            )
            .unwrap();
        } else {
            std::fs::write(d.path("uboot.env"), &img).unwrap();
            std::fs::write(
                d.path("fw_env.config"),
                format!("{} 0 0x4000\n", d.path("uboot.env").display()),
            )
            .unwrap();
        }
        // U-Boot's compiled-in default environment
        std::fs::write(
            d.path("u-boot-initial-env"),
            "next_boot=otafs\nrootfs=root=/dev/mmcblk0p4 rootwait rw\notafs=root=/dev/mmcblk0p3 rootwait rw\nroot=root=/dev/mmcblk0p3 rootwait rw\nbootcmd=run boot-zbot\nboot-zbot=boot\n",
        )
        .unwrap();
        std::fs::write(
            d.path("cmdline"),
            "console=ttyS0,115200 root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs\n",
        )
        .unwrap();
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str], crash_at: Option<&str>) -> Output {
        let mut c = bootcount_cmd();
        if !args.contains(&"-c") {
            c.arg("-c").arg(self.path("fw_env.config"));
        }
        if !args.contains(&"-f") {
            c.arg("-f").arg(self.path("u-boot-initial-env"));
        }
        if !args.contains(&"--cmdline") {
            c.arg("--cmdline").arg(self.path("cmdline"));
        }
        c.args(args);
        c.env("FW_ENV_LOCK_FILE", self.path("lock"));
        c.env(
            "BOOTCOUNT_REBOOT_CMD",
            format!("touch {}", self.path("rebooted").display()),
        );
        c.env_remove("FW_ENV_TEST_CRASH_AT");
        if let Some(p) = crash_at {
            c.env("FW_ENV_TEST_CRASH_AT", p);
        }
        c.output().unwrap()
    }

    /// Run and expect success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args, None);
        assert!(
            o.status.success(),
            "bootcount {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run and expect failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let before = self.image();
        let o = self.cmd(args, None);
        assert!(!o.status.success(), "bootcount {args:?} should fail");
        assert_eq!(self.image(), before, "a refused command wrote");
        String::from_utf8(o.stderr).unwrap()
    }

    fn image(&self) -> Vec<u8> {
        if self.redundant {
            [
                std::fs::read(self.path("env0")).unwrap(),
                std::fs::read(self.path("env1")).unwrap(),
            ]
            .concat()
        } else {
            std::fs::read(self.path("uboot.env")).unwrap_or_default()
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Power on: U-Boot's step, then the kernel starts with the chosen command line.
    fn boot(&self) -> (String, bool) {
        let v: Value = serde_json::from_str(&self.ok(&["bootloader-step", "--json"])).unwrap();
        std::fs::write(
            self.path("cmdline"),
            format!(
                "console=ttyS0,115200 {}\n",
                v["kernel_args"].as_str().unwrap()
            ),
        )
        .unwrap();
        (
            v["slot"].as_str().unwrap().to_string(),
            v["written"].as_bool().unwrap(),
        )
    }

    fn checks(&self, pass: bool) -> PathBuf {
        let d = self.path("health.d/required.d");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("10-app");
        std::fs::write(
            &p,
            if pass {
                "#!/bin/sh\nexit 0\n"
            } else {
                "#!/bin/sh\necho app down >&2\nexit 1\n"
            },
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&p).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        self.path("health.d")
    }

    fn health(&self, pass: bool) -> Output {
        let dir = self.checks(pass);
        let _ = std::fs::remove_file(self.path("rebooted"));
        self.cmd(
            &[
                "health",
                "run",
                "--dir",
                dir.to_str().unwrap(),
                "--timeout",
                "5",
            ],
            None,
        )
    }

    fn rebooted(&self) -> bool {
        self.path("rebooted").exists()
    }
}

fn both(f: impl Fn(&Dev)) {
    f(&Dev::new(false));
    f(&Dev::new(true));
}

#[path = "../../tests/src/target.rs"]
mod target;
use target::{target_bin, target_command};

/// `bootcount` as the tests run it: the host build, or the robot's binary (see [`target_bin`]).
fn bootcount_cmd() -> Command {
    target_command(&target_bin("bootcount", env!("CARGO_BIN_EXE_bootcount")))
}

#[test]
fn field_robot_healthy_boot_writes_nothing() {
    both(|d| {
        let before = d.image();
        for _ in 0..3 {
            assert_eq!(d.boot(), ("rootfs".to_string(), false));
            let o = d.health(true);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        assert_eq!(
            d.image(),
            before,
            "env image must be byte-identical after healthy boots"
        );
        let s = d.status();
        assert_eq!(s["booted_slot"], "rootfs");
        assert_eq!(s["trial"], Value::Null);
        assert_eq!(s["last_rollback"], Value::Null);
    });
}

/// rootfs -> boot-once otafs -> install-target -> trial rootfs --reboot -> trial boot -> health ok.
fn update_story(d: &Dev) {
    d.ok(&["boot-once", "otafs"]);
    assert_eq!(d.boot().0, "otafs");
    assert_eq!(d.ok(&["install-target"]).trim(), "/dev/mmcblk0p4");
    d.ok(&["trial", "rootfs", "--reboot"]);
    assert!(d.rebooted());
    let s = d.status();
    assert_eq!(
        s["trial"],
        serde_json::json!({"slot": "rootfs", "attempts": 0, "limit": 3})
    );
    assert_eq!(d.boot(), ("rootfs".to_string(), true));
    assert_eq!(d.status()["trial"]["attempts"], 1);
    let o = d.health(true);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("committed rootfs"));
}

#[test]
fn install_trial_health_ok_committed() {
    both(|d| {
        update_story(d);
        let s = d.status();
        assert_eq!(s["trial"], Value::Null);
        assert_eq!(s["primary_slot"], "rootfs");
        let before = d.image();
        assert_eq!(d.boot(), ("rootfs".to_string(), false));
        assert!(d.health(true).status.success());
        assert_eq!(d.image(), before, "committed: no more writes");
        assert!(d.fails(&["mark-good"]).contains("nothing to commit"));
    });
}

#[test]
fn install_trial_never_healthy_rolls_back_after_bootlimit() {
    both(|d| {
        d.ok(&["set-primary", "otafs"]);
        assert_eq!(d.boot().0, "otafs");
        d.ok(&["install-target"]);
        d.ok(&["trial", "rootfs", "--limit", "2"]);
        // the new rootfs hangs before its health check, twice
        assert_eq!(d.boot(), ("rootfs".to_string(), true));
        assert_eq!(d.boot(), ("rootfs".to_string(), true));
        assert_eq!(d.boot(), ("otafs".to_string(), true));
        let s = d.status();
        assert_eq!(s["booted_slot"], "otafs");
        assert_eq!(
            s["last_rollback"],
            serde_json::json!({"slot": "rootfs", "reason": "bootlimit"})
        );
        assert!(d.fails(&["boot-once", "rootfs"]).contains("marked bad"));
        assert!(d.fails(&["set-primary", "rootfs"]).contains("marked bad"));
        let before = d.image();
        assert_eq!(d.boot(), ("otafs".to_string(), false));
        assert_eq!(d.image(), before);
        d.ok(&["ack"]);
        assert_eq!(d.status()["last_rollback"], Value::Null);
    });
}

#[test]
fn install_trial_health_fails_marks_bad_and_reboots() {
    both(|d| {
        d.ok(&["boot-once", "otafs"]);
        d.boot();
        d.ok(&["install-target"]);
        d.ok(&["trial", "rootfs"]);
        assert_eq!(d.boot().0, "rootfs");
        let o = d.health(false);
        assert_eq!(o.status.code(), Some(1));
        assert!(d.rebooted());
        assert_eq!(d.boot(), ("otafs".to_string(), false));
        let rb = &d.status()["last_rollback"];
        assert_eq!(rb["slot"], "rootfs");
        assert_eq!(
            rb["reason"],
            "health: required check 10-app failed (exit 1)"
        );
    });
}

#[test]
fn boot_once_otafs_then_back_without_a_command() {
    both(|d| {
        d.ok(&["boot-once", "otafs", "--reboot"]);
        assert!(d.rebooted());
        assert_eq!(d.boot(), ("otafs".to_string(), true));
        assert!(d.health(true).status.success());
        assert_eq!(d.boot(), ("rootfs".to_string(), false));
    });
}

#[test]
fn seed_flow_with_plain_next_boot_still_works() {
    // `fw-env set next_boot otafs` + reboot boots otafs, under the new policy
    let d = Dev::new(false);
    let store = fw_env::Store::from_config_file(d.path("fw_env.config"))
        .unwrap()
        .with_lock_file(Some(d.path("lock")));
    store
        .apply(&fw_env::Changes::new().set("next_boot", "otafs"))
        .unwrap();
    assert_eq!(d.boot(), ("otafs".to_string(), false));
    assert_eq!(d.boot(), ("otafs".to_string(), false));
}

#[test]
fn refusals_name_the_problem_and_write_nothing() {
    let d = Dev::new(false);
    assert!(d
        .fails(&["boot-once", "rootfs_b"])
        .contains("unknown slot \"rootfs_b\": the slots are rootfs, otafs"));
    assert!(d.fails(&["trial", "otafs"]).contains("recovery slot"));
    assert!(d.fails(&["trial", "rootfs"]).contains("running slot"));
    assert!(d.fails(&["mark-good"]).contains("nothing to commit"));
    assert!(d
        .fails(&["mark-bad", "--reason", "a\\b"])
        .contains("one line"));
    assert!(d
        .fails(&["install-target"])
        .contains("boot-once otafs --reboot"));
    std::fs::write(d.path("cmdline"), "root=/dev/nfs").unwrap();
    assert!(d
        .fails(&["mark-good"])
        .contains("cannot tell which slot is running"));
    std::fs::write(d.path("cmdline"), "zbot.slot=rootfs_b").unwrap();
    assert!(d.fails(&["mark-good"]).contains("zbot.slot=rootfs_b"));
    let e = d.fails(&["--cmdline", "/nonexistent/cmdline", "mark-good"]);
    assert!(
        e.contains("/nonexistent/cmdline") && e.contains("--cmdline"),
        "{e}"
    );
    let e = d.fails(&["-c", "/nonexistent/fw_env.config", "status"]);
    assert!(e.contains("/nonexistent/fw_env.config"), "{e}");
    let e = d.fails(&["--slots", "/nonexistent/slots.toml", "status"]);
    assert!(e.contains("/nonexistent/slots.toml"), "{e}");
}

#[test]
fn corrupt_env_means_recovery_and_can_be_repaired() {
    let d = Dev::new(false);
    let mut img = d.image();
    img[10] ^= 0xff; // CRC now wrong
    std::fs::write(d.path("uboot.env"), &img).unwrap();
    let o = d.cmd(&["status", "--json"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no valid environment"));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["next_boot_slot"], "otafs");
    assert_eq!(s["env_valid"], false);
    assert_eq!(d.boot(), ("otafs".to_string(), false));
    // repair from recovery: install and trial write a whole valid environment again
    d.ok(&["install-target"]);
    d.ok(&["trial", "rootfs"]);
    assert_eq!(d.boot(), ("rootfs".to_string(), true));
    assert!(d.health(true).status.success());
    assert_eq!(d.status()["env_valid"], true);
}

#[test]
fn missing_env_without_defaults_refuses_to_write() {
    let d = Dev::new(false);
    std::fs::remove_file(d.path("uboot.env")).unwrap();
    std::fs::remove_file(d.path("u-boot-initial-env")).unwrap();
    let mut c = bootcount_cmd();
    c.args([
        "-c",
        d.path("fw_env.config").to_str().unwrap(),
        "--cmdline",
        d.path("cmdline").to_str().unwrap(),
        "boot-once",
        "otafs",
    ]);
    c.env("FW_ENV_LOCK_FILE", d.path("lock"));
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no default environment"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!d.path("uboot.env").exists());
}

#[test]
fn lost_env_with_defaults_lacking_the_policy_variables_refuses_to_write() {
    // Issue 10: a defaults file without the policy's variables (or without bootcmd) used to be
    // accepted, and the first bootcount write stored an environment U-Boot could not boot.
    let d = Dev::new(false);
    std::fs::remove_file(d.path("uboot.env")).unwrap();
    for (text, why) in [
        (
            "bootcmd=boot\nnext_boot=otafs\n",
            "no rootfs, otafs, root (needed by bootcount's boot policy)",
        ),
        ("# nothing\n", "defines no variable"),
    ] {
        std::fs::write(d.path("u-boot-initial-env"), text).unwrap();
        let o = d.cmd(&["boot-once", "otafs"], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(why) && err.contains("u-boot-initial-env"),
            "{err}"
        );
        assert!(!d.path("uboot.env").exists());
    }
}

/// One step of a story, run by the device.
#[derive(Clone, Copy, Debug)]
enum Step {
    Cli(&'static [&'static str]),
    Boot,
    HealthOk,
}

const UPDATE: &[Step] = &[
    Step::Cli(&["boot-once", "otafs"]),
    Step::Boot,
    Step::HealthOk,
    Step::Cli(&["install-target"]),
    Step::Cli(&["trial", "rootfs"]),
    Step::Boot,
    Step::HealthOk,
    Step::Boot,
];
const FAILED_UPDATE: &[Step] = &[
    Step::Cli(&["set-primary", "otafs"]),
    Step::Boot,
    Step::Cli(&["install-target"]),
    Step::Cli(&["trial", "rootfs"]),
    Step::Boot,
    Step::Boot,
    Step::Boot,
    Step::Boot,
    Step::Cli(&["ack"]),
];

fn run_step(d: &Dev, s: Step, crash: Option<&str>) -> bool {
    let args: Vec<String> = match s {
        Step::Cli(a) => a.iter().map(|s| s.to_string()).collect(),
        Step::Boot => vec!["bootloader-step".into(), "--json".into()],
        Step::HealthOk => {
            let dir = d.checks(true);
            vec![
                "health".into(),
                "run".into(),
                "--no-reboot".into(),
                "--dir".into(),
                dir.display().to_string(),
            ]
        }
    };
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = d.cmd(&a, crash);
    if let (Step::Boot, true) = (s, o.status.success()) {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        std::fs::write(
            d.path("cmdline"),
            format!("console=ttyS0 {}\n", v["kernel_args"].as_str().unwrap()),
        )
        .unwrap();
    }
    assert!(
        o.status.success() || String::from_utf8_lossy(&o.stderr).contains("crashing at"),
        "{s:?} failed without a power cut: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.success()
}

/// After a cut, the robot powers on and lives on healthy: it must reach a working slot whose
/// environment is valid or recoverable, with no trial left dangling, within a few boots.
fn power_on_and_settle(d: &Dev, story: &str, k: usize, point: &str) {
    for _ in 0..8 {
        let (slot, wrote) = d.boot();
        let o = d.health(true);
        assert!(
            o.status.success(),
            "{story} cut at step {k}/{point}: health on {slot}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = d.status();
        if s["trial"].is_null() && !wrote {
            let before = d.image();
            let (again, wrote) = d.boot();
            assert_eq!(
                (again.as_str(), wrote),
                (slot.as_str(), false),
                "{story} cut at step {k}/{point}: not settled: {s}"
            );
            assert_eq!(d.image(), before);
            return;
        }
    }
    panic!("{story} cut at step {k}/{point}: never settled");
}

#[test]
fn power_cut_inside_every_write_of_every_story() {
    let mut cuts = 0;
    for (name, story) in [("update", UPDATE), ("failed update", FAILED_UPDATE)] {
        for redundant in [false, true] {
            for k in 0..story.len() {
                for point in fw_env::fault::POINTS {
                    let d = Dev::new(redundant);
                    for s in &story[..k] {
                        assert!(run_step(&d, *s, None), "{name} step {s:?}");
                    }
                    let completed = run_step(&d, story[k], Some(point));
                    if completed {
                        // this write does not pass that point (or wrote nothing)
                        continue;
                    }
                    cuts += 1;
                    power_on_and_settle(&d, name, k, point);
                }
            }
        }
    }
    eprintln!("{cuts} power cuts fired");
    assert!(cuts > 20);
}

#[test]
fn old_boot_script_still_updates_without_counting() {
    // A robot whose U-Boot still runs the seed's boot command: no zbot.slot= on the command
    // line, next_boot selects the slot, nothing counts.
    let d = Dev::new(false);
    let store = fw_env::Store::from_config_file(d.path("fw_env.config"))
        .unwrap()
        .with_lock_file(Some(d.path("lock")));
    store
        .apply(&fw_env::Changes::new().set("next_boot", "otafs"))
        .unwrap();
    std::fs::write(
        d.path("cmdline"),
        "console=ttyS0,115200 root=/dev/mmcblk0p3 rootwait rw\n",
    )
    .unwrap();
    let s = d.status();
    assert_eq!(s["booted_slot"], "otafs");
    assert_eq!(s["legacy_bootloader"], true);
    d.ok(&["install-target"]);
    let o = d.cmd(&["trial", "rootfs"], None);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("does not count boots"));
    // the old script boots what next_boot names
    let vars = store.read().unwrap().vars;
    assert_eq!(vars.get("next_boot").as_deref(), Some("rootfs"));
    std::fs::write(
        d.path("cmdline"),
        "console=ttyS0,115200 root=/dev/mmcblk0p4 rootwait rw\n",
    )
    .unwrap();
    let o = d.health(true);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("committed rootfs"));
    assert_eq!(d.status()["trial"], Value::Null);
}

#[test]
fn unhealthy_recovery_is_reported_but_never_abandoned() {
    let d = Dev::new(false);
    d.ok(&["set-primary", "otafs"]);
    assert_eq!(d.boot().0, "otafs");
    let before = d.image();
    let o = d.health(false);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("otafs is unhealthy") && err.contains("recovery slot"),
        "{err}"
    );
    assert!(!d.rebooted(), "rebooting recovery into recovery would loop");
    assert_eq!(d.image(), before);
}

/// Regression (issue 10): a required check whose program is missing from the new image (a
/// dangling symlink) used to be skipped, and the trial was committed.
#[test]
fn a_required_check_that_cannot_run_rolls_the_trial_back() {
    both(|d| {
        d.ok(&["boot-once", "otafs"]);
        d.boot();
        d.ok(&["install-target"]);
        d.ok(&["trial", "rootfs"]);
        assert_eq!(d.boot().0, "rootfs");
        let dir = d.checks(true);
        std::os::unix::fs::symlink("/usr/bin/zbot-app-check", dir.join("required.d/20-app"))
            .unwrap();
        let _ = std::fs::remove_file(d.path("rebooted"));
        let o = d.cmd(
            &[
                "health",
                "run",
                "--dir",
                dir.to_str().unwrap(),
                "--timeout",
                "5",
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("a required check could not run, which counts as a failure"),
            "{err}"
        );
        assert!(d.rebooted());
        assert_eq!(d.boot(), ("otafs".to_string(), false));
        assert_eq!(
            d.status()["last_rollback"]["reason"],
            "health: required check 20-app could not run (dangling symlink to /usr/bin/zbot-app-check)"
        );
    });
}

#[test]
fn health_timeouts_out_of_range_are_usage_errors() {
    let d = Dev::new(false);
    let dir = d.checks(true);
    for bad in ["0", "-5", "nan", "inf", "1e30", "99999"] {
        let before = d.image();
        let o = d.cmd(
            &[
                "health",
                "run",
                "--dir",
                dir.to_str().unwrap(),
                &format!("--timeout={bad}"),
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "--timeout {bad}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("at most 3600"));
        assert_eq!(d.image(), before);
    }
}

#[test]
fn a_missing_health_directory_is_loud() {
    let d = Dev::new(false);
    let o = d.cmd(&["health", "run", "--dir", "/nonexistent/health.d"], None);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("warning: no health directory /nonexistent/health.d: no checks were run"));
}

#[test]
fn absurd_limits_are_usage_errors() {
    let d = Dev::new(false);
    for bad in ["0", "10", "300", "-1", "99999999999999999999", "3.5"] {
        let before = d.image();
        let o = d.cmd(&["trial", "rootfs", &format!("--limit={bad}")], None);
        assert_eq!(o.status.code(), Some(2), "--limit {bad}");
        assert_eq!(d.image(), before);
    }
}

/// An empty `BOOTCOUNT_REBOOT_CMD` used to run `sh -c ""`, which "succeeds" without rebooting.
#[test]
fn an_empty_reboot_command_is_an_error_not_a_silent_success() {
    let d = Dev::new(false);
    let o = bootcount_cmd()
        .arg("-c")
        .arg(d.path("fw_env.config"))
        .arg("-f")
        .arg(d.path("u-boot-initial-env"))
        .arg("--cmdline")
        .arg(d.path("cmdline"))
        .args(["boot-once", "otafs", "--reboot"])
        .env("FW_ENV_LOCK_FILE", d.path("lock"))
        .env("BOOTCOUNT_REBOOT_CMD", " ")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("BOOTCOUNT_REBOOT_CMD is set but empty"));
}

/// Regression (issue 10): a FIFO given as a file to read used to block the command forever.
#[test]
fn fifos_are_refused_before_any_blocking_open() {
    let d = Dev::new(false);
    let fifo = d.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [
        vec!["--slots", fifo.to_str().unwrap(), "status"],
        vec!["--cmdline", fifo.to_str().unwrap(), "status"],
    ] {
        let mut c = bootcount_cmd();
        c.arg("-c")
            .arg(d.path("fw_env.config"))
            .arg("-f")
            .arg(d.path("u-boot-initial-env"))
            .args(&args)
            .env("FW_ENV_LOCK_FILE", d.path("lock"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if !args.contains(&"--cmdline") {
            c.arg("--cmdline").arg(d.path("cmdline"));
        }
        let mut child = c.spawn().unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                panic!("bootcount {args:?} hangs on a FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "{}: it is a FIFO, not a regular file",
                fifo.display()
            )),
            "{err}"
        );
    }
}

/// Regression (issue 10): a slot file putting a primary slot on otafs's partition made
/// `install-target` in otafs print the running system's own device.
#[test]
fn a_slot_file_with_two_slots_on_one_partition_is_refused_at_load() {
    let d = Dev::new(false);
    let slots = d.path("slots.toml");
    std::fs::write(
        &slots,
        bootcount::slots::BUILTIN_TOML
            .replace("device = \"/dev/mmcblk0p4\"", "device = \"/dev/mmcblk0p3\""),
    )
    .unwrap();
    let err = d.fails(&["--slots", slots.to_str().unwrap(), "install-target"]);
    assert!(
        err.contains(&format!("slot file {}: line 5: slot 1 (\"rootfs\"): boots root=/dev/mmcblk0p4 but installs into device = \"/dev/mmcblk0p3\"", slots.display())),
        "{err}"
    );
}

/// A missing defaults file used to be reported as "cannot read <config path>: ..." (an empty
/// path without -c): the message must name the file that is missing.
#[test]
fn errors_name_the_file_at_fault() {
    let d = Dev::new(false);
    let missing = d.path("no-such-defaults");
    let err = d.fails(&["-f", missing.to_str().unwrap(), "status"]);
    assert!(
        err.contains(&format!("defaults file {}", missing.display())),
        "{err}"
    );
    assert!(!err.contains("fw_env.config"), "{err}");
}
