//! `pack` and `create`: writing a signed `.swu`. Every check happens before the output
//! exists; the package is written to a temporary file in the output's directory, fsynced and
//! renamed, so a refusal or a crash never leaves a partial `.swu` behind.

use crate::compress::{self, Stored};
use crate::cpio;
use crate::sign::{SignError, Signer};
use crate::swdesc::{self, Compression, Description, FileEntry, Image, Script};
use crate::version::{Version, VersionError};
use bootcount::{Role, SlotConfig};
use partctl::layout::Layout;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

/// Why a package is not written.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The version against the previous one.
    #[error("{0}")]
    Order(String),
    /// Key or certificate.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The slot file.
    #[error(transparent)]
    Slots(#[from] bootcount::slots::ConfigError),
    /// The layout.
    #[error(transparent)]
    Layout(#[from] partctl::layout::LayoutError),
    /// Something the command line or the files make impossible.
    #[error("{0}")]
    Refused(String),
    /// A file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the slot's size comes from.
#[derive(Debug, Clone)]
pub enum SlotSize {
    /// The card layout (partctl's TOML).
    Layout(PathBuf),
    /// Given in bytes.
    Bytes(u64),
}

/// The install target: the slot's device and its partition's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Slot name.
    pub slot: String,
    /// Device SWUpdate writes.
    pub device: String,
    /// Partition size in bytes.
    pub size: u64,
    /// Where the size came from, in words.
    pub size_from: String,
}

fn trailing_number(dev: &str) -> Option<u32> {
    let digits: String = dev
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Resolve the slot to install (`slot`, or the only primary slot) and its partition size.
pub fn resolve_target(
    cfg: &SlotConfig,
    slot: Option<&str>,
    size: &SlotSize,
) -> Result<Target, PackError> {
    let s = match slot {
        Some(name) => {
            let id = cfg.find(name).ok_or_else(|| {
                PackError::Refused(format!(
                    "no slot named {name:?} in the slot file (slots: {})",
                    cfg.names()
                ))
            })?;
            cfg.slot(id)
        }
        None => {
            let primaries: Vec<_> = cfg
                .slots
                .iter()
                .filter(|s| s.role == Role::Primary)
                .collect();
            match primaries.as_slice() {
                [one] => *one,
                _ => {
                    return Err(PackError::Refused(format!(
                        "the slot file has {} primary slots: say which with --slot NAME",
                        primaries.len()
                    )))
                }
            }
        }
    };
    if s.role == Role::Recovery {
        return Err(PackError::Refused(format!(
            "slot {} is the recovery slot: pack installs into a primary slot",
            s.name
        )));
    }
    let (bytes, from) = match size {
        SlotSize::Bytes(b) => (*b, "--slot-size".to_string()),
        SlotSize::Layout(path) => {
            let l = Layout::load(path)?;
            let n = trailing_number(&s.device);
            let base = &l.disk.linux_device;
            let sep = if base.ends_with(|c: char| c.is_ascii_digit()) {
                "p"
            } else {
                ""
            };
            // The device as the layout names it, else the partition named like the slot at
            // the device's partition number (a machine whose disk has another name, e.g. the
            // QEMU machine's /dev/vda).
            let by_device =
                (1..=l.partitions.len()).find(|i| format!("{base}{sep}{i}") == s.device);
            let by_name = l
                .partitions
                .iter()
                .position(|p| p.name == s.name)
                .map(|i| i + 1)
                .filter(|i| n == Some(*i as u32));
            let i = by_device.or(by_name).ok_or_else(|| {
                PackError::Refused(format!(
                    "layout {} has no partition for slot {} ({}): neither {base}{sep}N nor a partition named {} at number {}; give the size with --slot-size",
                    path.display(),
                    s.name,
                    s.device,
                    s.name,
                    n.map_or("?".to_string(), |n| n.to_string())
                ))
            })?;
            let p = &l.partitions[i - 1];
            (
                p.size.0,
                format!("layout {} partition {} ({})", path.display(), i, p.name),
            )
        }
    };
    Ok(Target {
        slot: s.name.clone(),
        device: s.device.clone(),
        size: bytes,
        size_from: from,
    })
}

/// Everything `pack` needs.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The raw root filesystem image.
    pub image: PathBuf,
    /// The new version.
    pub version: String,
    /// The version on the robots now: the new one must be newer for SWUpdate.
    pub previous: Option<String>,
    /// Accepted hardware revisions.
    pub hardware: Vec<String>,
    /// `description`; default "ZBot rootfs VERSION".
    pub description: Option<String>,
    /// The slot file.
    pub slots: SlotConfig,
    /// Slot to install (default: the only primary).
    pub slot: Option<String>,
    /// Where the partition size comes from.
    pub size: SlotSize,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Compression.
    pub compression: Compression,
    /// Level (gzip 1..=9, zstd 1..=19).
    pub level: Option<u32>,
    /// Worker threads.
    pub threads: usize,
    /// The `.swu` to write.
    pub output: PathBuf,
    /// Also migrate the robot's U-Boot environment (issue 14) after the image is written.
    pub migrate: Option<Migrate>,
}

/// A migration carried by the package: the new U-Boot and the target layout, copied by
/// SWUpdate into [`MIGRATE_STAGE`], and [`MIGRATE_SCRIPT`] running `zbot-migrate-env` on them.
#[derive(Debug, Clone)]
pub struct Migrate {
    /// The new U-Boot (fip.bin, built from `partctl emit uboot-fragment` of the layout).
    pub fip: PathBuf,
    /// The target layout (e.g. partctl/layouts/zbot-duos-redund.toml).
    pub layout: PathBuf,
    /// The new policy's variables (mkenvimage text), set on top of the field env
    /// (`zbot-migrate-env --env-file`); carried as `policy.env`.
    pub env_file: Option<PathBuf>,
}

/// Where SWUpdate writes the migration's files on the robot (the script's `STAGE`).
pub const MIGRATE_STAGE: &str = "/tmp/zbot-migrate-env";
/// The migration's script (updater/dist/zbot-migrate-env.sh), a member of the package.
pub const MIGRATE_SCRIPT: &str = include_str!("../dist/zbot-migrate-env.sh");
/// Its member name.
pub const MIGRATE_SCRIPT_NAME: &str = "zbot-migrate-env.sh";

/// A member of the migration: (member name, path on the robot or None for the script, bytes).
type MigrateMember = (String, Option<String>, Vec<u8>);

/// The migration's members, checked: a non-empty fip.bin, a layout with the raw redundant env.
fn migrate_members(m: &Migrate) -> Result<Vec<MigrateMember>, PackError> {
    let fip = std::fs::read(&m.fip).map_err(io_at(&m.fip))?;
    if fip.is_empty() {
        return Err(PackError::Refused(format!(
            "--migrate-fip {}: empty file",
            m.fip.display()
        )));
    }
    let layout = std::fs::read(&m.layout).map_err(io_at(&m.layout))?;
    let text = std::str::from_utf8(&layout).map_err(|_| {
        PackError::Refused(format!(
            "--migrate-layout {}: not UTF-8",
            m.layout.display()
        ))
    })?;
    let l = Layout::from_toml(text)
        .map_err(|e| PackError::Refused(format!("--migrate-layout {}: {e}", m.layout.display())))?;
    let raw = l
        .env_partition()
        .is_some_and(|(_, p)| partctl::layout::raw_env_offsets(p).is_ok());
    if !raw {
        return Err(PackError::Refused(format!(
            "--migrate-layout {}: not a layout with the raw redundant env (the migration's target, e.g. partctl/layouts/zbot-duos-redund.toml)",
            m.layout.display()
        )));
    }
    let mut out = vec![
        (
            MIGRATE_SCRIPT_NAME.to_string(),
            None,
            MIGRATE_SCRIPT.as_bytes().to_vec(),
        ),
        (
            "layout.toml".to_string(),
            Some(format!("{MIGRATE_STAGE}/layout.toml")),
            layout,
        ),
        (
            "fip.bin".to_string(),
            Some(format!("{MIGRATE_STAGE}/fip.bin")),
            fip,
        ),
    ];
    if let Some(e) = &m.env_file {
        let text = std::fs::read(e).map_err(io_at(e))?;
        if text.is_empty() || std::str::from_utf8(&text).is_err() {
            return Err(PackError::Refused(format!(
                "--migrate-env-file {}: empty or not UTF-8 (mkenvimage text: NAME=VALUE lines)",
                e.display()
            )));
        }
        out.push((
            "policy.env".to_string(),
            Some(format!("{MIGRATE_STAGE}/policy.env")),
            text,
        ));
    }
    Ok(out)
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The target.
    pub target: Target,
    /// The stored image.
    pub stored: Stored,
    /// Member name of the image.
    pub filename: String,
    /// The sw-description written.
    pub description: String,
    /// Size of the `.swu`.
    pub swu_len: u64,
}

fn check_member_name(n: &str) -> Result<(), PackError> {
    let ok = !n.is_empty()
        && n.len() <= 200
        && n != "sw-description"
        && n != "sw-description.sig"
        && n != cpio::TRAILER
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PackError::Refused(format!(
            "{n:?} cannot be a member name (use letters, digits, '.', '_', '-', '+')"
        )))
    }
}

