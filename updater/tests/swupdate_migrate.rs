//! Migration packages (`pack --migrate-fip --migrate-layout`) installed by the real SWUpdate
//! (Debian 12's 2022.12, the board's version) on the host: the package's files put the new
//! U-Boot and the target layout into the stage, its shellscript runs `zbot-migrate-env` on a
//! field card made by the migration's test kit (zbot_tests::migration, loop-mounted as the
//! robot mounts it: run as root), and the card ends migrated, checked by the kit and by
//! libubootenv's fw_printenv through the emitted config; a card the migration refuses makes
//! SWUpdate fail the install with the migration's message. The script's parameters come from
//! the env file the board would carry (ZBOT_MIGRATE_ENV_CONF, default
//! /etc/zbot/migrate-env.conf). The push client reports a refusal with the migration's reason.
//! Needs swupdate, openssl, libubootenv-tool, mtools, e2fsprogs (without them these tests
//! FAIL saying so, never pass silently) and the zbot-migrate-env binary in the same target
//! directory (built by `cargo test --workspace`; else the test runs `cargo build -p
//! zbot-migrate-env` itself).

#![cfg(feature = "pack")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zbot_tests::migration::{FieldCard, FipState};
use zbot_tests::{run_ok, Peer};

const BIN: &str = env!("CARGO_BIN_EXE_zbot-updater");
/// One SWUpdate at a time, and the stage (/tmp/zbot-migrate-env, fixed by the package) is
/// shared.
static SWUPDATE: Mutex<()> = Mutex::new(());

mod common;
use common::{need, run};

/// zbot-migrate-env from the same target directory as this test (target/debug/).
fn migrate_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("zbot-migrate-env");
    static BUILT: Mutex<()> = Mutex::new(());
    let _one = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !p.is_file() {
        // `cargo test --workspace` builds it; `cargo test -p zbot-updater` does not: build it
        // into the same target directory (cargo's lock is free while tests run).
        let profile = p.parent().unwrap();
        let target = profile.parent().unwrap();
        let release = profile.file_name().is_some_and(|n| n == "release");
        let o = run(
            Command::new(env!("CARGO"))
                .args(["build", "-p", "zbot-migrate-env"])
                .args(if release { &["--release"][..] } else { &[][..] })
                .env("CARGO_TARGET_DIR", target)
                .current_dir(env!("CARGO_MANIFEST_DIR")),
            Duration::from_secs(900),
        );
        assert!(
            o.status.success() && p.is_file(),
            "{} missing and `cargo build -p zbot-migrate-env` failed: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    p
}

struct Kit {
    dir: tempfile::TempDir,
}

impl Kit {
    fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            Command::new(need("openssl"))
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", "/CN=zbot-test", "-days", "2"])
                .arg("-keyout")
                .arg(dir.path().join("key.pem"))
                .arg("-out")
                .arg(dir.path().join("cert.pem")),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "openssl: {o:?}");
        std::fs::write(
            dir.path().join("rootfs.ext4"),
            b"a stand-in rootfs\n".repeat(5000),
        )
        .unwrap();
        Kit { dir }
    }
    fn p(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    /// A slot file whose primary slot is a plain file.
    fn slots(&self) -> PathBuf {
        let s = format!(
            "bootlimit = 3\n[[slot]]\nname = \"rootfs\"\nrole = \"primary\"\nroot = \"root=/dev/vda4 rootwait rw\"\ndevice = \"{}\"\n[[slot]]\nname = \"otafs\"\nrole = \"recovery\"\nroot = \"root=/dev/vda3 rootwait rw\"\ndevice = \"/nonexistent/otafs\"\n",
            self.p("slot-rootfs.img").display()
        );
        std::fs::write(self.p("slots.toml"), s).unwrap();
        std::fs::write(self.p("slot-rootfs.img"), [0xA5u8; 4096]).unwrap();
        self.p("slots.toml")
    }
    /// `pack --migrate-fip --migrate-layout` with the card's new U-Boot and target layout.
    fn pack(&self, card: &FieldCard, out: &str) -> PathBuf {
        let swu = self.p(out);
        let o = run(
            Command::new(BIN)
                .arg("pack")
                .arg(self.p("rootfs.ext4"))
                .args(["--version", "2.0", "--hardware", "1.0"])
                .args(["--slot-size", "8M", "--slots"])
                .arg(self.slots())
                .arg("--key")
                .arg(self.p("key.pem"))
                .arg("--cert")
                .arg(self.p("cert.pem"))
                .arg("--migrate-fip")
                .arg(&card.new_fip)
                .arg("--migrate-layout")
                .arg(&card.new_layout)
                .arg("--migrate-env-file")
                .arg(&card.env_file)
                .arg("-o")
                .arg(&swu),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "pack: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("with the env migration"),
            "{o:?}"
        );
        swu
    }
    /// The board's env file for the script, pointing the migration at the test card.
    fn conf(&self, card: &FieldCard) -> PathBuf {
        let conf = self.p("migrate-env.conf");
        let args = format!(
            "--card {} --boot-dir {} --old-env {}/uboot.env --config {} --config-device {} --lock-file {}/fw_env.lock",
            card.img.display(),
            card.boot_dir.display(),
            card.bootenv_dir.display(),
            card.config.display(),
            card.img.display(),
            card.dir.display()
        );
        std::fs::write(
            &conf,
            format!(
                "ZBOT_MIGRATE_ENV={}\nZBOT_MIGRATE_ENV_ARGS=\"{args}\"\n",
                migrate_bin().display()
            ),
        )
        .unwrap();
        conf
    }
    /// `swupdate -i` of the package with the card mounted as the robot mounts it.
    fn install(&self, swu: &Path, card: &FieldCard) -> (bool, String) {
        let conf = self.conf(card);
        let _one = SWUPDATE.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir_in(self.dir.path()).unwrap();
        let m = card.mount().unwrap();
        let o = run(
            Command::new(need("swupdate"))
                .env("TMPDIR", tmp.path())
                .env("ZBOT_MIGRATE_ENV_CONF", &conf)
                .args(["-l", "5", "-i"])
                .arg(swu)
                .arg("-k")
                .arg(self.p("cert.pem"))
                .args(["-H", "zbot:1.0"]),
            Duration::from_secs(120),
        );
        m.unmount().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), log)
    }
}

