//! Reading and writing environment copies on files and block devices: the only module that
//! touches storage.
//!
//! Two ways to write, chosen by what the path is:
//! - **Replace** (an environment *file*, like the board's `/bootenv/uboot.env`: a regular file
//!   of at most [`REPLACE_MAX_FILE`] bytes, or a missing one): the complete new file is written
//!   to a temporary file in the same directory, **sparsely** (only the filesystem blocks holding
//!   a non-zero byte are written; the environment's zero padding stays holes, see
//!   [`write_sparse`]), fsynced, given the old file's mode and owner, renamed over the old one,
//!   and the directory is fsynced. Bytes outside the environment region are carried over. A
//!   crash leaves the old file or the new one, never a mix. The field's 192 KiB `/uboot.env` in
//!   its 256 KiB ext4 (36 KiB free) is written this way: its temporary copy needs a few blocks.
//! - **In place** (block devices, large image files such as a whole SD-card image, and an
//!   environment file whose filesystem has no room even for the sparse temporary copy beside
//!   it: its non-zero blocks plus [`TEMP_METADATA_ALLOWANCE`]): the
//!   copy is written with `pwrite` at its offset and `fdatasync`ed. With two copies only the
//!   inactive one is written, so the current copy stays intact until the new one is durable.
//!   A single copy written in place cannot survive a power cut mid-write: `fw-env check`
//!   says so.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::CopyLocation;
use crate::fault;

/// Largest regular file still treated as an environment file (written by replace).
pub const REPLACE_MAX_FILE: u64 = 1 << 20;

/// How a copy's medium is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Temporary file, fsync, rename, fsync directory.
    Replace,
    /// `pwrite` at the offset, `fdatasync`.
    InPlace,
}

/// A storage failure, naming the file or device.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Open, read, write or sync failed.
    #[error("{op} {path}: {source}{hint}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// File or device.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The device ends before the environment does.
    #[error("{path} is {len:#x} bytes, shorter than offset {offset:#x} + env size {size:#x}: the copy would end past the end of the device; check the device, offset and size in the config (line {line})")]
    TooShort {
        /// File or device.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// Resolved offset.
        offset: u64,
        /// Copy size.
        size: u64,
        /// Config line.
        line: usize,
    },
    /// A negative offset reaches before the start of the device.
    #[error("{path}: offset {offset} counts back past the start of a {len:#x}-byte device or file (config line {line}); check the device and offset in the config")]
    NegativeOffset {
        /// File or device.
        path: PathBuf,
        /// Configured offset.
        offset: i64,
        /// Device length.
        len: u64,
        /// Config line.
        line: usize,
    },
    /// Neither a regular file nor a block device (a FIFO, socket, directory, character
    /// device...): refused before anything could block on it.
    #[error("{path} is {kind}, not an environment file or block device; point the config at the env file (e.g. /bootenv/uboot.env) or the block device")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// What it is ("a FIFO", "a directory", ...).
        kind: &'static str,
    },
    /// A file that must be a regular file is not (a FIFO, a device, a directory...).
    #[error("{path} is {kind}, not a regular file; give the {what} as a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
        /// What it was to be read as ("config file", "defaults file").
        what: &'static str,
    },
    /// A symbolic link whose target does not exist.
    #[error("{path} is a symbolic link to {target}, which does not exist; fix the link or point the config at the real env file")]
    DanglingSymlink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// An env file with several hard links: replacing it by rename would leave the other names
    /// with the old environment (U-Boot may read through either).
    #[error("{path} has {links} hard links: a write replaces the file by rename, so the other names would keep the old environment; remove the extra links (`find / -xdev -samefile {path}` lists them) or use a symbolic link")]
    HardLinked {
        /// The env file.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// A file is larger than fw-env accepts for what it is.
    #[error(
        "{path} is {len} bytes, more than the {max} bytes a {what} may have; is it the right file?"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
        /// What the file is for.
        what: &'static str,
    },
    /// A configured offset plus size does not fit in 64 bits.
    #[error("{path}: offset {offset:#x} + env size {size:#x} overflows (config line {line})")]
    Overflow {
        /// File or device.
        path: PathBuf,
        /// Resolved offset.
        offset: u64,
        /// Copy size.
        size: u64,
        /// Config line.
        line: usize,
    },
}

