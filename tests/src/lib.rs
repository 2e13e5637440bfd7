//! Helpers for tests against real peers: U-Boot (sandbox and qemu-riscv64), U-Boot's own
//! `tools/env/fw_printenv`, libubootenv's `fw_printenv`/`fw_setenv`, `mkenvimage`,
//! e2fsprogs and QEMU. Cards are made with the partctl library.
//!
//! A missing peer is never skipped silently: [`Peer::path`] returns an error (and
//! [`Peer::require`] panics with it) naming the peer, where it was looked for and the script
//! that installs or builds it (`scripts/setup-debian.sh` for Debian packages,
//! `qemu/build-uboot.sh` for the U-Boot builds).
//!
//! U-Boot builds are found through the variables `ZBOT_UBOOT_SANDBOX`,
//! `ZBOT_UBOOT_SANDBOX_REDUND`, `ZBOT_UBOOT_QEMU_RISCV` and `ZBOT_UBOOT_FW_PRINTENV`, or, when unset, in the file
//! `${ZBOT_CACHE:-$HOME/.cache/zbot}/uboot/paths.env` that `qemu/build-uboot.sh` writes.
//!
//! ```no_run
//! use zbot_tests::{DiskImage, Sandbox};
//! let dir = tempfile::tempdir().unwrap();
//! let disk = DiskImage::create(dir.path().join("disk.img")).unwrap();
//! let run = Sandbox::new(&disk).run("setenv next_boot rootfs; saveenv").unwrap();
//! assert!(run.success(), "{}", run.output);
//! let env = disk.read_file("/uboot.env").unwrap().expect("saveenv wrote /uboot.env");
//! assert_eq!(env.len(), 0x30000);
//! ```
#![deny(missing_docs)]

pub mod bootloop;
pub mod cuts;
pub mod differential;
pub mod loops;
pub mod machine;
pub mod migration;
pub mod oracle;
pub mod target;

pub use oracle::parse_env_vars;

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The size of the board's environment (`CONFIG_ENV_SIZE=0x30000`, the layout's), also used by our U-Boot
/// builds.
pub const ENV_SIZE: usize = 0x30000;

/// Script that installs the Debian packages (run as root).
pub const SETUP_SCRIPT: &str = "scripts/setup-debian.sh";
/// Script that builds the U-Boot peers into the cache.
pub const BUILD_SCRIPT: &str = "qemu/build-uboot.sh";

