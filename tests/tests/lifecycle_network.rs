//! The robot's real update path under QEMU (issue 13): SWUpdate 2022.12 in the recovery system
//! (otafs), `zbot-updater agent` in the main system (rootfs), and the host pushing signed
//! packages with `zbot-updater update 127.0.0.1 FILE.swu --port PORT` through QEMU's user
//! networking (a forward from the host's 127.0.0.1 only, one port per robot). The packages are
//! made by `zbot-updater pack` in qemu/make-image.sh, signed with a test key made there.
//!
//! Scenarios (docs/qemu.md, "The update over the network"):
//! 1. a good package pushed while the robot runs rootfs: committed, exit 0;
//! 2. the three bad packages: rolled back to otafs with their reason, exit 4;
//! 3. packages SWUpdate refuses (tampered, another key, unsigned, wrong hardware, downgrade):
//!    exit 3, rootfs untouched, the robot in recovery and ready; then a good one succeeds;
//! 4. the agent refuses a reboot request with no secret, a wrong one, and a replayed one;
//! 6. SWUpdate skips its post-update command: the client's `POST /restart` finishes the job.
//!
//! Logs: `target/zbot-machine/logs/<test>.log` (console, the client's stderr as `[push ...]`).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::Duration;

use zbot_tests::machine::{Boot, Ending, Machine, MachineImage, Outcome, Push};

/// The harness's watchdog: a boot with no health verdict by then is power cycled. 60 s, not
/// the other lifecycle tests' 30 s: the verdict came at 34 s with two other QEMUs and rustc
/// builds on the 2 cores (measured 2026-12-01; 4.5 s alone), and a false watchdog here would
/// fail an update that is fine. It costs the hanging package 3 x 60 s.
const WATCHDOG: Duration = Duration::from_secs(60);
/// One push, from the request to the verdict, at most (a hanging package: 3 watchdogs).
const LIMIT: Duration = Duration::from_secs(600);
const STEP: Duration = Duration::from_secs(120);

/// Exit codes of `zbot-updater update` (updater/README.md).
const EXIT_REFUSED: i32 = 3;
const EXIT_ROLLED_BACK: i32 = 4;
const EXIT_AGENT_REFUSED: i32 = 6;

fn image() -> &'static MachineImage {
    MachineImage::with_policy()
}

/// A fresh robot, powered on and healthy in rootfs v1.
fn robot(name: &str) -> (Machine, (Boot, Outcome)) {
    let mut robot = Machine::new(image(), name).unwrap();
    let (boot, o) = robot.boot_to_verdict(WATCHDOG).unwrap();
    assert!(
        o.healthy_in("rootfs"),
        "{o:?}\nlog: {}",
        robot.log_path().display()
    );
    (robot, (boot, o))
}

/// The explanation for a failed check: the client's output and where the log is.
fn why(robot: &Machine, p: &Push) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr:\n{}\nlog: {}",
        p.exit,
        p.stdout.trim(),
        p.stderr_text(),
        robot.log_path().display()
    )
}

/// The bytes of partition `n` (1-based) of the robot's card.
fn partition(robot: &Machine, n: usize) -> Vec<u8> {
    let o = image().offsets;
    let (start, end) = (o[n - 1], o[n]);
    let mut f = std::fs::File::open(robot.disk()).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut b = vec![0u8; (end - start) as usize];
    f.read_exact(&mut b).unwrap();
    b
}

