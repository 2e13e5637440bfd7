//! The env migration's test kit (docs/env-backend.md, "Migration"): a field card made by
//! `partctl create` from [`FIELD_CARD_LAYOUT`] (vendor env in the 256K ext4, a "vendor" fip.bin
//! on the FAT), the target layout, the card mounted as the robot mounts it (`/bootenv` by a
//! loop device: root only; `/boot` by a stand-in directory, see [`FieldCard::mount`]), and [`CardState`]: what each U-Boot would load
//! from the card, read with independent tools (mtools for the FAT, debugfs for the ext4, the
//! oracle for the raw copies, partctl's reader for the GPT).

use crate::oracle::{crc_ok, parse_env_vars};
use crate::read_fat_file;
use crate::{check as check_cmd, fsck_bytes, HelperError, Peer, Result, ENV_SIZE};
use partctl::layout::Layout;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The field-like test card (`tests/src/field-card.toml`).
pub const FIELD_CARD_LAYOUT: &str = include_str!("field-card.toml");

/// The field env: the vendor's variables (BOARD.md's defaults, the seed's boot command) and a
/// robot's state (`next_boot`, `first_boot`, the `root` its last boot chose, SWUpdate's
/// `ustate`, a serial). `sdboot` is the seed's boot command (first_boot, the slot from
/// next_boot, `saveenv` on every boot) with its last part, `fatload` + `bootm` of boot.sd, replaced
/// by a line naming the chosen root and a reset: the test card carries no kernel.
pub const FIELD_ENV_TEXT: &str = "\
baudrate=115200
bootcmd=run sdboot
consoledev=ttyS0
first_boot=1
netdev=eth0
next_boot=rootfs
otafs=root=/dev/mmcblk0p3 rootwait rw
root=root=/dev/mmcblk0p4 rootwait rw
rootfs=root=/dev/mmcblk0p4 rootwait rw
sdboot=if test -z \"${first_boot}\"; then setenv first_boot 1; saveenv; fi; if test \"${next_boot}\" = otafs; then setenv root ${otafs}; elif test \"${next_boot}\" = rootfs; then setenv root ${rootfs}; else setenv root ${otafs}; fi; saveenv; echo @@vendor-boot ${root}; printenv zbot_serial next_boot; reset
ustate=1
zbot_serial=ZB-0042
";

/// The new policy's variables set on top of the field env (`--env-file`): the migrated env's
/// `bootcmd` runs `zbot_boot`, a stand-in for the generated boot script that names the slot
/// and resets.
pub const POLICY_ENV_TEXT: &str = "\
bootcmd=run zbot_boot
bootlimit=3
zbot_boot=echo @@policy next_boot=${next_boot}; printenv zbot_serial next_boot bootlimit; reset
";

/// The first bytes of the vendor's fip.bin stand-in (a boot-ROM model tells them apart).
pub const OLD_FIP_MARKER: &[u8] = b"ZBOT-TEST-FIP vendor-uboot-2021.10 ext4-env\n";
/// The first bytes of the new fip.bin stand-in.
pub const NEW_FIP_MARKER: &[u8] = b"ZBOT-TEST-FIP zbot-uboot raw-redundant-env\n";

/// A fip.bin stand-in of 300 KiB starting with `marker` (large enough that its write spans many
/// FAT clusters).
pub fn fip_image(marker: &[u8]) -> Vec<u8> {
    let mut v = marker.to_vec();
    let mut x: u32 = marker.len() as u32;
    while v.len() < 300 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v
}

/// The target layout's text: the field card with p2 grown to 1M and the raw copies.
pub fn target_layout_text() -> String {
    let t = FIELD_CARD_LAYOUT
        .replace("size = \"256K\"", "size = \"1M\"")
        .replace(
            "kind = \"env\", backend = \"ext4\"",
            "kind = \"env\", backend = \"raw\", offsets = [0x40000, 0x70000]",
        );
    assert_ne!(t, FIELD_CARD_LAYOUT);
    t
}

