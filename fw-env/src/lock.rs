//! The lock shared with U-Boot's `tools/env` and libubootenv: `flock` on
//! `/var/lock/fw_printenv.lock`, so our tools, SWUpdate and the C tools never interleave a
//! read-modify-write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// The lock file both C tools use.
pub const DEFAULT_LOCK_PATH: &str = "/var/lock/fw_printenv.lock";
/// How long to wait for another holder before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Failure to take the lock; nothing was read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file cannot be opened or created.
    #[error("cannot open lock file {path}: {source} (the directory must exist and be writable; set FW_ENV_LOCK_FILE to use another)")]
    Open {
        /// Lock file path.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// Another process held the lock for longer than the timeout.
    #[error("lock {path} held by another process for more than {waited:?}: is a fw_setenv, fw-env or SWUpdate stuck? (`fuser {path}` names it)")]
    Timeout {
        /// Lock file path.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock path is not a regular file (a FIFO would block the open forever).
    #[error("lock file {path} is not a regular file ({kind}); remove it or set FW_ENV_LOCK_FILE to use another")]
    NotRegular {
        /// Lock file path.
        path: PathBuf,
        /// What it is.
        kind: String,
    },
    /// `flock` itself failed.
    #[error("cannot lock {path}: {source}")]
    Flock {
        /// Lock file path.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct EnvLock {
    _lock: Flock<File>,
}

fn not_regular(path: &Path, ft: &std::fs::FileType) -> LockError {
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "a special file"
    };
    LockError::NotRegular {
        path: path.to_owned(),
        kind: kind.to_owned(),
    }
}

/// Take the exclusive lock on `path`, retrying until `timeout`.
pub fn acquire(path: &Path, timeout: Duration) -> Result<EnvLock, LockError> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(not_regular(path, &meta.file_type()));
        }
    }
    // O_NONBLOCK: a FIFO at the lock path must not block the open (the timeout could not
    // bound that wait); what was opened is then checked to be a regular file.
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })?;
    let ft = file
        .metadata()
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })?
        .file_type();
    if !ft.is_file() {
        return Err(not_regular(path, &ft));
    }
    let start = Instant::now();
    let mut file = file;
    // Poll rather than block, so the timeout needs no signals or threads. The C tools wait
    // in a blocking flock() and are woken first when the lock is released; a slow poll would
    // starve behind a busy peer, so start at 1 ms and back off only to 8 ms.
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(EnvLock { _lock: lock }),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) | Err((f, nix::errno::Errno::EINTR)) => {
                if start.elapsed() >= timeout {
                    return Err(LockError::Timeout {
                        path: path.to_owned(),
                        waited: start.elapsed(),
                    });
                }
                file = f;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(8));
            }
            Err((_, source)) => {
                return Err(LockError::Flock {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}