#[test]
fn swupdate_installs_a_migration_package_and_the_field_card_is_migrated() {
    let t0 = Instant::now();
    let kit = Kit::new();
    let cdir = tempfile::tempdir().unwrap();
    let card = FieldCard::create(cdir.path()).unwrap();
    assert_eq!(card.state().unwrap().fip, FipState::Old);
    let swu = kit.pack(&card, "migrate.swu");

    // inspect shows the members and the sw-description's files and script.
    let o = run(
        Command::new(BIN)
            .arg("inspect")
            .arg(&swu)
            .arg("--cert")
            .arg(kit.p("cert.pem")),
        Duration::from_secs(60),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "inspect: {o:?}");
    for want in [
        "zbot-migrate-env.sh",
        "layout.toml",
        "fip.bin",
        "rootfs.ext4.gz",
        "type = \"shellscript\";",
        "path = \"/tmp/zbot-migrate-env/fip.bin\";",
        "path = \"/tmp/zbot-migrate-env/layout.toml\";",
        "path = \"/tmp/zbot-migrate-env/policy.env\";",
        "ok: every hash matches",
    ] {
        assert!(s.contains(want), "inspect lacks {want:?}:\n{s}");
    }

    let (ok, log) = kit.install(&swu, &card);
    assert!(ok, "swupdate failed:\n{log}");
    assert!(log.contains("zbot-migrate-env.sh: migrated"), "{log}");
    // The policy came from the package's policy.env, not from the board's env file.
    assert!(
        log.contains("--env-file /tmp/zbot-migrate-env/policy.env"),
        "{log}"
    );

    // The kit's checks: the new U-Boot, both raw copies valid with the field env and the
    // policy, flags 1/0, the env partition grown to 2048 sectors, fw_env.config switched.
    let st = card.state().unwrap();
    assert_eq!(st.fip, FipState::New);
    assert_eq!(st.env_partition_sectors, Some(2048));
    assert!(st.primary_gpt_sound);
    for (i, c) in st.raw.iter().enumerate() {
        let (flags, vars) = c.as_ref().unwrap_or_else(|| panic!("copy {i} bad\n{log}"));
        assert_eq!(*flags, if i == 0 { 1 } else { 0 }, "copy {i} flags");
        assert_eq!(*vars, card.wanted_vars(), "copy {i}");
    }
    assert_eq!(
        std::fs::read_to_string(&card.config).unwrap(),
        card.new_config_text()
    );
    // libubootenv (SWUpdate's own env library) reads the migrated env through the config.
    let out = run_ok(
        Peer::LibubootenvPrintenv
            .command()
            .env("FW_ENV_LOCK_FILE", card.dir.join("fw_env.lock"))
            .arg("-c")
            .arg(&card.config),
    );
    let got = zbot_tests::migration::text_vars(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(got, card.wanted_vars());
    let out = run_ok(Peer::Sgdisk.command().arg("-v").arg(&card.img));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No problems found"),
        "{out:?}"
    );
    // The rootfs image went to its slot as in every package.
    let slot = std::fs::read(kit.p("slot-rootfs.img")).unwrap();
    assert_eq!(slot, std::fs::read(kit.p("rootfs.ext4")).unwrap());

    // Installing the same package again: the migration sees a migrated card, nothing to do.
    let tables = card.table_bytes().unwrap();
    let (ok, log) = kit.install(&swu, &card);
    assert!(ok, "second install failed:\n{log}");
    assert!(log.contains("state: migrated"), "{log}");
    assert_eq!(card.table_bytes().unwrap(), tables);
    eprintln!("migration package installed twice in {:?}", t0.elapsed());
}