/// A number from the environment variable `name` (test knobs such as `ZBOT_CUTS`), else
/// `default` (also when it does not parse).
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The root of the repository (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The QEMU machine's slots: `partctl emit slots qemu/machine/layout.toml` (what make-image.sh
/// installs as `/etc/bootcount/slots.toml` and the boot script is generated from).
pub fn machine_slots() -> bootcount::SlotConfig {
    let path = repo_root().join("qemu/machine/layout.toml");
    let l = partctl::layout::Layout::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = partctl::emit::emit(&l, partctl::emit::EmitKind::Slots);
    bootcount::SlotConfig::from_toml(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The cache directory of the U-Boot builds: `${ZBOT_CACHE:-$HOME/.cache/zbot}`.
pub fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("ZBOT_CACHE").filter(|c| !c.is_empty()) {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/zbot")
}

/// A real program the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// libubootenv's `fw_printenv` (Debian `libubootenv-tool`). Override: `ZBOT_LIBUBOOTENV_FW_PRINTENV`.
    LibubootenvPrintenv,
    /// libubootenv's `fw_setenv`. Override: `ZBOT_LIBUBOOTENV_FW_SETENV`.
    LibubootenvSetenv,
    /// U-Boot's own `tools/env/fw_printenv`, built by `qemu/build-uboot.sh tools`.
    UbootPrintenv,
    /// U-Boot's `fw_setenv`: the symlink to `tools/env/fw_printenv` the build script makes.
    UbootSetenv,
    /// `mkenvimage` (Debian `u-boot-tools`).
    Mkenvimage,
    /// The sandbox U-Boot with the ext4 env on `host 0:2`, `qemu/build-uboot.sh sandbox`.
    Sandbox,
    /// The sandbox U-Boot with a redundant env in FAT files `uboot.env` and
    /// `uboot-redund.env` on `host 0:1`, `qemu/build-uboot.sh sandbox-redund`.
    SandboxRedund,
    /// `u-boot.bin` for `qemu-system-riscv64 -M virt` (ext4 env on `virtio 0:2`),
    /// `qemu/build-uboot.sh qemu-riscv64`.
    QemuRiscvUboot,
    /// `u-boot.rom` for `qemu-system-x86_64 -bios` with the redundant raw env on an SD card
    /// behind `sdhci-pci` (the backend measurement), `qemu/build-uboot.sh qemu-x86-mmc`.
    QemuX86MmcUboot,
    /// The env migration's stand-in for the vendor U-Boot: the field's ext4 env on `mmc 0:2`
    /// of an SD card behind `sdhci-pci`, `qemu/build-uboot.sh qemu-x86-mmc-field`.
    QemuX86MmcFieldUboot,
    /// The env migration's new U-Boot: the raw redundant env at the migration test card's
    /// offsets, `qemu/build-uboot.sh qemu-x86-mmc-migrated`.
    QemuX86MmcMigratedUboot,
    /// `qemu-system-riscv64` (Debian `qemu-system-misc` from bookworm-backports).
    QemuSystemRiscv64,
    /// OpenSBI's `fw_dynamic.bin` for `-bios` (Debian `opensbi`).
    Opensbi,
    /// `mkfs.ext4` (Debian `e2fsprogs`).
    MkfsExt4,
    /// `debugfs` (Debian `e2fsprogs`).
    Debugfs,
    /// `e2fsck` (Debian `e2fsprogs`).
    E2fsck,
    /// `mkfs.vfat` (Debian `dosfstools`).
    MkfsVfat,
    /// `mcopy` (Debian `mtools`).
    Mcopy,
    /// `mdir` (Debian `mtools`).
    Mdir,
    /// `fsck.vfat` (Debian `dosfstools`).
    FsckVfat,
    /// `mke2fs` (Debian `e2fsprogs`).
    Mke2fs,
    /// `dumpe2fs` (Debian `e2fsprogs`).
    Dumpe2fs,
    /// `sgdisk` (Debian `gdisk`).
    Sgdisk,
    /// `sfdisk` (Debian `fdisk`).
    Sfdisk,
    /// `parted` (Debian `parted`).
    Parted,
    /// `genimage` (Debian `genimage`).
    Genimage,
}

/// Where a peer comes from: with [`Peer::source`], the one table of the programs and files the
/// tests of every crate run against.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A program in `$PATH` or an sbin directory: `(name, Debian package)`.
    Program(&'static str, &'static str),
    /// A U-Boot build: `$VAR`, else its line in `paths.env`: `(VAR, build-uboot.sh target)`.
    Artefact(&'static str, &'static str),
    /// U-Boot's `tools/env` program `name`, next to `$ZBOT_UBOOT_FW_PRINTENV`'s build.
    UbootTool(&'static str),
    /// A file: `(VAR, default path, Debian package)`.
    File(&'static str, &'static str, &'static str),
    /// libubootenv's tool: `(VAR, name in /usr/bin)`; it must answer `-V`.
    Libubootenv(&'static str, &'static str),
}

/// Why a peer could not be found. Its `Display` says what to run.
#[derive(Debug, Clone)]
pub struct MissingPeer {
    /// The peer.
    pub peer: Peer,
    /// Where it was looked for.
    pub looked: Vec<String>,
    /// What to run to get it.
    pub fix: String,
}

impl fmt::Display for MissingPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "test peer {} not found (looked at: {}); {}",
            self.peer.describe(),
            self.looked.join(", "),
            self.fix
        )
    }
}

impl std::error::Error for MissingPeer {}