fn hint_for(e: &io::Error) -> &'static str {
    use nix::errno::Errno;
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EROFS) => " (read-only filesystem: remount it read-write, e.g. `mount -o remount,rw /bootenv`)",
        Some(Errno::ENOSPC) => {
            " (no space left on the filesystem: the new copy is written beside the old one, sparse, so the env partition needs room for its non-zero blocks)"
        }
        Some(Errno::EDQUOT) => " (disk quota exceeded)",
        Some(Errno::EACCES) | Some(Errno::EPERM) => {
            " (permission denied: run as root, or check the mode of the file and its directory)"
        }
        Some(Errno::ENOENT) => {
            " (is the env partition mounted? the board mounts it at /bootenv)"
        }
        Some(Errno::EIO) => " (I/O error: the card or device may be failing)",
        _ => "",
    }
}

/// What a file type is, in words, for refusals.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device (MTD/character devices are not supported)"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Open `path` for reading without ever blocking: `O_NONBLOCK`, so a FIFO cannot hang the
/// open, then `fstat` to check what was opened really is a regular file (or, with
/// `allow_block`, a block device). Returns the file and its metadata.
pub fn open_checked(
    path: &Path,
    allow_block: bool,
) -> io::Result<Result<(File, std::fs::Metadata), &'static str>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() || (allow_block && ft.is_block_device()) {
        Ok(Ok((file, meta)))
    } else {
        Ok(Err(kind_of(&ft)))
    }
}

/// Read a small regular text-like file (a config, a defaults file, a script) safely: refuse
/// FIFOs, devices and directories before they can block or stream forever, and files larger
/// than `max` bytes. `what` names the file's role in errors.
pub fn read_small_file(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, StorageError> {
    use std::io::Read;
    let (file, meta) = match open_checked(path, false) {
        Ok(Ok(x)) => x,
        Ok(Err(kind)) => {
            return Err(StorageError::NotRegular {
                path: path.to_owned(),
                kind,
                what,
            })
        }
        Err(e) => return Err(io_err(what_op(what), path)(e)),
    };
    if meta.len() > max {
        return Err(StorageError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
            max,
            what,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while we read it.
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(what_op(what), path))?;
    if buf.len() as u64 > max {
        return Err(StorageError::TooLarge {
            path: path.to_owned(),
            len: buf.len() as u64,
            max,
            what,
        });
    }
    Ok(buf)
}

fn what_op(what: &'static str) -> &'static str {
    match what {
        "config file" => "cannot read config file",
        "defaults file" => "cannot read defaults file",
        "script" => "cannot read script",
        _ => "cannot read",
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| {
        let hint = hint_for(&source);
        StorageError::Io {
            op,
            path: path.to_owned(),
            source,
            hint,
        }
    }
}

/// What was found at a copy's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The copy's bytes (exactly `size` of them).
    Bytes(Vec<u8>),
    /// An environment file that does not exist (U-Boot's ext4 `saveenv` deletes before it
    /// writes, so a power cut can leave none).
    Missing,
    /// An environment file shorter than the copy: the rest of what was there.
    Short(Vec<u8>),
}

/// A copy's medium, opened and resolved.
#[derive(Debug)]
pub struct Medium {
    /// Path of the file or device.
    pub path: PathBuf,
    /// Resolved byte offset of the copy.
    pub offset: u64,
    /// Copy size.
    pub size: u64,
    /// How it is written.
    pub mode: WriteMode,
    /// Length of the file or device (0 if missing).
    pub len: u64,
    line: usize,
}

/// The largest end (offset + size) of a copy in an environment file written by replace: the
/// whole file is held in memory, so it must stay small whatever the config says.
pub const REPLACE_MAX_END: u64 = 2 * crate::config::MAX_ENV_SIZE;

/// Resolve symbolic links in a configured path, so that a write replaces the real file (a
/// rename over a symlink would replace the link and leave U-Boot's file untouched) and the
/// directory synced is the real one. A missing file is resolved through its directory.
pub fn real_path(path: &Path) -> Result<PathBuf, StorageError> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if m.file_type().is_symlink() {
                    return Err(StorageError::DanglingSymlink {
                        path: path.to_owned(),
                        target: std::fs::read_link(path).unwrap_or_default(),
                    });
                }
            }
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            match (std::fs::canonicalize(dir), path.file_name()) {
                (Ok(d), Some(name)) => Ok(d.join(name)),
                // The directory is missing too: keep the path, the open reports it.
                _ => Ok(path.to_owned()),
            }
        }
        Err(e) => Err(io_err("cannot resolve the path", path)(e)),
    }
}