/// Wait until SWUpdate's web server answers on the robot's forwarded port (at most 60 s).
fn wait_swupdate(port: u16, w: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answered = TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"GET /zbot-status.json HTTP/1.0\r\n\r\n")?;
                let mut head = [0u8; 5];
                s.read_exact(&mut head)?;
                Ok(&head == b"HTTP/")
            })
            .unwrap_or(false);
        if answered {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SWUpdate did not answer within 60 s\n{w}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The running boot is healthy in `slot` running `image` with no trial open.
fn settled_in(robot: &Machine, p: &mut Push, slot: &str, img: &str) {
    let w = why(robot, p);
    let boot = p.boot.as_mut().unwrap_or_else(|| panic!("robot off\n{w}"));
    let st = boot.status(STEP).unwrap();
    assert_eq!(st["booted_slot"], slot, "{st}\n{w}");
    assert!(st["trial"].is_null(), "{st}\n{w}");
    let (_, name) = boot.run("cat /etc/zbot-image", STEP).unwrap();
    assert!(name.contains(img), "{name:?}\n{w}");
}

/// Scenario 1: a good signed package pushed while the robot runs rootfs v1: the agent takes it
/// to recovery, SWUpdate installs, the trial boots, the health check commits; exit 0.
#[test]
fn good_package_pushed_over_the_network_is_committed() {
    let (mut robot, running) = robot("net_good_update");
    let mut p = robot
        .push(Some(running), &image().swu("good"), &[], WATCHDOG, LIMIT)
        .unwrap();
    let w = why(&robot, &p);
    assert_eq!(p.exit, 0, "{w}");
    assert!(p.stdout.contains("updated"), "{w}");
    assert!(p.stderr_text().contains("asking for recovery"), "{w}");
    // rootfs v1 -> otafs (installs, starts the trial) -> rootfs v2 (committed).
    let slots: Vec<_> = p
        .boots
        .iter()
        .map(|b| b.outcome.uboot_slot.clone().unwrap_or_default())
        .collect();
    assert_eq!(slots, ["rootfs", "otafs", "rootfs"], "{w}");
    assert!(p.client_times().is_some(), "no times line\n{w}");
    settled_in(&robot, &mut p, "rootfs", "rootfs v2");
    let boot = p.boot.as_mut().unwrap();
    let (_, v) = boot.run("cat /etc/zbot-version", STEP).unwrap();
    assert!(v.contains("2.0"), "{v}\n{w}");
}

/// Scenario 2: a bad package pushed the same way is rolled back to otafs with its reason, and
/// the client says so (exit 4, "rolled back" and the reason).
fn bad_package(name: &str, package: &str, reason: &str, trial_boots: usize) {
    let (mut robot, running) = robot(name);
    let mut p = robot
        .push(Some(running), &image().swu(package), &[], WATCHDOG, LIMIT)
        .unwrap();
    let w = why(&robot, &p);
    assert_eq!(p.exit, EXIT_ROLLED_BACK, "{w}");
    assert!(p.stdout.contains("rolled back"), "{w}");
    assert!(p.stdout.contains(reason), "{w}");
    let tried = p
        .boots
        .iter()
        .skip(2)
        .filter(|b| b.outcome.uboot_slot.as_deref() == Some("rootfs"))
        .count();
    assert_eq!(tried, trial_boots, "{w}");
    settled_in(&robot, &mut p, "otafs", "otafs v1");
    let boot = p.boot.as_mut().unwrap();
    let st = boot.status(STEP).unwrap();
    assert_eq!(st["last_rollback"]["slot"], "rootfs", "{st}\n{w}");
}

#[test]
fn unhealthy_package_is_rolled_back_with_its_reason() {
    bad_package("net_bad_unhealthy", "unhealthy", "health", 1);
}

#[test]
fn package_with_unusable_root_is_rolled_back_after_bootlimit() {
    bad_package("net_bad_garbage", "garbage", "bootlimit", 3);
}

/// Three watchdogs (3 x 60 s) and the recovery boot: the longest push. The same push is in
/// the default suite in lifecycle_policy.rs (U-Boot's count of each attempt checked) and the demo.
#[test]
#[ignore = "long (3 watchdogs, about 4 min): cargo test -p zbot-tests --test lifecycle_network -- --ignored hangs"]
fn package_whose_init_hangs_is_rolled_back_after_bootlimit() {
    bad_package("net_bad_hang", "hang", "bootlimit", 3);
}

/// Scenario 3: SWUpdate refuses a tampered package, one signed with another key, an unsigned
/// one, one for another hardware revision and a downgrade: each exit 3, nothing written to
/// rootfs, the robot still in recovery (the same boot) and ready; then a good package succeeds.
#[test]
fn refused_packages_leave_rootfs_untouched_and_the_next_push_succeeds() {
    let (mut robot, (mut boot, _)) = robot("net_refused");
    let w = format!("log: {}", robot.log_path().display());
    // To the recovery system first (as the agent would), so that rootfs is not mounted and
    // its bytes are the baseline: only SWUpdate could change them from here.
    boot.send_line("bootcount boot-once otafs --reboot")
        .unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "{w}");
    let (boot, o) = robot.boot_to_verdict(WATCHDOG).unwrap();
    assert!(o.healthy_in("otafs"), "{o:?}\n{w}");
    wait_swupdate(robot.port(), &w);
    let rootfs = partition(&robot, 4);
    let mut running = Some((boot, o));
    let mut recovery_boot = None;
    for (i, pkg) in ["tampered", "other-key", "unsigned", "wrong-hw", "downgrade"]
        .into_iter()
        .enumerate()
    {
        let mut p = robot
            .push(running.take(), &image().swu(pkg), &[], WATCHDOG, LIMIT)
            .unwrap();
        let w = why(&robot, &p);
        assert_eq!(p.exit, EXIT_REFUSED, "{pkg}: {w}");
        assert!(p.stdout.contains("refused"), "{pkg}: {w}");
        assert!(partition(&robot, 4) == rootfs, "{pkg}: rootfs changed\n{w}");
        let last = p.boots.last().unwrap();
        assert_eq!(last.outcome.uboot_slot.as_deref(), Some("otafs"), "{w}");
        assert!(
            last.ending.is_none(),
            "{pkg}: the recovery system ended\n{w}"
        );
        if i == 0 {
            recovery_boot = Some(last.number);
        } else {
            assert_eq!(Some(last.number), recovery_boot, "{pkg}: rebooted\n{w}");
        }
        let boot = p.boot.take().unwrap();
        running = Some((boot, last.outcome.clone()));
    }
    let mut p = robot
        .push(running.take(), &image().swu("good"), &[], WATCHDOG, LIMIT)
        .unwrap();
    let w = why(&robot, &p);
    assert_eq!(p.exit, 0, "{w}");
    assert!(p.stderr_text().contains("the robot is in recovery"), "{w}");
    settled_in(&robot, &mut p, "rootfs", "rootfs v2");
}