/// A field card on disk with everything the migration needs around it.
#[derive(Debug)]
pub struct FieldCard {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The card image.
    pub img: PathBuf,
    /// The field layout.
    pub old: Layout,
    /// The target layout.
    pub new: Layout,
    /// The target layout file.
    pub new_layout: PathBuf,
    /// The new fip.bin file.
    pub new_fip: PathBuf,
    /// The policy overrides file.
    pub env_file: PathBuf,
    /// The robot's `/etc/fw_env.config` (the field's, pointing at `bootenv/uboot.env`).
    pub config: PathBuf,
    /// Where p1 is mounted during a run.
    pub boot_dir: PathBuf,
    /// Where p2's ext4 is mounted during a run.
    pub bootenv_dir: PathBuf,
}

impl FieldCard {
    /// Make a field card in `dir` (which must be UTF-8 without blanks).
    pub fn create(dir: &Path) -> Result<FieldCard> {
        let dir = dir.canonicalize()?;
        std::fs::write(dir.join("field-env.txt"), FIELD_ENV_TEXT)?;
        std::fs::write(dir.join("fip.bin"), fip_image(OLD_FIP_MARKER))?;
        std::fs::write(dir.join("boot.sd"), b"FIT stand-in\n")?;
        std::fs::write(dir.join("new-fip.bin"), fip_image(NEW_FIP_MARKER))?;
        std::fs::write(dir.join("policy.env"), POLICY_ENV_TEXT)?;
        let new_text = target_layout_text();
        std::fs::write(dir.join("target.toml"), &new_text)?;
        let old = Layout::from_toml(FIELD_CARD_LAYOUT)
            .map_err(|e| HelperError(format!("field-card.toml: {e}")))?;
        let new =
            Layout::from_toml(&new_text).map_err(|e| HelperError(format!("target layout: {e}")))?;
        let img = dir.join("card.img");
        partctl::create::create(&old, &dir, &img, None)
            .map_err(|e| HelperError(format!("partctl create {}: {e}", img.display())))?;
        let boot_dir = dir.join("boot");
        let bootenv_dir = dir.join("bootenv");
        std::fs::create_dir_all(&boot_dir)?;
        std::fs::create_dir_all(&bootenv_dir)?;
        std::fs::copy(dir.join("fip.bin"), boot_dir.join("fip.bin"))?;
        let config = dir.join("fw_env.config");
        std::fs::write(
            &config,
            format!("{}/uboot.env 0x0000 {ENV_SIZE:#x}\n", bootenv_dir.display()),
        )?;
        Ok(FieldCard {
            new_fip: dir.join("new-fip.bin"),
            env_file: dir.join("policy.env"),
            new_layout: dir.join("target.toml"),
            dir,
            img,
            old,
            new,
            config,
            boot_dir,
            bootenv_dir,
        })
    }