fn check_hardware(hw: &[String]) -> Result<(), PackError> {
    if hw.is_empty() {
        return Err(PackError::Refused(
            "no hardware revision: give at least one --hardware REV (SWUpdate refuses a package without hardware-compatibility)".into(),
        ));
    }
    for h in hw {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(PackError::Refused(format!(
                "hardware revision {h:?} must be printable ASCII without spaces or quotes"
            )));
        }
    }
    Ok(())
}

/// The directory that holds `output`: where its temporary files go, so the rename is atomic.
fn dir_of(output: &Path) -> PathBuf {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temp-file dance: write into a temporary file next to `output`, fsync, rename, fsync
/// the directory. The temporary file is removed if `fill` fails.
pub fn write_atomically(
    output: &Path,
    fill: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), PackError>,
) -> Result<u64, PackError> {
    let dir = dir_of(output);
    let mut tmp = tempfile::Builder::new()
        .prefix(".zbot-updater-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io_at(&dir))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush().map_err(io_at(output))?;
    }
    tmp.as_file().sync_all().map_err(io_at(output))?;
    let len = tmp.as_file().metadata().map_err(io_at(output))?.len();
    tmp.persist(output).map_err(|e| PackError::Io {
        path: output.into(),
        source: e.error,
    })?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(&dir))?;
    Ok(len)
}

