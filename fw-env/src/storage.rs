//! Reading and writing environment copies on files and block devices: the only module that
//! touches storage.
//!
//! Two ways to write, chosen by what the path is:
//! - **Replace** (an environment *file*, like the board's `/bootenv/uboot.env`: a regular file
//!   of at most [`REPLACE_MAX_FILE`] bytes, or a missing one): the complete new file is written
//!   to a temporary file in the same directory, fsynced, given the old file's mode and owner,
//!   renamed over the old one, and the directory is fsynced. Bytes outside the environment
//!   region are carried over. A crash leaves the old file or the new one, never a mix.
//! - **In place** (block devices, and large image files such as a whole SD-card image): the
//!   copy is written with `pwrite` at its offset and `fdatasync`ed. With two copies only the
//!   inactive one is written, so the current copy stays intact until the new one is durable.
//!   A single copy written in place cannot survive a power cut mid-write: `fw-env check`
//!   says so.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
    #[error("{path} is {len} bytes, shorter than offset {offset:#x} + env size {size:#x}: check the device and offset in the config (line {line})")]
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
    #[error("{path}: offset {offset} counts back past the start of a {len}-byte device (config line {line})")]
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
    /// Neither a regular file nor a block device.
    #[error("{path} is neither a regular file nor a block device; point the config at the env file or device")]
    Unsupported {
        /// The path.
        path: PathBuf,
    },
}

fn hint_for(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            " (permission denied: run as root, or check the file's mode)"
        }
        io::ErrorKind::NotFound => {
            " (is the env partition mounted? the board mounts it at /bootenv)"
        }
        _ => match e.raw_os_error() {
            Some(libc_erofs) if libc_erofs == nix::errno::Errno::EROFS as i32 => {
                " (read-only filesystem: remount it read-write)"
            }
            Some(enospc) if enospc == nix::errno::Errno::ENOSPC as i32 => {
                " (no space left to write the new copy beside the old one)"
            }
            _ => "",
        },
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

fn device_len(file: &File, path: &Path) -> Result<(u64, bool), StorageError> {
    let meta = file.metadata().map_err(io_err("cannot stat", path))?;
    let ft = meta.file_type();
    if ft.is_file() {
        Ok((meta.len(), false))
    } else if ft.is_block_device() {
        let mut f = file;
        let len =
            io::Seek::seek(&mut f, io::SeekFrom::End(0)).map_err(io_err("cannot size", path))?;
        Ok((len, true))
    } else {
        Err(StorageError::Unsupported {
            path: path.to_owned(),
        })
    }
}

impl Medium {
    /// Resolve a configured location: open it to learn its kind and length.
    pub fn resolve(loc: &CopyLocation) -> Result<Medium, StorageError> {
        let path = &loc.device;
        let (len, is_block) = match File::open(path) {
            Ok(f) => device_len(&f, path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && loc.offset >= 0 => (0, false),
            Err(e) => return Err(io_err("cannot open", path)(e)),
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
        let mode = if !is_block && len <= REPLACE_MAX_FILE {
            WriteMode::Replace
        } else {
            WriteMode::InPlace
        };
        if mode == WriteMode::InPlace && len < offset + loc.size {
            return Err(StorageError::TooShort {
                path: path.clone(),
                len,
                offset,
                size: loc.size,
                line: loc.line,
            });
        }
        Ok(Medium {
            path: path.clone(),
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

    /// Read the copy.
    pub fn read(&self) -> Result<Found, StorageError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.mode == WriteMode::Replace => {
                return Ok(Found::Missing)
            }
            Err(e) => return Err(io_err("cannot open", &self.path)(e)),
        };
        let available = self.len.saturating_sub(self.offset).min(self.size);
        let mut buf = vec![0u8; available as usize];
        file.read_exact_at(&mut buf, self.offset)
            .map_err(io_err("cannot read", &self.path))?;
        if (available) < self.size {
            Ok(Found::Short(buf))
        } else {
            Ok(Found::Bytes(buf))
        }
    }

    /// Read `len` bytes at `offset` of the medium, for diagnosing a size mismatch. Returns
    /// `None` where the medium is shorter.
    pub fn read_at(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let file = File::open(&self.path).ok()?;
        if offset + len > self.len {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
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
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("cannot open for writing", path))?;
    for &(offset, bytes) in &patch.ranges {
        if fault::tear("copy-half-written") {
            // A card commits whole sectors: tear after the first one.
            let half = &bytes[..bytes.len().min(512)];
            let _ = file.write_all_at(half, offset);
            let _ = file.sync_data();
            fault::point("copy-half-written");
        }
        file.write_all_at(bytes, offset)
            .map_err(io_err("cannot write", path))?;
        fault::point("copy-written");
        file.sync_data().map_err(io_err("cannot sync", path))?;
        fault::point("copy-synced");
    }
    Ok(())
}

/// Replace a whole file atomically with its old content patched.
fn replace_file(path: &Path, patch: &Patch<'_>) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let (mut content, meta) = match std::fs::read(path) {
        Ok(c) => (
            c,
            Some(std::fs::metadata(path).map_err(io_err("cannot stat", path))?),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(io_err("cannot read", path)(e)),
    };
    for &(offset, bytes) in &patch.ranges {
        let end = offset as usize + bytes.len();
        if content.len() < end {
            content.resize(end, 0);
        }
        content[offset as usize..end].copy_from_slice(bytes);
    }
    commit_file(path, &dir, &content, meta.as_ref())
}

/// Replace the whole file at `path` with `content`, atomically and durably (for outputs that
/// are a complete new file, like `fw-env mkimage`'s): the old file, if any, stays intact until
/// the new one is complete, and its mode and owner are kept.
pub fn replace_whole(path: &Path, content: &[u8]) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let meta = std::fs::metadata(path).ok();
    commit_file(path, &dir, content, meta.as_ref())
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
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot remove stale temporary file", &temp)(e)),
    }
    let mode = meta
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_err("cannot create temporary file", &temp))?;
        if fault::tear("temp-half-written") {
            let _ = file.write_all(&content[..content.len() / 2]);
            fault::point("temp-half-written");
        }
        file.write_all(content)
            .map_err(io_err("cannot write", &temp))?;
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