#[test]
fn swupdate_fails_the_install_when_the_migration_refuses_the_card() {
    let kit = Kit::new();
    let cdir = tempfile::tempdir().unwrap();
    let card = FieldCard::create(cdir.path()).unwrap();
    let swu = kit.pack(&card, "migrate.swu");
    // A config that is neither the field's nor the new one: the migration refuses (exit 2).
    std::fs::write(&card.config, "/dev/mtd0 0x0 0x4000 0x1000\n").unwrap();
    let (ok, log) = kit.install(&swu, &card);
    assert!(!ok, "swupdate accepted a refused migration:\n{log}");
    // The migration's stderr is an ERROR line of SWUpdate's (what its websocket reports).
    assert!(
        log.lines().any(|l| l.contains("[ERROR]")
            && l.contains("zbot-migrate-env: error:")
            && l.contains("neither the field's fw_env.config")),
        "the migration's reason is not an error in SWUpdate's output:\n{log}"
    );
    assert!(log.contains("Installation failed"), "{log}");
    assert!(log.contains("refused this card (exit 2)"), "{log}");
    let st = card.state().unwrap();
    assert_eq!(st.fip, FipState::Old, "nothing written");
    assert!(st.raw.iter().all(Option::is_none));
    assert_eq!(st.env_partition_sectors, Some(512));
}

/// The push client against SWUpdate's web server (`unshare -n`, loopback only): a refused
/// migration ends the update as refused, with the migration's reason taken from SWUpdate's
/// websocket.
#[test]
fn update_reports_the_migrations_refusal_as_swupdates_reason() {
    need("unshare");
    let kit = Kit::new();
    let cdir = tempfile::tempdir().unwrap();
    let card = FieldCard::create(cdir.path()).unwrap();
    let swu = kit.pack(&card, "migrate.swu");
    std::fs::write(&card.config, "/dev/mtd0 0x0 0x4000 0x1000\n").unwrap();
    let conf = kit.conf(&card);
    let _one = SWUPDATE.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir_in(kit.dir.path()).unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let script = format!(
        r#"set -u
ip link set lo up || exit 90
TMPDIR={tmp} {bin} -l 5 -k {cert} -H zbot:1.0 -w "-p 18081 -r {www}" >{tmp}/swupdate.log 2>&1 &
sw=$!
i=0
while ! (exec 3<>/dev/tcp/127.0.0.1/18081) 2>/dev/null; do
    sleep 0.1; i=$((i+1)); [ $i -gt 100 ] && {{ echo "swupdate did not listen" >&2; exit 91; }}
done
{client} update 127.0.0.1 {swu} --port 18081 --no-wait --timeout 60 --json
echo "client-exit=$?"
kill -9 $sw 2>/dev/null
"#,
        tmp = tmp.path().display(),
        bin = need("swupdate").display(),
        cert = kit.p("cert.pem").display(),
        www = www.display(),
        client = BIN,
        swu = swu.display(),
    );
    let m = card.mount().unwrap();
    let o = run(
        Command::new("unshare")
            .args(["-n", "bash", "-c", &script])
            .env("ZBOT_MIGRATE_ENV_CONF", &conf),
        Duration::from_secs(120),
    );
    m.unmount().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let log = std::fs::read_to_string(tmp.path().join("swupdate.log")).unwrap_or_default();
    let all = format!(
        "{out}\n{}\n--- swupdate log\n{log}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("client-exit=3"), "{all}");
    assert!(out.contains("\"outcome\":\"refused\""), "{all}");
    assert!(
        out.contains("neither the field's fw_env.config"),
        "the migration's reason is not the client's: {all}"
    );
    let st = card.state().unwrap();
    assert_eq!(st.fip, FipState::Old, "nothing written");
    assert_eq!(st.env_partition_sectors, Some(512));
}