/// Check everything, compress, sign and write the package.
pub fn pack(o: &PackOptions) -> Result<Packed, PackError> {
    let version = checked_version(o)?;
    check_hardware(&o.hardware)?;
    let signer = Signer::load(&o.key, &o.cert)?;
    let target = resolve_target(&o.slots, o.slot.as_deref(), &o.size)?;
    let mut img = open_image(&o.image, &target)?;
    let filename = image_member_name(&o.image, o.compression);
    check_member_name(&filename)?;
    let extra = match &o.migrate {
        Some(m) => migrate_members(m)?,
        None => Vec::new(),
    };
    check_no_clash(&filename, &extra)?;
    let mut staged = stage_image(o, &mut img)?;
    let desc = describe(o, &version, &target, &filename, &staged.stored, &extra).render();
    let sig = signer.sign(desc.as_bytes())?;
    let swu_len = write_package(&o.output, &desc, &sig, &extra, &filename, &mut staged)?;
    Ok(Packed {
        target,
        stored: staged.stored,
        filename,
        description: desc,
        swu_len,
    })
}

/// The new version, which SWUpdate must order after the previous one if given.
fn checked_version(o: &PackOptions) -> Result<Version, PackError> {
    let version = Version::parse(&o.version)?;
    if let Some(p) = &o.previous {
        let prev = Version::parse(p)?;
        version.check_newer_than(&prev).map_err(PackError::Order)?;
    }
    Ok(version)
}