    /// A copy of this card (image and config) in `dir`, sharing nothing.
    pub fn copy_to(&self, dir: &Path) -> Result<FieldCard> {
        let dir = dir.canonicalize()?;
        check_cmd(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&self.img)
                .arg(dir.join("card.img")),
            "cp of the card image",
        )?;
        for f in ["new-fip.bin", "policy.env", "target.toml"] {
            std::fs::copy(self.dir.join(f), dir.join(f))?;
        }
        let boot_dir = dir.join("boot");
        let bootenv_dir = dir.join("bootenv");
        std::fs::create_dir_all(&boot_dir)?;
        std::fs::create_dir_all(&bootenv_dir)?;
        std::fs::copy(self.boot_dir.join("fip.bin"), boot_dir.join("fip.bin"))?;
        let config = dir.join("fw_env.config");
        std::fs::write(
            &config,
            format!("{}/uboot.env 0x0000 {ENV_SIZE:#x}\n", bootenv_dir.display()),
        )?;
        Ok(FieldCard {
            img: dir.join("card.img"),
            new_fip: dir.join("new-fip.bin"),
            env_file: dir.join("policy.env"),
            new_layout: dir.join("target.toml"),
            dir,
            old: self.old.clone(),
            new: self.new.clone(),
            config,
            boot_dir,
            bootenv_dir,
        })
    }

    /// Byte offset and length of partition `n` (1-based) in the field layout.
    pub fn part(&self, n: usize) -> (u64, u64) {
        let p = &self.old.place()[n - 1];
        (p.first * 512, (p.last + 1 - p.first) * 512)
    }

    /// The raw copies' absolute offsets.
    pub fn copies(&self) -> [u64; 2] {
        partctl::emit::raw_copies(&self.new).expect("the target is raw")
    }

    /// The `fw_env.config` of the target, naming the image file.
    pub fn new_config_text(&self) -> String {
        partctl::emit::emit(&self.new, partctl::emit::EmitKind::FwEnvConfig).replace(
            &self.new.disk.linux_device,
            self.img.to_str().expect("UTF-8"),
        )
    }

    /// Mount p2's ext4 at `bootenv/` (loop, offset, sizelimit: the raw copies after the ext4
    /// stay outside the loop device). `boot/` stands in for the mounted FAT p1: this host's
    /// kernel has no vfat (and the FAT's own crash behaviour is the kernel's, not ours), so
    /// `boot/` is a plain directory holding the card's fip.bin, and [`Mounted::unmount`] copies
    /// the fip.bin found there into the card's FAT (mtools), which is what the kernel's vfat
    /// would have on the card: the old file until the rename, the new one after it.
    pub fn mount(&self) -> Result<Mounted> {
        let mut m = Mounted {
            dirs: Vec::new(),
            sync: None,
        };
        let (o2, l2) = self.part(2);
        check_cmd(
            Command::new("mount")
                .args(["-t", "ext4", "-o"])
                .arg(format!("loop,offset={o2},sizelimit={l2}"))
                .arg(&self.img)
                .arg(&self.bootenv_dir),
            "mounting the env ext4 of the test card",
        )?;
        m.dirs.push(self.bootenv_dir.clone());
        m.sync = Some((
            self.boot_dir.join("fip.bin"),
            self.img.clone(),
            self.part(1).0,
        ));
        Ok(m)
    }

    /// The field env as `partctl create` wrote it.
    pub fn field_vars(&self) -> BTreeMap<String, String> {
        text_vars(FIELD_ENV_TEXT)
    }

    /// The env the raw copies must hold: the field env with the policy on top.
    pub fn wanted_vars(&self) -> BTreeMap<String, String> {
        let mut v = self.field_vars();
        v.extend(text_vars(POLICY_ENV_TEXT));
        v
    }

    /// What is on the card now (not mounted).
    pub fn state(&self) -> Result<CardState> {
        let (o1, _) = self.part(1);
        let fip = read_fat_file(&self.img, o1, "fip.bin")?;
        let fip = match fip {
            None => FipState::Missing,
            Some(b) if b == fip_image(OLD_FIP_MARKER) => FipState::Old,
            Some(b) if b == fip_image(NEW_FIP_MARKER) => FipState::New,
            Some(b) => FipState::Torn(b.len()),
        };
        let (o2, _) = self.part(2);
        let ext4 = read_at(&self.img, o2, 256 * 1024)?;
        let fsck = fsck_bytes(&ext4, "the env ext4").err().map(|e| e.0);
        let file = read_ext4_file(&self.img, o2, "/uboot.env")?;
        let old_env = file
            .as_deref()
            .and_then(|b| (b.len() == ENV_SIZE).then(|| decode_single(b)).flatten());
        let mut raw = Vec::new();
        for off in self.copies() {
            let b = read_at(&self.img, off, ENV_SIZE)?;
            raw.push(decode_redundant(&b));
        }
        let mut f = std::fs::File::open(&self.img)?;
        let snap = partctl::disk::Snapshot::from_reader(&mut f)?;
        let primary_sound = partctl::check::copy_is_sound(&snap.primary, 1, snap.last_lba());
        let env_sectors = partctl::check::best_source(&snap).and_then(|(c, _)| {
            partctl::check::copy_entries(c)
                .iter()
                .find(|(n, _)| *n == 2)
                .map(|(_, e)| e.last_lba + 1 - e.first_lba)
        });
        Ok(CardState {
            fip,
            old_env,
            ext4_fsck: fsck,
            raw,
            primary_gpt_sound: primary_sound,
            env_partition_sectors: env_sectors,
        })
    }

    /// The sectors of both GPT copies and the MBR (for "same end state" comparisons).
    pub fn table_bytes(&self) -> Result<Vec<u8>> {
        let len = std::fs::metadata(&self.img)?.len();
        let mut v = read_at(&self.img, 0, 34 * 512)?;
        v.extend(read_at(&self.img, len - 33 * 512, 33 * 512)?);
        Ok(v)
    }
}

