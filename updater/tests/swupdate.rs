//! Packages from `zbot-updater pack` and `create` against the real SWUpdate (Debian 12's
//! 2022.12, the board's version): accepted by `swupdate -c`, installed by `swupdate -i` into a
//! plain file standing for the slot, byte-identical; and each bad package refused with the
//! target untouched. Needs `swupdate` and `openssl` (scripts/setup-debian.sh installs both):
//! without them these tests FAIL with that instruction, they never pass silently.

#![cfg(feature = "pack")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zbot_updater::cpio;

const BIN: &str = env!("CARGO_BIN_EXE_zbot-updater");
/// SWUpdate runs one at a time (each is about a second): its IPC sockets live in $TMPDIR,
/// which is private per run, but one at a time keeps the 2-core machine responsive too.
static SWUPDATE: Mutex<()> = Mutex::new(());

mod common;
use common::{need, run};

struct Fixture {
    dir: tempfile::TempDir,
    image: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let openssl = need("openssl");
        let o = run(
            Command::new(openssl)
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=zbot-test",
                    "-days",
                    "2",
                ])
                .arg("-keyout")
                .arg(dir.path().join("key.pem"))
                .arg("-out")
                .arg(dir.path().join("cert.pem")),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A stand-in root filesystem: compressible text, then pseudo-random bytes, an odd length.
        let mut image: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut x: u32 = 12345;
        image.extend((0..1_500_001).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        std::fs::write(dir.path().join("rootfs.ext4"), &image).unwrap();
        let slots = format!(
            "bootlimit = 3\n[[slot]]\nname = \"rootfs\"\nrole = \"primary\"\nroot = \"root=/dev/vda4 rootwait rw\"\ndevice = \"{}\"\n[[slot]]\nname = \"otafs\"\nrole = \"recovery\"\nroot = \"root=/dev/vda3 rootwait rw\"\ndevice = \"/nonexistent/otafs\"\n",
            dir.path().join("slot-rootfs.img").display()
        );
        std::fs::write(dir.path().join("slots.toml"), slots).unwrap();
        Fixture { dir, image }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn pack(&self, out: &str, extra: &[&str]) -> Output {
        run(
            Command::new(BIN)
                .arg("pack")
                .arg(self.p("rootfs.ext4"))
                .args(["--version", "1.2", "--hardware", "1.0", "--hardware", "1.1"])
                .args(if extra.contains(&"--slot-size") {
                    &[][..]
                } else {
                    &["--slot-size", "8M"][..]
                })
                .arg("--slots")
                .arg(self.p("slots.toml"))
                .arg("--key")
                .arg(self.p("key.pem"))
                .arg("--cert")
                .arg(self.p("cert.pem"))
                .arg("-o")
                .arg(self.p(out))
                .args(extra),
            Duration::from_secs(120),
        )
    }
    fn pack_ok(&self, out: &str, extra: &[&str]) {
        let o = self.pack(out, extra);
        assert!(
            o.status.success(),
            "pack failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    /// The target prefilled with a marker; returns its content.
    fn reset_target(&self) -> Vec<u8> {
        let marker = vec![0xA5u8; 4096];
        std::fs::write(self.p("slot-rootfs.img"), &marker).unwrap();
        marker
    }
    fn target(&self) -> Vec<u8> {
        std::fs::read(self.p("slot-rootfs.img")).unwrap()
    }
    /// Run swupdate on a package: `-c` (check only) or `-i`, with hardware `rev` and extra args.
    fn swupdate(&self, swu: &Path, check: bool, rev: &str, extra: &[&str]) -> (bool, String) {
        let bin = need("swupdate");
        let _one = SWUPDATE.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir_in(self.dir.path()).unwrap();
        let mut c = Command::new(bin);
        c.env("TMPDIR", tmp.path()).arg("-l").arg("5");
        if check {
            c.arg("-c");
        }
        c.arg("-i").arg(swu).arg("-k").arg(self.p("cert.pem"));
        c.arg("-H").arg(format!("zbot:{rev}")).args(extra);
        let o = run(&mut c, Duration::from_secs(90));
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), log)
    }
}

