//! The card is described once: every file derived from a layout (bootcount's slot files, the
//! QEMU machine's fw_env.config and fstab, the U-Boot env fragments of the test builds) agrees
//! with `partctl emit` of its layout, and the QEMU machine's layout is the board's card with
//! other sizes, contents and device names. Fast: no U-Boot, no QEMU.

use bootcount::{Role, SlotConfig};
use partctl::emit::{emit, EmitKind};
use partctl::layout::{Content, Layout};
use zbot_tests::repo_root;

fn layout(rel: &str) -> Layout {
    Layout::load(&repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The committed slot file (bootcount's built-in one) is `partctl emit slots` of the board's
/// layout, byte for byte. (The QEMU machine's is generated, never committed.)
#[test]
fn committed_slot_file_is_emitted_from_the_board_layout() {
    let (file, lay) = (
        "bootcount/dist/slots.toml",
        "partctl/layouts/zbot-duos.toml",
    );
    assert_eq!(
        read(file),
        emit(&layout(lay), EmitKind::Slots),
        "{file} is stale: regenerate it with `partctl emit slots {lay} > {file}`"
    );
}

/// What bootcount and the boot script read (SlotConfig) names the layout's partitions: the
/// engine's slots are the card's.
#[test]
fn slot_config_names_the_layout_partitions() {
    for lay in [
        "partctl/layouts/zbot-duos.toml",
        "partctl/layouts/zbot-duos-small.toml",
        "qemu/machine/layout.toml",
    ] {
        let l = layout(lay);
        let cfg = SlotConfig::from_toml(&emit(&l, EmitKind::Slots), lay)
            .unwrap_or_else(|e| panic!("{lay}: emitted slots do not load: {e}"));
        cfg.validate().unwrap();
        for s in &cfg.slots {
            let (i, p) = l
                .partitions
                .iter()
                .enumerate()
                .find(|(_, p)| p.name == s.name)
                .unwrap_or_else(|| panic!("{lay}: slot {} is no partition", s.name));
            let dev = l.linux_partition(i as u32 + 1);
            assert_eq!(s.device, dev, "{lay}: slot {}", s.name);
            assert_eq!(s.root, format!("root={dev} rootwait rw"), "{lay}");
            let want = match p.slot.as_ref().unwrap().role {
                partctl::layout::SlotRole::Primary => Role::Primary,
                partctl::layout::SlotRole::Recovery => Role::Recovery,
            };
            assert_eq!(s.role, want, "{lay}: slot {}", s.name);
        }
    }
    // The built-in slot file of bootcount (and of uboot-scripts) is the board's card.
    assert_eq!(
        SlotConfig::builtin(),
        SlotConfig::from_toml(
            &emit(&layout("partctl/layouts/zbot-duos.toml"), EmitKind::Slots),
            "board"
        )
        .unwrap()
    );
}

/// The QEMU machine's card is the board's small card with other sizes, contents and device
/// names: same partitions, GUIDs, boot slots, env location and MBR mirror.
#[test]
fn qemu_layout_is_the_board_card_on_another_device() {
    let small = layout("partctl/layouts/zbot-duos-small.toml");
    let q = layout("qemu/machine/layout.toml");
    assert_eq!(q.disk.guid, small.disk.guid);
    assert_eq!(
        (q.disk.align, q.disk.entries),
        (small.disk.align, small.disk.entries)
    );
    assert_eq!(q.disk.linux_device, "/dev/vda");
    assert_eq!(
        zbot_tests::machine_slots(),
        SlotConfig::from_toml(&emit(&q, EmitKind::Slots), "qemu").unwrap()
    );
    assert_eq!(q.slots, small.slots);
    assert_eq!(q.partitions.len(), small.partitions.len());
    for (a, b) in q.partitions.iter().zip(&small.partitions) {
        assert_eq!(
            (
                &a.name,
                a.kind,
                a.uuid,
                &a.mbr,
                &a.slot,
                a.growable,
                &a.attributes
            ),
            (
                &b.name,
                b.kind,
                b.uuid,
                &b.mbr,
                &b.slot,
                b.growable,
                &b.attributes
            ),
        );
        if let (
            Content::Env {
                backend,
                file,
                size,
                mount,
                ..
            },
            Content::Env {
                backend: b2,
                file: f2,
                size: s2,
                mount: m2,
                ..
            },
        ) = (&a.content, &b.content)
        {
            assert_eq!((backend, file, size, mount), (b2, f2, s2, m2), "env");
            assert_eq!(a.size, b.size, "the env partition keeps the board's size");
        }
    }
}

/// fw_env.config and the card lines of the machine's fstab agree with the layout.
#[test]
fn machine_fw_env_config_and_fstab_agree_with_the_layout() {
    let l = layout("qemu/machine/layout.toml");
    let data = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .filter(|x| !x.trim_start().starts_with('#') && !x.trim().is_empty())
            .map(|x| x.split_whitespace().map(String::from).collect())
            .collect()
    };
    assert_eq!(
        data(&read("qemu/machine/rootfs/etc/fw_env.config")),
        data(&emit(&l, EmitKind::FwEnvConfig))
    );
    let emitted = data(&emit(&l, EmitKind::Fstab));
    for line in data(&read("qemu/machine/rootfs/etc/fstab"))
        .into_iter()
        .filter(|f| f[0].starts_with("/dev/"))
    {
        assert!(
            emitted.iter().any(|e| e[..3] == line[..3]),
            "fstab line {line:?} (device, mount point, type) is not in the layout's {emitted:?}"
        );
    }
}

/// The env lines of the U-Boot config fragments the test builds use are the layout's, on the
/// interface each build reads the disk with (sandbox: `host`).
#[test]
fn uboot_env_fragments_agree_with_the_layout() {
    let env_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|x| {
                x.starts_with("CONFIG_ENV_IS_IN_EXT4")
                    || x.starts_with("CONFIG_ENV_EXT4_")
                    || x.starts_with("CONFIG_ENV_SIZE")
                    || x.contains("EXT4_WRITE")
            })
            .map(String::from)
            .collect()
    };
    for (cfg, iface) in [
        ("qemu/configs/qemu-x86-env-ext4.config", "virtio"),
        ("qemu/configs/qemu-riscv64-env-ext4.config", "virtio"),
        ("qemu/configs/sandbox-env-ext4.config", "host"),
    ] {
        let mut l = layout("qemu/machine/layout.toml");
        l.disk.uboot_interface = iface.into();
        assert_eq!(
            env_lines(&read(cfg)),
            env_lines(&emit(&l, EmitKind::UbootFragment)),
            "{cfg} disagrees with `partctl emit uboot-fragment qemu/machine/layout.toml`"
        );
    }
}