impl Peer {
    /// A human name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Peer::LibubootenvPrintenv => "libubootenv fw_printenv",
            Peer::LibubootenvSetenv => "libubootenv fw_setenv",
            Peer::UbootPrintenv => "U-Boot tools/env fw_printenv",
            Peer::UbootSetenv => "U-Boot tools/env fw_setenv",
            Peer::Mkenvimage => "mkenvimage",
            Peer::Sandbox => "sandbox U-Boot (ext4 env on host 0:2)",
            Peer::SandboxRedund => "sandbox U-Boot (redundant FAT env on host 0:1)",
            Peer::QemuRiscvUboot => "qemu-riscv64 U-Boot (ext4 env on virtio 0:2)",
            Peer::QemuX86MmcUboot => "qemu-x86 U-Boot (redundant raw env on SD, mmc 0)",
            Peer::QemuX86MmcFieldUboot => "qemu-x86 U-Boot (the field's ext4 env on SD, mmc 0:2)",
            Peer::QemuX86MmcMigratedUboot => {
                "qemu-x86 U-Boot (raw redundant env at the migration card's offsets)"
            }
            Peer::QemuSystemRiscv64 => "qemu-system-riscv64",
            Peer::Opensbi => "OpenSBI fw_dynamic.bin",
            Peer::MkfsExt4 => "mkfs.ext4",
            Peer::Debugfs => "debugfs",
            Peer::E2fsck => "e2fsck",
            Peer::MkfsVfat => "mkfs.vfat",
            Peer::Mcopy => "mcopy",
            Peer::Mdir => "mdir",
            Peer::FsckVfat => "fsck.vfat",
            Peer::Mke2fs => "mke2fs",
            Peer::Dumpe2fs => "dumpe2fs",
            Peer::Sgdisk => "sgdisk",
            Peer::Sfdisk => "sfdisk",
            Peer::Parted => "parted",
            Peer::Genimage => "genimage",
        }
    }

    fn source(self) -> Source {
        use Source::*;
        match self {
            Peer::LibubootenvPrintenv => Libubootenv("ZBOT_LIBUBOOTENV_FW_PRINTENV", "fw_printenv"),
            Peer::LibubootenvSetenv => Libubootenv("ZBOT_LIBUBOOTENV_FW_SETENV", "fw_setenv"),
            Peer::UbootPrintenv => UbootTool("fw_printenv"),
            Peer::UbootSetenv => UbootTool("fw_setenv"),
            Peer::Sandbox => Artefact("ZBOT_UBOOT_SANDBOX", "sandbox"),
            Peer::SandboxRedund => Artefact("ZBOT_UBOOT_SANDBOX_REDUND", "sandbox-redund"),
            Peer::QemuRiscvUboot => Artefact("ZBOT_UBOOT_QEMU_RISCV", "qemu-riscv64"),
            Peer::QemuX86MmcUboot => Artefact("ZBOT_UBOOT_QEMU_X86_MMC", "qemu-x86-mmc"),
            Peer::QemuX86MmcFieldUboot => {
                Artefact("ZBOT_UBOOT_QEMU_X86_MMC_FIELD", "qemu-x86-mmc-field")
            }
            Peer::QemuX86MmcMigratedUboot => {
                Artefact("ZBOT_UBOOT_QEMU_X86_MMC_MIGRATED", "qemu-x86-mmc-migrated")
            }
            Peer::Opensbi => File(
                "ZBOT_OPENSBI",
                "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin",
                "opensbi",
            ),
            Peer::Mkenvimage => Program("mkenvimage", "u-boot-tools"),
            Peer::QemuSystemRiscv64 => Program(
                "qemu-system-riscv64",
                "qemu-system-misc (from bookworm-backports)",
            ),
            Peer::MkfsExt4 => Program("mkfs.ext4", "e2fsprogs"),
            Peer::Mke2fs => Program("mke2fs", "e2fsprogs"),
            Peer::Debugfs => Program("debugfs", "e2fsprogs"),
            Peer::E2fsck => Program("e2fsck", "e2fsprogs"),
            Peer::Dumpe2fs => Program("dumpe2fs", "e2fsprogs"),
            Peer::MkfsVfat => Program("mkfs.vfat", "dosfstools"),
            Peer::FsckVfat => Program("fsck.vfat", "dosfstools"),
            Peer::Mcopy => Program("mcopy", "mtools"),
            Peer::Mdir => Program("mdir", "mtools"),
            Peer::Sgdisk => Program("sgdisk", "gdisk"),
            Peer::Sfdisk => Program("sfdisk", "fdisk"),
            Peer::Parted => Program("parted", "parted"),
            Peer::Genimage => Program("genimage", "genimage"),
        }
    }

    fn setup_fix(package: &str) -> String {
        format!(
            "install Debian package {package}: run `sudo {}/{SETUP_SCRIPT}`",
            repo_root().display()
        )
    }

    fn build_fix(target: &str) -> String {
        format!(
            "build it: run `{}/{BUILD_SCRIPT} {target}` (writes {}/uboot/paths.env)",
            repo_root().display(),
            cache_dir().display()
        )
    }

    /// Find the peer, or say how to get it.
    pub fn path(self) -> Result<PathBuf, MissingPeer> {
        let missing = |looked: Vec<String>, fix: String| MissingPeer {
            peer: self,
            looked,
            fix,
        };
        match self.source() {
            Source::Program(name, package) => find_program(name)
                .ok_or_else(|| missing(search_dirs_desc(), Self::setup_fix(package))),
            Source::File(var, default, package) => {
                let p = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()));
                if p.is_file() {
                    Ok(p)
                } else {
                    let looked = vec![format!("${var} or {}", p.display())];
                    Err(missing(looked, Self::setup_fix(package)))
                }
            }
            Source::Artefact(var, target) => match uboot_artefact(var) {
                (Some(p), _) if p.is_file() => Ok(p),
                (Some(p), _) => Err(missing(
                    vec![p.display().to_string()],
                    Self::build_fix(target),
                )),
                (None, looked) => Err(missing(looked, Self::build_fix(target))),
            },
            Source::UbootTool(name) => {
                let (p, looked) = uboot_artefact("ZBOT_UBOOT_FW_PRINTENV");
                let fix = Self::build_fix("tools");
                let p = p.ok_or_else(|| missing(looked, fix.clone()))?;
                // fw_setenv: the symlink to tools/env/fw_printenv the build script makes.
                let p = if name == "fw_printenv" {
                    p
                } else {
                    p.with_file_name(name)
                };
                if is_executable(&p) {
                    Ok(p)
                } else {
                    Err(missing(vec![p.display().to_string()], fix))
                }
            }
            Source::Libubootenv(var, name) => {
                let p = std::env::var_os(var)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new("/usr/bin").join(name));
                let looked = vec![format!("${var} or {}", p.display())];
                if !is_executable(&p) {
                    return Err(missing(looked, Self::setup_fix("libubootenv-tool")));
                }
                // U-Boot's tools/env fw_printenv would also be called fw_printenv; only
                // libubootenv knows `-V` (prints its version on stdout, exit 0).
                let v = Command::new(&p).arg("-V").stdin(Stdio::null()).output();
                match v {
                    Ok(o) if o.status.success() && !o.stdout.is_empty() => Ok(p),
                    _ => Err(missing(
                        vec![format!("{} (is not libubootenv: `-V` failed)", p.display())],
                        Self::setup_fix("libubootenv-tool"),
                    )),
                }
            }
        }
    }

    /// Find the peer or panic with the message saying how to get it. Tests use this: a
    /// missing peer fails the test, it does not skip it.
    pub fn require(self) -> PathBuf {
        match self.path() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// A `Command` for the peer (for programs; not for `Opensbi`/`QemuRiscvUboot`).
    pub fn command(self) -> Command {
        Command::new(self.require())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn search_dirs_desc() -> Vec<String> {
    vec![format!(
        "$PATH + sbin dirs ({})",
        search_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    )]
}

/// Find a program in `$PATH` and the usual sbin directories (debugfs and mkfs live in
/// `/usr/sbin`, which a non-root `$PATH` may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Look up a U-Boot build artefact: the environment variable, else `paths.env`.
fn uboot_artefact(var: &str) -> (Option<PathBuf>, Vec<String>) {
    let mut looked = vec![format!("${var}")];
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return (Some(PathBuf::from(v)), looked);
    }
    let paths = cache_dir().join("uboot/paths.env");
    looked.push(paths.display().to_string());
    let Ok(text) = std::fs::read_to_string(&paths) else {
        return (None, looked);
    };
    let found = text.lines().find_map(|l| {
        let v = l.strip_prefix(var)?.strip_prefix('=')?;
        Some(PathBuf::from(v.trim().trim_matches('\'')))
    });
    (found, looked)
}

/// Run a command, fail with its output if it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Errors of the image and U-Boot helpers.
#[derive(Debug)]
pub struct HelperError(pub String);

impl fmt::Display for HelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HelperError {}

impl From<MissingPeer> for HelperError {
    fn from(e: MissingPeer) -> Self {
        HelperError(e.to_string())
    }
}

impl From<std::io::Error> for HelperError {
    fn from(e: std::io::Error) -> Self {
        HelperError(e.to_string())
    }
}

/// Result of the helpers.
pub type Result<T, E = HelperError> = std::result::Result<T, E>;

pub(crate) fn check(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HelperError(format!("{what}: cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(HelperError(format!(
            "{what}: {cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// The card of the test kit: partctl's layout `tests/src/test-card.toml` (a 4 MiB GPT, an
/// empty 1 MiB ESP as p1, the board's 256 KiB env partition as p2 with an empty env
/// filesystem). Built only through the partctl library, like every card of the workspace.
pub const TEST_CARD_LAYOUT: &str = include_str!("test-card.toml");

/// The test kit's card with the recommended raw redundant env (`tests/src/test-card-raw.toml`,
/// docs/env-backend.md): an SD card for qemu-x86's sdhci-pci.
pub const TEST_CARD_RAW_LAYOUT: &str = include_str!("test-card-raw.toml");

/// The `bootcmd` of the qemu-x86-mmc build (`CONFIG_BOOTCOMMAND` of
/// `qemu/configs/qemu-x86-env-mmc-redund.config`): an env written for that U-Boot must carry it,
/// since a loaded env replaces the compiled-in one and without `bootcmd` U-Boot stops at its prompt.
pub fn mmc_redund_bootcmd() -> String {
    let p = repo_root().join("qemu/configs/qemu-x86-env-mmc-redund.config");
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    t.lines()
        .find_map(|l| l.strip_prefix("CONFIG_BOOTCOMMAND=\""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{}: no CONFIG_BOOTCOMMAND", p.display()))
        .to_string()
}

/// The geometry of the images [`DiskImage::create`] makes (512-byte sectors), as placed by
/// partctl from [`TEST_CARD_LAYOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Total image size in bytes.
    pub image_size: u64,
    /// Partition 1 (an empty stand-in for the FAT boot partition): first sector, sectors.
    pub p1: (u64, u64),
    /// Partition 2 (the env ext4): first sector, sectors.
    pub p2: (u64, u64),
}

impl Layout {
    /// The geometry partctl gives a card layout with at least two partitions.
    pub fn of(card: &partctl::layout::Layout) -> Layout {
        let placed = card.place();
        let span = |i: usize| (placed[i].first, placed[i].last + 1 - placed[i].first);
        Layout {
            image_size: card.image_sectors() * 512,
            p1: span(0),
            p2: span(1),
        }
    }
}

impl Default for Layout {
    /// 4 MiB image; p1 1 MiB at sector 2048 (type EF00); p2 256 KiB at sector 4096 (type
    /// 8300), the board's env partition size.
    fn default() -> Self {
        Layout::of(&test_card())
    }
}

fn test_card() -> partctl::layout::Layout {
    partctl::layout::Layout::from_toml(TEST_CARD_LAYOUT).expect("tests/src/test-card.toml is valid")
}

/// A disk image file with a GPT whose partition 2 is a small ext4 filesystem that U-Boot can
/// write, made by `partctl create` (the env filesystem's recipe is partctl's
/// `layout::ENV_EXT4_FEATURES`). Files in it are read and written with `debugfs` at the
/// partition's byte offset, without mounting.
#[derive(Debug, Clone)]
pub struct DiskImage {
    path: PathBuf,
    layout: Layout,
}

impl DiskImage {
    /// Create (or overwrite) `path` from [`TEST_CARD_LAYOUT`], with an empty ext4 on p2.
    pub fn create(path: impl Into<PathBuf>) -> Result<DiskImage> {
        Self::create_from(path, &test_card())
    }

    /// Create (or overwrite) `path` from a partctl layout whose partition 2 is the env.
    pub fn create_from(
        path: impl Into<PathBuf>,
        card: &partctl::layout::Layout,
    ) -> Result<DiskImage> {
        let path = path.into();
        let s = path.to_str().unwrap_or("");
        if s.is_empty() || s.contains(char::is_whitespace) || s.contains('?') {
            return Err(HelperError(format!(
                "disk image path {path:?} must be UTF-8 without blanks or '?' (debugfs and U-Boot's `host bind` split on them)"
            )));
        }
        if card.env_partition().map(|(n, _)| n) != Some(2) {
            return Err(HelperError(
                "the test card's env must be partition 2".into(),
            ));
        }
        Peer::MkfsExt4.path()?; // a clear error when e2fsprogs is missing
        let input = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        partctl::create::create(card, &input, &path, None)
            .map_err(|e| HelperError(format!("partctl create {}: {e}", path.display())))?;
        // Absolute, since U-Boot runs in the image's directory (see `Sandbox::run`).
        let path = path.canonicalize()?;
        Ok(DiskImage {
            path,
            layout: Layout::of(card),
        })
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Byte offset of partition 2.
    pub fn p2_offset(&self) -> u64 {
        self.layout.p2.0 * 512
    }

    /// Byte length of partition 2.
    pub fn p2_len(&self) -> u64 {
        self.layout.p2.1 * 512
    }

    fn debugfs_target(&self) -> String {
        format!("{}?offset={}", self.path.display(), self.p2_offset())
    }

    /// Run one debugfs request on partition 2. debugfs exits 0 even when a request fails,
    /// so any stderr line other than its version banner is an error.
    fn debugfs(&self, write: bool, request: &str) -> Result<String> {
        let mut cmd = Command::new(Peer::Debugfs.path()?);
        if write {
            cmd.arg("-w");
        }
        cmd.arg("-R").arg(request).arg(self.debugfs_target());
        let out = check(&mut cmd, "debugfs")?;
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
            .collect();
        if errors.is_empty() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(HelperError(format!(
                "debugfs {request:?} on {}: {}",
                self.debugfs_target(),
                errors.join("; ")
            )))
        }
    }

    /// Put `data` into the ext4 on p2 as `name` (e.g. `/uboot.env`), replacing any old file.
    pub fn write_file(&self, name: &str, data: &[u8]) -> Result<()> {
        check_fs_name(name)?;
        let tmp = tempfile::NamedTempFile::new()?;
        std::fs::write(tmp.path(), data)?;
        let src = tmp.path().to_str().expect("temp path is UTF-8");
        check_fs_name(src)?;
        if self.read_file(name)?.is_some() {
            self.debugfs(true, &format!("rm {name}"))?;
        }
        self.debugfs(true, &format!("write {src} {name}"))?;
        match self.read_file(name)? {
            Some(back) if back == data => Ok(()),
            _ => Err(HelperError(format!(
                "debugfs write of {name} into {} did not read back identically",
                self.debugfs_target()
            ))),
        }
    }

    /// Get file `name` from the ext4 on p2; `None` if it does not exist.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_fs_name(name)?;
        let dir = tempfile::tempdir()?;
        let dst = dir.path().join("dump");
        let dst_s = dst.to_str().expect("temp path is UTF-8");
        check_fs_name(dst_s)?;
        match self.debugfs(false, &format!("dump {name} {dst_s}")) {
            Ok(_) => Ok(Some(std::fs::read(&dst)?)),
            Err(e) if e.0.contains("File not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove file `name` from the ext4 on p2 (no error if absent).
    pub fn remove_file(&self, name: &str) -> Result<()> {
        if self.read_file(name)?.is_some() {
            self.debugfs(true, &format!("rm {name}"))?;
        }
        Ok(())
    }

    /// The raw bytes of partition 2.
    pub fn p2_bytes(&self) -> Result<Vec<u8>> {
        let mut f = std::fs::File::open(&self.path)?;
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(self.p2_offset()))?;
        let mut buf = vec![0; self.p2_len() as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Byte offset of partition 1.
    pub fn p1_offset(&self) -> u64 {
        self.layout.p1.0 * 512
    }

    /// Format partition 1 as FAT (for the redundant-env sandbox, whose copies are the files
    /// `uboot.env` and `uboot-redund.env` there).
    pub fn mkfs_p1_fat(&self) -> Result<()> {
        check(
            Command::new(Peer::MkfsVfat.path()?)
                .arg("--offset")
                .arg(self.layout.p1.0.to_string())
                .args(["-n", "ZBOTBOOT"])
                .arg(&self.path)
                .arg((self.layout.p1.1 / 2).to_string()),
            "mkfs.vfat on partition 1 of the test image",
        )?;
        Ok(())
    }

    fn mtools_image(&self) -> String {
        format!("{}@@{}", self.path.display(), self.p1_offset())
    }

    /// Put `data` into the FAT on p1 as `name` (e.g. `uboot-redund.env`), replacing it.
    pub fn write_fat_file(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = tempfile::NamedTempFile::new()?;
        std::fs::write(tmp.path(), data)?;
        check(
            Command::new(Peer::Mcopy.path()?)
                .args(["-n", "-o", "-i"])
                .arg(self.mtools_image())
                .arg(tmp.path())
                .arg(format!("::{name}")),
            "mcopy into the FAT on partition 1",
        )?;
        Ok(())
    }

    /// Get file `name` from the FAT on p1; `None` if it does not exist.
    pub fn read_fat_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        read_fat_file(&self.path, self.p1_offset(), name)
    }

    /// `e2fsck -fn` on a copy of partition 2: `Ok(())` if clean, else the report.
    pub fn fsck_p2(&self) -> Result<()> {
        fsck_bytes(&self.p2_bytes()?, "partition 2")
    }
}

/// `e2fsck -fn` (forced, read-only) on a copy of a filesystem's bytes: `Ok(())` if sound, else
/// the report. `what` names it in the error.
pub fn fsck_bytes(fs: &[u8], what: &str) -> Result<()> {
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), fs)?;
    check(
        Command::new(Peer::E2fsck.path()?)
            .arg("-fn")
            .arg(tmp.path()),
        &format!("e2fsck of {what}"),
    )
    .map(|_| ())
}

fn check_fs_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('"') {
        return Err(HelperError(format!(
            "path {name:?} cannot be passed to debugfs (blanks or quotes)"
        )));
    }
    Ok(())
}

/// What a U-Boot run printed and how it ended.
#[derive(Debug, Clone)]
pub struct UbootRun {
    /// Exit status (sandbox: the status of the last command; QEMU: of the emulator).
    pub status: ExitStatus,
    /// stdout and stderr, in that order, with `\r` removed.
    pub output: String,
    /// True if the run was killed at the timeout.
    pub timed_out: bool,
}

/// The line [`Sandbox`] and [`QemuRiscv`] print before the caller's script, so that
/// [`UbootRun::script_output`] can cut off the banner.
pub const SCRIPT_MARKER: &str = "@@zbot-script@@";

impl UbootRun {
    /// True if U-Boot exited with status 0 and was not killed.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// The output after [`SCRIPT_MARKER`] (the whole output if the marker is missing).
    pub fn script_output(&self) -> &str {
        match self.output.find(SCRIPT_MARKER) {
            Some(i) => self.output[i + SCRIPT_MARKER.len()..].trim_start_matches('\n'),
            None => &self.output,
        }
    }

    /// The value of `name` as printed by `printenv name` in the script (first match).
    pub fn printed_var(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.script_output()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

/// Run `cmd` (stdin closed) until it exits, or kill it at `timeout` (`timed_out` set); its
/// stdout then stderr, `\r` removed. The kit's one bounded runner of U-Boot and QEMU.
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<UbootRun> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HelperError(format!("cannot start {cmd:?}: {e}")))?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut output = t_out.join().unwrap_or_default();
    output.extend(t_err.join().unwrap_or_default());
    let output = String::from_utf8_lossy(&output).replace('\r', "");
    Ok(UbootRun {
        status,
        output,
        timed_out,
    })
}

/// The sandbox U-Boot, run on a [`DiskImage`] bound as `host 0`.
///
/// The exact incantation (see docs/peers.md): `u-boot -c 'host bind 0 IMG; env select EXT4;
/// env load; SCRIPT'`. The sandbox board code puts the env location "nowhere" first and
/// loads the default environment at start-up (no host device is bound yet), so the ext4
/// backend must be selected and loaded explicitly; after that `saveenv` goes to
/// `/uboot.env` on `host 0:2`. No `-d`/`-T` is needed: `u-boot.dtb` next to the binary is
/// used. The exit status is that of the last command.
#[derive(Debug, Clone)]
pub struct Sandbox<'a> {
    disk: &'a DiskImage,
    load_env: bool,
    timeout: Duration,
    redundant: bool,
}

impl<'a> Sandbox<'a> {
    /// Sandbox bound to `disk`, loading the env from it before the script.
    pub fn new(disk: &'a DiskImage) -> Self {
        Sandbox {
            disk,
            load_env: true,
            timeout: Duration::from_secs(60),
            redundant: false,
        }
    }

    /// The redundant-env sandbox ([`Peer::SandboxRedund`]) bound to `disk`: env copies are
    /// the FAT files `uboot.env` (copy 0) and `uboot-redund.env` (copy 1) on partition 1
    /// (format it with [`DiskImage::mkfs_p1_fat`]); `env select FAT; env load` first.
    pub fn redundant(disk: &'a DiskImage) -> Self {
        Sandbox {
            redundant: true,
            ..Sandbox::new(disk)
        }
    }

    /// Whether to run `env select EXT4; env load` before the script (default true). Without
    /// it the script starts from the compiled-in default env and `saveenv` goes nowhere.
    pub fn load_env(mut self, yes: bool) -> Self {
        self.load_env = yes;
        self
    }

    /// Kill U-Boot after this long (default 60 s; a run normally takes 0.2 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The full `-c` argument for `script`.
    pub fn command_line(&self, script: &str) -> String {
        let mut c = format!("host bind 0 {}; ", self.disk.path().display());
        if self.load_env {
            c.push_str(if self.redundant {
                "env select FAT; env load; "
            } else {
                "env select EXT4; env load; "
            });
        }
        c.push_str(&format!("echo {SCRIPT_MARKER}; {script}"));
        c
    }

    /// Run the hush `script` (commands separated by `;` or newlines).
    pub fn run(&self, script: &str) -> Result<UbootRun> {
        let peer = if self.redundant {
            Peer::SandboxRedund
        } else {
            Peer::Sandbox
        };
        let mut cmd = Command::new(peer.path()?);
        cmd.arg("-c").arg(self.command_line(script));
        // The sandbox may create emulated-device backing files (e.g. mmc1.img with the test
        // device tree) in its working directory: keep them next to the image, not in the repo.
        if let Some(dir) = self.disk.path().parent() {
            cmd.current_dir(dir);
        }
        let r = run_with_timeout(&mut cmd, self.timeout)?;
        if r.timed_out {
            return Err(HelperError(format!(
                "sandbox U-Boot did not finish within {:?}: {}",
                self.timeout, r.output
            )));
        }
        Ok(r)
    }
}

/// `qemu-system-riscv64 -M virt` with OpenSBI and the ext4-env U-Boot, booting a
/// [`DiskImage`] as virtio block device 0. U-Boot loads `/uboot.env` from partition 2 at
/// start-up and runs `bootcmd` (after `bootdelay`); the env in the image decides what
/// happens, and a `poweroff` at its end stops QEMU (`-no-reboot` turns a `reset` into an
/// exit too).
#[derive(Debug, Clone)]
pub struct QemuRiscv<'a> {
    disk: &'a DiskImage,
    timeout: Duration,
    uboot: Option<PathBuf>,
}

impl<'a> QemuRiscv<'a> {
    /// QEMU on `disk`.
    pub fn new(disk: &'a DiskImage) -> Self {
        QemuRiscv {
            disk,
            timeout: Duration::from_secs(60),
            uboot: None,
        }
    }

    /// Boot this `u-boot.bin` instead of [`Peer::QemuRiscvUboot`] (e.g. the
    /// `qemu-riscv64-zbot` build with the generated default environment compiled in).
    pub fn uboot(mut self, path: impl Into<PathBuf>) -> Self {
        self.uboot = Some(path.into());
        self
    }

    /// Kill QEMU after this long (default 60 s; a boot to `poweroff` takes about 0.5 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The command line.
    pub fn command(&self) -> Result<Command> {
        let mut cmd = Command::new(Peer::QemuSystemRiscv64.path()?);
        cmd.args([
            "-M",
            "virt",
            "-m",
            "256M",
            "-nographic",
            "-no-reboot",
            "-bios",
        ])
        .arg(Peer::Opensbi.path()?)
        .arg("-kernel")
        .arg(match &self.uboot {
            Some(p) => p.clone(),
            None => Peer::QemuRiscvUboot.path()?,
        })
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=none,id=hd0",
            self.disk.path().display()
        ))
        .args(["-device", "virtio-blk-device,drive=hd0"]);
        Ok(cmd)
    }

    /// Boot and wait for QEMU to exit (or the timeout: then `timed_out` is set, not an error,
    /// since killing QEMU is what power-cut tests do).
    pub fn run(&self) -> Result<UbootRun> {
        run_with_timeout(&mut self.command()?, self.timeout)
    }
}

