//! The layout file: one description of the card from which the tables, the filesystems and the
//! configuration fragments are all derived.

use crate::guid::{types, Guid};
use crate::SECTOR;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A size in bytes, written in the layout as an integer or as `"128M"`, `"256K"`, `"1G"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Size(pub u64);

impl Size {
    /// Parse `123`, `4K`, `128M`, `2G` (binary multiples; a trailing `iB`/`B` is accepted).
    pub fn parse(s: &str) -> Option<Size> {
        let s = s.trim();
        let s = s
            .strip_suffix("iB")
            .or_else(|| s.strip_suffix('B'))
            .unwrap_or(s);
        let (num, mul) = match s.chars().last()? {
            'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
            'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
            'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
            'T' | 't' => (&s[..s.len() - 1], 1 << 40),
            _ => (s, 1),
        };
        num.trim().parse::<u64>().ok()?.checked_mul(mul).map(Size)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => Size::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("bad size {s:?} (use e.g. 128M, 256K, 1G)"))
            }),
        }
    }
}

/// A partition type: an alias (`esp`, `linux`, `basic-data`) or a GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PartType(pub Guid);

impl<'de> Deserialize<'de> for PartType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PartType, D::Error> {
        let s = String::deserialize(d)?;
        Ok(PartType(match s.as_str() {
            "esp" | "efi" => types::ESP,
            "linux" => types::LINUX,
            "basic-data" | "fat" => types::BASIC_DATA,
            g => g.parse().map_err(serde::de::Error::custom)?,
        }))
    }
}

/// The largest partition alignment a layout may ask for: 1 GiB.
pub const MAX_ALIGN_BYTES: u64 = 1 << 30;

/// The largest U-Boot environment (CONFIG_ENV_SIZE) a layout may declare: 16 MiB.
pub const MAX_ENV_BYTES: u64 = 16 << 20;

/// Whole-card settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Disk GUID in the GPT headers.
    pub guid: Guid,
    /// Partition start alignment (default 1 MiB).
    #[serde(default = "default_align")]
    pub align: Size,
    /// Number of GPT entries (default 128, the minimum the UEFI spec allows at 128 bytes each).
    #[serde(default = "default_entries")]
    pub entries: u32,
    /// Image size; default: the smallest that holds every partition plus the backup GPT.
    pub size: Option<Size>,
    /// The card as Linux names it (for fstab and fw_env.config).
    #[serde(default = "default_linux_device")]
    pub linux_device: String,
    /// U-Boot interface and device number (`mmc`, 0).
    #[serde(default = "default_uboot_interface")]
    pub uboot_interface: String,
    /// U-Boot device number.
    #[serde(default)]
    pub uboot_device: u32,
}

fn default_align() -> Size {
    Size(1 << 20)
}
fn default_entries() -> u32 {
    128
}
fn default_linux_device() -> String {
    "/dev/mmcblk0".into()
}
fn default_uboot_interface() -> String {
    "mmc".into()
}

/// How a partition is mirrored in the hybrid MBR.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MbrMirror {
    /// MBR entry index, 1..=4 (`index` in the layout; the older key `slot` is accepted).
    /// Not to be confused with a boot slot ([`BootSlot`]).
    #[serde(rename = "index", alias = "slot")]
    pub mbr_index: u8,
    /// MBR partition type byte (0x0C: FAT32 LBA).
    #[serde(rename = "type")]
    pub kind: u8,
    /// Set the boot indicator (0x80).
    #[serde(default)]
    pub bootable: bool,
}

/// What a partition holds when the image is created.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Content {
    /// FAT32 made by mkfs.vfat, files copied in with mcopy.
    Fat32 {
        /// Volume label.
        #[serde(default)]
        label: Option<String>,
        /// Files (relative to the input directory) that must exist.
        #[serde(default)]
        files: Vec<PathBuf>,
        /// Files copied when present.
        #[serde(default)]
        optional_files: Vec<PathBuf>,
    },
    /// ext4 made by `mke2fs -d DIR` (or empty without `dir`).
    Ext4 {
        /// Volume label.
        #[serde(default)]
        label: Option<String>,
        /// Directory whose tree is copied in (relative to the input directory).
        #[serde(default)]
        dir: Option<PathBuf>,
    },
    /// The U-Boot environment: where and how it lives. Today's only backend is `ext4`: a
    /// filesystem made with [`ENV_EXT4_FEATURES`] so U-Boot's ext4 writer accepts it, holding
    /// `file`. Every derived file (fw_env.config, the U-Boot fragment, fstab) reads it from here.
    Env {
        /// How U-Boot stores the environment (`ext4`: CONFIG_ENV_IS_IN_EXT4).
        #[serde(default)]
        backend: EnvBackend,
        /// Path of the environment inside the filesystem (U-Boot's CONFIG_ENV_EXT4_FILE).
        #[serde(default = "default_env_file")]
        file: String,
        /// CONFIG_ENV_SIZE.
        #[serde(default = "default_env_size")]
        size: Size,
        /// Environment image to install as `file` (e.g. from `mkenvimage` or `fw-env mkimage`),
        /// exactly `size` bytes.
        #[serde(default)]
        image: Option<PathBuf>,
        /// Or: the default environment as text (`u-boot-initial-env`: one `name=value` per
        /// line), made into the image by fw-env's mkimage, zero-padded as U-Boot's `saveenv`
        /// writes it. With neither, the filesystem is left without the file and U-Boot uses its
        /// built-in default environment until the first `saveenv`.
        #[serde(default)]
        text: Option<PathBuf>,
        /// Where Linux mounts it.
        #[serde(default = "default_env_mount")]
        mount: String,
        /// `raw` backend only: the byte offsets of the two copies inside the partition, after
        /// the ext4 filesystem (which then spans the partition up to the lower offset).
        #[serde(default)]
        offsets: Vec<Size>,
    },
    /// A raw image copied byte for byte (e.g. `rootfs.ext4`).
    Raw {
        /// Image file (relative to the input directory).
        image: PathBuf,
    },
    /// Left untouched (zero in a fresh image).
    Empty,
}

/// How U-Boot stores the environment (docs/env-backend.md). A new backend is a new variant here
/// plus its arms in `create` and `emit`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EnvBackend {
    /// A file in an ext4 filesystem (CONFIG_ENV_IS_IN_EXT4; the board today). No redundancy.
    #[default]
    Ext4,
    /// U-Boot's redundant environment in raw blocks (CONFIG_ENV_IS_IN_MMC +
    /// CONFIG_SYS_REDUNDAND_ENVIRONMENT): two copies of `size` bytes at the partition's
    /// `offsets`, each `crc32 | flags | data`. The partition starts with the ext4 filesystem
    /// holding `file` (the field's U-Boot still reads it: a card that either U-Boot boots).
    Raw,
}

/// The two copies' byte offsets inside the env partition of a `raw` env, checked: the ext4
/// filesystem before them, the copies inside the partition, not overlapping, sector-aligned.
pub fn raw_env_offsets(spec: &PartitionSpec) -> Result<[u64; 2], String> {
    let Content::Env {
        backend: EnvBackend::Raw,
        size,
        offsets,
        ..
    } = &spec.content
    else {
        return Err(format!("partition {}: not a raw env", spec.name));
    };
    let [a, b] = offsets.as_slice() else {
        return Err(format!(
            "partition {}: a raw env needs `offsets = [A, B]`, the two copies' byte offsets in the partition",
            spec.name
        ));
    };
    let (a, b) = (a.0, b.0);
    let (lo, hi) = (a.min(b), a.max(b));
    if a % SECTOR != 0 || b % SECTOR != 0 || size.0 % SECTOR != 0 {
        return Err(format!(
            "partition {}: raw env offsets and size must be multiples of 512",
            spec.name
        ));
    }
    if lo < ENV_EXT4_MIN_BYTES {
        return Err(format!(
            "partition {}: the lower raw env offset {lo:#x} leaves the ext4 filesystem less than {ENV_EXT4_MIN_BYTES:#x} bytes",
            spec.name
        ));
    }
    if hi - lo < size.0 || hi.saturating_add(size.0) > spec.size.0 {
        return Err(format!(
            "partition {}: raw env copies at {a:#x} and {b:#x} of {:#x} bytes overlap or end past the partition ({:#x} bytes)",
            spec.name, size.0, spec.size.0
        ));
    }
    Ok([a, b])
}

/// The smallest ext4 filesystem in front of raw env copies: the field's 256 KiB.
pub const ENV_EXT4_MIN_BYTES: u64 = 256 << 10;

/// The ext4 features of the env filesystem: U-Boot's ext4 writer refuses `metadata_csum`,
/// and a journal is useless (and does not fit well) in a 256 KiB partition. The one place this
/// recipe is written; `partctl create` makes every env filesystem with it.
pub const ENV_EXT4_FEATURES: &str = "^metadata_csum,^has_journal";

/// What the env filesystem needs beside the file: superblock, group descriptors, bitmaps, the
/// inode table and reserved blocks of [`ENV_EXT4_FEATURES`] at 1 KiB blocks (measured: a 256 KiB
/// filesystem holding a 192 KiB file has 28 KiB of metadata and 36 KiB free, docs/env-backend.md),
/// rounded up. The field's 192 KiB env in its 256 KiB partition is the tightest case allowed.
pub const ENV_EXT4_OVERHEAD: u64 = 32 << 10;

/// The ext4 block size of the env filesystem (small partition: 1 KiB blocks).
pub const ENV_EXT4_BLOCK_SIZE: u32 = 1024;

fn default_env_file() -> String {
    "/uboot.env".into()
}
fn default_env_size() -> Size {
    Size(0x30000)
}
fn default_env_mount() -> String {
    "/bootenv".into()
}

/// One partition of the layout, in GPT order.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// GPT partition name (at most 36 UTF-16 units).
    pub name: String,
    /// Size in bytes (a multiple of 512).
    pub size: Size,
    /// Type GUID or alias.
    #[serde(rename = "type")]
    pub kind: PartType,
    /// Fixed unique partition GUID.
    pub uuid: Guid,
    /// Attribute names: `required`, `no-block-io`, `legacy-bios-bootable`, or `bitNN`.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Mirror in the hybrid MBR.
    #[serde(default)]
    pub mbr: Option<MbrMirror>,
    /// May extend past its layout size up to the card's end (`partctl grow`); only the last one.
    #[serde(default)]
    pub growable: bool,
    /// Linux mount point for the fstab output.
    #[serde(default)]
    pub mount: Option<String>,
    /// The boot slot this partition holds (bootcount's slot file, `partctl emit slots`).
    #[serde(default)]
    pub slot: Option<BootSlot>,
    /// Content at creation.
    #[serde(default = "default_content")]
    pub content: Content,
}

fn default_content() -> Content {
    Content::Empty
}

/// What a boot slot is for (bootcount's `Role`, spelled the same in the slot file).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlotRole {
    /// A normal system (installable, booted on trial).
    Primary,
    /// The last resort (the updater, `otafs`).
    Recovery,
}

/// A partition that holds a bootable root filesystem: `slot = { role = "primary" }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BootSlot {
    /// Primary or recovery.
    pub role: SlotRole,
    /// The slot's name (`next_boot`'s value); default: the partition's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Kernel arguments after `root=<device>` (default `rootwait rw`).
    #[serde(default = "default_root_options")]
    pub root_options: String,
}

