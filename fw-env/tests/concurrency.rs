//! 8 processes setting different variables 20 times each, all at once: the shared lock
//! serialises every read-modify-write, so no update is lost.

mod common;
use common::*;
use fw_env::codec::Layout;

fn hammer(case: &Case, cfg: &str) {
    let children: Vec<_> = (0..8)
        .map(|p| {
            let cfg = cfg.to_owned();
            let bin = case.bin("fw-env");
            let lock = case.path("lock");
            std::thread::spawn(move || {
                for i in 0..20 {
                    let o = std::process::Command::new(&bin)
                        .env("FW_ENV_LOCK_FILE", &lock)
                        .args(["-c", &cfg, "set", &format!("p{p}_{i}"), &i.to_string()])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                }
            })
        })
        .collect();
    for c in children {
        c.join().unwrap();
    }
    let store = fw_env::Store::from_config_file(cfg)
        .unwrap()
        .with_lock_file(None);
    let snap = store.read().unwrap();
    for p in 0..8 {
        for i in 0..20 {
            assert_eq!(
                snap.vars.get(&format!("p{p}_{i}")).as_deref(),
                Some(i.to_string().as_str()),
                "p{p}_{i} lost"
            );
        }
    }
}

#[test]
fn eight_writers_lose_nothing_on_an_env_file() {
    let case = Case::new();
    let env = case.path("uboot.env");
    std::fs::write(&env, image(&[("next_boot", "otafs")], Layout::Single, 0)).unwrap();
    let cfg = case.config(&format!("{} 0 0x4000\n", env.display()));
    hammer(&case, cfg.to_str().unwrap());
}

#[test]
fn eight_writers_lose_nothing_on_redundant_copies_in_place() {
    let case = Case::new();
    let img = case.path("disk.img");
    let mut bytes = vec![0u8; 2 << 20];
    bytes[0x100000..0x104000].copy_from_slice(&image(
        &[("next_boot", "otafs")],
        Layout::Redundant,
        1,
    ));
    std::fs::write(&img, bytes).unwrap();
    let cfg = case.config(&format!(
        "{0} 0x100000 0x4000\n{0} 0x104000 0x4000\n",
        img.display()
    ));
    hammer(&case, cfg.to_str().unwrap());
}
