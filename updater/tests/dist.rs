//! `updater/dist/` (the recovery system's swupdate.cfg and S98swupdate) against the real
//! SWUpdate 2022.12 and the real `bootcount`: the shipped configuration runs bootcount's
//! pre-update reservation and post-update trial around an install, SWUpdate writes none of its
//! own env markers with the start script's flags, and when SWUpdate skips the post-update
//! command the push client's `POST /restart` finishes the job.
//!
//! Each case runs in `unshare -m` (private mounts): an overlay over `/etc` holds the test's
//! fw_env.config (a temp env file), slot file, hwrevision, certificate and the shipped
//! swupdate.cfg (only `/usr/bin/bootcount` rewritten to the built binary); `/proc/cmdline` is
//! bind-mounted from a file saying the robot booted otafs; `/run/lock` is a private tmpfs. The
//! web case adds `-n` (loopback only). Reboots are `BOOTCOUNT_REBOOT_CMD` touching a file.

#![cfg(feature = "pack")]

mod common;

use common::{bootcount_bin, need, run, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_zbot-updater");
const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist");
static ONE: Mutex<()> = Mutex::new(());

struct Recovery {
    dir: tempfile::TempDir,
    image: Vec<u8>,
    env0: Vec<u8>,
}

type Env = BTreeMap<String, String>;

impl Recovery {
    fn new(cfg_edit: impl Fn(String) -> String) -> Recovery {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let bootcount = bootcount_bin();
        let o = run(
            Command::new(need("openssl"))
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", "/CN=zbot-test", "-days", "2", "-keyout"])
                .arg(p("key.pem"))
                .arg("-out")
                .arg(p("cert.pem")),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "openssl: {}", text(&o));
        let mut x: u32 = 99;
        let image: Vec<u8> = (0..700_001)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 3 == 0 {
                    b'z'
                } else {
                    x as u8
                }
            })
            .collect();
        std::fs::write(p("rootfs.ext4"), &image).unwrap();
        // The raw handler opens the device: it must exist (a plain file here).
        std::fs::write(p("slot-rootfs.img"), vec![0xA5u8; 4096]).unwrap();
        let slots = format!(
            "bootlimit = 3\n[[slot]]\nname = \"rootfs\"\nrole = \"primary\"\nroot = \"root=/dev/mmcblk0p4 rootwait rw\"\ndevice = \"{}\"\n[[slot]]\nname = \"otafs\"\nrole = \"recovery\"\nroot = \"root=/dev/mmcblk0p3 rootwait rw\"\ndevice = \"{}\"\n",
            p("slot-rootfs.img").display(),
            p("slot-otafs.img").display()
        );
        std::fs::write(p("slots.toml"), &slots).unwrap();
        // The robot booted otafs through the agent's one-shot: U-Boot consumed zbot_once.
        let vars: fw_env::Vars = [
            ("bootcmd", "run boot-zbot"),
            ("next_boot", "rootfs"),
            ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
            ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
        ]
        .into_iter()
        .collect();
        let env0 = fw_env::codec::encode(&vars, 0x4000, fw_env::Layout::Single, 1).unwrap();
        std::fs::write(p("uboot.env"), &env0).unwrap();
        std::fs::write(
            p("cmdline"),
            "console=ttyS0 root=/dev/mmcblk0p3 rootwait rw zbot.slot=otafs\n",
        )
        .unwrap();
        // The overlay's upper layer: what the recovery system's /etc holds.
        let etc = p("etc");
        std::fs::create_dir_all(etc.join("bootcount")).unwrap();
        std::fs::create_dir_all(etc.join("swupdate")).unwrap();
        std::fs::create_dir_all(p("etc-work")).unwrap();
        std::fs::write(
            etc.join("fw_env.config"),
            format!("{} 0 0x4000\n", p("uboot.env").display()),
        )
        .unwrap();
        std::fs::write(etc.join("u-boot-initial-env"), "bootcmd=run boot-zbot\n").unwrap();
        std::fs::write(etc.join("bootcount/slots.toml"), &slots).unwrap();
        std::fs::write(etc.join("hwrevision"), "zbot 1.1\n").unwrap();
        std::fs::copy(p("cert.pem"), etc.join("swupdate/zbot-release.pem")).unwrap();
        let cfg = std::fs::read_to_string(Path::new(DIST).join("swupdate.cfg")).unwrap();
        assert!(cfg.contains("\"/usr/bin/bootcount install-target\""));
        assert!(cfg.contains("\"/usr/bin/bootcount trial rootfs --reboot\""));
        let cfg = cfg_edit(cfg.replace("/usr/bin/bootcount", bootcount.to_str().unwrap()));
        std::fs::write(etc.join("swupdate/swupdate.cfg"), cfg).unwrap();
        std::fs::create_dir_all(p("www")).unwrap();
        let r = Recovery { dir, image, env0 };
        r.pack("good.swu", "1.2");
        r
    }
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    fn pack(&self, out: &str, version: &str) {
        let o = run(
            Command::new(BIN)
                .arg("pack")
                .arg(self.p("rootfs.ext4"))
                .args([
                    "--version",
                    version,
                    "--hardware",
                    "1.1",
                    "--slot-size",
                    "8M",
                ])
                .arg("--slots")
                .arg(self.p("slots.toml"))
                .arg("--key")
                .arg(self.p("key.pem"))
                .arg("--cert")
                .arg(self.p("cert.pem"))
                .arg("-o")
                .arg(self.p(out)),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "pack: {}", text(&o));
    }
    fn env(&self) -> Env {
        let cfg = self.p("etc/fw_env.config");
        let store = fw_env::Store::from_config_file(&cfg).unwrap();
        store
            .read()
            .unwrap()
            .vars
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
    fn reset(&self) {
        std::fs::write(self.p("uboot.env"), &self.env0).unwrap();
        std::fs::write(self.p("slot-rootfs.img"), vec![0xA5u8; 4096]).unwrap();
        let _ = std::fs::remove_file(self.p("rebooted"));
    }
    /// Run `body` (bash) in a private mount namespace (and network namespace with `net`) with
    /// the recovery system's /etc, /proc/cmdline and lock directory in place. `$ARGS` holds the
    /// start script's argument vector (S98swupdate args), one per line.
    fn in_recovery(&self, net: bool, installed: &str, body: &str) -> Output {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        need("swupdate");
        need("unshare");
        let script = format!(
            r#"set -u
mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc,workdir={d}/etc-work /etc || exit 90
mount -t tmpfs tmpfs /run/lock || exit 91
mount --bind {d}/cmdline /proc/cmdline || exit 92
{net}
mkdir -p {d}/tmp
export TMPDIR={d}/tmp BOOTCOUNT_REBOOT_CMD="touch {d}/rebooted"
mapfile -t ARGS < <(INSTALLED_VERSION={installed} SWUPDATE_PORT=18091 SWUPDATE_WWW={d}/www sh {dist}/S98swupdate args)
echo "args: ${{ARGS[*]}}"
{body}
"#,
            d = self.dir.path().display(),
            net = if net {
                "ip link set lo up || exit 93"
            } else {
                ""
            },
            dist = DIST,
        );
        let mut c = Command::new("unshare");
        c.arg("-m").arg("--propagation").arg("private");
        if net {
            c.arg("-n");
        }
        run(c.args(["bash", "-c", &script]), Duration::from_secs(120))
    }
    /// `swupdate -B uboot <start script's args> -i FILE` (the web server's -w pair dropped;
    /// `drop` removes more arguments, e.g. the marker flags for the control run).
    fn install(&self, swu: &str, installed: &str, drop: &[&str]) -> (bool, String) {
        let filter: String = drop
            .iter()
            .map(|a| format!("[ \"$a\" = \"{a}\" ] && continue; "))
            .collect();
        let body = format!(
            r#"unset 'ARGS[-1]' 'ARGS[-1]'
A=(); for a in "${{ARGS[@]}}"; do {filter}A+=("$a"); done
swupdate -l 5 -B uboot "${{A[@]}}" -i {swu}
echo "swupdate-exit=$?""#,
            swu = self.p(swu).display()
        );
        let o = self.in_recovery(false, installed, &body);
        let log = text(&o);
        (log.contains("swupdate-exit=0"), log)
    }
    fn target(&self) -> Vec<u8> {
        std::fs::read(self.p("slot-rootfs.img")).unwrap()
    }
}