fn default_root_options() -> String {
    "rootwait rw".into()
}

/// Settings of the slot file that are not per partition.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlotsSpec {
    /// Default number of attempts of a trial boot (bootcount's `bootlimit`, 1..=9).
    pub bootlimit: u8,
}

/// One boot slot as the slot file lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotEntry {
    /// Slot name.
    pub name: String,
    /// Role.
    pub role: SlotRole,
    /// `root=<device> <options>`.
    pub root: String,
    /// The Linux partition device.
    pub device: String,
}

/// A whole layout file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Card-wide settings.
    pub disk: DiskSpec,
    /// Slot-file settings (required when a partition declares a `slot`).
    #[serde(default)]
    pub slots: Option<SlotsSpec>,
    /// Partitions in GPT order (entry 1 first).
    #[serde(rename = "partition")]
    pub partitions: Vec<PartitionSpec>,
}

/// Errors reading or validating a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The file could not be read.
    #[error("reading layout {path}: {source}")]
    Io {
        /// Layout path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or schema error.
    #[error("parsing layout {path}: {source}")]
    Toml {
        /// Layout path.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// The layout parses but is inconsistent.
    #[error("layout is invalid: {0}")]
    Invalid(String),
}

/// A layout partition placed on the card, in sectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// 1-based GPT entry number.
    pub number: u32,
    /// First LBA.
    pub first: u64,
    /// Last LBA (inclusive).
    pub last: u64,
}