/// One request line to the agent on the robot's port; its one-line answer.
fn agent_ask(port: u16, lines: &[&str]) -> Vec<serde_json::Value> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    lines
        .iter()
        .map(|l| {
            writeln!(w, "{l}").unwrap();
            let mut a = String::new();
            r.read_line(&mut a).unwrap();
            serde_json::from_str(a.trim()).unwrap_or_else(|e| panic!("{a:?}: {e}"))
        })
        .collect()
}

/// A request for recovery signed with `secret` for a fresh nonce (not sent).
fn signed_request(port: u16, secret: &[u8]) -> String {
    let c = &agent_ask(port, &["challenge"])[0];
    let nonce = c["nonce"].as_str().unwrap().to_string();
    let mac = zbot_updater::agent::mac_hex(secret, "recovery", &nonce);
    format!("recovery {nonce} {mac}")
}

/// Scenario 4: the agent refuses a reboot request without the secret, with a wrong one, and
/// replayed; the robot stays in rootfs and its env unchanged. A right one is honoured.
#[test]
fn agent_refuses_requests_without_the_secret_or_replayed() {
    let (mut robot, (mut boot, _)) = robot("net_agent");
    let port = robot.port();
    let w = format!("log: {}", robot.log_path().display());
    let secret = zbot_updater::agent::load_secret(robot.secret()).unwrap();
    let env = robot.env_file().unwrap();
    // The agent answers on the forwarded port (its status is open).
    let st = &agent_ask(port, &["status"])[0];
    assert_eq!(st["booted_slot"], "rootfs", "{st}\n{w}");
    // No secret: a bare request, and one with a nonce but no MAC.
    let c = agent_ask(port, &["challenge"]);
    let nonce = c[0]["nonce"].as_str().unwrap().to_string();
    for a in agent_ask(port, &["recovery", &format!("recovery {nonce}")]) {
        assert_eq!(a["ok"], false, "{a}\n{w}");
    }
    // A wrong secret, through the client: exit 6.
    let wrong = robot.secret().with_file_name("wrong.secret");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&wrong)
            .unwrap();
        writeln!(f, "{}", "ab".repeat(32)).unwrap();
    }
    let out = std::process::Command::new(&image().updater)
        .args(["update", "127.0.0.1"])
        .arg(image().swu("good"))
        .args(["--port", &port.to_string(), "--secret"])
        .arg(&wrong)
        .args(["--boot-timeout", "60", "--timeout", "60"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(EXIT_AGENT_REFUSED),
        "{}\n{}\n{w}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong MAC for a fresh nonce, raw.
    let bad = signed_request(port, b"not the robot's secret at all");
    assert_eq!(agent_ask(port, &[&bad])[0]["ok"], false, "{w}");
    assert_eq!(
        robot.env_file().unwrap(),
        env,
        "env changed by a refused request\n{w}"
    );
    let (code, _) = boot.run("true", STEP).unwrap();
    assert_eq!(code, 0, "the robot did not stay up\n{w}");
    // The right secret: honoured (reboot into recovery) ...
    let good = signed_request(port, &secret);
    let a = &agent_ask(port, &[&good])[0];
    assert_eq!(a["ok"], true, "{a}\n{w}");
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "{w}");
    let (mut boot, o) = robot.boot_to_verdict(WATCHDOG).unwrap();
    assert!(o.healthy_in("otafs"), "{o:?}\n{w}");
    boot.send_line("reboot").unwrap();
    assert_eq!(boot.wait_end(STEP).unwrap(), Ending::Reboot, "{w}");
    let (mut boot, o) = robot.boot_to_verdict(WATCHDOG).unwrap();
    assert!(o.healthy_in("rootfs"), "{o:?}\n{w}");
    // ... and the same request replayed is refused.
    let env = robot.env_file().unwrap();
    let a = &agent_ask(port, &[&good])[0];
    assert_eq!(a["ok"], false, "replay accepted: {a}\n{w}");
    assert_eq!(
        robot.env_file().unwrap(),
        env,
        "env changed by a replay\n{w}"
    );
    let st = boot.status(STEP).unwrap();
    assert_eq!(st["booted_slot"], "rootfs", "{st}\n{w}");
}