/// Members of an archive, in order.
fn members(swu: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(swu).unwrap();
    let mut r = cpio::Reader::new(std::io::BufReader::new(f));
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut d = Vec::new();
        r.copy_data(&e, &mut d).unwrap();
        out.push((e.name, d));
    }
    out
}

fn write_archive(path: &Path, ms: &[(String, Vec<u8>)]) {
    let mut w = cpio::Writer::new(Vec::new());
    for (n, d) in ms {
        w.member_bytes(n, d).unwrap();
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

fn assert_refused(f: &Fixture, swu: &Path, rev: &str, extra: &[&str], expect: &str) {
    let before = f.reset_target();
    let (ok, log) = f.swupdate(swu, false, rev, extra);
    assert!(!ok, "swupdate accepted {}:\n{log}", swu.display());
    assert!(
        log.contains(expect),
        "swupdate refused {} but without {expect:?}:\n{log}",
        swu.display()
    );
    assert_eq!(f.target(), before, "a refused package changed the target");
}

#[test]
fn packs_are_checked_and_installed_byte_identical_by_swupdate() {
    let f = Fixture::new();
    for (name, compress) in [("gzip.swu", "gzip"), ("zstd.swu", "zstd")] {
        f.pack_ok(name, &["--compress", compress]);
        let swu = f.p(name);
        // Our own inspect agrees.
        let o = run(
            Command::new(BIN)
                .arg("inspect")
                .arg(&swu)
                .arg("--cert")
                .arg(f.p("cert.pem")),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "inspect: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("signature: verified") && out.contains("hardware-compatibility"),
            "{out}"
        );

        f.reset_target();
        let (ok, log) = f.swupdate(&swu, true, "1.1", &[]);
        assert!(ok, "swupdate -c refused {name}:\n{log}");
        assert!(
            log.contains("Verified OK") && log.contains("Hardware compatibility verified"),
            "{log}"
        );
        assert_eq!(f.target(), vec![0xA5u8; 4096], "-c wrote the target");

        let (ok, log) = f.swupdate(&swu, false, "1.0", &[]);
        assert!(ok, "swupdate -i refused {name}:\n{log}");
        assert!(
            f.target() == f.image,
            "{name}: the slot is not byte-identical to the image after install"
        );
    }
}

#[test]
fn create_packs_a_directory_swupdate_installs() {
    let f = Fixture::new();
    f.pack_ok("orig.swu", &[]);
    let d = f.p("unpacked");
    std::fs::create_dir(&d).unwrap();
    for (n, data) in members(&f.p("orig.swu")) {
        if n != "sw-description.sig" {
            std::fs::write(d.join(n), data).unwrap();
        }
    }
    let o = run(
        Command::new(BIN)
            .arg("create")
            .arg(&d)
            .arg("-o")
            .arg(f.p("created.swu"))
            .arg("--key")
            .arg(f.p("key.pem"))
            .arg("--cert")
            .arg(f.p("cert.pem")),
        Duration::from_secs(60),
    );
    assert!(
        o.status.success(),
        "create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let names: Vec<String> = members(&f.p("created.swu"))
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(
        names,
        ["sw-description", "sw-description.sig", "rootfs.ext4.gz"]
    );
    f.reset_target();
    let (ok, log) = f.swupdate(&f.p("created.swu"), false, "1.1", &[]);
    assert!(ok, "swupdate refused the created package:\n{log}");
    assert!(f.target() == f.image);

    // A directory whose image does not match its sw-description is refused, no output.
    let img = d.join("rootfs.ext4.gz");
    let mut data = std::fs::read(&img).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 1;
    std::fs::write(&img, data).unwrap();
    let o = run(
        Command::new(BIN)
            .arg("create")
            .arg(&d)
            .arg("-o")
            .arg(f.p("bad.swu")),
        Duration::from_secs(60),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha256"));
    assert!(!f.p("bad.swu").exists());
}

#[test]
fn swupdate_refuses_tampered_unsigned_wrong_hardware_and_downgrades() {
    let f = Fixture::new();
    f.pack_ok("good.swu", &[]);
    let good = members(&f.p("good.swu"));
    assert_eq!(good[0].0, "sw-description");
    assert_eq!(good[1].0, "sw-description.sig");

    // A tampered image: one bit flipped in the stored (compressed) image.
    let mut t = good.clone();
    let mid = t[2].1.len() / 2;
    t[2].1[mid] ^= 0x10;
    write_archive(&f.p("tampered-image.swu"), &t);
    assert_refused(&f, &f.p("tampered-image.swu"), "1.1", &[], "HASH mismatch");

    // A tampered signature.
    let mut t = good.clone();
    let last = t[1].1.len() - 10;
    t[1].1[last] ^= 0x01;
    write_archive(&f.p("tampered-sig.swu"), &t);
    assert_refused(&f, &f.p("tampered-sig.swu"), "1.1", &[], "ERROR");

    // A tampered sw-description (the signature no longer matches it).
    let mut t = good.clone();
    let text = String::from_utf8(t[0].1.clone())
        .unwrap()
        .replace("\"1.1\"", "\"9.9\"");
    t[0].1 = text.into_bytes();
    write_archive(&f.p("tampered-desc.swu"), &t);
    assert_refused(&f, &f.p("tampered-desc.swu"), "9.9", &[], "ERROR");

    // No signature at all.
    let t: Vec<_> = good
        .iter()
        .filter(|m| m.0 != "sw-description.sig")
        .cloned()
        .collect();
    write_archive(&f.p("unsigned.swu"), &t);
    assert_refused(&f, &f.p("unsigned.swu"), "1.1", &[], "ERROR");

    // A hardware revision the package does not list.
    assert_refused(&f, &f.p("good.swu"), "2.0", &[], "compatibility");

    // A downgrade: the robot runs 1.3 and refuses older (-N).
    assert_refused(
        &f,
        &f.p("good.swu"),
        "1.1",
        &["-N", "1.3"],
        "No downgrading allowed",
    );
    // SWUpdate compares numerically: 1.10 is newer than 1.2, so -N 1.10 refuses 1.2.
    assert_refused(
        &f,
        &f.p("good.swu"),
        "1.1",
        &["-N", "1.10"],
        "No downgrading allowed",
    );
    // "1.02" is the same number as "1.2": not a downgrade, so -N 1.02 lets 1.2 in (the same
    // version again), which is why pack refuses a version equal to the previous one.
    f.reset_target();
    let (ok, log) = f.swupdate(&f.p("good.swu"), false, "1.1", &["-N", "1.02"]);
    assert!(
        ok && log.contains("Comparing old-style versions '1.2' <-> '1.02'"),
        "{log}"
    );
    // -R (no reinstalling) compares the strings: "1.2" is refused, "1.02" is not.
    assert_refused(
        &f,
        &f.p("good.swu"),
        "1.1",
        &["-R", "1.2"],
        "No reinstalling allowed",
    );
    // The package is accepted when the robot runs an older version.
    f.reset_target();
    let (ok, log) = f.swupdate(&f.p("good.swu"), false, "1.1", &["-N", "1.1.9"]);
    assert!(ok, "{log}");
    assert!(f.target() == f.image);

    // And our inspect sees the tampering too.
    for bad in [
        "tampered-image.swu",
        "tampered-sig.swu",
        "tampered-desc.swu",
        "unsigned.swu",
    ] {
        let o = run(
            Command::new(BIN)
                .arg("inspect")
                .arg(f.p(bad))
                .arg("--cert")
                .arg(f.p("cert.pem")),
            Duration::from_secs(60),
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "inspect passed {bad}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// Files in the fixture directory (to prove refusals leave nothing behind).
fn listing(f: &Fixture) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pack_refusals_name_the_problem_and_leave_no_file() {
    let f = Fixture::new();
    let before = listing(&f);
    let refuse = |args: &[&str], image: Option<&Path>, expect: &str| {
        let mut c = Command::new(BIN);
        c.arg("pack")
            .arg(
                image
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| f.p("rootfs.ext4")),
            )
            .args(["--hardware", "1.1"]);
        // With --layout and no --slots, the slots are the layout's own (as on the robot).
        if !args.contains(&"--slots") && !args.contains(&"--layout") {
            c.arg("--slots").arg(f.p("slots.toml"));
        }
        c.arg("-o").arg(f.p("out.swu")).args(args);
        let o = run(&mut c, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "pack {args:?} succeeded");
        assert!(
            err.contains(expect),
            "pack {args:?}: expected {expect:?} in: {err}"
        );
        assert_eq!(listing(&f), before, "pack {args:?} left a file behind");
    };
    let key = f.p("key.pem");
    let cert = f.p("cert.pem");
    let (k, c) = (key.to_str().unwrap(), cert.to_str().unwrap());
    let base = |v: &str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = ["--version", v, "--key", k, "--cert", c]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let args = |v: Vec<String>| v;
    let run_refuse = |v: Vec<String>, image: Option<&Path>, expect: &str| {
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        refuse(&a, image, expect)
    };
    // A missing image: named.
    run_refuse(
        args(base("1.2", &["--slot-size", "8M"])),
        Some(&f.p("nope.ext4")),
        "nope.ext4",
    );
    // Larger than the slot's partition.
    run_refuse(
        args(base("1.2", &["--slot-size", "1M"])),
        None,
        "do not fit slot rootfs",
    );
    // From the layout: the board's rootfs is 275M, the image fits; a 1M-slot layout does not.
    let layout = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../qemu/machine/layout.toml"
    ))
    .unwrap()
    // rootfs is the first 24M partition (staging, later, is 24M too).
    .replacen("size = \"24M\"", "size = \"1M\"", 1);
    let lp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(lp.path(), layout).unwrap();
    let mut a = base("1.2", &[]);
    a.push("--layout".into());
    a.push(lp.path().to_str().unwrap().into());
    // No --slots: the slots are the layout's own (partctl emit slots), /dev/vda4 for rootfs.
    run_refuse(a, None, "partition 4 (rootfs)");
    // Versions SWUpdate would misorder.
    run_refuse(
        args(base(
            "1.1",
            &["--slot-size", "8M", "--previous-version", "1.01"],
        )),
        None,
        "same as the previous",
    );
    run_refuse(
        args(base(
            "1.9",
            &["--slot-size", "8M", "--previous-version", "1.10"],
        )),
        None,
        "older than the previous",
    );
    run_refuse(
        args(base("1.2-rc1", &["--slot-size", "8M"])),
        None,
        "not a dotted number",
    );
    // A key that does not match the certificate.
    let other = f.p("other-key.pem");
    let o = run(
        Command::new(need("openssl"))
            .args(["genpkey", "-algorithm", "RSA", "-out"])
            .arg(&other),
        Duration::from_secs(60),
    );
    assert!(o.status.success());
    let before_other = listing(&f);
    let mut c = Command::new(BIN);
    c.arg("pack")
        .arg(f.p("rootfs.ext4"))
        .args([
            "--version",
            "1.2",
            "--hardware",
            "1.1",
            "--slot-size",
            "8M",
            "--key",
        ])
        .arg(&other)
        .arg("--cert")
        .arg(&cert)
        .arg("--slots")
        .arg(f.p("slots.toml"))
        .arg("-o")
        .arg(f.p("out.swu"));
    let o = run(&mut c, Duration::from_secs(60));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match the certificate"));
    assert_eq!(listing(&f), before_other);
    let _ = std::io::stderr().flush();
}

/// Run SWUpdate's web server and `zbot-updater update` against it inside a private network
/// namespace (`unshare -n`, loopback only). `before_client` runs in the namespace's shell once
/// the server listens; `client_bg` starts the client in the background and runs `after` then.
fn update_in_netns(
    f: &Fixture,
    swu: &Path,
    rev: &str,
    after: &str,
) -> (Option<i32>, String, String) {
    update_in_netns_with(f, swu, rev, after, "", "")
}

/// As `update_in_netns`, with more web-server options and client arguments.
fn update_in_netns_with(
    f: &Fixture,
    swu: &Path,
    rev: &str,
    after: &str,
    web_extra: &str,
    client_extra: &str,
) -> (Option<i32>, String, String) {
    let bin = need("swupdate");
    need("unshare");
    let _one = SWUPDATE.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir_in(f.dir.path()).unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let script = format!(
        r#"set -u
ip link set lo up || exit 90
swlog={tmp}/swupdate.log
TMPDIR={tmp} {bin} -l 5 -k {cert} -H zbot:{rev} -w "-p 18080 -r {www}{web_extra}" >$swlog 2>&1 &
sw=$!
i=0
while ! (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; do
    sleep 0.1; i=$((i+1)); [ $i -gt 100 ] && {{ echo "swupdate did not listen" >&2; exit 91; }}
done
{client} update 127.0.0.1 {swu} --port 18080 --no-wait --timeout 60 --json{client_extra} &
cl=$!
{after}
wait $cl
echo "client-exit=$?"
kill -9 $sw 2>/dev/null
"#,
        tmp = tmp.path().display(),
        bin = bin.display(),
        cert = f.p("cert.pem").display(),
        www = www.display(),
        client = BIN,
        swu = swu.display(),
    );
    let o = run(
        Command::new("unshare").args(["-n", "bash", "-c", &script]),
        Duration::from_secs(120),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("client-exit="))
        .and_then(|c| c.trim().parse().ok());
    let log = std::fs::read_to_string(tmp.path().join("swupdate.log")).unwrap_or_default();
    (
        code,
        out,
        format!(
            "{}\n--- swupdate log\n{log}",
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn update_installs_through_swupdates_web_server_and_reports_refusals() {
    let f = Fixture::new();
    f.pack_ok("good.swu", &[]);
    // Several times in a row: the websocket is read from before the upload, so SWUpdate's
    // result is never missed however fast it comes (it was, when read only after the upload).
    for run in 0..3 {
        f.reset_target();
        let (code, out, err) = update_in_netns(&f, &f.p("good.swu"), "1.1", "");
        assert_eq!(code, Some(0), "run {run}: {out}\n{err}");
        assert!(out.contains("\"outcome\":\"installed\""), "{out}");
        assert!(
            f.target() == f.image,
            "run {run}: the web install is not byte-identical"
        );
    }

    // Refused by SWUpdate (hardware 2.0 is not in the package): it cuts the upload; exit 3
    // with SWUpdate's own reason, taken from its websocket.
    let before = f.reset_target();
    let start = Instant::now();
    let (code, out, err) = update_in_netns(&f, &f.p("good.swu"), "2.0", "");
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(out.contains("\"outcome\":\"refused\""), "{out}");
    assert!(
        out.contains("SW not compatible with hardware"),
        "SWUpdate's reason is not shown: {out}\n{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(f.target(), before);

    // An image whose bytes do not match its sha256: refused after the upload, with the reason.
    let mut t = members(&f.p("good.swu"));
    let mid = t[2].1.len() / 2;
    t[2].1[mid] ^= 0x10;
    write_archive(&f.p("bad-hash.swu"), &t);
    let (code, out, err) = update_in_netns(&f, &f.p("bad-hash.swu"), "1.1", "");
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(out.contains("HASH mismatch"), "{out}\n{err}");
    assert_eq!(f.target(), before);
}

#[test]
fn update_survives_the_server_going_away_mid_upload() {
    let f = Fixture::new();
    // A big stored package so the upload lasts a while on loopback.
    let big: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(f.p("rootfs.ext4"), &big).unwrap();
    f.pack_ok("big.swu", &["--compress", "none", "--slot-size", "64M"]);
    let start = Instant::now();
    // SWUpdate is killed as soon as it logs that the update started (the upload's first
    // bytes, sw-description, arrived), polled every 10 ms: 48 MiB take about 0.3 s on
    // loopback, so the kill lands inside the upload. A fixed delay raced the upload (a
    // 0.3 s sleep once lost to a 0.298 s upload, and SWUpdate's own verdict came first).
    let kill_when_started = "i=0; until grep -q 'Software update started' $swlog; do \
         sleep 0.01; i=$((i+1)); [ $i -gt 2000 ] && break; done; kill -9 $sw";
    let (code, out, err) = update_in_netns(&f, &f.p("big.swu"), "1.1", kill_when_started);
    assert!(start.elapsed() < Duration::from_secs(90), "the client hung");
    assert!(
        err.contains("Software update started") && !err.contains("SWUPDATE successful"),
        "the kill did not land inside the update:\n{err}"
    );
    // Unreachable (5): the server went away in the middle of the upload.
    assert!(matches!(code, Some(5)), "exit {code:?}\n{out}\n{err}");
}

#[test]
fn update_authenticates_with_digest_and_tells_a_wrong_password() {
    let f = Fixture::new();
    f.pack_ok("good.swu", &[]);
    // An htdigest file as Apache's htdigest writes it: user:realm:md5(user:realm:password).
    use md5::Digest;
    let ha1 = zbot_updater::hex(&md5::Md5::digest(b"fleet:zbot:correct horse"));
    std::fs::write(f.p("htdigest"), format!("fleet:zbot:{ha1}\n")).unwrap();
    std::fs::write(f.p("good.pw"), "correct horse\n").unwrap();
    std::fs::write(f.p("bad.pw"), "battery staple\n").unwrap();
    let web = format!(
        " --auth-domain zbot --global-auth-file {}",
        f.p("htdigest").display()
    );
    let client = |pw: &str| {
        format!(
            " --http-user fleet --http-password-file {}",
            f.p(pw).display()
        )
    };

    // The right password: installed (upload, websocket and all through digest auth).
    f.reset_target();
    let (code, out, err) =
        update_in_netns_with(&f, &f.p("good.swu"), "1.1", "", &web, &client("good.pw"));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(f.target() == f.image, "not installed: {out}\n{err}");

    // A wrong password: exit 7 before any upload, the target untouched.
    let before = f.reset_target();
    let (code, out, err) =
        update_in_netns_with(&f, &f.p("good.swu"), "1.1", "", &web, &client("bad.pw"));
    assert_eq!(code, Some(7), "{out}\n{err}");
    assert!(
        out.contains("auth-refused") && out.contains("wrong user or password"),
        "{out}"
    );
    assert_eq!(f.target(), before);

    // No credentials for a server that wants them: exit 7, saying what to give.
    let (code, out, err) = update_in_netns_with(&f, &f.p("good.swu"), "1.1", "", &web, "");
    assert_eq!(code, Some(7), "{out}\n{err}");
    assert!(out.contains("--http-user"), "{out}");
    assert_eq!(f.target(), before);
}

/// Fleet mode against several real SWUpdate web servers on 127.0.0.1 (HOST:PORT), in one
/// private network namespace: two install the package, one refuses it (another hardware
/// revision), and one port has nothing listening. `--jobs 2`; one row per robot, in the
/// order given, and the worst exit code overall.
#[test]
fn update_pushes_to_a_fleet_with_one_row_per_robot() {
    let f = Fixture::new();
    f.pack_ok("good.swu", &[]);
    let bin = need("swupdate");
    need("unshare");
    let _one = SWUPDATE.lock().unwrap_or_else(|e| e.into_inner());
    // Each SWUpdate writes the same target file (the slot file is shared): the two that
    // install write the same bytes, so the end state is still checkable.
    f.reset_target();
    let tmp = tempfile::tempdir_in(f.dir.path()).unwrap();
    let mut servers = String::new();
    for (port, rev) in [(18081, "1.1"), (18082, "2.0"), (18083, "1.1")] {
        servers += &format!(
            r#"mkdir -p {t}/{port}/www
TMPDIR={t}/{port} {bin} -l 5 -k {cert} -H zbot:{rev} -w "-p {port} -r {t}/{port}/www" >{t}/{port}.log 2>&1 &
i=0; while ! (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.1; i=$((i+1)); [ $i -gt 100 ] && exit 91; done
"#,
            t = tmp.path().display(),
            bin = bin.display(),
            cert = f.p("cert.pem").display(),
        );
    }
    let run_fleet = |extra: &str| {
        let script = format!(
            "set -u\nip link set lo up || exit 90\n{servers}{BIN} update 127.0.0.1:18081 127.0.0.1:18082 127.0.0.1:18089 127.0.0.1:18083 {swu} --no-wait --timeout 60 --jobs 2 {extra}\necho \"client-exit=$?\"\nkill -9 $(jobs -p) 2>/dev/null\n",
            swu = f.p("good.swu").display(),
        );
        let o = run(
            Command::new("unshare").args(["-n", "bash", "-c", &script]),
            Duration::from_secs(180),
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let code: Option<i32> = out
            .lines()
            .find_map(|l| l.strip_prefix("client-exit="))
            .and_then(|c| c.trim().parse().ok());
        (code, out, String::from_utf8_lossy(&o.stderr).into_owned())
    };

    let (code, out, err) = run_fleet("--json");
    // The worst (largest) exit code: 5, the unreachable robot.
    assert_eq!(code, Some(5), "{out}\n{err}");
    let json = out.lines().next().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let rows = v
        .as_array()
        .expect("--json with several robots is an array");
    let got: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["exit"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("127.0.0.1:18081", "installed", 0),
            ("127.0.0.1:18082", "refused", 3),
            ("127.0.0.1:18089", "unreachable", 5),
            ("127.0.0.1:18083", "installed", 0),
        ],
        "{out}\n{err}"
    );
    assert!(
        rows[1]["detail"]
            .as_str()
            .unwrap()
            .contains("SW not compatible with hardware"),
        "{out}"
    );
    // Stage timings for the robots that got as far.
    assert!(rows[0]["stages"]["upload"].as_f64().is_some(), "{out}");
    assert!(rows[0]["stages"]["install"].as_f64().is_some(), "{out}");
    assert!(rows[2]["stages"]["upload"].is_null(), "{out}");
    // --json: nothing but errors on stderr (no progress).
    assert!(!err.contains("upload "), "progress with --json: {err}");
    assert!(f.target() == f.image, "the fleet's installs did not land");

    // The human form: a line and stages per robot, then the summary table.
    f.reset_target();
    let (code, out, err) = run_fleet("");
    assert_eq!(code, Some(5), "{out}\n{err}");
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("HOST"))
        .filter(|l| !l.starts_with("client-exit="))
        .collect();
    assert_eq!(table.len(), 6, "{out}");
    assert!(table[2].starts_with("127.0.0.1:18082  refused"), "{out}");
    assert!(
        table[5].starts_with("4 robots: 2 ok, 2 not; exit 5"),
        "{out}"
    );
    // Not a terminal: plain progress lines per robot on stderr.
    assert!(err.contains("127.0.0.1:18083: upload 100%"), "{err}");
}
