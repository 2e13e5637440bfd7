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

/// Take the exclusive lock on `path`, retrying until `timeout`.
pub fn acquire(path: &Path, timeout: Duration) -> Result<EnvLock, LockError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })?;
    let start = Instant::now();
    let mut file = file;
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
                std::thread::sleep(Duration::from_millis(20));
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