/// Metadata allowance of a replace's temporary file beyond its data blocks: its inode's extent
/// or indirect blocks and the directory's growth (ext4 with 1 KiB blocks needs at most a few).
pub const TEMP_METADATA_ALLOWANCE: u64 = 8 << 10;

/// The allocation unit of the filesystem holding `dir` (statvfs `f_frsize`): the size of the
/// blocks a sparse temporary file writes or leaves as holes. 4096 when unknown or implausible.
pub fn fs_block_size(dir: &Path) -> u64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(v) => {
            // c_ulong: u64 on the robot, u32 on 32-bit hosts.
            #[allow(clippy::unnecessary_cast)]
            let b = v.fragment_size() as u64;
            if b.is_power_of_two() && (512..=(64 << 10)).contains(&b) {
                b
            } else {
                4096
            }
        }
        Err(_) => 4096,
    }
}

/// How many `block`-byte blocks of `content` hold a non-zero byte: the data blocks a sparse
/// write of it allocates (the all-zero ones stay holes).
pub fn nonzero_blocks(content: &[u8], block: u64) -> u64 {
    content
        .chunks(block.max(1) as usize)
        .filter(|c| c.iter().any(|&b| b != 0))
        .count() as u64
}

/// Write `content` to the fresh, empty `file` sparsely: only the `block`-byte blocks that hold
/// a non-zero byte are written, the all-zero ones are left as holes (which read as zeros), and
/// the file is then sized to `content.len()`. Returns the number of blocks written. The
/// environment's data area is mostly zero padding (U-Boot's `saveenv` and fw-env's encoder pad
/// with 0x00), so the field's 192 KiB image takes a few blocks (4 of the env partition's 1 KiB
/// with the field's default environment) instead of 192.
pub fn write_sparse(file: &File, content: &[u8], block: u64) -> io::Result<u64> {
    let block = block.max(1) as usize;
    let mut written = 0;
    for (i, chunk) in content.chunks(block).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            file.write_all_at(chunk, (i * block) as u64)?;
            written += 1;
        }
    }
    file.set_len(content.len() as u64)?;
    Ok(written)
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`; `None` if unknown.
fn free_bytes(dir: &Path) -> Option<u64> {
    let v = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((v.blocks_available() as u64).saturating_mul(v.fragment_size() as u64))
}

/// Bytes a replace's sparse temporary copy of `content` needs on the filesystem of `dir`: its
/// non-zero blocks plus [`TEMP_METADATA_ALLOWANCE`].
fn sparse_need(dir: &Path, content: &[u8]) -> u64 {
    let block = fs_block_size(dir);
    nonzero_blocks(content, block)
        .saturating_mul(block)
        .saturating_add(TEMP_METADATA_ALLOWANCE)
}

/// Whether the filesystem holding the env file `path` has room for the temporary copy a replace
/// writes beside it. That copy is sparse (only the blocks holding a non-zero byte are written),
/// so what it needs is its non-zero blocks plus [`TEMP_METADATA_ALLOWANCE`]. Here, before the
/// write, they are estimated from the current file as the write will leave it: bytes outside the
/// copy at `offset`..`offset + size` as they are, the copy's variables as they are (up to their
/// double NUL) and its padding as zeros (fw-env re-encodes the copy with zero padding, whatever
/// the old padding was: `mkenvimage` and `fw-env mkimage` pad with 0xff by default), plus one
/// block of growth. The write checks the exact need again ([`replace_file`]). The field's
/// 192 KiB `/uboot.env` in its 256 KiB ext4 with 36 KiB free (18 KiB for a non-root writer)
/// needs a few blocks: it is replaced, power-safely. Only when even that does not fit is the file
/// written in place, like libubootenv does; a single copy written in place is not power-safe
/// (`fw-env check` says so).
fn room_beside(path: &Path, len: u64, offset: u64, size: u64) -> bool {
    if len == 0 {
        return true;
    }
    let dir = parent_dir(path);
    let Some(free) = free_bytes(&dir) else {
        // Unknown: try the replace; a full filesystem then reports ENOSPC with its hint.
        return true;
    };
    let mut content = match current_file(path, REPLACE_MAX_FILE) {
        Ok(Some((c, _))) => c,
        // Unreadable here: the write reports why; count the file as dense meanwhile.
        _ => return free >= len.saturating_add(TEMP_METADATA_ALLOWANCE),
    };
    zero_padding(&mut content, offset, size);
    let need = sparse_need(&dir, &content).saturating_add(fs_block_size(&dir));
    free >= need
}

/// Zero the padding of the environment copy at `offset`..`offset + size` of `content`: what
/// follows the double NUL ending its variables (searched from after the CRC; a flags byte, if
/// any, is kept). A copy without one (corrupt, or not an env) is left as it is.
fn zero_padding(content: &mut [u8], offset: u64, size: u64) {
    let len = content.len();
    let start = (offset as usize).min(len);
    let end = (offset.saturating_add(size) as usize).min(len);
    let region = &mut content[start..end];
    if region.len() < 6 {
        return;
    }
    // Data from byte 4 (single) or 5 (redundant): a double NUL at 4..6 can only be a flags byte
    // 0 followed by an empty environment, so search from 5.
    if let Some(i) = region[5..].windows(2).position(|w| w == [0, 0]) {
        region[5 + i + 2..].fill(0);
    }
}

fn block_len(file: &File, path: &Path) -> Result<u64, StorageError> {
    let mut f = file;
    io::Seek::seek(&mut f, io::SeekFrom::End(0)).map_err(io_err("cannot size", path))
}

impl Medium {
    /// Resolve a configured location: resolve symbolic links, check what the path is without
    /// blocking on it, and learn its length.
    pub fn resolve(loc: &CopyLocation) -> Result<Medium, StorageError> {
        let path = real_path(&loc.device)?;
        let (len, is_block) = match open_checked(&path, true) {
            Ok(Ok((f, meta))) if meta.file_type().is_block_device() => {
                (block_len(&f, &path)?, true)
            }
            Ok(Ok((_, meta))) => (meta.len(), false),
            Ok(Err(kind)) => return Err(StorageError::Unsupported { path, kind }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && loc.offset >= 0 => (0, false),
            Err(e) => return Err(io_err("cannot open", &path)(e)),
        };
        let offset = if loc.offset < 0 {
            len.checked_sub(loc.offset.unsigned_abs())
                .ok_or(StorageError::NegativeOffset {
                    path: path.clone(),
                    offset: loc.offset,
                    len,
                    line: loc.line,
                })?
        } else {
            loc.offset as u64
        };
        let end = offset.checked_add(loc.size).ok_or(StorageError::Overflow {
            path: path.clone(),
            offset,
            size: loc.size,
            line: loc.line,
        })?;
        let mode =
            if !is_block && len <= REPLACE_MAX_FILE && room_beside(&path, len, offset, loc.size) {
                WriteMode::Replace
            } else {
                WriteMode::InPlace
            };
        if (mode == WriteMode::InPlace && len < end)
            || (mode == WriteMode::Replace && end > REPLACE_MAX_END.max(len))
        {
            return Err(StorageError::TooShort {
                path,
                len,
                offset,
                size: loc.size,
                line: loc.line,
            });
        }
        Ok(Medium {
            path,
            offset,
            size: loc.size,
            mode,
            len,
            line: loc.line,
        })
    }

    /// Config line this copy came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the copy's offset lies at or past the end of an existing, non-empty file.
    pub fn past_end(&self) -> bool {
        self.len > 0 && self.offset >= self.len
    }

    fn open(&self) -> Result<Option<(File, u64)>, StorageError> {
        match open_checked(&self.path, true) {
            Ok(Ok((f, meta))) if meta.file_type().is_block_device() => {
                let len = block_len(&f, &self.path)?;
                Ok(Some((f, len)))
            }
            Ok(Ok((f, meta))) => Ok(Some((f, meta.len()))),
            Ok(Err(kind)) => Err(StorageError::Unsupported {
                path: self.path.clone(),
                kind,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.mode == WriteMode::Replace => {
                Ok(None)
            }
            Err(e) => Err(io_err("cannot open", &self.path)(e)),
        }
    }

    /// Read the copy.
    pub fn read(&self) -> Result<Found, StorageError> {
        let Some((file, len)) = self.open()? else {
            return Ok(Found::Missing);
        };
        // Never more than the configured size (capped by the config), nor past the end.
        let available = len.saturating_sub(self.offset).min(self.size);
        let mut buf = vec![0u8; available as usize];
        file.read_exact_at(&mut buf, self.offset)
            .map_err(io_err("cannot read", &self.path))?;
        if available < self.size {
            Ok(Found::Short(buf))
        } else {
            Ok(Found::Bytes(buf))
        }
    }

    /// Read up to `len` bytes at `offset` of the medium (fewer where it ends), for diagnosing
    /// a config that does not match what is stored. `None` if it cannot be read.
    pub fn read_at(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let (file, total) = self.open().ok()??;
        let len = total.saturating_sub(offset).min(len);
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }
}

/// A write of some byte ranges of one file or device, carried out durably.
#[derive(Debug)]
pub struct Patch<'a> {
    /// `(offset, bytes)` ranges, applied in order.
    pub ranges: Vec<(u64, &'a [u8])>,
}

/// Write `patch` to `medium`, durably, in its mode.
pub fn write(medium: &Medium, patch: &Patch<'_>) -> Result<(), StorageError> {
    fault::point("before-write");
    match medium.mode {
        WriteMode::Replace => replace_file(&medium.path, patch),
        WriteMode::InPlace => write_in_place(&medium.path, patch),
    }
}

fn write_in_place(path: &Path, patch: &Patch<'_>) -> Result<(), StorageError> {
    // O_NONBLOCK: if the path became a FIFO since it was resolved, the open must not hang.
    // Read too: a file is compared with what it holds before it is written.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("cannot open for writing", path))?;
    let ft = file
        .metadata()
        .map_err(io_err("cannot stat", path))?
        .file_type();
    if !(ft.is_file() || ft.is_block_device()) {
        return Err(StorageError::Unsupported {
            path: path.to_owned(),
            kind: kind_of(&ft),
        });
    }
    for &(offset, bytes) in &patch.ranges {
        // Written only where it changes: the blocks that already hold the new bytes (most of a
        // 192 KiB env's zero padding; on a raw copy, what the env two saves ago shares with the
        // new one) are not written again. That spares the flash, and in a sparse file (fw-env's
        // replace leaves one) allocates no blocks for its holes on a filesystem that may be
        // full. The copy still ends valid only once its header block (CRC, flags) is written.
        let runs = changed_runs(&file, offset, bytes).map_err(io_err("cannot read", path))?;
        if fault::tear("copy-half-written") {
            // A card commits whole sectors: tear after the first one.
            if let Some(&(o, b)) = runs.first() {
                let _ = file.write_all_at(&b[..b.len().min(512)], o);
            }
            let _ = file.sync_data();
            fault::point("copy-half-written");
        }
        for (o, b) in runs {
            file.write_all_at(b, o)
                .map_err(io_err("cannot write", path))?;
        }
        fault::point("copy-written");
        file.sync_data().map_err(io_err("cannot sync", path))?;
        fault::point("copy-synced");
    }
    Ok(())
}

/// The block size [`changed_runs`] compares in: a page, and a multiple of every filesystem
/// block and card sector the env lives on.
const COMPARE_BLOCK: usize = 4096;

/// The parts of `bytes` (to be written at `offset` of `file`) that differ from what the file
/// holds there, block by block ([`COMPARE_BLOCK`], aligned to the file), adjacent ones joined:
/// `(offset, bytes)` runs in order. Bytes past the file's end always differ.
fn changed_runs<'a>(file: &File, offset: u64, bytes: &'a [u8]) -> io::Result<Vec<(u64, &'a [u8])>> {
    let mut old = vec![0u8; bytes.len()];
    let mut have = 0;
    while have < old.len() {
        match file.read_at(&mut old[have..], offset + have as u64) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        // Up to the next block boundary of the file.
        let end = (((offset as usize + at) / COMPARE_BLOCK + 1) * COMPARE_BLOCK - offset as usize)
            .min(bytes.len());
        if end > have || old[at..end] != bytes[at..end] {
            match runs.last_mut() {
                Some((_, e)) if *e == at => *e = end,
                _ => runs.push((at, end)),
            }
        }
        at = end;
    }
    Ok(runs
        .into_iter()
        .map(|(a, e)| (offset + a as u64, &bytes[a..e]))
        .collect())
}

/// Read the current content of an environment file about to be replaced (or nothing if it
/// does not exist), refusing what a rename must not replace: a special file, a file with
/// other hard links, a file grown too large to hold in memory.
fn current_file(
    path: &Path,
    max: u64,
) -> Result<Option<(Vec<u8>, std::fs::Metadata)>, StorageError> {
    use std::io::Read;
    let (file, meta) = match open_checked(path, false) {
        Ok(Ok(x)) => x,
        Ok(Err(kind)) => {
            return Err(StorageError::Unsupported {
                path: path.to_owned(),
                kind,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot open", path)(e)),
    };
    if meta.nlink() > 1 {
        return Err(StorageError::HardLinked {
            path: path.to_owned(),
            links: meta.nlink(),
        });
    }
    if meta.len() > max {
        return Err(StorageError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
            max,
            what: "file replaced as a whole",
        });
    }
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(max)
        .read_to_end(&mut content)
        .map_err(io_err("cannot read", path))?;
    Ok(Some((content, meta)))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Replace a whole file atomically with its old content patched.
fn replace_file(path: &Path, patch: &Patch<'_>) -> Result<(), StorageError> {
    let dir = parent_dir(path);
    let (mut content, meta) = match current_file(path, REPLACE_MAX_END)? {
        Some((c, m)) => (c, Some(m)),
        None => (Vec::new(), None),
    };
    for &(offset, bytes) in &patch.ranges {
        // Medium::resolve bounded offset + size by REPLACE_MAX_END.
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= REPLACE_MAX_END)
            .ok_or(StorageError::TooLarge {
                path: path.to_owned(),
                len: offset.saturating_add(bytes.len() as u64),
                max: REPLACE_MAX_END,
                what: "file replaced as a whole",
            })? as usize;
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset as usize..end].copy_from_slice(bytes);
    }
    // The exact need of this write's sparse temporary copy. Should the new content need more
    // room than the estimate at resolve time allowed and not fit, the existing file (which holds
    // every range) is written in place rather than failing with ENOSPC.
    if let (Some(m), Some(free)) = (meta.as_ref(), free_bytes(&dir)) {
        let fits_in_old = patch
            .ranges
            .iter()
            .all(|&(o, b)| o.saturating_add(b.len() as u64) <= m.len());
        if fits_in_old && free < sparse_need(&dir, &content) {
            return write_in_place(path, patch);
        }
    }
    commit_file(path, &dir, &content, meta.as_ref())
}

/// Replace the whole file at `path` with `content`, atomically and durably (for outputs that
/// are a complete new file, like `fw-env mkimage`'s): the old file, if any, stays intact until
/// the new one is complete, and its mode and owner are kept. A symbolic link is written
/// through (its target is replaced); a file with other hard links is refused.
pub fn replace_whole(path: &Path, content: &[u8]) -> Result<(), StorageError> {
    let path = real_path(path)?;
    let dir = parent_dir(&path);
    // The old content is not needed (max 0 would refuse it): check with a bound of its own.
    let meta = match open_checked(&path, false) {
        Ok(Ok((_, m))) if m.nlink() > 1 => {
            return Err(StorageError::HardLinked {
                path,
                links: m.nlink(),
            })
        }
        Ok(Ok((_, m))) => Some(m),
        Ok(Err(kind)) => return Err(StorageError::Unsupported { path, kind }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot open", &path)(e)),
    };
    commit_file(&path, &dir, content, meta.as_ref())
}

/// Temporary file in `dir`, fsync, old mode and owner, rename over `path`, fsync `dir`.
fn commit_file(
    path: &Path,
    dir: &Path,
    content: &[u8],
    meta: Option<&std::fs::Metadata>,
) -> Result<(), StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // One fixed name: writers are serialised by the lock, and a temporary file left by a crash
    // is replaced by the next write instead of piling up on a 256 KiB partition.
    let temp = dir.join(format!(".{name}.fw-env-tmp"));
    // Only a temporary file that exists is stale: on a read-only filesystem unlink fails with
    // EROFS whether or not the file exists, and that must not be blamed on a stale file.
    if std::fs::symlink_metadata(&temp).is_ok() {
        std::fs::remove_file(&temp).map_err(io_err(
            "cannot remove the temporary file left by an interrupted write",
            &temp,
        ))?;
    }
    let mode = meta
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_err("cannot create temporary file", &temp))?;
        // Sparse: only the blocks holding a non-zero byte take room beside the old file.
        let block = file
            .metadata()
            .map(|m| m.blksize())
            .ok()
            .filter(|b| b.is_power_of_two() && (512..=(64 << 10)).contains(b))
            .unwrap_or_else(|| fs_block_size(dir));
        if fault::tear("temp-half-written") {
            let _ = write_sparse(&file, &content[..content.len() / 2], block);
            fault::point("temp-half-written");
        }
        write_sparse(&file, content, block).map_err(io_err("cannot write", &temp))?;
        fault::point("temp-written");
        if let Some(m) = meta {
            // Keep the owner (only root can give a file away; otherwise it is ours anyway).
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("cannot set mode of", &temp))?;
        file.sync_all().map_err(io_err("cannot sync", &temp))?;
        fault::point("temp-synced");
        std::fs::rename(&temp, path).map_err(io_err("cannot rename over", path))?;
        fault::point("renamed");
        let d = File::open(dir).map_err(io_err("cannot open directory", dir))?;
        d.sync_all().map_err(io_err("cannot sync directory", dir))?;
        fault::point("dir-synced");
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_writes_only_the_blocks_that_change_and_fills_no_hole() {
        const SIZE: usize = 0x30000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uboot.env");
        // What fw-env's sparse replace leaves: the variables written, the zero padding holes.
        let mut old = vec![0u8; SIZE];
        old[..6000].fill(b'a');
        let f = File::create(&path).unwrap();
        f.set_len(SIZE as u64).unwrap();
        f.write_all_at(&old[..6000], 0).unwrap();
        f.sync_all().unwrap();
        let blocks = |p: &Path| std::fs::metadata(p).unwrap().blocks();
        let before = blocks(&path);
        assert!(before * 512 < SIZE as u64 / 4, "the test file is sparse");

        // New content: the first block changes, so does one in the middle; the rest is zeros
        // as before (holes).
        let mut new = old.clone();
        new[10] = b'b';
        new[0x10000] = b'c';
        let ranges = [(0u64, &new[..])];
        let runs = changed_runs(&File::open(&path).unwrap(), 0, &new).unwrap();
        let spans: Vec<(u64, usize)> = runs.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(spans, [(0, 4096), (0x10000, 4096)]);
        write_in_place(
            &path,
            &Patch {
                ranges: ranges.to_vec(),
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), new);
        assert!(
            blocks(&path) <= before + 8,
            "only the changed block of the holes got allocated: {} -> {} sectors",
            before,
            blocks(&path)
        );

        // Past the end of the file every byte is written (the copy must be whole), and an
        // unaligned offset compares in the file's blocks.
        let short = dir.path().join("short.env");
        std::fs::write(&short, [7u8; 5000]).unwrap();
        let data = [7u8; 9000];
        let runs = changed_runs(&File::open(&short).unwrap(), 100, &data).unwrap();
        let spans: Vec<(u64, usize)> = runs.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(
            spans,
            [(4096, 9000 - (4096 - 100))],
            "the first block is unchanged"
        );
        write_in_place(
            &short,
            &Patch {
                ranges: vec![(100, &data[..])],
            },
        )
        .unwrap();
        let got = std::fs::read(&short).unwrap();
        assert_eq!(got.len(), 9100);
        assert!(got.iter().all(|&b| b == 7));
    }

    #[test]
    fn errors_are_reported_as_what_they_are() {
        use nix::errno::Errno;
        // (errno, words the hint must contain)
        for (errno, want) in [
            (Errno::EROFS, "read-only filesystem"),
            (Errno::ENOSPC, "no space left"),
            (Errno::EACCES, "permission denied"),
            (Errno::EPERM, "permission denied"),
            (Errno::ENOENT, "mounted"),
            (Errno::EIO, "I/O error"),
        ] {
            let e = io::Error::from_raw_os_error(errno as i32);
            assert!(hint_for(&e).contains(want), "{errno}: {}", hint_for(&e));
        }
    }

    #[test]
    fn no_stale_temporary_file_is_blamed_when_there_is_none() {
        // A directory that cannot be written: creating the temporary file fails, and the
        // message is about creating it, not about a stale file.
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("missing-dir");
        let e = commit_file(&gone.join("uboot.env"), &gone, b"x", None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("cannot create temporary file"), "{msg}");
        assert!(
            !msg.contains("stale") && !msg.contains("interrupted"),
            "{msg}"
        );
    }

    /// Allocated 512-byte sectors of a file (st_blocks).
    fn allocated(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The sparse writer's file reads back byte-identical to the dense image, and it wrote
        /// exactly the blocks holding a non-zero byte.
        #[test]
        fn sparse_write_reads_back_identical(
            // Mostly zero images of any length, with runs of data anywhere (also at the end).
            len in 0usize..(40 << 10),
            runs in proptest::collection::vec((0usize..(40 << 10), 1usize..3000, 1u8..=255), 0..6),
            block in proptest::sample::select(vec![512u64, 1024, 4096]),
        ) {
            let mut img = vec![0u8; len];
            for (at, n, v) in runs {
                for b in img.iter_mut().skip(at).take(n) {
                    *b = v;
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f");
            let f = OpenOptions::new().write(true).create_new(true).open(&p).unwrap();
            let n = write_sparse(&f, &img, block).unwrap();
            drop(f);
            proptest::prop_assert_eq!(std::fs::read(&p).unwrap(), img.clone());
            let want = img
                .chunks(block as usize)
                .filter(|c| c.iter().any(|&b| b != 0))
                .count() as u64;
            proptest::prop_assert_eq!(n, want);
            proptest::prop_assert_eq!(nonzero_blocks(&img, block), want);
        }
    }

    #[test]
    fn a_192k_env_image_takes_its_data_blocks_only() {
        // The field's image: 0x30000 bytes, a few KiB of variables, zero padding.
        let vars: crate::vars::Vars = (0..60)
            .map(|i| (format!("var{i}"), "v".repeat(60)))
            .collect();
        let img = crate::codec::encode(&vars, 0x30000, crate::codec::Layout::Single, 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("uboot.env");
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap();
        let block = f.metadata().unwrap().blksize();
        let n = write_sparse(&f, &img, block).unwrap();
        f.sync_all().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), img);
        assert!(n * block <= 8 << 10, "{n} blocks of {block}");
        // Fewer sectors allocated than the dense file would take (where the filesystem keeps
        // holes; every Linux filesystem the robot or CI uses does).
        assert!(allocated(&p) * 512 < 0x30000, "{} sectors", allocated(&p));
    }

    #[test]
    fn padding_is_estimated_as_zeros() {
        // mkenvimage's default 0xff padding: the write re-encodes it as zeros.
        let mut img = vec![0xffu8; 64];
        img[..4].copy_from_slice(&[1, 2, 3, 4]);
        img[4..12].copy_from_slice(b"a=1\0b=2\0");
        img[12] = 0;
        let mut c = [vec![0xaau8; 8], img.clone(), vec![0xbb; 8]].concat();
        zero_padding(&mut c, 8, 64);
        assert_eq!(&c[..8], &[0xaa; 8], "bytes before the copy kept");
        assert_eq!(&c[8..21], &img[..13], "header and variables kept");
        assert!(c[21..72].iter().all(|&b| b == 0), "padding zeroed");
        assert_eq!(&c[72..], &[0xbb; 8], "bytes after the copy kept");
        // No double NUL (corrupt or not an env): unchanged.
        let mut d = vec![0xffu8; 64];
        zero_padding(&mut d, 0, 64);
        assert_eq!(d, vec![0xff; 64]);
    }

    #[test]
    fn huge_offsets_in_an_env_file_allocate_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let loc = CopyLocation {
            device: dir.path().join("uboot.env"),
            offset: i64::MAX - 0x4000,
            size: 0x4000,
            sector_size: None,
            sectors: None,
            line: 1,
        };
        let e = Medium::resolve(&loc).unwrap_err();
        assert!(matches!(e, StorageError::TooShort { .. }), "{e}");
    }
}