/// The raw redundant env build the backend measurement runs (qemu-x86-mmc) has the env lines of
/// the raw test card's layout: offsets, size, device.
#[test]
fn mmc_redund_fragment_agrees_with_the_raw_test_card() {
    let env_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|x| {
                x.starts_with("CONFIG_ENV_IS_IN_MMC")
                    || x.starts_with("CONFIG_SYS_REDUNDAND_ENVIRONMENT")
                    || x.starts_with("CONFIG_SYS_MMC_ENV_DEV")
                    || x.starts_with("CONFIG_ENV_OFFSET")
                    || x.starts_with("CONFIG_ENV_SIZE")
            })
            .map(String::from)
            .collect()
    };
    let l = Layout::from_toml(zbot_tests::TEST_CARD_RAW_LAYOUT).unwrap();
    let emitted = env_lines(&emit(&l, EmitKind::UbootFragment));
    assert_eq!(emitted.len(), 6, "{emitted:?}");
    assert_eq!(
        env_lines(&read("qemu/configs/qemu-x86-env-mmc-redund.config")),
        emitted,
        "qemu/configs/qemu-x86-env-mmc-redund.config disagrees with `partctl emit uboot-fragment tests/src/test-card-raw.toml`"
    );
    // The recommended layout keeps the field's env size and the board's partitions.
    let board = layout("partctl/layouts/zbot-duos.toml");
    let redund = layout("partctl/layouts/zbot-duos-redund.toml");
    let size = |l: &Layout| match &l.env_partition().unwrap().1.content {
        Content::Env { size, .. } => size.0,
        _ => unreachable!(),
    };
    assert_eq!(size(&board), size(&redund));
    assert_eq!(size(&board), zbot_tests::ENV_SIZE as u64);
    let starts = |l: &Layout| l.place().iter().map(|p| p.first).collect::<Vec<_>>();
    assert_eq!(starts(&board), starts(&redund), "no partition moves");
}

/// The test kit's card has the machine's env (location, size, filesystem) and its `ENV_SIZE`.
#[test]
fn test_card_env_is_the_machine_env() {
    let t = Layout::from_toml(zbot_tests::TEST_CARD_LAYOUT).unwrap();
    let q = layout("qemu/machine/layout.toml");
    let (n, te) = t.env_partition().unwrap();
    let (m, qe) = q.env_partition().unwrap();
    assert_eq!((n, te.size), (m, qe.size));
    let Content::Env {
        backend,
        file,
        size,
        ..
    } = &te.content
    else {
        unreachable!()
    };
    let Content::Env {
        backend: b,
        file: f,
        size: s,
        ..
    } = &qe.content
    else {
        unreachable!()
    };
    assert_eq!((backend, file, size), (b, f, s));
    assert_eq!(size.0, zbot_tests::ENV_SIZE as u64);
}