fn markers(env: &Env) -> Vec<&String> {
    env.keys()
        .filter(|k| *k == "recovery_status" || *k == "ustate")
        .collect()
}

#[test]
fn shipped_config_runs_bootcount_around_the_install_and_swupdate_writes_no_marker() {
    let r = Recovery::new(|c| c);
    let before = r.env();

    // A good package: bootcount reserves the slot, SWUpdate writes it, bootcount starts the
    // trial and "reboots". The only env changes are the trial's; no recovery_status, no ustate.
    let (ok, log) = r.install("good.swu", "1.1", &[]);
    assert!(ok, "{log}");
    assert!(log.contains("-M -m -N 1.1"), "start script's flags: {log}");
    assert!(
        log.contains("bootcount install-target command returned 0"),
        "{log}"
    );
    assert!(log.contains("Running Post-update command"), "{log}");
    assert!(
        log.contains("bootcount trial rootfs --reboot command returned 0"),
        "{log}"
    );
    assert!(r.p("rebooted").exists(), "no reboot: {log}");
    assert!(r.target() == r.image, "the slot is not byte-identical");
    let after = r.env();
    assert!(markers(&after).is_empty(), "SWUpdate wrote {after:?}");
    let mut expect = before.clone();
    expect.insert("zbot_trial".into(), "rootfs".into());
    expect.insert("zbot_tries".into(), "0".into());
    assert_eq!(after, expect, "{log}");

    // A downgrade below the installed version (-N from the start script): refused before the
    // pre-update command, nothing written anywhere.
    r.reset();
    let (ok, log) = r.install("good.swu", "1.3", &[]);
    assert!(!ok && log.contains("No downgrading allowed"), "{log}");
    assert_eq!(r.target(), vec![0xA5u8; 4096]);
    assert_eq!(r.env(), before, "{log}");
    assert!(!r.p("rebooted").exists());

    // A package from elsewhere (no marker keys in its sw-description) whose install fails
    // after the reservation. With the start script's -M -m: the slot stays reserved (bootcount:
    // unbootable) and SWUpdate writes no marker; without them (control) it writes its markers
    // in place into the env file: what the flags are for.
    let d = r.p("foreign");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("rootfs.ext4"), &r.image).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&r.image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        d.join("sw-description"),
        format!(
            "software = {{ version = \"1.4\"; description = \"foreign\"; hardware-compatibility = [\"1.1\"];\n images = ( {{ filename = \"rootfs.ext4\"; device = \"{}/missing/slot\"; type = \"raw\"; sha256 = \"{sha}\"; }} ); }}\n",
            d.display()
        ),
    )
    .unwrap();
    let o = run(
        Command::new(BIN)
            .arg("create")
            .arg(&d)
            .arg("-o")
            .arg(r.p("foreign.swu"))
            .arg("--key")
            .arg(r.p("key.pem"))
            .arg("--cert")
            .arg(r.p("cert.pem")),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "create: {}", text(&o));
    r.reset();
    let (ok, log) = r.install("foreign.swu", "1.1", &[]);
    assert!(!ok && log.contains("Installation failed"), "{log}");
    let after = r.env();
    assert!(
        markers(&after).is_empty(),
        "SWUpdate wrote {after:?}\n{log}"
    );
    let mut expect = before.clone();
    // bootcount's reservation: the slot marked as being installed, the next boot recovery.
    expect.insert("zbot_bad_rootfs".into(), "installing".into());
    expect.insert("next_boot".into(), "otafs".into());
    assert_eq!(after, expect, "{log}");
    assert!(!r.p("rebooted").exists());

    r.reset();
    let (ok, log) = r.install("foreign.swu", "1.1", &["-M", "-m"]);
    assert!(!ok, "{log}");
    let after = r.env();
    assert!(
        !markers(&after).is_empty(),
        "control: without -M -m SWUpdate 2022.12 was expected to write its markers: {after:?}\n{log}"
    );
}