/// The root filesystem image, opened: a regular file that fits the target's partition.
fn open_image(image: &Path, target: &Target) -> Result<File, PackError> {
    let img = File::open(image).map_err(|source| PackError::Io {
        path: image.to_path_buf(),
        source,
    })?;
    let meta = img.metadata().map_err(io_at(image))?;
    if !meta.is_file() {
        return Err(PackError::Refused(format!(
            "{}: not a regular file (give the root filesystem image)",
            image.display()
        )));
    }
    check_image_size(image, meta.len(), target)?;
    Ok(img)
}

/// An image of `len` bytes must fit the target's partition and not be empty.
fn check_image_size(image: &Path, len: u64, target: &Target) -> Result<(), PackError> {
    if len > target.size {
        return Err(PackError::Refused(format!(
            "{}: {} bytes do not fit slot {} ({}): its partition is {} bytes ({})",
            image.display(),
            len,
            target.slot,
            target.device,
            target.size,
            target.size_from
        )));
    }
    if len == 0 {
        return Err(PackError::Refused(format!(
            "{}: the image is empty",
            image.display()
        )));
    }
    Ok(())
}

/// The image's member name: its file name with the compression's suffix.
fn image_member_name(image: &Path, compression: Compression) -> String {
    let base = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{base}{}", compression.suffix())
}

/// The image's member name must not be one of the migration's.
fn check_no_clash(filename: &str, extra: &[MigrateMember]) -> Result<(), PackError> {
    match extra.iter().find(|(n, _, _)| *n == filename) {
        Some((n, _, _)) => Err(PackError::Refused(format!(
            "the image's member name {n:?} is one of the migration's: rename the image"
        ))),
        None => Ok(()),
    }
}

/// The compression level when none is given.
fn default_level(compression: Compression) -> u32 {
    match compression {
        Compression::Gzip => 6,
        Compression::Zstd => 3,
        Compression::None => 0,
    }
}

/// The compressed image in a temporary file beside the output, with what it must be known by.
struct StagedImage {
    file: tempfile::NamedTempFile,
    stored: Stored,
    dir: PathBuf,
}

/// The compressed image goes to a temporary file beside the output first: its size, sha256
/// and byte sum must be in sw-description and the cpio header before its data.
fn stage_image(o: &PackOptions, img: &mut File) -> Result<StagedImage, PackError> {
    let level = o.level.unwrap_or(default_level(o.compression));
    let dir = dir_of(&o.output);
    let mut file = tempfile::Builder::new()
        .prefix(".zbot-updater-image-")
        .tempfile_in(&dir)
        .map_err(io_at(&dir))?;
    let stored = {
        let mut w = BufWriter::with_capacity(1 << 20, file.as_file_mut());
        let st = compress::compress(o.compression, level, o.threads, img, &mut w)
            .map_err(io_at(&o.image))?;
        w.flush().map_err(io_at(&dir))?;
        st
    };
    if stored.len > cpio::MAX_MEMBER {
        return Err(PackError::Refused(format!(
            "{}: compressed to {} bytes, over cpio's 4 GiB member limit",
            o.image.display(),
            stored.len
        )));
    }
    Ok(StagedImage { file, stored, dir })
}

/// sw-description's content: the image for the target's device, the migration's files (the
/// members with a path) and its script (the member without).
fn describe(
    o: &PackOptions,
    version: &Version,
    target: &Target,
    filename: &str,
    stored: &Stored,
    extra: &[MigrateMember],
) -> Description {
    let sha = |b: &[u8]| compress::hex(&Sha256::digest(b));
    Description {
        version: version.to_string(),
        description: o
            .description
            .clone()
            .unwrap_or_else(|| format!("ZBot {} {}", target.slot, version)),
        hardware: o.hardware.clone(),
        images: vec![Image {
            filename: filename.to_string(),
            device: target.device.clone(),
            sha256: stored.sha256.clone(),
            compression: o.compression,
        }],
        files: extra
            .iter()
            .filter_map(|(n, p, b)| {
                p.as_ref().map(|p| FileEntry {
                    filename: n.clone(),
                    path: p.clone(),
                    sha256: sha(b),
                })
            })
            .collect(),
        scripts: extra
            .iter()
            .filter(|(_, p, _)| p.is_none())
            .map(|(n, _, b)| Script {
                filename: n.clone(),
                sha256: sha(b),
            })
            .collect(),
    }
}

