//! Opening the environment as the command-line tools describe it: a config file, a defaults
//! file (given, or the default path when it exists), a lock file and its timeout.
//!
//! The library reads no process environment variable: the tools (`fw-env`'s CLI, `bootcount`)
//! resolve `$FW_ENV_LOCK_FILE` and `$FW_ENV_LOCK_TIMEOUT` and pass what they found to
//! [`OpenOptions::with_lock_vars`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::defaults::{Defaults, DefaultsFrom};
use crate::lock;
use crate::store::{Error, Store};

/// Environment variable naming another lock file (tests, and systems without `/var/lock`).
pub const LOCK_FILE_VAR: &str = "FW_ENV_LOCK_FILE";
/// Environment variable giving the lock timeout in seconds.
pub const LOCK_TIMEOUT_VAR: &str = "FW_ENV_LOCK_TIMEOUT";
/// The longest lock timeout accepted, in seconds.
pub const MAX_LOCK_TIMEOUT_SECS: f64 = 3600.0;
/// Where the default environment is read from when none is given and the file exists
/// (libubootenv's default; U-Boot's build writes it as `u-boot-initial-env`).
pub const DEFAULT_DEFAULTS_PATH: &str = "/etc/u-boot-initial-env";

/// What to open. [`Default`]: `/etc/fw_env.config`, the defaults at
/// [`DEFAULT_DEFAULTS_PATH`] if present, the shared lock file, 10 s.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The `fw_env.config` file.
    pub config: PathBuf,
    /// The defaults file; `None`: [`DEFAULT_DEFAULTS_PATH`] when it exists, else no defaults.
    pub defaults: Option<PathBuf>,
    /// The lock file shared with the other writers.
    pub lock_file: PathBuf,
    /// How long to wait for the lock.
    pub lock_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            config: PathBuf::from(DEFAULT_CONFIG_PATH),
            defaults: None,
            lock_file: PathBuf::from(lock::DEFAULT_LOCK_PATH),
            lock_timeout: lock::DEFAULT_TIMEOUT,
        }
    }
}

impl OpenOptions {
    /// Apply the values of `$FW_ENV_LOCK_FILE` and `$FW_ENV_LOCK_TIMEOUT` as the caller found
    /// them (unset: keep). A timeout that is not a number of seconds from 0 to
    /// [`MAX_LOCK_TIMEOUT_SECS`] is an error, not ignored.
    pub fn with_lock_vars(
        mut self,
        lock_file: Option<OsString>,
        lock_timeout: Option<OsString>,
    ) -> Result<OpenOptions, Error> {
        if let Some(file) = lock_file {
            self.lock_file = PathBuf::from(file);
        }
        if let Some(raw) = lock_timeout {
            self.lock_timeout = parse_lock_timeout(&raw)
                .map_err(|(value, reason)| Error::LockTimeout { value, reason })?;
        }
        Ok(self)
    }

    /// Read the config and the defaults file, and open what they describe.
    pub fn open(&self) -> Result<Store, Error> {
        let store = Store::open(Config::load(&self.config)?)
            .with_lock_file(Some(self.lock_file.clone()))
            .with_lock_timeout(self.lock_timeout);
        let defaults = match &self.defaults {
            Some(p) => Some(Defaults::load(p, DefaultsFrom::Option)?),
            // symlink_metadata: a dangling link is reported by the load, not taken for "absent".
            None if std::fs::symlink_metadata(DEFAULT_DEFAULTS_PATH).is_ok() => Some(
                Defaults::load(Path::new(DEFAULT_DEFAULTS_PATH), DefaultsFrom::DefaultPath)?,
            ),
            None => None,
        };
        Ok(store.with_defaults_file(defaults))
    }
}

fn parse_lock_timeout(raw: &std::ffi::OsStr) -> Result<Duration, (String, &'static str)> {
    let shown = raw.to_string_lossy().into_owned();
    let Some(text) = raw.to_str() else {
        return Err((shown, "not text"));
    };
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| (shown.clone(), "not a number of seconds"))?;
    if !secs.is_finite() {
        return Err((shown, "not a finite number"));
    }
    if secs < 0.0 {
        return Err((shown, "negative"));
    }
    if secs > MAX_LOCK_TIMEOUT_SECS {
        return Err((shown, "longer than an hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_values() {
        let ok = |v: &str| parse_lock_timeout(std::ffi::OsStr::new(v));
        assert_eq!(ok("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(ok("0"), Ok(Duration::ZERO));
        assert_eq!(ok("3600"), Ok(Duration::from_secs(3600)));
        // Each used to be ignored (or panicked in Duration::from_secs_f64).
        for bad in [
            "", "abc", "-1", "inf", "-inf", "NaN", "1e300", "3600.5", "10s",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
        let o = OpenOptions::default().with_lock_vars(None, None).unwrap();
        assert_eq!(o.lock_timeout, lock::DEFAULT_TIMEOUT);
        let e = OpenOptions::default()
            .with_lock_vars(Some("/l".into()), Some("abc".into()))
            .unwrap_err();
        assert!(e.to_string().contains("FW_ENV_LOCK_TIMEOUT=\"abc\""), "{e}");
    }
}