#[test]
fn the_client_finishes_when_swupdate_skips_the_post_update_command() {
    // SWUpdate 2022.12 sometimes succeeds without running postupdatecmd; `run-postupdate =
    // false` makes that happen every time. The client sees SUCCESS without DONE and sends
    // POST /restart, which runs the shipped post-update command: the trial starts, the robot
    // reboots.
    let r = Recovery::new(|c| c.replace("run-postupdate = true;", "run-postupdate = false;"));
    let before = r.env();
    let body = format!(
        r#"swupdate -l 5 -B uboot "${{ARGS[@]}}" >{d}/swupdate.log 2>&1 &
sw=$!
i=0
while ! (exec 3<>/dev/tcp/127.0.0.1/18091) 2>/dev/null; do
    sleep 0.1; i=$((i+1)); [ $i -gt 100 ] && {{ echo "swupdate did not listen" >&2; exit 91; }}
done
{bin} update 127.0.0.1 {swu} --port 18091 --no-wait --timeout 60 --json
echo "client-exit=$?"
sleep 1
kill -9 $sw 2>/dev/null
cat {d}/swupdate.log"#,
        d = r.dir.path().display(),
        bin = BIN,
        swu = r.p("good.swu").display(),
    );
    let o = r.in_recovery(true, "1.1", &body);
    let log = text(&o);
    assert!(log.contains("client-exit=0"), "{log}");
    assert!(log.contains("POST /restart"), "{log}");
    assert!(r.target() == r.image, "{log}");
    assert!(
        r.p("rebooted").exists(),
        "the post-update command did not run: {log}"
    );
    let after = r.env();
    assert!(markers(&after).is_empty(), "{after:?}");
    assert_eq!(after.get("zbot_trial").map(String::as_str), Some("rootfs"));
    assert_eq!(after.get("next_boot"), before.get("next_boot"));
}