/// Scenario 6: SWUpdate skips its post-update command (forced: `run-postupdate = false` in
/// otafs's swupdate.cfg). The image is written, the trial not started; the client sees SUCCESS
/// without DONE and sends `POST /restart`, which runs it: the update is committed.
#[test]
fn skipped_post_update_command_is_finished_by_the_client() {
    let mut robot = Machine::new(image(), "net_skipped_postupdate").unwrap();
    let otafs = robot.part(3);
    let cfg = otafs.read("/etc/swupdate/swupdate.cfg").unwrap().unwrap();
    let cfg = String::from_utf8(cfg).unwrap();
    assert!(cfg.contains("run-postupdate = true;"), "{cfg}");
    otafs
        .write(
            "/etc/swupdate/swupdate.cfg",
            cfg.replace("run-postupdate = true;", "run-postupdate = false;")
                .as_bytes(),
        )
        .unwrap();
    let (boot, o) = robot.boot_to_verdict(WATCHDOG).unwrap();
    assert!(o.healthy_in("rootfs"), "{o:?}");
    let mut p = robot
        .push(Some((boot, o)), &image().swu("good"), &[], WATCHDOG, LIMIT)
        .unwrap();
    let w = why(&robot, &p);
    assert_eq!(p.exit, 0, "{w}");
    assert!(p.stderr_text().contains("POST /restart"), "{w}");
    settled_in(&robot, &mut p, "rootfs", "rootfs v2");
}

/// The demo's watchdog: the other lifecycle tests' 30 s (verdicts come at 4-9 s on an idle
/// host); a hanging package costs 3 of them.
const DEMO_WATCHDOG: Duration = Duration::from_secs(30);

