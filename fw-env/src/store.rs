//! An environment as configured: read a snapshot, or apply changes as one durable write.
//!
//! A [`Store`] is the I/O around the pure core in [`crate::plan`]: every operation takes the
//! shared lock, reads every copy afresh, lets [`plan::select`] pick the current one by U-Boot's
//! rules, and (for a write) lets [`plan::plan_write`] decide what to write where, then carries
//! that plan out. A write that changes nothing, or an empty change set, writes nothing: flash
//! wear is counted per boot on this robot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::{self, Layout};
use crate::config::{Config, ConfigError};
use crate::defaults::Defaults;
use crate::flags::FlagsError;
use crate::lock::{self, LockError};
use crate::plan::{self, Policy, Raw, RawCopy, WritePlan};
use crate::redundant::FlagScheme;
use crate::storage::{self, Found, Medium, Patch, StorageError, WriteMode};
use crate::vars::{Changes, NameError, Vars};

use crate::open::{LOCK_TIMEOUT_VAR, MAX_LOCK_TIMEOUT_SECS};

/// Anything that can go wrong reading or writing an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is missing or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A file or device failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A variable name is not acceptable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// `.flags` forbids a change.
    #[error(transparent)]
    Flags(#[from] FlagsError),
    /// The new environment does not fit.
    #[error("{device}: environment full: needs {needed} bytes, {available} available (env size {size:#x}); unset unused variables or enlarge CONFIG_ENV_SIZE and the config together")]
    Full {
        /// Where it was to be written.
        device: PathBuf,
        /// Bytes needed in the data area.
        needed: usize,
        /// Bytes of the data area.
        available: usize,
        /// Configured copy size.
        size: u64,
    },
    /// No copy is valid and no defaults are configured: a write would leave U-Boot an
    /// environment holding only the new variables (no `bootcmd`), so it is refused.
    #[error("no valid environment in {devices} and no default environment configured: refusing to write one that holds only the new variables (U-Boot would stop at its prompt without bootcmd); give the board's defaults with -f/--defaults FILE or install them as /etc/u-boot-initial-env (u-boot-initial-env text, as U-Boot's build writes it)")]
    NoDefaults {
        /// The configured copies.
        devices: String,
    },
    /// No copy is valid and the defaults a write would start from cannot boot.
    #[error("no valid environment in {devices}, and the {origin} cannot replace it: {reasons}; refusing to write an environment U-Boot could not boot. Fix that file (it must describe U-Boot's whole default environment) or give the right one with -f/--defaults FILE")]
    UnusableDefaults {
        /// The configured copies.
        devices: String,
        /// Where the defaults came from.
        origin: String,
        /// What is wrong with them.
        reasons: String,
    },
    /// The lock timeout variable is not a usable number of seconds.
    #[error("{LOCK_TIMEOUT_VAR}={value:?}: {reason}; give seconds from 0 to {MAX_LOCK_TIMEOUT_SECS}, e.g. {LOCK_TIMEOUT_VAR}=10, or unset it (default 10)")]
    LockTimeout {
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An environment is stored where the config does not expect it (another layout, offset or
    /// size); writing what the config says would destroy it.
    #[error("{device}: found {found}, but {config}:{line} says {expected}; fix the config (writing now would destroy that environment)")]
    LayoutMismatch {
        /// The file or device.
        device: PathBuf,
        /// What was found, in words.
        found: String,
        /// What the config says, in words.
        expected: String,
        /// The config file.
        config: PathBuf,
        /// Its line.
        line: usize,
    },
    /// The stored environment is valid at another size than the config says.
    #[error("{device}: the environment there is valid with size {found:#x}, but {config}:{line} says {configured:#x}; fix the env size column (writing now would destroy it)")]
    SizeMismatch {
        /// The file or device.
        device: PathBuf,
        /// Size in the config.
        configured: u64,
        /// Size at which the CRC matches.
        found: u64,
        /// The config file.
        config: PathBuf,
        /// Its line.
        line: usize,
    },
}

/// The state of one copy as read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum CopyStatus {
    /// CRC good.
    Valid {
        /// Flags byte (redundant layout).
        flags: Option<u8>,
        /// Data bytes in use, terminator included.
        used: usize,
        /// Data bytes free.
        free: usize,
    },
    /// CRC does not match.
    BadCrc {
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
        /// Flags byte as found (redundant layout).
        flags: Option<u8>,
    },
    /// The environment file does not exist.
    Missing,
    /// The environment file is shorter than a copy.
    Short {
        /// Bytes present from the offset.
        len: usize,
    },
    /// The file ends at or before the copy's offset: nothing of the copy is there.
    PastEnd {
        /// Length of the file.
        file_len: u64,
    },
}

/// One copy's report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// 0 or 1.
    pub index: usize,
    /// File or device.
    pub device: PathBuf,
    /// Resolved offset.
    pub offset: u64,
    /// Copy size.
    pub size: u64,
    /// How it is written.
    pub write_mode: WriteMode,
    /// What was found.
    pub status: CopyStatus,
    /// Whether this is the copy in use.
    pub active: bool,
}