/// The `.swu`, atomically: sw-description, its signature, the migration's members, the image.
fn write_package(
    output: &Path,
    desc: &str,
    sig: &[u8],
    extra: &[MigrateMember],
    filename: &str,
    staged: &mut StagedImage,
) -> Result<u64, PackError> {
    let f = staged.file.as_file_mut();
    f.rewind().map_err(io_at(&staged.dir))?;
    let stored = &staged.stored;
    write_atomically(output, |w| {
        let mut c = cpio::Writer::new(w);
        let e = io_at(output);
        c.member_bytes("sw-description", desc.as_bytes())
            .and_then(|_| c.member_bytes("sw-description.sig", sig))
            .and_then(|_| extra.iter().try_for_each(|(n, _, b)| c.member_bytes(n, b)))
            .and_then(|_| {
                c.member(
                    filename,
                    stored.len,
                    stored.sum,
                    &mut io::BufReader::new(&mut *f),
                )
            })
            .map_err(e)?;
        c.finish().map_err(io_at(output))?;
        Ok(())
    })
}

/// `create DIR`: package a directory that already holds sw-description (the seed's verb).
/// Signed when a key and certificate are given; a `sw-description.sig` already in DIR is
/// kept otherwise. Every sha256 in sw-description is checked against DIR first.
pub fn create(
    dir: &Path,
    output: &Path,
    signer: Option<&Signer>,
) -> Result<(u64, Vec<String>), PackError> {
    let dpath = dir.join("sw-description");
    let desc = std::fs::read(&dpath).map_err(io_at(&dpath))?;
    let text = std::str::from_utf8(&desc)
        .map_err(|_| PackError::Refused(format!("{}: not UTF-8 text", dpath.display())))?;
    let v =
        swdesc::parse(text).map_err(|e| PackError::Refused(format!("{}: {e}", dpath.display())))?;
    let mut warnings = Vec::new();
    if text.contains("hardware_compatibility") {
        warnings.push("sw-description says hardware_compatibility (underscore): SWUpdate ignores it; write hardware-compatibility".into());
    }
    let mut order: Vec<String> = Vec::new();
    for (file, sha) in swdesc::artifacts(&v) {
        check_member_name(&file)?;
        let p = dir.join(&file);
        let mut f = File::open(&p).map_err(io_at(&p))?;
        let mut h = Sha256::new();
        io::copy(&mut f, &mut h).map_err(io_at(&p))?;
        let got = compress::hex(&h.finalize());
        match sha {
            Some(s) if s.eq_ignore_ascii_case(&got) => {}
            Some(s) => {
                return Err(PackError::Refused(format!(
                    "{}: sha256 is {got}, sw-description says {s}",
                    p.display()
                )))
            }
            None => warnings.push(format!("{file}: no sha256 in sw-description")),
        }
        if !order.contains(&file) {
            order.push(file);
        }
    }
    let mut extra: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_at(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "sw-description" && n != "sw-description.sig" && !order.contains(n))
        .collect();
    extra.sort();
    for n in &extra {
        warnings.push(format!("{n}: not named in sw-description; packed anyway"));
    }
    let sig = match signer {
        Some(s) => Some(s.sign(&desc)?),
        None => {
            let sp = dir.join("sw-description.sig");
            if sp.exists() {
                warnings.push("kept the sw-description.sig found in the directory (not checked: use inspect --cert)".into());
                Some(std::fs::read(&sp).map_err(io_at(&sp))?)
            } else {
                warnings.push("unsigned: a SWUpdate built for signed images (Debian's, and the robot's) refuses it; give --key and --cert".into());
                None
            }
        }
    };
    let len = write_atomically(output, |w| {
        let mut c = cpio::Writer::new(w);
        let e = |p: &Path, err| PackError::Io {
            path: p.to_path_buf(),
            source: err,
        };
        c.member_bytes("sw-description", &desc)
            .map_err(|x| e(output, x))?;
        if let Some(sig) = &sig {
            c.member_bytes("sw-description.sig", sig)
                .map_err(|x| e(output, x))?;
        }
        for n in order.iter().chain(extra.iter()) {
            let p = dir.join(n);
            // Sum first (the crc header precedes the data), then copy.
            let mut f = File::open(&p).map_err(|x| e(&p, x))?;
            let size = f.metadata().map_err(|x| e(&p, x))?.len();
            let mut sum = 0u32;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = io::Read::read(&mut f, &mut buf).map_err(|x| e(&p, x))?;
                if k == 0 {
                    break;
                }
                sum = cpio::checksum(&buf[..k], sum);
            }
            f.rewind().map_err(|x| e(&p, x))?;
            c.member(n, size, sum, &mut io::BufReader::new(f))
                .map_err(|x| e(&p, x))?;
        }
        c.finish().map_err(|x| e(output, x))?;
        Ok(())
    })?;
    Ok((len, warnings))
}