/// Parse an attribute name into its GPT bit.
pub fn attribute_bit(name: &str) -> Option<u32> {
    match name {
        "required" | "platform-required" => Some(0),
        "no-block-io" | "efi-ignore" => Some(1),
        "legacy-bios-bootable" | "legacy_bios_bootable" => Some(2),
        s => s
            .strip_prefix("bit")
            .and_then(|n| n.parse().ok())
            .filter(|&b: &u32| b < 64),
    }
}

impl Layout {
    /// Read and validate a layout file.
    pub fn load(path: &Path) -> Result<Layout, LayoutError> {
        let text = crate::files::read_small(path, crate::files::MAX_LAYOUT_BYTES)
            .and_then(|b| {
                String::from_utf8(b).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})"))
                })
            })
            .map_err(|source| LayoutError::Io {
                path: path.into(),
                source,
            })?;
        let l: Layout = toml::from_str(&text).map_err(|source| LayoutError::Toml {
            path: path.into(),
            source,
        })?;
        l.validate()?;
        Ok(l)
    }

    /// Parse from a string (tests, embedded layouts).
    pub fn from_toml(text: &str) -> Result<Layout, LayoutError> {
        let l: Layout = toml::from_str(text).map_err(|source| LayoutError::Toml {
            path: "<string>".into(),
            source,
        })?;
        l.validate()?;
        Ok(l)
    }

    /// Check the rules that serde cannot express.
    pub fn validate(&self) -> Result<(), LayoutError> {
        self.validate_disk()?;
        self.validate_partitions()?;
        self.validate_boot_slots()?;
        let min = self.validate_placement()?;
        self.validate_disk_size(min)
    }

    /// The `[disk]` table and the number of partitions.
    fn validate_disk(&self) -> Result<(), LayoutError> {
        let bad = |m: String| Err(LayoutError::Invalid(m));
        if self.partitions.is_empty() {
            return bad("no partitions".into());
        }
        if self.disk.align.0 == 0 || self.disk.align.0 % SECTOR != 0 {
            return bad(format!(
                "align {} is not a positive multiple of 512",
                self.disk.align.0
            ));
        }
        if self.disk.align.0 > MAX_ALIGN_BYTES {
            return bad(format!(
                "align {} is larger than 1 GiB: use e.g. 1M (the default) or 4M",
                self.disk.align.0
            ));
        }
        if self.disk.entries < 128 || self.disk.entries % 4 != 0 || self.disk.entries > 4096 {
            return bad(format!(
                "entries = {} (must be a multiple of 4 in 128..=4096)",
                self.disk.entries
            ));
        }
        if self.partitions.len() > self.disk.entries as usize {
            return bad("more partitions than GPT entries".into());
        }
        Ok(())
    }

    /// Each partition on its own, and the MBR entries they take (one left for 0xEE).
    fn validate_partitions(&self) -> Result<(), LayoutError> {
        let mut used = [false; 4];
        for (i, p) in self.partitions.iter().enumerate() {
            let last = i + 1 == self.partitions.len();
            validate_partition(p, last)?;
            if let Some(m) = &p.mbr {
                if !(1..=4).contains(&m.mbr_index) || used[m.mbr_index as usize - 1] {
                    return Err(LayoutError::Invalid(format!(
                        "partition {}: MBR index {} invalid or used twice",
                        p.name, m.mbr_index
                    )));
                }
                if m.kind == 0 || m.kind == 0xEE {
                    return Err(LayoutError::Invalid(format!(
                        "partition {}: MBR type {:#04x} not allowed for a mirror",
                        p.name, m.kind
                    )));
                }
                used[m.mbr_index as usize - 1] = true;
            }
        }
        if used.iter().all(|s| *s) {
            return Err(LayoutError::Invalid(
                "all four MBR entries used: no room for the 0xEE entry".into(),
            ));
        }
        Ok(())
    }

    /// Numbers: place the partitions with checked arithmetic, so that every later
    /// computation (place, min_sectors, image_sectors, create) stays in range. Returns the
    /// card's smallest size in sectors.
    fn validate_placement(&self) -> Result<u64, LayoutError> {
        let max_sectors = crate::files::MAX_CARD_BYTES / SECTOR;
        let al = self.align_sectors();
        let too_big = || {
            LayoutError::Invalid(format!(
                "the partitions do not fit on a card of at most {} TiB: check the sizes",
                crate::files::MAX_CARD_BYTES >> 40
            ))
        };
        let mut next = (2 + self.array_sectors()).div_ceil(al) * al;
        for p in &self.partitions {
            let first = next.div_ceil(al).checked_mul(al).ok_or_else(too_big)?;
            let last = first
                .checked_add(p.size.0 / SECTOR - 1)
                .filter(|&l| l < max_sectors)
                .ok_or_else(too_big)?;
            if p.mbr.is_some() && last > u32::MAX as u64 {
                return Err(LayoutError::Invalid(format!(
                    "partition {}: mirrored in the MBR but ends at LBA {last}, past the MBR's 2 TiB limit (LBA {})",
                    p.name,
                    u32::MAX
                )));
            }
            self.validate_env(p)?;
            next = last + 1;
        }
        let min = next + self.array_sectors() + 1;
        if min > max_sectors {
            return Err(too_big());
        }
        Ok(min)
    }

    /// An env partition's backend, and its size against the filesystem's room.
    fn validate_env(&self, p: &PartitionSpec) -> Result<(), LayoutError> {
        let bad = |m: String| Err(LayoutError::Invalid(m));
        let Content::Env {
            size,
            backend,
            offsets,
            ..
        } = &p.content
        else {
            return Ok(());
        };
        // The ext4 filesystem: the whole partition, or up to the raw copies.
        let fs_bytes = match backend {
            EnvBackend::Ext4 if !offsets.is_empty() => {
                return bad(format!(
                    "partition {}: `offsets` is for backend = \"raw\"",
                    p.name
                ))
            }
            EnvBackend::Ext4 => p.size.0,
            EnvBackend::Raw => {
                if self.disk.uboot_interface != "mmc" {
                    return bad(format!(
                        "partition {}: a raw env is U-Boot's CONFIG_ENV_IS_IN_MMC: it needs uboot_interface = \"mmc\" (not {:?})",
                        p.name, self.disk.uboot_interface
                    ));
                }
                let o = raw_env_offsets(p).map_err(LayoutError::Invalid)?;
                o[0].min(o[1])
            }
        };
        if size.0 < 8
            || size.0 > MAX_ENV_BYTES
            || size.0.saturating_add(ENV_EXT4_OVERHEAD) > fs_bytes
        {
            return bad(format!(
                "partition {}: env size {} must be 8 bytes to 16 MiB and leave {} bytes of the partition ({} bytes) to the filesystem",
                p.name, size.0, ENV_EXT4_OVERHEAD, p.size.0
            ));
        }
        Ok(())
    }

    /// `[disk] size`, if given, against the card's smallest size `min` (sectors).
    fn validate_disk_size(&self, min: u64) -> Result<(), LayoutError> {
        let Some(sz) = self.disk.size else {
            return Ok(());
        };
        if sz.0 % SECTOR != 0 || sz.0 / SECTOR < min || sz.0 > crate::files::MAX_CARD_BYTES {
            return Err(LayoutError::Invalid(format!(
                "disk size {} must be a multiple of 512, hold the partitions and the backup GPT ({} bytes) and be at most {} TiB",
                sz.0,
                min * SECTOR,
                crate::files::MAX_CARD_BYTES >> 40
            )));
        }
        Ok(())
    }

    /// Alignment in sectors.
    pub fn align_sectors(&self) -> u64 {
        self.disk.align.0 / SECTOR
    }

    /// Sectors of one GPT entry array.
    pub fn array_sectors(&self) -> u64 {
        (self.disk.entries as u64 * 128).div_ceil(SECTOR)
    }

    /// Partitions placed one after another, each start aligned.
    pub fn place(&self) -> Vec<Placed> {
        let al = self.align_sectors();
        let mut next = (2 + self.array_sectors()).div_ceil(al) * al;
        let mut out = Vec::new();
        for (i, p) in self.partitions.iter().enumerate() {
            let first = next.div_ceil(al) * al;
            let last = first + p.size.0 / SECTOR - 1;
            out.push(Placed {
                number: i as u32 + 1,
                first,
                last,
            });
            next = last + 1;
        }
        out
    }

    /// Smallest card, in sectors, that holds the layout (last partition + backup GPT).
    pub fn min_sectors(&self) -> u64 {
        let end = self.place().last().map(|p| p.last + 1).unwrap_or(0);
        end + self.array_sectors() + 1
    }

    /// Image size in sectors for `create`: `disk.size` or the minimum rounded up to the alignment.
    pub fn image_sectors(&self) -> u64 {
        match self.disk.size {
            Some(s) => s.0 / SECTOR,
            None => self.min_sectors().div_ceil(self.align_sectors()) * self.align_sectors(),
        }
    }

    /// Attribute bits of a partition.
    pub fn attribute_bits(p: &PartitionSpec) -> u64 {
        p.attributes
            .iter()
            .filter_map(|a| attribute_bit(a))
            .fold(0, |acc, b| acc | 1 << b)
    }

    /// Linux's name for partition `n` of the card: `/dev/mmcblk0` -> `/dev/mmcblk0p4`,
    /// `/dev/vda` -> `/dev/vda4`.
    pub fn linux_partition(&self, n: u32) -> String {
        let d = &self.disk.linux_device;
        if d.chars().last().is_some_and(|c| c.is_ascii_digit()) {
            format!("{d}p{n}")
        } else {
            format!("{d}{n}")
        }
    }

    /// The boot slots in slot-file order: primaries first, then the recovery slot, each in
    /// partition order (bootcount prefers earlier slots for `install-target`).
    pub fn boot_slots(&self) -> Vec<SlotEntry> {
        let mut out: Vec<SlotEntry> = Vec::new();
        for role in [SlotRole::Primary, SlotRole::Recovery] {
            for (i, p) in self.partitions.iter().enumerate() {
                let Some(s) = p.slot.as_ref().filter(|s| s.role == role) else {
                    continue;
                };
                let device = self.linux_partition(i as u32 + 1);
                out.push(SlotEntry {
                    name: s.name.clone().unwrap_or_else(|| p.name.clone()),
                    role,
                    root: format!("root={device} {}", s.root_options)
                        .trim_end()
                        .into(),
                    device,
                });
            }
        }
        out
    }

    fn validate_boot_slots(&self) -> Result<(), LayoutError> {
        let bad = |m: String| Err(LayoutError::Invalid(m));
        let slots = self.boot_slots();
        if slots.is_empty() {
            return Ok(());
        }
        match &self.slots {
            None => return bad("partitions declare a boot `slot` but the layout has no [slots] table (bootlimit = 3)".into()),
            Some(s) if !(1..=9).contains(&s.bootlimit) => {
                return bad(format!("[slots] bootlimit = {} (must be 1..=9)", s.bootlimit))
            }
            Some(_) => {}
        }
        let recovery = slots
            .iter()
            .filter(|s| s.role == SlotRole::Recovery)
            .count();
        if recovery != 1 || slots.len() == recovery {
            return bad("boot slots: one partition must have role \"recovery\" and at least one role \"primary\"".into());
        }
        for (i, s) in slots.iter().enumerate() {
            if slots[..i].iter().any(|o| o.name == s.name) {
                return bad(format!("boot slot name {:?} used twice", s.name));
            }
            if s.root.contains(['\n', '"', '\\']) {
                return bad(format!(
                    "boot slot {}: root options must not hold quotes, backslashes or newlines",
                    s.name
                ));
            }
        }
        Ok(())
    }

    /// The 1-based number of the partition holding the environment, if any.
    pub fn env_partition(&self) -> Option<(u32, &PartitionSpec)> {
        self.partitions
            .iter()
            .enumerate()
            .find(|(_, p)| matches!(p.content, Content::Env { .. }))
            .map(|(i, p)| (i as u32 + 1, p))
    }
}

