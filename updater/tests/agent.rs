//! The agent as the robot runs it: the `zbot-updater agent` binary on 127.0.0.1, an env image
//! file described by a fw_env.config, a kernel command line file, and a test reboot command.
//! Status is open; reboot into recovery needs the robot's secret (challenge-response), and is
//! refused without it, with a wrong one and when replayed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zbot_updater::agent::mac_hex;

const BIN: &str = env!("CARGO_BIN_EXE_zbot-updater");
const SECRET: &str = "5f2b6c1e9a0d4478b3e2a9c07d61f3e8";

struct Robot {
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: String,
}

impl Drop for Robot {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write_secret(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Robot {
    /// A robot running rootfs (image 1.2) with the seed's variables.
    fn new() -> Robot {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let vars: fw_env::Vars = [
            ("next_boot", "rootfs"),
            ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
            ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
            ("bootcmd", "run boot-zbot"),
        ]
        .into_iter()
        .collect();
        let img = fw_env::codec::encode(&vars, 0x4000, fw_env::Layout::Single, 1).unwrap();
        std::fs::write(p("uboot.env"), img).unwrap();
        std::fs::write(
            p("fw_env.config"),
            format!("{} 0 0x4000\n", p("uboot.env").display()),
        )
        .unwrap();
        std::fs::write(p("u-boot-initial-env"), "next_boot=otafs\n").unwrap();
        std::fs::write(
            p("cmdline"),
            "console=ttyS0 root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs\n",
        )
        .unwrap();
        std::fs::write(p("zbot-version"), "1.2\n").unwrap();
        write_secret(&p("agent.secret"), &format!("{SECRET}\n"), 0o600);
        Robot {
            dir,
            child: None,
            addr: String::new(),
        }
    }
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("agent")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--nonce-ttl",
                "2",
                "--io-timeout",
                "2",
            ])
            .arg("--secret")
            .arg(self.p("agent.secret"))
            .arg("-c")
            .arg(self.p("fw_env.config"))
            .arg("-f")
            .arg(self.p("u-boot-initial-env"))
            .arg("--cmdline")
            .arg(self.p("cmdline"))
            .arg("--version-file")
            .arg(self.p("zbot-version"))
            .env(
                "ZBOT_AGENT_REBOOT_CMD",
                format!("touch {}", self.p("rebooted").display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
    fn start(mut self) -> Robot {
        let mut child = self.command().spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        self.addr = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|_| line.contains("listening on"))
            .unwrap_or_else(|| panic!("agent did not start: {line}"))
            .to_string();
        // Keep draining stderr so the agent never blocks on it.
        std::thread::spawn(move || for _ in err.lines() {});
        self.child = Some(child);
        self
    }
    /// One connection, several request lines; the answers.
    fn ask(&self, lines: &[&str]) -> Vec<String> {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut out = Vec::new();
        for l in lines {
            writeln!(w, "{l}").unwrap();
            let mut a = String::new();
            r.read_line(&mut a).unwrap();
            out.push(a.trim_end().to_string());
        }
        out
    }
    fn json(&self, line: &str) -> serde_json::Value {
        serde_json::from_str(&self.ask(&[line])[0]).unwrap()
    }
    fn challenge(&self) -> String {
        self.json("challenge")["nonce"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn env(&self) -> fw_env::Vars {
        let cfg = fw_env::Store::from_config_file(self.p("fw_env.config")).unwrap();
        cfg.read().unwrap().vars
    }
    fn once(&self) -> Option<String> {
        self.env().get("zbot_once").map(|v| v.into_owned())
    }
    fn rebooted(&self, wait: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < wait {
            if self.p("rebooted").exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

#[test]
fn status_is_answered_without_authentication() {
    let r = Robot::new().start();
    let v = r.json("status");
    assert_eq!(v["robot"], "zbot");
    assert_eq!(v["booted_slot"], "rootfs");
    assert_eq!(v["image_version"], "1.2");
    assert_eq!(v["next_boot_slot"], "rootfs");
    assert_eq!(v["trial"], serde_json::Value::Null);
    assert_eq!(v["last_rollback"], serde_json::Value::Null);
    assert_eq!(v["health"], "good: committed");
    assert_eq!(v["env_valid"], true);
    assert_eq!(r.ask(&["discover"]), ["zbot"]);
    assert!(!r.rebooted(Duration::from_millis(100)));
}

#[test]
fn recovery_with_the_secret_sets_the_one_shot_boot_and_reboots_once() {
    let r = Robot::new().start();
    let nonce = r.challenge();
    let mac = mac_hex(SECRET.as_bytes(), "recovery", &nonce);
    let line = format!("recovery {nonce} {mac}");
    let a: serde_json::Value = serde_json::from_str(&r.ask(&[&line])[0]).unwrap();
    assert_eq!(a["ok"], true, "{a}");
    assert!(
        r.rebooted(Duration::from_secs(10)),
        "the reboot command did not run"
    );
    assert_eq!(r.once().as_deref(), Some("otafs"));
    // What bootcount status shows through the agent.
    assert_eq!(r.json("status")["boot_once"], "otafs");

    // Replayed: the same request again is refused and nothing more happens.
    std::fs::remove_file(r.p("rebooted")).unwrap();
    let a: serde_json::Value = serde_json::from_str(&r.ask(&[&line])[0]).unwrap();
    assert_eq!(a["ok"], false);
    assert!(a["error"].as_str().unwrap().contains("nonce"), "{a}");
    assert!(
        !r.rebooted(Duration::from_millis(500)),
        "a replay rebooted the robot"
    );
}

#[test]
fn recovery_is_refused_without_the_secret_with_a_wrong_one_and_with_old_nonces() {
    let r = Robot::new().start();
    let before = r.env();
    let refused = |line: String, why: &str| {
        let a: serde_json::Value = serde_json::from_str(&r.ask(&[&line])[0]).unwrap();
        assert_eq!(a["ok"], false, "{line}: {a}");
        assert!(a["error"].as_str().unwrap().contains(why), "{line}: {a}");
    };
    // The seed's unauthenticated `ota`.
    refused("ota".into(), "without authentication");
    // No secret: no MAC at all, or garbage.
    refused(format!("recovery {}", r.challenge()), "unknown request");
    refused(
        format!("recovery {} {}", r.challenge(), "00".repeat(32)),
        "authentication failed",
    );
    refused(
        format!("recovery {} zz", r.challenge()),
        "authentication failed",
    );
    // A wrong secret.
    let n = r.challenge();
    refused(
        format!(
            "recovery {n} {}",
            mac_hex(b"not-the-robot-secret", "recovery", &n)
        ),
        "authentication failed",
    );
    // ... and that nonce is gone: the right MAC for it no longer works.
    refused(
        format!(
            "recovery {n} {}",
            mac_hex(SECRET.as_bytes(), "recovery", &n)
        ),
        "nonce",
    );
    // A nonce the agent never issued.
    let fake = "0123456789abcdef0123456789abcdef";
    refused(
        format!(
            "recovery {fake} {}",
            mac_hex(SECRET.as_bytes(), "recovery", fake)
        ),
        "nonce",
    );
    // An expired nonce (ttl 2 s here).
    let n = r.challenge();
    std::thread::sleep(Duration::from_millis(2200));
    refused(
        format!(
            "recovery {n} {}",
            mac_hex(SECRET.as_bytes(), "recovery", &n)
        ),
        "nonce",
    );
    // A MAC for another action.
    let n = r.challenge();
    refused(
        format!("recovery {n} {}", mac_hex(SECRET.as_bytes(), "status", &n)),
        "authentication failed",
    );
    assert_eq!(r.env(), before, "a refused request changed the environment");
    assert!(!r.rebooted(Duration::from_millis(200)));
    // Still serving after all that.
    assert_eq!(r.json("status")["booted_slot"], "rootfs");
}

#[test]
fn oversized_and_silent_clients_are_cut_off() {
    let r = Robot::new().start();
    // An oversized request: the agent answers with an error (when the client reads it before
    // the reset its unread bytes cause) and closes the connection; then it serves others.
    let long = "x".repeat(10_000);
    let s = TcpStream::connect(&r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = (&s).write_all(format!("{long}\n").as_bytes());
    let mut a = String::new();
    match BufReader::new(&s).read_line(&mut a) {
        Ok(_) => assert!(a.is_empty() || a.contains("too long"), "{a}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert_eq!(r.ask(&["discover"]), ["zbot"]);
    // A client that connects and says nothing holds the agent at most the io timeout.
    let _idle = TcpStream::connect(&r.addr).unwrap();
    let start = Instant::now();
    assert_eq!(r.ask(&["discover"]), ["zbot"]);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn refuses_to_start_with_a_missing_weak_or_exposed_secret() {
    let r = Robot::new();
    let run = |r: &Robot| {
        let mut c = r.command();
        let mut child = c.spawn().unwrap();
        let start = Instant::now();
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the agent started (or hung) with a bad secret");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(!st.success());
        err
    };
    std::fs::remove_file(r.p("agent.secret")).unwrap();
    assert!(run(&r).contains("secret file"));
    write_secret(&r.p("agent.secret"), "short\n", 0o600);
    assert!(run(&r).contains("at least 16"));
    write_secret(&r.p("agent.secret"), SECRET, 0o644);
    assert!(run(&r).contains("chmod 600"));
}