/// The boot slots a card's layout describes (`partctl emit slots`), as bootcount reads them.
pub fn slots_from_layout(layout: &Path) -> Result<SlotConfig, String> {
    let l = partctl::layout::Layout::load(layout).map_err(|e| e.to_string())?;
    let text = partctl::emit::emit(&l, partctl::emit::EmitKind::Slots);
    let origin = format!("{} (partctl emit slots)", layout.display());
    SlotConfig::from_toml(&text, &origin).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_from_the_board_layout_and_slot_file() {
        let layout =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../partctl/layouts/zbot-duos.toml");
        let t = resolve_target(&SlotConfig::builtin(), None, &SlotSize::Layout(layout)).unwrap();
        assert_eq!(t.slot, "rootfs");
        assert_eq!(t.device, "/dev/mmcblk0p4");
        assert_eq!(t.size, 275 << 20);
    }

    #[test]
    fn target_on_the_qemu_machine_matches_by_name_and_number() {
        let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../qemu/machine/layout.toml");
        let cfg = slots_from_layout(&layout).unwrap();
        let t = resolve_target(&cfg, None, &SlotSize::Layout(layout)).unwrap();
        assert_eq!((t.device.as_str(), t.size), ("/dev/vda4", 24 << 20));
        assert!(resolve_target(&cfg, Some("otafs"), &SlotSize::Bytes(1)).is_err());
        assert!(resolve_target(&cfg, Some("nope"), &SlotSize::Bytes(1)).is_err());
    }

    #[test]
    fn migration_members_need_the_raw_env_layout_and_a_fip() {
        let dir = tempfile::tempdir().unwrap();
        let fip = dir.path().join("fip.bin");
        std::fs::write(&fip, b"new U-Boot").unwrap();
        let layouts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../partctl/layouts");
        let m = Migrate {
            fip: fip.clone(),
            layout: layouts.join("zbot-duos-redund.toml"),
            env_file: None,
        };
        let got = migrate_members(&m).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|(n, p, _)| (n.as_str(), p.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                (MIGRATE_SCRIPT_NAME, None),
                ("layout.toml", Some(format!("{MIGRATE_STAGE}/layout.toml"))),
                ("fip.bin", Some(format!("{MIGRATE_STAGE}/fip.bin"))),
            ]
        );
        // The script's stage is the one sw-description names.
        assert!(MIGRATE_SCRIPT.contains(&format!("STAGE={MIGRATE_STAGE}\n")));
        // The field's layout (ext4 env) is not a migration target.
        let e = migrate_members(&Migrate {
            fip: fip.clone(),
            layout: layouts.join("zbot-duos.toml"),
            env_file: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("raw redundant env"), "{e}");
        std::fs::write(&fip, b"").unwrap();
        let e = migrate_members(&m).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn member_names() {
        assert!(check_member_name("rootfs.ext4.gz").is_ok());
        for bad in ["", "sw-description", "a/b", "../x", "a b", "TRAILER!!!"] {
            assert!(check_member_name(bad).is_err(), "{bad}");
        }
    }

    fn target() -> Target {
        Target {
            slot: "rootfs".into(),
            device: "/dev/mmcblk0p4".into(),
            size: 1000,
            size_from: "the layout".into(),
        }
    }

    #[test]
    fn image_size_against_the_partition() {
        let img = Path::new("rootfs.ext4");
        for (len, refusal) in [
            (1, None),
            (1000, None), // exactly the partition
            (1001, Some("rootfs.ext4: 1001 bytes do not fit slot rootfs (/dev/mmcblk0p4): its partition is 1000 bytes (the layout)")),
            (0, Some("rootfs.ext4: the image is empty")),
        ] {
            let got = check_image_size(img, len, &target()).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), refusal, "{len} bytes");
        }
    }

    #[test]
    fn image_member_name_is_the_file_name_and_the_suffix_and_not_the_migrations() {
        let name = image_member_name(Path::new("/out/rootfs.ext4"), Compression::Gzip);
        assert_eq!(name, "rootfs.ext4.gz");
        assert_eq!(
            image_member_name(Path::new("a/r.img"), Compression::None),
            "r.img"
        );
        let extra = vec![(
            "fip.bin".to_string(),
            Some("/tmp/x/fip.bin".into()),
            vec![1],
        )];
        assert!(check_no_clash(&name, &extra).is_ok());
        let e = check_no_clash("fip.bin", &extra).unwrap_err().to_string();
        assert!(e.contains("\"fip.bin\" is one of the migration's"), "{e}");
    }

    #[test]
    fn description_names_the_image_the_migrations_files_and_its_script() {
        let o = PackOptions {
            image: "rootfs.ext4".into(),
            version: "1.2".into(),
            previous: None,
            hardware: vec!["1.1".into()],
            description: None,
            slots: SlotConfig::builtin(),
            slot: None,
            size: SlotSize::Bytes(1000),
            key: "k".into(),
            cert: "c".into(),
            compression: Compression::Zstd,
            level: None,
            threads: 1,
            output: "out.swu".into(),
            migrate: None,
        };
        let stored = Stored {
            input_len: 10,
            len: 5,
            sha256: "ab".repeat(32),
            sum: 7,
        };
        let extra = vec![
            (MIGRATE_SCRIPT_NAME.to_string(), None, b"#!/bin/sh".to_vec()),
            (
                "fip.bin".to_string(),
                Some(format!("{MIGRATE_STAGE}/fip.bin")),
                b"uboot".to_vec(),
            ),
        ];
        let v = Version::parse("1.2").unwrap();
        let d = describe(&o, &v, &target(), "rootfs.ext4.zst", &stored, &extra);
        assert_eq!(
            d.description, "ZBot rootfs 1.2",
            "the default names slot and version"
        );
        assert_eq!(d.hardware, ["1.1"]);
        assert_eq!(
            d.images,
            [Image {
                filename: "rootfs.ext4.zst".into(),
                device: "/dev/mmcblk0p4".into(),
                sha256: stored.sha256.clone(),
                compression: Compression::Zstd,
            }]
        );
        let sha = |b: &[u8]| compress::hex(&Sha256::digest(b));
        assert_eq!(
            d.files,
            [FileEntry {
                filename: "fip.bin".into(),
                path: format!("{MIGRATE_STAGE}/fip.bin"),
                sha256: sha(b"uboot"),
            }]
        );
        assert_eq!(
            d.scripts,
            [Script {
                filename: MIGRATE_SCRIPT_NAME.into(),
                sha256: sha(b"#!/bin/sh"),
            }]
        );
        let given = PackOptions {
            description: Some("hotfix".into()),
            ..o
        };
        let d = describe(&given, &v, &target(), "r", &stored, &[]);
        assert_eq!(
            (d.description.as_str(), d.files.len(), d.scripts.len()),
            ("hotfix", 0, 0)
        );
    }
}
