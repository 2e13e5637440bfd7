//! Shared by the migration's tests: run the binary on a mounted field card, and the checks of
//! "boots recovery or better" and of the end state.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use zbot_migrate_env::fault;
use zbot_tests::migration::{CardState, FieldCard, FipState};

pub const BIN: &str = env!("CARGO_BIN_EXE_zbot-migrate-env");

pub fn migrate(card: &FieldCard, crash: Option<&str>, extra: &[&str]) -> Output {
    let m = card.mount().unwrap();
    let mut c = command(card, crash, extra);
    let out = c.output().unwrap();
    m.unmount().unwrap();
    out
}

/// Run the migration and SIGKILL it after `delay` (if still running); whether it finished.
pub fn migrate_killed(card: &FieldCard, delay: std::time::Duration) -> bool {
    let m = card.mount().unwrap();
    let mut child = command(card, None, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let st = child.wait().unwrap();
    m.unmount().unwrap();
    st.success()
}

fn command(card: &FieldCard, crash: Option<&str>, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--card")
        .arg(&card.img)
        .arg("--boot-dir")
        .arg(&card.boot_dir)
        .arg("--old-env")
        .arg(card.bootenv_dir.join("uboot.env"))
        .arg("--fip")
        .arg(&card.new_fip)
        .arg("--layout")
        .arg(&card.new_layout)
        .arg("--config")
        .arg(&card.config)
        .arg("--config-device")
        .arg(&card.img)
        .arg("--env-file")
        .arg(&card.env_file)
        .arg("--lock-file")
        .arg(card.dir.join("fw_env.lock"))
        .args(extra);
    match crash {
        Some(p) => c.env(fault::CRASH_VAR, p),
        None => c.env_remove(fault::CRASH_VAR),
    };
    c
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// "Boots recovery or better": a fip.bin that is one of the two U-Boots, whole; a sound primary
/// GPT with p2 256K or 1M; a clean env ext4; and the env that U-Boot loads valid and holding
/// the robot's state: the field env for the vendor U-Boot, the field env plus the policy for
/// the new one. Returns which U-Boot boots.
pub fn assert_boots(card: &FieldCard, st: &CardState, what: &str) -> FipState {
    assert!(
        matches!(st.fip, FipState::Old | FipState::New),
        "{what}: fip.bin is {:?}",
        st.fip
    );
    assert!(st.primary_gpt_sound, "{what}: primary GPT not sound");
    assert!(
        matches!(st.env_partition_sectors, Some(512) | Some(2048)),
        "{what}: env partition {:?} sectors",
        st.env_partition_sectors
    );
    assert_eq!(st.ext4_fsck, None, "{what}: the env ext4 is not clean");
    let env = st
        .loaded_env()
        .unwrap_or_else(|| panic!("{what}: the {:?} U-Boot finds no valid env", st.fip));
    let want = match st.fip {
        FipState::Old => card.field_vars(),
        _ => card.wanted_vars(),
    };
    assert_eq!(env, want, "{what}: the env U-Boot loads");
    // The vendor script boots otafs or rootfs from next_boot (anything else: otafs); the
    // policy keeps next_boot: either way a slot that exists.
    assert!(matches!(
        env.get("next_boot").map(String::as_str),
        Some("rootfs") | Some("otafs")
    ));
    // The field env is never written by the migration.
    assert_eq!(st.old_env.as_ref(), Some(&card.field_vars()), "{what}");
    st.fip
}

/// The end state of a migrated card: everything new, both copies valid and equal.
pub fn assert_migrated(card: &FieldCard, what: &str) -> CardState {
    let st = card.state().unwrap();
    assert_eq!(assert_boots(card, &st, what), FipState::New, "{what}");
    assert_eq!(st.env_partition_sectors, Some(2048), "{what}");
    for (i, c) in st.raw.iter().enumerate() {
        let (flags, vars) = c.as_ref().unwrap_or_else(|| panic!("{what}: copy {i} bad"));
        assert_eq!(*flags, if i == 0 { 1 } else { 0 }, "{what}: copy {i} flags");
        assert_eq!(*vars, card.wanted_vars(), "{what}: copy {i}");
    }
    assert_eq!(
        std::fs::read_to_string(&card.config).unwrap(),
        card.new_config_text(),
        "{what}: fw_env.config"
    );
    st
}

pub fn fresh(template: &FieldCard, dir: &Path) -> FieldCard {
    template.copy_to(dir).unwrap()
}