/// One partition's own rules: size, name, attributes, and growable only if `last`.
fn validate_partition(p: &PartitionSpec, last: bool) -> Result<(), LayoutError> {
    let bad = |m: String| Err(LayoutError::Invalid(m));
    if p.size.0 == 0 || p.size.0 % SECTOR != 0 {
        return bad(format!(
            "partition {}: size {} is not a positive multiple of 512",
            p.name, p.size.0
        ));
    }
    if p.name.encode_utf16().count() > 36 {
        return bad(format!(
            "partition {}: name longer than 36 UTF-16 units",
            p.name
        ));
    }
    for a in &p.attributes {
        if attribute_bit(a).is_none() {
            return bad(format!("partition {}: unknown attribute {a:?}", p.name));
        }
    }
    if p.growable && !last {
        return bad(format!(
            "partition {}: only the last partition may be growable",
            p.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn board() -> Layout {
        Layout::from_toml(include_str!("../layouts/zbot-duos.toml")).unwrap()
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(Size::parse("128M"), Some(Size(128 << 20)));
        assert_eq!(Size::parse("256K"), Some(Size(256 << 10)));
        assert_eq!(Size::parse("1GiB"), Some(Size(1 << 30)));
        assert_eq!(Size::parse("512"), Some(Size(512)));
        assert_eq!(Size::parse("x"), None);
        assert_eq!(Size::parse("99999999999999999999T"), None);
    }

    #[test]
    fn board_layout_matches_board_md() {
        let l = board();
        let names: Vec<_> = l.partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["boot", "env", "otafs", "rootfs", "data", "staging"]);
        let mib: Vec<_> = l.partitions.iter().map(|p| p.size.0 >> 10).collect();
        assert_eq!(
            mib,
            [128 << 10, 256, 125 << 10, 275 << 10, 50 << 10, 300 << 10]
        );
        assert_eq!(l.partitions[0].kind.0, types::ESP);
        assert_eq!(
            l.partitions[0].mbr,
            Some(MbrMirror {
                mbr_index: 1,
                kind: 0x0C,
                bootable: true
            })
        );
        let placed = l.place();
        assert_eq!(placed[0].first, 2048);
        assert!(placed
            .windows(2)
            .all(|w| w[0].last < w[1].first && w[1].first % 2048 == 0));
        assert_eq!(l.env_partition().unwrap().0, 2);
    }

    #[test]
    fn rejects_inconsistent_layouts() {
        let mut l = board();
        l.partitions[0].size = Size(1000);
        assert!(l.validate().is_err());
        let mut l = board();
        l.partitions[1].mbr = Some(MbrMirror {
            mbr_index: 1,
            kind: 0x83,
            bootable: false,
        });
        assert!(l.validate().is_err());
        let mut l = board();
        l.partitions[0].growable = true;
        assert!(l.validate().is_err());
        // Boot slots: exactly one recovery, at least one primary, distinct names, 1..=9 tries.
        let mut l = board();
        l.partitions[2].slot.as_mut().unwrap().role = SlotRole::Primary;
        assert!(l.validate().is_err(), "no recovery slot");
        let mut l = board();
        l.partitions[3].slot.as_mut().unwrap().name = Some("otafs".into());
        assert!(l.validate().is_err(), "two slots named otafs");
        let mut l = board();
        l.slots = Some(SlotsSpec { bootlimit: 10 });
        assert!(l.validate().is_err(), "bootlimit 10");
    }

    #[test]
    fn mbr_index_accepts_the_old_key() {
        let text = include_str!("../layouts/zbot-duos.toml");
        let old =
            Layout::from_toml(&text.replace("mbr = { index = 1,", "mbr = { slot = 1,")).unwrap();
        assert_eq!(old.partitions[0].mbr, board().partitions[0].mbr);
    }
}