/// Make an env image from `name=value` lines with the real `mkenvimage` (`extra` e.g.
/// `["-r"]`, `["-p", "0"]`).
pub fn mkenvimage(text: &str, size: usize, extra: &[&str]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("env.bin");
    let mut child = Command::new(Peer::Mkenvimage.path()?)
        .args(extra)
        .arg("-s")
        .arg(format!("{size:#x}"))
        .arg("-o")
        .arg(&out)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())?;
    let o = child.wait_with_output()?;
    if !o.status.success() {
        return Err(HelperError(format!(
            "mkenvimage {extra:?} -s {size:#x} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    Ok(std::fs::read(out)?)
}

/// The directory of the committed golden env fixtures (`fw-env/tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("fw-env/tests/fixtures")
}

/// Write a `fw_env.config` for a single copy of `size` bytes at offset 0 of `file`.
pub fn fw_env_config(dir: &Path, file: &Path, size: usize) -> Result<PathBuf> {
    let cfg = dir.join("fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {size:#x}\n", file.display()))?;
    Ok(cfg)
}

/// File `name` from the FAT at byte `off` of `img` (mtools), `None` when absent.
pub fn read_fat_file(img: &Path, off: u64, name: &str) -> Result<Option<Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let dst = dir.path().join("out");
    let out = Command::new(Peer::Mcopy.path()?)
        .args(["-n", "-i"])
        .arg(format!("{}@@{off}", img.display()))
        .arg(format!("::{name}"))
        .arg(&dst)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        return Ok(Some(std::fs::read(&dst)?));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("not found") {
        Ok(None)
    } else {
        Err(HelperError(format!(
            "mcopy of {name} from {}: {err}",
            img.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test card keeps the geometry the sgdisk-made image had (and the docs state).
    #[test]
    fn test_card_geometry() {
        assert_eq!(
            Layout::default(),
            Layout {
                image_size: 4 << 20,
                p1: (2048, 2048),
                p2: (4096, 512),
            }
        );
    }

    #[test]
    fn missing_uboot_build_names_the_build_script() {
        let e = MissingPeer {
            peer: Peer::Sandbox,
            looked: vec!["$ZBOT_UBOOT_SANDBOX".into()],
            fix: Peer::build_fix("sandbox"),
        };
        let msg = e.to_string();
        assert!(msg.contains("sandbox U-Boot"), "{msg}");
        assert!(msg.contains("qemu/build-uboot.sh sandbox"), "{msg}");
    }

    #[test]
    fn missing_package_names_the_setup_script() {
        let msg = Peer::setup_fix("e2fsprogs");
        assert!(msg.contains("scripts/setup-debian.sh"), "{msg}");
        assert!(msg.contains("e2fsprogs"), "{msg}");
    }
}