/// The loop mount of a [`FieldCard`]; unmounted (which flushes) on drop.
#[derive(Debug)]
pub struct Mounted {
    dirs: Vec<PathBuf>,
    /// `(boot/fip.bin, image, FAT offset)` to copy into the card's FAT at unmount.
    sync: Option<(PathBuf, PathBuf, u64)>,
}

impl Mounted {
    /// Unmount now and put `boot/fip.bin` into the card's FAT, reporting errors.
    pub fn unmount(mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            check_cmd(Command::new("umount").arg(d), "umount of the test card")?;
        }
        if let Some((fip, img, off)) = self.sync.take() {
            if fip.exists() {
                check_cmd(
                    Command::new(Peer::Mcopy.path()?)
                        .args(["-n", "-o", "-i"])
                        .arg(format!("{}@@{off}", img.display()))
                        .arg(&fip)
                        .arg("::fip.bin"),
                    "mcopy of boot/fip.bin into the card's FAT",
                )?;
            } else {
                let _ = Command::new(Peer::Mcopy.path()?.with_file_name("mdel"))
                    .arg("-i")
                    .arg(format!("{}@@{off}", img.display()))
                    .arg("::fip.bin")
                    .status();
            }
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = Command::new("umount").arg(d).status();
        }
    }
}

/// fip.bin on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FipState {
    /// The vendor's.
    Old,
    /// The new U-Boot's.
    New,
    /// None.
    Missing,
    /// Something else, of this length.
    Torn(usize),
}

/// What the card holds, read by tools independent of the migration.
#[derive(Debug, Clone)]
pub struct CardState {
    /// fip.bin.
    pub fip: FipState,
    /// The field env file (`/uboot.env` in the ext4), when it decodes.
    pub old_env: Option<BTreeMap<String, String>>,
    /// `e2fsck -fn` of the env ext4: `None` when clean.
    pub ext4_fsck: Option<String>,
    /// Each raw copy: `(flags, vars)` when valid.
    pub raw: Vec<Option<(u8, BTreeMap<String, String>)>>,
    /// The primary GPT (what Linux and U-Boot read first) is sound.
    pub primary_gpt_sound: bool,
    /// Sectors of partition 2 in the GPT a reader uses.
    pub env_partition_sectors: Option<u64>,
}

impl CardState {
    /// The env the U-Boot that this card's fip.bin designates loads, as U-Boot picks it: the
    /// ext4 file for the vendor's; for the new one the valid copy with the newer flags.
    pub fn loaded_env(&self) -> Option<BTreeMap<String, String>> {
        match self.fip {
            FipState::Old => self.old_env.clone(),
            FipState::New => {
                let valid: Vec<&(u8, BTreeMap<String, String>)> =
                    self.raw.iter().flatten().collect();
                match (&self.raw[0], &self.raw[1]) {
                    (Some(a), Some(b)) => {
                        // U-Boot's rule for the boolean scheme: 1 beats 0, else copy 0.
                        if b.0 == 1 && a.0 == 0 {
                            Some(b.1.clone())
                        } else {
                            Some(a.1.clone())
                        }
                    }
                    _ => valid.first().map(|c| c.1.clone()),
                }
            }
            _ => None,
        }
    }
}

/// Variables of mkenvimage text (one `name=value` a line).
pub fn text_vars(t: &str) -> BTreeMap<String, String> {
    t.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `len` bytes at `off` of a file.
pub fn read_at(path: &Path, off: u64, len: usize) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut b = vec![0; len];
    f.read_exact_at(&mut b, off)?;
    Ok(b)
}

/// File `name` from the ext4 at byte `off` of `img` (debugfs), `None` when absent.
pub fn read_ext4_file(img: &Path, off: u64, name: &str) -> Result<Option<Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let dst = dir.path().join("dump");
    let out = Command::new(Peer::Debugfs.path()?)
        .arg("-R")
        .arg(format!("dump {name} {}", dst.display()))
        .arg(format!("{}?offset={off}", img.display()))
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("File not found") {
        return Ok(None);
    }
    match std::fs::File::open(&dst) {
        Ok(mut f) => {
            let mut b = Vec::new();
            f.read_to_end(&mut b)?;
            Ok(Some(b))
        }
        Err(_) => Err(HelperError(format!(
            "debugfs dump {name} from {}: {err}",
            img.display()
        ))),
    }
}

