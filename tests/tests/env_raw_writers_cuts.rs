//! The Linux writers on the raw redundant layout (docs/env-backend.md) under power cuts at every
//! block: libubootenv's `fw_setenv` (SWUpdate's writer) and U-Boot's `tools/env` `fw_setenv`,
//! each writing `gen` through the `fw_env.config` partctl emits for `tests/src/test-card-raw.toml`.
//! The writer's writes to the card are recorded (strace: `lseek`/`write`/`pwrite64` with their
//! data) and replayed sector by sector, in order; after every prefix the env read by libubootenv
//! and by fw-env must be the old or the new one, and the same for both. fw-env's own writer has
//! its crash-point enumeration in `fw-env/tests/power_loss.rs`.

use std::path::Path;
use std::process::Stdio;
use zbot_tests::cuts::{cut_image, replay_prefixes, traced_writes};
use zbot_tests::{run_ok, DiskImage, Peer};

fn read_both(cfg: &Path) -> (Option<String>, Option<String>) {
    let o = Peer::LibubootenvPrintenv
        .command()
        .arg("-c")
        .arg(cfg)
        .arg("gen")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let lib = String::from_utf8_lossy(&o.stdout)
        .trim()
        .strip_prefix("gen=")
        .map(tag);
    let store = fw_env::OpenOptions {
        config: cfg.to_path_buf(),
        lock_file: cfg.with_file_name("lock"),
        ..Default::default()
    }
    .open()
    .unwrap();
    let ours = store
        .read()
        .ok()
        .filter(|s| s.is_valid())
        .and_then(|s| s.vars.get("gen").map(|v| tag(&v)));
    (lib, ours)
}

/// `old`/`new` for the two long values, the value itself otherwise.
fn tag(v: &str) -> String {
    match v.split_once('-') {
        Some(("old", r)) if r.len() == 40_000 && r.bytes().all(|b| b == b'o') => "old".into(),
        Some(("new", r)) if r.len() == 40_000 && r.bytes().all(|b| b == b'n') => "new".into(),
        _ => format!("other({} bytes)", v.len()),
    }
}

#[test]
fn linux_writers_on_the_raw_layout_leave_old_or_new_at_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = partctl::layout::Layout::from_toml(zbot_tests::TEST_CARD_RAW_LAYOUT).unwrap();
    // Long values, so that old and new differ over about 80 sectors: a torn copy is a torn copy.
    let long = |tag: &str, c: &str| format!("{tag}-{}", c.repeat(40_000));
    std::fs::write(
        dir.path().join("env.txt"),
        format!("bootdelay=0\ngen={}\n", long("old", "o")),
    )
    .unwrap();
    if let partctl::layout::Content::Env { text, .. } = &mut l.partitions[1].content {
        *text = Some("env.txt".into());
    }
    let disk = DiskImage::create_from(dir.path().join("pristine.img"), &l).unwrap();
    let card = dir.path().join("card.img");
    let cfg = dir.path().join("fw_env.config");
    std::fs::write(
        &cfg,
        partctl::emit::emit(&l, partctl::emit::EmitKind::FwEnvConfig)
            .replace(&l.disk.linux_device, card.to_str().unwrap()),
    )
    .unwrap();
    let mut report = Vec::new();
    for peer in [Peer::LibubootenvSetenv, Peer::UbootSetenv] {
        // Start from a card whose copy 1 is the active one for half the runs' sake: both.
        for first_write in [false, true] {
            std::fs::copy(disk.path(), &card).unwrap();
            if first_write {
                // One write first, so the next goes to the other copy.
                run_ok(
                    peer.command()
                        .arg("-c")
                        .arg(&cfg)
                        .arg("gen")
                        .arg(long("old", "o")),
                );
            }
            let pristine = std::fs::read(&card).unwrap();
            assert_eq!(read_both(&cfg), (Some("old".into()), Some("old".into())));
            let mut cmd = peer.command();
            cmd.env("FW_ENV_LOCK_FILE", dir.path().join("lock"))
                .arg("-c")
                .arg(&cfg)
                .arg("gen")
                .arg(long("new", "n"));
            let writes = traced_writes(&cmd, &card);
            let after = std::fs::read(&card).unwrap();
            let total: usize = writes.iter().map(|w| w.1.len()).sum();
            assert!(total > 0 && total % 512 == 0, "{peer:?}: {total} bytes");
            let sectors = total / 512;
            assert_eq!(
                cut_image(&pristine, &writes, sectors),
                after,
                "{peer:?}: replay"
            );
            let [mut old, mut new] = [0usize; 2];
            let points: Vec<usize> = (0..=sectors).collect();
            replay_prefixes(&pristine, &writes, &points, &card, |k| {
                match read_both(&cfg) {
                    (Some(a), Some(b)) if a == b && a == "old" => old += 1,
                    (Some(a), Some(b)) if a == b && a == "new" => new += 1,
                    other => panic!("{peer:?}: cut after {k} of {sectors} sectors: read {other:?}"),
                }
            });
            report.push(format!(
                "  {:28} {} write(s), {total} bytes; {} cut points: old {old}, new {new}, lost 0",
                peer.describe(),
                writes.len(),
                sectors + 1
            ));
        }
    }
    eprintln!(
        "Linux writers on the raw redundant layout:\n{}",
        report.join("\n")
    );
}