/// The boot policy's variables in an env file, or what U-Boot would find instead.
fn policy_vars(env: Option<&[u8]>) -> String {
    let board = ["zbot_devtype", "zbot_devnum", "zbot_bootpart"];
    match env.map(zbot_tests::machine::env_image_vars) {
        Some(Some(vars)) => vars
            .iter()
            .filter(|(n, _)| {
                n == "next_boot" || (n.starts_with("zbot_") && !board.contains(&n.as_str()))
            })
            .map(|(n, v)| {
                if v.contains(' ') {
                    format!("{n}={v:?}")
                } else {
                    format!("{n}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(None) => "bad CRC (U-Boot would use its compiled-in env)".into(),
        None => "no /uboot.env (U-Boot would use its compiled-in env)".into(),
    }
}

/// Print one boot of a push as the old demo did: env before, slot, verdict, end, env changes.
fn print_boot(b: &zbot_tests::machine::PushBoot) {
    let o = &b.outcome;
    println!(
        "\n--- boot {} (at {:.1} s of the push)",
        b.number,
        b.started.as_secs_f64()
    );
    println!("    env before: {}", policy_vars(b.env_before.as_deref()));
    println!(
        "    U-Boot booted {}{}; Linux: {}; health verdict: {}",
        o.uboot_slot.as_deref().unwrap_or("-"),
        match b.uboot_saves {
            0 => String::new(),
            n => format!(" (after {n} saveenv)"),
        },
        match (&o.slot, &o.image) {
            (Some(s), Some(i)) => format!("{s} ({i})"),
            _ => "no usable root filesystem".into(),
        },
        match (o.verdict, o.verdict_secs) {
            (Some(v), Some(t)) => format!("exit {v} at {t:.1} s"),
            _ => "none".into(),
        }
    );
    for l in &b.console {
        if l.contains("is healthy:")
            || l.contains("is unhealthy:")
            || l.contains("S98swupdate: starting")
            || l.contains("bootcount: reserved")
            || l.contains("trial")
                && (l.contains("bootcount:") || l.contains("[swupdate"))
                && !l.contains("health")
            || l.contains("zbot-machine: this image hangs")
            || l.contains("zbot-initramfs:")
            || l.contains("Kernel panic")
        {
            println!("    | {}", l.trim());
        }
    }
    match b.ending {
        Some(Ending::Killed) => println!(
            "    ended: no health verdict within {} s: the harness's watchdog power-cycled it \
             (on the board: the hardware watchdog)",
            DEMO_WATCHDOG.as_secs()
        ),
        Some(Ending::Panic) => println!("    ended: kernel panic, reboot (panic=1)"),
        Some(Ending::Reboot) => println!("    ended: reboot"),
        Some(e) => println!("    ended: {e:?}"),
        None => println!("    still running when the client finished"),
    }
    if b.ending.is_some() {
        if b.env_changes.is_empty() {
            println!("    env after: unchanged (byte for byte)");
        }
        for c in &b.env_changes {
            println!("    env after: {c}");
        }
        println!("    env partition written: {}", b.env_writes);
    }
}

/// One update of the demo, as measured.
struct DemoPush {
    title: &'static str,
    exit: i32,
    outcome: String,
    secs: f64,
    /// The client's times: to recovery, upload, install, back with a verdict, total.
    times: Option<[f64; 5]>,
    /// From the install's end to the power-on of the boot that gave the final verdict, and
    /// from there to that verdict (the trial boots; the health verdict).
    trial_secs: f64,
    verdict_secs: f64,
    boots: Vec<zbot_tests::machine::PushBoot>,
    expect_exit: i32,
    expect: &'static str,
}

impl DemoPush {
    /// Boots of rootfs after the install (the trial attempts).
    fn trial_boots(&self) -> usize {
        let Some(i) = self
            .boots
            .iter()
            .position(|b| b.outcome.slot.as_deref() == Some("otafs") && b.ending.is_some())
        else {
            return 0;
        };
        self.boots[i + 1..]
            .iter()
            .filter(|b| b.outcome.uboot_slot.as_deref() == Some("rootfs"))
            .count()
    }
}

/// Push `package` and print the story: the client's lines, every boot, the outcome.
fn demo_push(
    robot: &mut Machine,
    running: &mut Option<(Boot, Outcome)>,
    title: &'static str,
    heading: &str,
    package: &str,
    expect_exit: i32,
    expect: &'static str,
) -> DemoPush {
    println!("\n=== {heading}");
    let swu = image().swu(package);
    println!(
        "    $ zbot-updater update 127.0.0.1 {package}.swu --port {} --secret robot.secret",
        robot.port()
    );
    robot.note(&format!("demo: {heading}")).unwrap();
    let mut p = robot
        .push(running.take(), &swu, &[], DEMO_WATCHDOG, LIMIT)
        .unwrap();
    for b in &p.boots {
        print_boot(b);
    }
    println!("\n    the client said (seconds since it started):");
    let mut last_pct = String::new();
    for (t, l) in &p.stderr {
        // The progress bar: every tenth once is plenty here.
        if l.starts_with("upload ") {
            let pct = l.split('%').next().unwrap_or("").to_string();
            if pct == last_pct {
                continue;
            }
            last_pct = pct;
        }
        println!("    [{:6.1}] {l}", t.as_secs_f64());
    }
    println!("    {} (exit {})", p.stdout.trim(), p.exit);
    let times = p.client_times();
    // The trial and the verdict, split at the power-on of the boot that settled it.
    let installed = times.map(|t| t[0] + t[1] + t[2]).unwrap_or(0.0);
    let last = p.boots.last().map(|b| (b.started, b.settled));
    let (trial_secs, verdict_secs) = match last {
        Some((on, _)) if times.is_some() => (
            on.as_secs_f64() - installed,
            p.duration.as_secs_f64() - on.as_secs_f64(),
        ),
        _ => (0.0, 0.0),
    };
    let d = DemoPush {
        title,
        exit: p.exit,
        outcome: p.stdout.trim().to_string(),
        secs: p.duration.as_secs_f64(),
        times,
        trial_secs,
        verdict_secs,
        boots: std::mem::take(&mut p.boots),
        expect_exit,
        expect,
    };
    let boot = p.boot.take();
    *running = boot.map(|b| {
        let o = d
            .boots
            .last()
            .map(|b| b.outcome.clone())
            .unwrap_or_default();
        (b, o)
    });
    d
}

/// The demo (`qemu/demo.sh`): a robot's life on real U-Boot, Linux, SWUpdate and our tools.
/// A fresh robot boots; the good package (rootfs v2) is pushed with `zbot-updater update`
/// while it runs rootfs (the agent takes it to recovery, SWUpdate installs, the trial commits);
/// three bad packages, each rolled back to the recovery system with its reason (unhealthy:
/// 1 attempt; hanging init and unusable root: 3 attempts each, the hang power-cycled by the
/// harness's watchdog), the first pushed to rootfs v2, the other two to the recovery system;
/// then the good package again, from recovery. Every boot with the env before, the slot, the
/// verdict, the end and the env's changes; the client's lines; then a summary per update: the
/// exit code and outcome the user saw, how long the push took by stage, boots, trial boots,
/// U-Boot's saves and what reached the env partition. It fails, as a test, when any outcome
/// is not the expected one.
#[test]
#[ignore = "the demo: qemu/demo.sh"]
fn demo() {
    let started = std::time::Instant::now();
    let mut robot = Machine::new(image(), "demo").unwrap();
    let log = robot.log_path().display().to_string();
    println!("ZBot update demo: real U-Boot 2023.01, Debian Linux, SWUpdate 2022.12 under QEMU;");
    println!(
        "packages by `zbot-updater pack` (signed), pushed by `zbot-updater update` to \
         127.0.0.1:{} (QEMU's forward to the robot's port 10000)",
        robot.port()
    );
    println!(
        "bootlimit 3; a boot with no health verdict within {} s is power-cycled by the \
         harness's watchdog (on the board: the hardware watchdog)",
        DEMO_WATCHDOG.as_secs()
    );
    println!("log of every boot: {log}");
    println!("\n=== a fresh robot is switched on");
    let env0 = robot.env_file().unwrap();
    let (boot, o) = robot.boot_to_verdict(DEMO_WATCHDOG).unwrap();
    println!("    env before: {}", policy_vars(env0.as_deref()));
    println!(
        "    U-Boot booted {}; Linux: {} ({}); health verdict: exit {} at {:.1} s",
        o.uboot_slot.as_deref().unwrap_or("-"),
        o.slot.as_deref().unwrap_or("-"),
        o.image.as_deref().unwrap_or("-"),
        o.verdict.unwrap_or(-1),
        o.verdict_secs.unwrap_or(0.0)
    );
    assert!(o.healthy_in("rootfs"), "{o:?}\nlog: {log}");
    let mut running = Some((boot, o));
    let mut pushes = Vec::new();
    let steps: [(&'static str, &str, &str, i32, &'static str); 5] = [
        (
            "good: rootfs v2 (2.0)",
            "a good package (rootfs v2, 2.0) is pushed while the robot runs rootfs v1",
            "good",
            0,
            "updated",
        ),
        (
            "bad 1: unhealthy (2.1)",
            "bad package 1 of 3 (2.1), pushed to rootfs v2: its required health check fails",
            "unhealthy",
            EXIT_ROLLED_BACK,
            "health",
        ),
        (
            "bad 2: init hangs (2.2)",
            "bad package 2 of 3 (2.2), pushed to the recovery system: its init hangs",
            "hang",
            EXIT_ROLLED_BACK,
            "bootlimit",
        ),
        (
            "bad 3: unusable root (2.3)",
            "bad package 3 of 3 (2.3), pushed to the recovery system: not a filesystem",
            "garbage",
            EXIT_ROLLED_BACK,
            "bootlimit",
        ),
        (
            "good again (2.0)",
            "the good package is pushed again, to the recovery system",
            "good",
            0,
            "updated",
        ),
    ];
    for (title, heading, package, exit, expect) in steps {
        let d = demo_push(
            &mut robot,
            &mut running,
            title,
            heading,
            package,
            exit,
            expect,
        );
        // In recovery after a rollback: what the robot itself says.
        if let Some((boot, o)) = running.as_mut() {
            if o.slot.as_deref() == Some("otafs") {
                println!();
                for cmd in [
                    "bootcount status",
                    "fw-env print zbot_rb_slot zbot_rb_reason",
                ] {
                    println!("    $ {cmd}");
                    let (_, out) = boot.run(cmd, STEP).unwrap();
                    for l in out.lines() {
                        println!("    | {l}");
                    }
                }
            }
        }
        pushes.push(d);
    }
    let secs = started.elapsed().as_secs();
    println!(
        "\n=== summary ({} min {} s; bootlimit 3, watchdog {} s)",
        secs / 60,
        secs % 60,
        DEMO_WATCHDOG.as_secs()
    );
    println!(
        "{:<27} {:>4} {:<12} {:>6}  {:>31}  {:>5} {:>6} {:>7} {:>9} {:>9}",
        "update",
        "exit",
        "outcome",
        "push",
        "recov/upload/install/trial/verd",
        "boots",
        "trials",
        "saveenv",
        "KiB U/L",
        "req U/L"
    );
    for d in &pushes {
        let (ub, lb, ur, lr) = d.boots.iter().fold((0, 0, 0, 0), |(a, b, c, e), x| {
            (
                a + x.env_writes.uboot_bytes,
                b + x.env_writes.linux_bytes,
                c + x.env_writes.uboot_requests,
                e + x.env_writes.linux_requests,
            )
        });
        let stages = match d.times {
            Some(t) => format!(
                "{:.0}/{:.0}/{:.0}/{:.0}/{:.0} s",
                t[0], t[1], t[2], d.trial_secs, d.verdict_secs
            ),
            None => "-".into(),
        };
        let outcome = if d.outcome.contains("rolled-back") {
            "rolled back"
        } else if d.outcome.contains("updated") {
            "updated"
        } else {
            "other"
        };
        println!(
            "{:<27} {:>4} {:<12} {:>5.0}s  {:>31}  {:>5} {:>6} {:>7} {:>9} {:>9}",
            d.title,
            d.exit,
            outcome,
            d.secs,
            stages,
            d.boots.len(),
            d.trial_boots(),
            d.boots.iter().map(|b| b.uboot_saves).sum::<usize>(),
            format!("{}/{}", ub.div_ceil(1024), lb.div_ceil(1024)),
            format!("{ur}/{lr}")
        );
        println!("    {}", d.outcome);
    }
    println!(
        "push: from `zbot-updater update` to its exit; recov: until SWUpdate answered (the \
         agent's reboot into recovery;\n0 when pushed to recovery); upload and install: as the \
         client measured them; trial: from the install to the\npower-on of the boot that gave \
         the final verdict; verd: from there to the client's exit (the health check,\nthe \
         client's 3 s polling). boots: every power-on of the push (the running one first). \
         KiB/req U/L: what\nreached the env partition from U-Boot / from Linux (QEMU's block \
         layer)."
    );
    for d in &pushes {
        assert_eq!(
            d.exit, d.expect_exit,
            "{}: exit {} ({}), expected {}\nlog: {log}",
            d.title, d.exit, d.outcome, d.expect_exit
        );
        assert!(
            d.outcome.contains(d.expect),
            "{}: {:?} does not say {:?}\nlog: {log}",
            d.title,
            d.outcome,
            d.expect
        );
    }
    assert_eq!(pushes[1].trial_boots(), 1, "log: {log}");
    assert_eq!(pushes[2].trial_boots(), 3, "log: {log}");
    assert_eq!(pushes[3].trial_boots(), 3, "log: {log}");
    let (boot, o) = running.as_mut().expect("the robot runs at the end");
    assert!(o.healthy_in("rootfs"), "{o:?}\nlog: {log}");
    let (_, v) = boot.run("cat /etc/zbot-version", STEP).unwrap();
    assert!(v.contains("2.0"), "{v}\nlog: {log}");
}