/// Where a snapshot's variables came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A valid copy (its index).
    Copy(usize),
    /// No valid copy: the configured default environment.
    Defaults,
    /// No valid copy and no defaults configured: nothing.
    Empty,
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The variables, exactly as stored (see [`codec::uboot_view`] for U-Boot's view).
    pub vars: Vars,
    /// Where they came from.
    pub source: Source,
    /// Every copy, as found.
    pub copies: Vec<CopyReport>,
    /// Single or redundant.
    pub layout: Layout,
    /// The entries of the copy in use as stored, in stored order (defaults: sorted).
    pub entries: Vec<Vec<u8>>,
    /// Where the defaults came from, when they are in use.
    pub defaults_origin: Option<String>,
    /// Why the defaults in use could not be written (a write is then refused).
    pub defaults_problem: Option<String>,
}

impl Snapshot {
    /// Whether a valid copy was found (U-Boot would not fall back to its defaults).
    pub fn is_valid(&self) -> bool {
        matches!(self.source, Source::Copy(_))
    }

    /// A one-line warning when no copy is valid, for stderr.
    pub fn warning(&self) -> Option<String> {
        let where_ = self
            .copies
            .iter()
            .map(|c| c.device.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        let origin = self
            .defaults_origin
            .as_deref()
            .unwrap_or("default environment");
        let why = self
            .copies
            .iter()
            .map(|c| match c.status {
                CopyStatus::Valid { .. } => "valid",
                CopyStatus::BadCrc { .. } => "bad CRC",
                CopyStatus::Missing => "missing",
                CopyStatus::Short { .. } => "shorter than a copy",
                CopyStatus::PastEnd { .. } => "ends before the configured offset",
            })
            .collect::<Vec<_>>()
            .join(" / ");
        match (&self.source, &self.defaults_problem) {
            (Source::Copy(_), _) => None,
            (Source::Defaults, None) => Some(format!(
                "Warning: no valid environment in {where_} ({why}); using the {origin}"
            )),
            (Source::Defaults, Some(problem)) => Some(format!(
                "Warning: no valid environment in {where_} ({why}); showing the {origin}, but it is not usable ({problem}): a write will be refused"
            )),
            (Source::Empty, _) => Some(format!(
                "Warning: no valid environment in {where_} ({why}) and no defaults file: U-Boot boots its compiled-in defaults; a write will be refused until the defaults are given (-f FILE or /etc/u-boot-initial-env)"
            )),
        }
    }

    /// The flags byte of the copy in use.
    pub fn active_flags(&self) -> Option<u8> {
        let Source::Copy(i) = self.source else {
            return None;
        };
        match self.copies[i].status {
            CopyStatus::Valid { flags, .. } => flags,
            _ => None,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriteReport {
    /// Whether anything was written (false when the changes changed nothing).
    pub written: bool,
    /// The copy written.
    pub copy: Option<usize>,
    /// The flags byte it was given (redundant layout).
    pub flags: Option<u8>,
    /// Data bytes in use afterwards.
    pub used: usize,
}

/// A configured environment.
#[derive(Debug, Clone)]
pub struct Store {
    config: Config,
    policy: Policy,
    lock_path: Option<PathBuf>,
    lock_timeout: Duration,
}

impl Store {
    /// An environment as `config` describes it: the shared lock file
    /// (`/var/lock/fw_printenv.lock`), 10 s lock timeout, counter flags, no defaults. See
    /// [`crate::OpenOptions`] to open it as the command-line tools do.
    pub fn open(config: Config) -> Store {
        Store {
            config,
            policy: Policy::default(),
            lock_path: Some(PathBuf::from(lock::DEFAULT_LOCK_PATH)),
            lock_timeout: lock::DEFAULT_TIMEOUT,
        }
    }

    /// Read the config file at `path` and open what it describes.
    pub fn from_config_file(path: impl AsRef<Path>) -> Result<Store, Error> {
        Ok(Store::open(Config::load(path)?))
    }

    /// Use another lock file, or none (`None`: only for single-process tools and tests).
    pub fn with_lock_file(mut self, path: Option<PathBuf>) -> Store {
        self.lock_path = path;
        self
    }

    /// How long to wait for the lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Store {
        self.lock_timeout = timeout;
        self
    }

    /// The environment used when no copy is valid (U-Boot's compiled-in default environment,
    /// as `u-boot-initial-env` text describes it), built in code. A write starting from it is
    /// refused unless it is usable (see [`crate::defaults`]).
    pub fn with_defaults(mut self, defaults: Option<Vars>) -> Store {
        self.policy.defaults = defaults.map(Defaults::from_vars);
        self
    }

    /// The default environment read from a file ([`Defaults::load`]), which
    /// messages name with how it was chosen.
    pub fn with_defaults_file(mut self, defaults: Option<Defaults>) -> Store {
        self.policy.defaults = defaults;
        self
    }

    /// Variables the defaults must define for a write to start from them, besides `bootcmd`
    /// (`bootcount` requires its policy's variables); `by` names who needs them in messages.
    pub fn with_required_defaults<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
        by: &str,
    ) -> Store {
        self.policy.required = names.into_iter().map(Into::into).collect();
        self.policy.required_by = by.to_owned();
        self
    }

    /// The flag scheme of a redundant environment.
    pub fn with_flag_scheme(mut self, scheme: FlagScheme) -> Store {
        self.policy.scheme = scheme;
        self
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The defaults in use, if any.
    pub fn defaults(&self) -> Option<&Vars> {
        self.policy.defaults.as_ref().map(|d| &d.vars)
    }

    /// Why a write starting from the defaults would be refused (`None`: no defaults, or usable).
    pub fn defaults_problem(&self) -> Option<String> {
        self.policy.defaults_problem()
    }

    fn layout(&self) -> Layout {
        if self.config.is_redundant() {
            Layout::Redundant
        } else {
            Layout::Single
        }
    }

    fn lock(&self) -> Result<Option<lock::EnvLock>, Error> {
        match &self.lock_path {
            Some(p) => Ok(Some(lock::acquire(p, self.lock_timeout)?)),
            None => Ok(None),
        }
    }

    /// Read the environment (under the lock).
    pub fn read(&self) -> Result<Snapshot, Error> {
        let _lock = self.lock()?;
        Ok(self.read_unlocked()?.0)
    }

    /// Read every copy, then [`plan::select`]. With no valid copy, look for one where the config
    /// does not expect it before falling back on the defaults.
    fn read_unlocked(&self) -> Result<(Snapshot, Vec<Medium>), Error> {
        self.config.validate()?;
        let mut media = Vec::new();
        let mut raw = Vec::new();
        for loc in &self.config.copies {
            let medium = Medium::resolve(loc)?;
            let found = match medium.read()? {
                Found::Missing => Raw::Missing,
                Found::Short(_) if medium.past_end() => Raw::PastEnd {
                    file_len: medium.len,
                },
                Found::Short(b) => Raw::Short(b),
                Found::Bytes(b) => Raw::Bytes(b),
            };
            raw.push(RawCopy {
                device: medium.path.clone(),
                offset: medium.offset,
                size: medium.size,
                write_mode: medium.mode,
                found,
            });
            media.push(medium);
        }
        self.check_overlap(&media)?;
        let snapshot = plan::select(self.layout(), &self.policy, &raw);
        if !snapshot.is_valid() {
            self.check_layout_mismatch(&media, snapshot.layout)?;
        }
        Ok((snapshot, media))
    }

    /// Two copies must not share bytes, judged on the resolved files (symbolic links
    /// followed) and offsets (negative ones counted from the end).
    fn check_overlap(&self, media: &[Medium]) -> Result<(), Error> {
        if let [a, b] = media {
            if a.path == b.path && a.offset < b.offset + b.size && b.offset < a.offset + a.size {
                return Err(ConfigError::Overlap {
                    path: self.config.path.clone(),
                    device: a.path.clone(),
                    first: format!(
                        "{:#x}..{:#x} and {:#x}..{:#x}",
                        a.offset,
                        a.offset + a.size,
                        b.offset,
                        b.offset + b.size
                    ),
                    first_line: a.line(),
                    second_line: b.line(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// With no valid copy where the config says, look (cheaply: bounded reads, a few CRCs) for
    /// a valid environment where the config does not expect one: another size at the same
    /// offset, the other layout (a single-copy environment under a redundant config or the
    /// reverse), or another offset of the same file (0, or a multiple of the size). A config
    /// mistake must not lead to a write that destroys it.
    fn check_layout_mismatch(&self, media: &[Medium], layout: Layout) -> Result<(), Error> {
        let other = match layout {
            Layout::Single => Layout::Redundant,
            Layout::Redundant => Layout::Single,
        };
        let describe = |l: Layout| match l {
            Layout::Single => "single-copy",
            Layout::Redundant => "redundant (flags byte after the CRC)",
        };
        let configured = match layout {
            Layout::Single => "one copy (non-redundant)",
            Layout::Redundant => "two copies (redundant)",
        };
        let valid = |bytes: &[u8], l: Layout| {
            bytes.len() >= l.header_len() + 2 && codec::decode(bytes, l).is_ok()
        };
        for (medium, loc) in media.iter().zip(&self.config.copies) {
            let mismatch = |found: String, expected: String| Error::LayoutMismatch {
                device: medium.path.clone(),
                found,
                expected,
                config: self.config.path.clone(),
                line: loc.line,
            };
            let size = medium.size;
            // Sizes U-Boot boards use, the board's 0x30000, and what the file's length implies.
            let mut sizes: Vec<u64> = (10..=20).map(|p| 1u64 << p).collect();
            sizes.extend([0x3000, 0x6000, 0x18000, 0x30000, 0x60000]);
            if medium.mode == WriteMode::Replace && medium.len > medium.offset {
                sizes.push(medium.len - medium.offset);
            }
            sizes.retain(|&s| s != size && s <= crate::config::MAX_ENV_SIZE);
            sizes.sort_unstable();
            sizes.dedup();
            let window = sizes.last().copied().unwrap_or(0).max(size);
            if let Some(bytes) = medium.read_at(medium.offset, window) {
                if bytes.len() as u64 >= size && valid(&bytes[..size as usize], other) {
                    return Err(mismatch(
                        format!("a valid {} environment of size {size:#x}", describe(other)),
                        configured.to_string(),
                    ));
                }
                for &s in &sizes {
                    let Some(b) = bytes.get(..s as usize) else {
                        break;
                    };
                    if valid(b, layout) {
                        return Err(Error::SizeMismatch {
                            device: medium.path.clone(),
                            configured: size,
                            found: s,
                            config: self.config.path.clone(),
                            line: loc.line,
                        });
                    }
                    if valid(b, other) {
                        return Err(mismatch(
                            format!("a valid {} environment of size {s:#x}", describe(other)),
                            format!("{configured} of size {size:#x}"),
                        ));
                    }
                }
            }
            // Other offsets of the same file or device: 0, and (small files) multiples of the
            // size, except where the config puts a copy.
            let mut offsets = vec![0u64];
            if medium.mode == WriteMode::Replace {
                offsets.extend((1..=8).map(|k| k * size));
            }
            offsets.retain(|&o| {
                o.checked_add(size).is_some_and(|end| end <= medium.len)
                    && !media.iter().any(|m| m.path == medium.path && m.offset == o)
            });
            for o in offsets {
                let Some(b) = medium.read_at(o, size) else {
                    continue;
                };
                for l in [layout, other] {
                    if b.len() as u64 == size && valid(&b, l) {
                        return Err(mismatch(
                            format!("a valid {} environment at offset {o:#x}", describe(l)),
                            format!("offset {:#x}", medium.offset),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Apply `changes` as one write (under the lock). Each change is checked against `.flags`
    /// as it is applied; any refusal writes nothing.
    pub fn apply(&self, changes: &Changes) -> Result<WriteReport, Error> {
        self.update(|_| Ok::<_, Error>((changes.clone(), ())))
            .map(|((), r)| r)
    }

    /// Read, let `decide` compute changes from the snapshot, and write them: all under one
    /// lock, so nobody changes the environment between the read and the write.
    pub fn update<T, E>(
        &self,
        decide: impl FnOnce(&Snapshot) -> Result<(Changes, T), E>,
    ) -> Result<(T, WriteReport), E>
    where
        E: From<Error>,
    {
        let _lock = self.lock()?;
        let (snapshot, media) = self.read_unlocked()?;
        let (changes, value) = decide(&snapshot)?;
        let plan = plan::plan_write(&snapshot, &changes, &self.policy)?;
        Self::execute(&media, &plan)?;
        Ok((value, plan.report))
    }

    /// Carry out a plan: each step one durable write, in order.
    fn execute(media: &[Medium], plan: &WritePlan) -> Result<(), Error> {
        for (n, step) in plan.steps.iter().enumerate() {
            let patch = Patch {
                ranges: step
                    .ranges
                    .iter()
                    .map(|(o, b)| (*o, b.as_slice()))
                    .collect(),
            };
            storage::write(&media[step.copy], &patch)?;
            if n > 0 {
                crate::fault::point("obsolete-marked");
            }
        }
        Ok(())
    }
}

/// Parse defaults text (`u-boot-initial-env`, the format `mkenvimage` reads) into variables.
pub fn parse_defaults_text(text: &[u8]) -> Vars {
    crate::defaults::parse_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redundant;

    /// The smallest usable defaults: a boot command.
    fn boot_defaults() -> Vars {
        [("bootcmd", "boot")].into_iter().collect()
    }

    fn store_for(dir: &Path, text: &str) -> Store {
        let cfg = Config::parse(text, dir.join("fw_env.config")).unwrap();
        Store::open(cfg).with_lock_file(Some(dir.join("lock")))
    }

    #[test]
    fn missing_file_reads_as_defaults_and_first_write_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let defaults: Vars = [("next_boot", "otafs"), ("bootcmd", "boot")]
            .into_iter()
            .collect();
        let store = store_for(dir.path(), &format!("{} 0 0x400\n", env.display()))
            .with_defaults(Some(defaults.clone()));
        let snap = store.read().unwrap();
        assert_eq!(snap.source, Source::Defaults);
        assert_eq!(snap.vars, defaults);
        assert!(snap.warning().unwrap().contains("uboot.env"));
        let r = store.apply(&Changes::new().set("x", "1")).unwrap();
        assert!(r.written);
        let bytes = std::fs::read(&env).unwrap();
        assert_eq!(bytes.len(), 0x400);
        let d = codec::decode(&bytes, Layout::Single).unwrap();
        assert_eq!(
            d.vars.get("next_boot").as_deref(),
            Some("otafs"),
            "write starts from defaults"
        );
        assert_eq!(d.vars.get("x").as_deref(), Some("1"));
    }

    #[test]
    fn noop_write_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let store = store_for(dir.path(), &format!("{} 0 0x400\n", env.display()))
            .with_defaults(Some(boot_defaults()));
        store.apply(&Changes::new().set("a", "1")).unwrap();
        let before = std::fs::metadata(&env).unwrap().modified().unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&env).unwrap());
        let r = store
            .apply(&Changes::new().set("a", "1").unset("nothere"))
            .unwrap();
        assert!(!r.written);
        let meta = std::fs::metadata(&env).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta), ino);
        assert_eq!(meta.modified().unwrap(), before);
    }

    #[test]
    fn redundant_writes_alternate_and_keep_the_other_copy() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::write(&img, vec![0u8; 2 << 20]).unwrap(); // > 1 MiB: written in place
        let store = store_for(
            dir.path(),
            &format!("{0} 0x100000 0x400\n{0} 0x100400 0x400\n", img.display()),
        )
        .with_defaults(Some(boot_defaults()));
        let r1 = store.apply(&Changes::new().set("a", "1")).unwrap();
        assert_eq!((r1.copy, r1.flags), (Some(0), Some(1)));
        let r2 = store.apply(&Changes::new().set("a", "2")).unwrap();
        assert_eq!((r2.copy, r2.flags), (Some(1), Some(2)));
        let snap = store.read().unwrap();
        assert_eq!(snap.source, Source::Copy(1));
        assert_eq!(snap.copies[0].write_mode, WriteMode::InPlace);
        // The old copy is intact and still valid.
        assert!(matches!(
            snap.copies[0].status,
            CopyStatus::Valid { flags: Some(1), .. }
        ));
    }

    #[test]
    fn boolean_scheme_writes_active_then_marks_the_old_copy_obsolete() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("nor.img");
        std::fs::write(&img, vec![0xffu8; 2 << 20]).unwrap(); // erased flash
        let store = store_for(
            dir.path(),
            &format!("{0} 0x100000 0x400\n{0} 0x100400 0x400\n", img.display()),
        )
        .with_defaults(Some(boot_defaults()))
        .with_flag_scheme(FlagScheme::Boolean);
        let flags = || {
            let b = std::fs::read(&img).unwrap();
            (b[0x100004], b[0x100404])
        };
        let r = store.apply(&Changes::new().set("a", "1")).unwrap();
        assert_eq!((r.copy, r.flags), (Some(0), Some(redundant::FLAG_ACTIVE)));
        assert_eq!(flags().0, redundant::FLAG_ACTIVE);
        let r = store.apply(&Changes::new().set("a", "2")).unwrap();
        assert_eq!(r.copy, Some(1));
        assert_eq!(flags(), (redundant::FLAG_OBSOLETE, redundant::FLAG_ACTIVE));
        let r = store.apply(&Changes::new().set("a", "3")).unwrap();
        assert_eq!(r.copy, Some(0));
        assert_eq!(flags(), (redundant::FLAG_ACTIVE, redundant::FLAG_OBSOLETE));
        assert_eq!(store.read().unwrap().vars.get("a").as_deref(), Some("3"));
    }

    #[test]
    fn size_mismatch_refuses_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let img = codec::encode(
            &[("a", "1")].into_iter().collect(),
            0x2000,
            Layout::Single,
            0,
        )
        .unwrap();
        std::fs::write(&env, &img).unwrap();
        let store = store_for(dir.path(), &format!("{} 0 0x4000\n", env.display()));
        let e = store.apply(&Changes::new().set("b", "2")).unwrap_err();
        assert!(e.to_string().contains("valid with size 0x2000"), "{e}");
        assert_eq!(std::fs::read(&env).unwrap(), img, "nothing written");
    }

    #[test]
    fn full_environment_names_device_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let store = store_for(dir.path(), &format!("{} 0 0x40\n", env.display()))
            .with_defaults(Some(boot_defaults()));
        store.apply(&Changes::new().set("a", "1")).unwrap();
        let before = std::fs::read(&env).unwrap();
        let e = store
            .apply(&Changes::new().set("b", "x".repeat(100)))
            .unwrap_err();
        assert!(e.to_string().contains("environment full: needs"), "{e}");
        assert!(e.to_string().contains("uboot.env"), "{e}");
        assert_eq!(std::fs::read(&env).unwrap(), before);
    }

    #[test]
    fn no_valid_copy_and_no_defaults_refuses_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        std::fs::write(&env, vec![0xffu8; 0x400]).unwrap();
        let store = store_for(dir.path(), &format!("{} 0 0x400\n", env.display()));
        assert_eq!(store.read().unwrap().source, Source::Empty);
        let e = store.apply(&Changes::new().set("x", "y")).unwrap_err();
        assert!(matches!(e, Error::NoDefaults { .. }), "{e}");
        assert_eq!(std::fs::read(&env).unwrap(), vec![0xffu8; 0x400]);
    }

    #[test]
    fn defaults_text_parses_like_mkenvimage() {
        let v = parse_defaults_text(b"# comment\nnext_boot=otafs\nbootcmd=run a; \\\nrun b\n\n");
        assert_eq!(v.get("next_boot").as_deref(), Some("otafs"));
        assert_eq!(v.get("bootcmd").as_deref(), Some("run a; \nrun b"));
    }

    #[test]
    fn keeps_mode_and_bytes_outside_the_region() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let mut content = vec![0xAAu8; 0x100];
        content.extend(codec::encode(&Vars::new(), 0x80, Layout::Single, 0).unwrap());
        content.extend(vec![0xBB; 0x10]);
        std::fs::write(&env, &content).unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
        let store = store_for(dir.path(), &format!("{} 0x100 0x80\n", env.display()))
            .with_defaults(Some(boot_defaults()));
        store.apply(&Changes::new().set("a", "1")).unwrap();
        let after = std::fs::read(&env).unwrap();
        assert_eq!(after.len(), content.len());
        assert_eq!(&after[..0x100], &content[..0x100]);
        assert_eq!(&after[0x180..], &content[0x180..]);
        assert_eq!(
            std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(!dir.path().join(".uboot.env.fw-env-tmp").exists());
    }

    #[test]
    fn layout_mismatches_refuse_read_and_write() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let vars: Vars = [("a", "1")].into_iter().collect();
        let single = codec::encode(&vars, 0x400, Layout::Single, 0).unwrap();
        let redundant = codec::encode(&vars, 0x400, Layout::Redundant, 3).unwrap();
        let e = env.display();
        // (file content, config, what the error says)
        let rows: Vec<(Vec<u8>, String, &str)> = vec![
            (
                single.clone(),
                format!("{e} 0x400 0x400\n"),
                "at offset 0x0",
            ),
            (
                [vec![0; 0x400], single.clone()].concat(),
                format!("{e} 0 0x400\n"),
                "at offset 0x400",
            ),
            (
                single.clone(),
                format!("{e} 0 0x400\n{e} 0x400 0x400\n"),
                "single-copy",
            ),
            (
                redundant.clone(),
                format!("{e} 0 0x400\n"),
                "redundant (flags byte",
            ),
            (
                [single.clone(), vec![0; 0x400]].concat(),
                format!("{e} 0 0x800\n"),
                "valid with size 0x400",
            ),
        ];
        for (content, cfg, want) in rows {
            std::fs::write(&env, &content).unwrap();
            let store = store_for(dir.path(), &cfg).with_defaults(Some(boot_defaults()));
            let r = store.read().unwrap_err().to_string();
            assert!(r.contains(want), "{cfg}: {r}");
            let w = store
                .apply(&Changes::new().set("b", "2"))
                .unwrap_err()
                .to_string();
            assert!(w.contains(want), "{cfg}: {w}");
            assert_eq!(
                std::fs::read(&env).unwrap(),
                content,
                "{cfg}: nothing written"
            );
        }
    }

    #[test]
    fn unusable_defaults_refuse_the_write_and_the_warning_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("uboot.env");
        let store = store_for(dir.path(), &format!("{} 0 0x400\n", env.display()))
            .with_defaults(Some([("next_boot", "otafs")].into_iter().collect()));
        let snap = store.read().unwrap();
        assert!(snap.warning().unwrap().contains("a write will be refused"));
        let e = store.apply(&Changes::new().set("x", "1")).unwrap_err();
        assert!(matches!(e, Error::UnusableDefaults { .. }), "{e}");
        assert!(e.to_string().contains("no bootcmd"), "{e}");
        assert!(!env.exists());
        // Required names.
        let store = store
            .with_defaults(Some(boot_defaults()))
            .with_required_defaults(["next_boot"], "the policy");
        let e = store.apply(&Changes::new().set("x", "1")).unwrap_err();
        assert!(
            e.to_string()
                .contains("no next_boot (needed by the policy)"),
            "{e}"
        );
        assert!(!env.exists());
    }

    #[test]
    fn symlinked_env_file_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        std::fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("uboot.env");
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The target does not exist yet: a dangling link is refused...
        let store = store_for(dir.path(), &format!("{} 0 0x400\n", link.display()))
            .with_defaults(Some(boot_defaults()));
        assert!(store
            .read()
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        // ...once it exists, writes replace the real file and keep the link.
        std::fs::write(
            &real,
            codec::encode(&boot_defaults(), 0x400, Layout::Single, 0).unwrap(),
        )
        .unwrap();
        store.apply(&Changes::new().set("a", "1")).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let d = codec::decode(&std::fs::read(&real).unwrap(), Layout::Single).unwrap();
        assert_eq!(d.vars.get("a").as_deref(), Some("1"));
    }
}
