//! Opening what partctl is pointed at without hanging and without trusting sizes: a target is a
//! block device or a regular file, checked with `stat` before the open and with `fstat` on the
//! opened descriptor (opened with `O_NONBLOCK`, so even a FIFO swapped in between cannot block
//! the open); inputs (layout, backup file, env text) are regular files read up to a cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest card partctl accepts: 128 TiB (SDUC's limit), 2^38 sectors.
pub const MAX_CARD_BYTES: u64 = 1 << 47;

/// A layout file holds at most this much.
pub const MAX_LAYOUT_BYTES: u64 = 1 << 20;

/// An env text file (`u-boot-initial-env`) holds at most this much.
pub const MAX_ENV_TEXT_BYTES: u64 = 16 << 20;

fn kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn refuse(path: &Path, what: &str, ft: &std::fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {}: give {what}", path.display(), kind(ft)),
    )
}

/// Open `path` only if it is one of the accepted kinds (`block`: block devices too), without
/// blocking: `stat` first, then open with `O_NONBLOCK`, then `fstat` to confirm it is still
/// the same file; then the descriptor is switched back to blocking I/O.
fn open_checked(path: &Path, write: bool, block: bool, what: &str) -> io::Result<File> {
    let ok = |ft: &std::fs::FileType| ft.is_file() || (block && ft.is_block_device());
    let before = std::fs::metadata(path)?;
    if !ok(&before.file_type()) {
        return Err(refuse(path, what, &before.file_type()));
    }
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let after = f.metadata()?;
    if !ok(&after.file_type()) {
        return Err(refuse(path, what, &after.file_type()));
    }
    if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} changed while it was being opened: try again",
                path.display()
            ),
        ));
    }
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(io::Error::from)?;
    Ok(f)
}

/// Open a card: a block device or an image file (anything else, e.g. a FIFO, is refused
/// before any blocking open).
pub fn open_target(path: &Path, write: bool) -> io::Result<File> {
    open_checked(
        path,
        write,
        true,
        "a block device (e.g. /dev/mmcblk0) or an image file",
    )
}

/// Open an input that must be a regular file (a raw partition image).
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_checked(path, false, false, "a regular file")
}

/// Read a regular file of at most `max` bytes.
pub fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_before_they_can_block() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        for write in [false, true] {
            let e = open_target(&fifo, write).unwrap_err().to_string();
            assert!(
                e.ends_with(
                    "fifo is a FIFO: give a block device (e.g. /dev/mmcblk0) or an image file"
                ),
                "{e}"
            );
        }
        assert!(read_small(&fifo, 10)
            .unwrap_err()
            .to_string()
            .contains("is a FIFO: give a regular file"));
        assert!(open_target(t.path(), false)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        assert!(open_target(Path::new("/dev/null"), false)
            .unwrap_err()
            .to_string()
            .contains("is a character device"));
        let f = t.path().join("f");
        std::fs::write(&f, [1u8; 11]).unwrap();
        assert!(read_small(&f, 10)
            .unwrap_err()
            .to_string()
            .contains("larger than 10 bytes"));
        assert_eq!(read_small(&f, 11).unwrap().len(), 11);
        assert!(open_target(&f, true).is_ok());
    }
}