/// A single-copy env image's variables when its CRC is right (the oracle's reading).
pub fn decode_single(b: &[u8]) -> Option<BTreeMap<String, String>> {
    crc_ok(4, b).then(|| parse_env_vars(&b[4..]).into_iter().collect())
}

/// A redundant copy's `(flags, variables)` when its CRC is right (the oracle's reading).
pub fn decode_redundant(b: &[u8]) -> Option<(u8, BTreeMap<String, String>)> {
    crc_ok(5, b).then(|| (b[4], parse_env_vars(&b[5..]).into_iter().collect()))
}

/// What the boot-ROM model booted and what U-Boot printed.
#[derive(Debug, Clone)]
pub struct RomBoot {
    /// Which fip.bin the card held, hence which U-Boot ran.
    pub fip: FipState,
    /// U-Boot's console, `\r` removed.
    pub output: String,
    /// How long QEMU ran.
    pub time: std::time::Duration,
}

impl RomBoot {
    /// The value U-Boot printed for `name` (`printenv name` gives `name=value`).
    pub fn printed(&self, name: &str) -> Option<&str> {
        let p = format!("{name}=");
        self.output
            .lines()
            .find_map(|l| l.strip_prefix(p.as_str()))
            .map(str::trim_end)
    }
}

impl FieldCard {
    /// The boot ROM, modelled: read `fip.bin` from the card's FAT p1 (as the board's ROM does
    /// through the MBR) and launch the U-Boot it designates under QEMU, the card as an SD card
    /// behind `sdhci-pci`: the vendor's stand-in ([`Peer::QemuX86MmcFieldUboot`], ext4 env on
    /// mmc 0:2) or the new one ([`Peer::QemuX86MmcMigratedUboot`], raw copies). U-Boot loads
    /// the env at init and runs the loaded `bootcmd`: the vendor's `sdboot` (which saves the
    /// env, as on the board) or the policy's `zbot_boot`; both print a line and reset. Only when
    /// the load fails does the build's own bootcmd run (`@@uboot <which>`, then reset).
    pub fn boot_rom(&self) -> Result<RomBoot> {
        let (o1, _) = self.part(1);
        let rom = match read_fat_file(&self.img, o1, "fip.bin")? {
            Some(b) if b.starts_with(OLD_FIP_MARKER) => (FipState::Old, Peer::QemuX86MmcFieldUboot),
            Some(b) if b.starts_with(NEW_FIP_MARKER) => {
                (FipState::New, Peer::QemuX86MmcMigratedUboot)
            }
            Some(b) => {
                return Err(HelperError(format!(
                    "boot ROM: fip.bin of {} bytes is neither U-Boot: the board would not boot",
                    b.len()
                )))
            }
            None => return Err(HelperError("boot ROM: no fip.bin on p1".into())),
        };
        let qemu = crate::find_program("qemu-system-x86_64").ok_or_else(|| {
            HelperError("qemu-system-x86_64 not found (scripts/setup-debian.sh)".into())
        })?;
        let t0 = std::time::Instant::now();
        let mut cmd = Command::new(qemu);
        cmd.args(["-M", "pc", "-m", "256M", "-smp", "1", "-accel", "tcg"])
            .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
            .args(["-no-reboot", "-nic", "none", "-bios"])
            .arg(rom.1.path()?)
            .args(["-device", "sdhci-pci", "-drive"])
            .arg(format!(
                "if=none,id=sd,format=raw,file={}",
                self.img.display()
            ))
            .args(["-device", "sd-card,drive=sd"]);
        // U-Boot resets at the end of its bootcmd and QEMU (-no-reboot) exits; bounded.
        let run = crate::run_with_timeout(&mut cmd, std::time::Duration::from_secs(180))?;
        let (timed_out, output) = (run.timed_out, run.output);
        if timed_out {
            return Err(HelperError(format!(
                "QEMU with {:?} did not reset within 180 s (a busy host? rerun); console:\n{output}",
                rom.1
            )));
        }
        Ok(RomBoot {
            fip: rom.0,
            output,
            time: t0.elapsed(),
        })
    }
}
