//! Reading small configuration files without hanging or exhausting memory: the file is opened
//! with `O_NONBLOCK` (a FIFO does not block the open), must then be a regular file (`fstat` on
//! the open descriptor, so nothing can be swapped in between), and is read up to a cap.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most any configuration file (slot file, kernel command line) may hold: 64 KiB.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Read `path` as text: a regular file of at most `max` bytes, in UTF-8. `/proc` files, which
/// report size 0, are regular files and read normally.
pub fn read_small_text(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device node"
        } else {
            "not a regular file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("it is larger than {max} bytes: not a configuration file"),
        ));
    }
    String::from_utf8(buf)
        .map_err(|e| Error::new(ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_huge_files_are_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = read_small_text(&fifo, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
        let e = read_small_text(t.path(), 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let e = read_small_text(Path::new("/dev/zero"), 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a device node, not a regular file");
        let big = t.path().join("big");
        std::fs::write(&big, vec![b'a'; 101]).unwrap();
        assert!(read_small_text(&big, 100)
            .unwrap_err()
            .to_string()
            .contains("larger than 100 bytes"));
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(read_small_text(&big, 100)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        std::fs::write(&big, "ok").unwrap();
        assert_eq!(read_small_text(&big, 100).unwrap(), "ok");
        assert!(
            !read_small_text(Path::new("/proc/cmdline"), MAX_CONFIG_BYTES)
                .unwrap()
                .is_empty()
        );
    }
}
