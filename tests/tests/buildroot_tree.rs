//! The BR2_EXTERNAL tree `buildroot/`, checked without Buildroot (issue 15, part 3): its
//! layout is Buildroot's (external.desc, external.mk, Config.in, one package per directory
//! with `<pkg>.mk` and `Config.in`); every path its Config.in and .mk files name exists;
//! every ZBot symbol used is defined, and every other one is a Buildroot symbol of both
//! 2021.05 and 2022.02 (checked against Buildroot's tree when this test was written: the list
//! below); every prebuilt binary a package installs is one `cargo xtask dist` makes; every
//! cargo SUBDIR is a workspace crate; the board scripts are executable and parse (`bash -n`).
//! Running the board scripts: scripts/test-buildroot.sh. Buildroot's own utils/check-package:
//! buildroot/README.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    zbot_tests::repo_root()
}

fn tree() -> PathBuf {
    root().join("buildroot")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every Buildroot symbol the tree uses, present in Buildroot 2021.05 and 2022.02.
const BUILDROOT_SYMBOLS: &[&str] = &[
    "BR2_riscv",
    "BR2_ARCH_IS_64",
    "BR2_INIT_BUSYBOX",
    "BR2_INIT_SYSV",
    "BR2_PACKAGE_LIBUBOOTENV",
    "BR2_PACKAGE_UBOOT_TOOLS_FWPRINTENV",
    "BR2_PACKAGE_SWUPDATE",
    "BR2_PACKAGE_E2FSPROGS",
    "BR2_PACKAGE_HOST_RUSTC",
    "BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS",
    "BR2_ENABLE_DEBUG",
];

fn packages() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree().join("package"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn config_files() -> Vec<PathBuf> {
    let mut v = vec![tree().join("Config.in")];
    v.extend(
        packages()
            .iter()
            .map(|p| tree().join("package").join(p).join("Config.in")),
    );
    v
}

fn mk_files() -> Vec<PathBuf> {
    let mut v = vec![tree().join("external.mk"), tree().join("zbot.mk")];
    v.extend(
        packages()
            .iter()
            .map(|p| tree().join("package").join(p).join(format!("{p}.mk"))),
    );
    v
}

/// `$(NAME)/rest` and `$NAME/rest` occurrences: (NAME, rest up to a quote/space/paren).
fn paths_after(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for pat in [format!("$({name})/"), format!("${name}/")] {
        let mut s = text;
        while let Some(i) = s.find(&pat) {
            let rest = &s[i + pat.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == ')' || c == '\\')
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            s = &rest[end..];
        }
    }
    out
}

#[test]
fn the_tree_has_buildroots_layout() {
    let desc = read(&tree().join("external.desc"));
    assert!(desc.lines().any(|l| l == "name: ZBOT"), "{desc}");
    let top = read(&tree().join("Config.in"));
    let ext_mk = read(&tree().join("external.mk"));
    assert!(ext_mk.contains("include $(sort $(wildcard $(BR2_EXTERNAL_ZBOT_PATH)/package/*/*.mk))"));
    let pkgs = packages();
    assert_eq!(
        pkgs,
        [
            "zbot-bootcount",
            "zbot-fw-env",
            "zbot-partctl",
            "zbot-updater"
        ],
        "one package per program the robot runs"
    );
    for p in &pkgs {
        let dir = tree().join("package").join(p);
        let cfg = read(&dir.join("Config.in"));
        let mk = read(&dir.join(format!("{p}.mk")));
        let upper = p.to_uppercase().replace('-', "_");
        assert!(
            cfg.contains(&format!("config BR2_PACKAGE_{upper}\n")),
            "{p}/Config.in defines BR2_PACKAGE_{upper}"
        );
        assert!(
            top.contains(&format!(
                "source \"$BR2_EXTERNAL_ZBOT_PATH/package/{p}/Config.in\""
            )),
            "Config.in sources {p}"
        );
        // Both variants: generic-package with the prebuilt binaries, cargo-package from source.
        for want in [
            format!("{upper}_SITE = $(ZBOT_PREBUILT_DIR)"),
            format!("{upper}_SITE_METHOD = local"),
            "$(eval $(generic-package))".to_string(),
            format!("{upper}_SITE = $(ZBOT_SOURCE_SITE)"),
            "$(eval $(cargo-package))".to_string(),
            "ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)".to_string(),
            format!("{upper}_LICENSE ="),
        ] {
            assert!(mk.contains(&want), "{p}.mk: {want}");
        }
        assert!(
            mk.starts_with(&format!(
                "################################################################################\n#\n# {p}\n#\n"
            )),
            "{p}.mk header"
        );
    }
}

#[test]
fn every_path_the_tree_names_exists() {
    let mut checked = 0;
    for f in config_files().iter().chain(mk_files().iter()) {
        let text = read(f);
        for rel in paths_after(&text, "BR2_EXTERNAL_ZBOT_PATH") {
            if rel.contains('*') {
                continue; // the wildcard include of external.mk
            }
            let p = tree().join(&rel);
            if rel == format!("../{}", xtask::dist::DEFAULT_OUT) {
                // Made by `cargo xtask dist`: its default output.
                checked += 1;
                continue;
            }
            assert!(
                p.exists(),
                "{}: {} does not exist",
                f.display(),
                p.display()
            );
            checked += 1;
        }
        for rel in paths_after(&text, "ZBOT_REPO") {
            let p = root().join(&rel);
            assert!(
                p.exists(),
                "{}: {} does not exist",
                f.display(),
                p.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} paths found: the parser is broken"
    );
    // The board scripts: executable, and bash can parse them.
    for s in ["post-build.sh", "post-image.sh", "host-tools.sh"] {
        let p = tree().join("board/zbot-duos").join(s);
        let mode = std::fs::metadata(&p).unwrap().permissions();
        assert!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0,
            "{s} executable"
        );
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The paths the board scripts derive from in the workspace.
    for rel in ["partctl/layouts/zbot-duos.toml", "Cargo.toml"] {
        assert!(root().join(rel).exists(), "{rel}");
    }
}

#[test]
fn every_symbol_is_defined_and_every_binary_is_built() {
    let mut defined = BTreeSet::new();
    for f in config_files() {
        for l in read(&f).lines() {
            if let Some(s) = l
                .strip_prefix("config ")
                .or_else(|| l.strip_prefix("menuconfig "))
            {
                defined.insert(s.trim().to_string());
            }
        }
    }
    let mut used = BTreeSet::new();
    let scripts =
        ["post-build.sh", "post-image.sh"].map(|s| tree().join("board/zbot-duos").join(s));
    for f in config_files()
        .iter()
        .chain(mk_files().iter())
        .chain(&scripts)
    {
        let text = read(f);
        let b = text.as_bytes();
        let mut i = 0;
        while let Some(j) = text[i..].find("BR2_") {
            let s = i + j;
            let mut e = s;
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                e += 1;
            }
            let sym = &text[s..e];
            if !sym.starts_with("BR2_EXTERNAL_")
                && !matches!(
                    sym,
                    "BR2_CONFIG"
                        | "BR2_ROOTFS_POST_SCRIPT_ARGS"
                        | "BR2_ROOTFS_POST_BUILD_SCRIPT"
                        | "BR2_ROOTFS_POST_IMAGE_SCRIPT"
                )
            {
                used.insert(sym.to_string());
            }
            i = e;
        }
    }
    for s in &used {
        assert!(
            defined.contains(s) || BUILDROOT_SYMBOLS.contains(&s.as_str()),
            "{s} is used but neither defined in buildroot/ nor a known Buildroot symbol"
        );
    }
    for s in defined.iter().filter(|s| s.starts_with("BR2_PACKAGE_ZBOT")) {
        assert!(
            used.contains(s) || s == "BR2_PACKAGE_ZBOT_PREBUILT",
            "{s} defined, never used"
        );
    }
    // Prebuilt binaries: each `$(@D)/NAME` a package installs is built by `cargo xtask dist`.
    let built = xtask::dist::BINARIES;
    let mut installed = 0;
    for p in packages() {
        let mk = read(&tree().join("package").join(&p).join(format!("{p}.mk")));
        for name in paths_after(&mk, "@D") {
            assert!(
                built.contains(&name.as_str()),
                "{p}.mk installs {name}, not built"
            );
            installed += 1;
        }
        // cargo-package's SUBDIR is a workspace crate.
        let sub = mk
            .lines()
            .find_map(|l| {
                l.split_once("_SUBDIR = ")
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{p}.mk has no SUBDIR"));
        assert!(root().join(&sub).join("Cargo.toml").exists(), "{p}: {sub}");
    }
    assert_eq!(installed, 4);
}
