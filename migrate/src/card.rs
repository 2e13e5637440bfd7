//! The I/O edge: gather the [`Facts`] from the card, the mounted boot partition and the config
//! files, and run each [`Step`] power-safely. Every step is followed by a read-back.

use crate::core::{self, ConfigFact, CopyFact, EnvPartition, Facts, Fip, OldEnv, Plan, Step};
use crate::fault;
use fw_env::codec::{self, Layout as EnvLayout};
use fw_env::{Changes, Vars};
use partctl::layout::{Content, Layout};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The field's env partition: 256K.
pub const FIELD_ENV_PARTITION_BYTES: u64 = 256 * 1024;

/// Name of the temporary file beside `fip.bin` and each config.
pub const TEMP_SUFFIX: &str = ".zbot-migrate";

/// What to migrate and to what.
#[derive(Debug, Clone)]
pub struct Target {
    /// The card: `/dev/mmcblk0` on the robot, an image file in tests.
    pub card: PathBuf,
    /// Where the FAT boot partition (p1) is mounted: it holds `fip.bin`.
    pub boot_dir: PathBuf,
    /// The field env file as the old `fw_env.config` names it (`/bootenv/uboot.env`).
    pub old_env: PathBuf,
    /// The new U-Boot's `fip.bin`.
    pub new_fip: Vec<u8>,
    /// The target layout (`zbot-duos-redund.toml`): env partition size, copies, env size.
    pub layout: Layout,
    /// Where the layout was read from, for messages.
    pub layout_path: PathBuf,
    /// The device named in the emitted `fw_env.config` (default: the layout's `linux_device`).
    pub config_device: Option<PathBuf>,
    /// The `fw_env.config` files to switch.
    pub configs: Vec<PathBuf>,
    /// Variables set in the raw copies on top of the field env (the new policy's).
    pub overrides: Changes,
    /// fw-env's lock file, held during the run (SWUpdate and fw_setenv take it too).
    pub lock_file: PathBuf,
}

/// Where things are on the card, from the target layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// GPT entry number of the env partition.
    pub number: u32,
    /// Its name.
    pub name: String,
    /// First LBA.
    pub first: u64,
    /// Last LBA in the target layout.
    pub last: u64,
    /// The copies' absolute byte offsets.
    pub copies: [u64; 2],
    /// The env size (`CONFIG_ENV_SIZE`).
    pub env_size: u64,
}

/// Why the migration could not run (a refusal is [`Error::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file or device.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The card is not one the migration knows.
    #[error("{card}: {refusal}")]
    Refused {
        /// The card.
        card: PathBuf,
        /// Why.
        refusal: core::Refusal,
    },
    /// The target layout cannot be used.
    #[error("layout {path}: {why}")]
    Layout {
        /// The layout file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// partctl refused the resize.
    #[error("resizing the env partition on {path}: {source}; check the card with `partctl check {path}`")]
    Resize {
        /// The card.
        path: PathBuf,
        /// partctl's reason.
        source: partctl::repair::Refusal,
    },
    /// What was written does not read back.
    #[error("{0}; the card is as safe as before this step: rerun the migration")]
    Verify(String),
    /// The env does not fit.
    #[error("the field env and the overrides do not fit in {size:#x} bytes: {source}")]
    Full {
        /// Env size.
        size: u64,
        /// The codec's error.
        source: codec::EncodeError,
    },
    /// fw-env's lock.
    #[error(transparent)]
    Lock(#[from] fw_env::lock::LockError),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

impl Target {
    /// The env partition and the copies, from the target layout.
    pub fn geometry(&self) -> Result<Geometry, Error> {
        let bad = |why: String| Error::Layout {
            path: self.layout_path.clone(),
            why,
        };
        let (number, spec) = self
            .layout
            .env_partition()
            .ok_or_else(|| bad("no env partition".into()))?;
        let Content::Env { size, .. } = &spec.content else {
            return Err(bad("the env partition has no env content".into()));
        };
        let copies = partctl::emit::raw_copies(&self.layout).ok_or_else(|| {
            bad("the env is not `backend = \"raw\"` (use zbot-duos-redund.toml)".into())
        })?;
        let placed = &self.layout.place()[number as usize - 1];
        Ok(Geometry {
            number,
            name: spec.name.clone(),
            first: placed.first,
            last: placed.last,
            copies,
            env_size: size.0,
        })
    }

    /// The `fw_env.config` Linux gets: partctl's, naming [`Target::config_device`].
    pub fn new_config_text(&self) -> String {
        let text = partctl::emit::emit(&self.layout, partctl::emit::EmitKind::FwEnvConfig);
        match &self.config_device {
            Some(d) => text.replace(&self.layout.disk.linux_device, &d.display().to_string()),
            None => text,
        }
    }

    fn fip_path(&self) -> PathBuf {
        self.boot_dir.join("fip.bin")
    }

    /// Read everything the plan depends on.
    pub fn inspect(&self) -> Result<Facts, Error> {
        let g = self.geometry()?;
        let card = File::open(&self.card).map_err(io_err("opening the card", &self.card))?;
        let mut copies = [
            CopyFact::Invalid(String::new()),
            CopyFact::Invalid(String::new()),
        ];
        for (i, off) in g.copies.iter().enumerate() {
            let mut buf = vec![0; g.env_size as usize];
            card.read_exact_at(&mut buf, *off)
                .map_err(io_err("reading a raw env copy from", &self.card))?;
            copies[i] = match codec::decode(&buf, EnvLayout::Redundant) {
                Ok(d) => CopyFact::Valid {
                    flags: d.flags.unwrap_or(0),
                    vars: d.vars,
                },
                Err(e) => CopyFact::Invalid(format!("at {off:#x}: {e}")),
            };
        }
        let old_env = match fs::read(&self.old_env) {
            Err(e) => OldEnv::Unreadable(format!("{}: {e}", self.old_env.display())),
            Ok(b) if b.len() as u64 != g.env_size => OldEnv::Unreadable(format!(
                "{} is {} bytes, not {:#x}",
                self.old_env.display(),
                b.len(),
                g.env_size
            )),
            Ok(b) => match codec::decode(&b, EnvLayout::Single) {
                Ok(d) => OldEnv::Valid(d.vars),
                Err(e) => OldEnv::Unreadable(format!("{}: {e}", self.old_env.display())),
            },
        };
        let fip = match fs::read(self.fip_path()) {
            Ok(b) if b == self.new_fip => Fip::New,
            Ok(_) => Fip::Old,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Fip::Missing(self.fip_path()),
            Err(e) => return Err(io_err("reading", &self.fip_path())(e)),
        };
        let env_partition = self.env_partition(&card, &g)?;
        let new_text = self.new_config_text();
        let mut configs = Vec::new();
        for p in &self.configs {
            let text = fs::read_to_string(p).map_err(io_err("reading", p))?;
            configs.push((p.clone(), classify_config(&text, p, &new_text, g.env_size)));
        }
        Ok(Facts {
            copies,
            old_env,
            fip,
            env_partition,
            configs,
        })
    }

    fn env_partition(&self, card: &File, g: &Geometry) -> Result<EnvPartition, Error> {
        let mut r = card;
        let s = partctl::disk::Snapshot::from_reader(&mut r)
            .map_err(io_err("reading the partition table of", &self.card))?;
        let Some((copy, _)) = partctl::check::best_source(&s) else {
            return Ok(EnvPartition::Other(
                "no readable GPT (`partctl check` says why)".into(),
            ));
        };
        let entries = partctl::check::copy_entries(copy);
        let Some((_, e)) = entries.iter().find(|(n, _)| *n == g.number) else {
            return Ok(EnvPartition::Other(format!(
                "the GPT has no partition {}",
                g.number
            )));
        };
        let sectors = e.last_lba + 1 - e.first_lba;
        if e.name != g.name || e.first_lba != g.first {
            return Ok(EnvPartition::Other(format!(
                "partition {} is {:?} at LBA {}, the layout says {:?} at LBA {}",
                g.number, e.name, e.first_lba, g.name, g.first
            )));
        }
        Ok(if e.last_lba == g.last {
            // The end state is both tables exactly as the resize leaves them: a resize cut
            // after the primary header was pointed at the new backup array reads as grown
            // but still has the primary array to write.
            let mut r = card;
            let (p, _, _) =
                partctl::repair::plan_resize(&mut r, &s, &g.name, g.last).map_err(|source| {
                    Error::Resize {
                        path: self.card.clone(),
                        source,
                    }
                })?;
            if p.is_empty() {
                EnvPartition::New
            } else {
                EnvPartition::Old
            }
        } else if sectors * 512 == FIELD_ENV_PARTITION_BYTES {
            EnvPartition::Old
        } else {
            EnvPartition::Other(format!(
                "partition {} ({}) is {} KiB (LBA {}..{})",
                g.number,
                g.name,
                sectors / 2,
                e.first_lba,
                e.last_lba
            ))
        })
    }

    /// Inspect and plan.
    pub fn plan(&self) -> Result<(Facts, Plan), Error> {
        let g = self.geometry()?;
        let f = self.inspect()?;
        let p = core::plan(&f, &self.overrides, g.env_size).map_err(|refusal| Error::Refused {
            card: self.card.clone(),
            refusal,
        })?;
        Ok((f, p))
    }

    /// Run the steps still to do, printing each to `out`; then inspect again: the plan must be
    /// empty. With `dry_run`, print the plan only.
    pub fn run(&self, dry_run: bool, out: &mut dyn Write) -> Result<Plan, Error> {
        let _lock = if dry_run {
            None
        } else {
            Some(fw_env::lock::acquire(
                &self.lock_file,
                fw_env::lock::DEFAULT_TIMEOUT,
            )?)
        };
        let (_, p) = self.plan()?;
        let say = |out: &mut dyn Write, s: String| {
            let _ = writeln!(out, "{s}");
        };
        say(
            out,
            format!(
                "state: {}",
                if p.done.is_empty() {
                    "the field's card, nothing migrated yet"
                } else if p.is_done() {
                    "migrated"
                } else {
                    "mid-migration (a run was interrupted): finishing it"
                }
            ),
        );
        for d in &p.done {
            say(out, format!("done: {d}"));
        }
        if p.is_done() {
            say(out, "the card is migrated: nothing to do".into());
            return Ok(p);
        }
        for (i, s) in p.steps.iter().enumerate() {
            say(out, format!("{}. {s}", i + 1));
        }
        if dry_run {
            return Ok(p);
        }
        for s in &p.steps {
            self.step(s)?;
            say(out, format!("ok: {s}"));
        }
        let (_, after) = self.plan()?;
        if !after.is_done() {
            return Err(Error::Verify(format!(
                "after the migration, still to do: {:?}",
                after.steps
            )));
        }
        say(out, "the card is migrated".into());
        Ok(p)
    }

    fn step(&self, s: &Step) -> Result<(), Error> {
        match s {
            Step::WriteCopies(vars) => {
                self.write_copies(vars)?;
                fault::point("after-copies");
            }
            Step::ReplaceFip => {
                replace_file(
                    &self.fip_path(),
                    &self.new_fip,
                    ["fip-temp-half-written", "fip-temp-synced", "fip-renamed"],
                )?;
                fault::point("after-fip");
            }
            Step::ResizeEnvPartition => {
                self.resize()?;
                fault::point("after-resize");
            }
            Step::SwitchConfig(p) => {
                replace_file(
                    p,
                    self.new_config_text().as_bytes(),
                    ["", "config-temp-synced", "config-renamed"],
                )?;
                fault::point("after-config");
            }
        }
        Ok(())
    }

    fn write_copies(&self, vars: &Vars) -> Result<(), Error> {
        let g = self.geometry()?;
        let card = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.card)
            .map_err(io_err("opening for writing the card", &self.card))?;
        let mut images = Vec::new();
        for (i, off) in g.copies.iter().enumerate() {
            // Copy 0 active (flags 1), copy 1 obsolete (flags 0), as partctl create writes them.
            let flags = if i == 0 { 1 } else { 0 };
            let img = codec::encode(vars, g.env_size as usize, EnvLayout::Redundant, flags)
                .map_err(|source| Error::Full {
                    size: g.env_size,
                    source,
                })?;
            let half = format!("copy{i}-half-written");
            if fault::tear(&half) {
                let _ = card.write_all_at(&img[..img.len() / 2], *off);
                let _ = card.sync_data();
                fault::point(&half);
            }
            card.write_all_at(&img, *off)
                .and_then(|_| card.sync_data())
                .map_err(|e| io_err("writing a raw env copy to", &self.card)(e))?;
            fault::point(&format!("copy{i}-written"));
            images.push(img);
        }
        // Read back from the medium, not the page cache.
        let _ = nix::fcntl::posix_fadvise(
            &card,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
        for (img, off) in images.iter().zip(g.copies) {
            let mut back = vec![0; img.len()];
            card.read_exact_at(&mut back, off)
                .map_err(io_err("reading back a raw env copy from", &self.card))?;
            if back != *img {
                return Err(Error::Verify(format!(
                    "the raw env copy at {}+{off:#x} does not read back as written",
                    self.card.display()
                )));
            }
        }
        Ok(())
    }

    fn resize(&self) -> Result<(), Error> {
        let g = self.geometry()?;
        let mut card = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.card)
            .map_err(io_err("opening for writing the card", &self.card))?;
        let s = partctl::disk::Snapshot::from_reader(&mut card)
            .map_err(io_err("reading the partition table of", &self.card))?;
        let (plan, num, _) =
            partctl::repair::plan_resize(&mut card, &s, &g.name, g.last).map_err(|source| {
                Error::Resize {
                    path: self.card.clone(),
                    source,
                }
            })?;
        let mut k = 0;
        partctl::repair::apply(&mut card, &plan, |f| {
            f.sync_data()?;
            k += 1;
            fault::point(&format!("{}{k}", fault::GPT_WRITE_PREFIX));
            Ok(())
        })
        .map_err(io_err("writing the partition table of", &self.card))?;
        // Tell the kernel (works while p2 is mounted); a failure only means Linux sees the new
        // size after the next boot, which nothing needs.
        if let Err(e) =
            partctl::blockdev::resize_partition(&card, num, g.first, g.last + 1 - g.first)
        {
            eprintln!(
                "note: the kernel was not told that partition {num} grew ({e}); it sees it at the next boot"
            );
        }
        Ok(())
    }
}

/// Whether a `fw_env.config` is the field's, the new one, or neither.
pub fn classify_config(text: &str, path: &Path, new_text: &str, env_size: u64) -> ConfigFact {
    if text == new_text {
        return ConfigFact::New;
    }
    match fw_env::Config::parse(text, path) {
        Err(e) => ConfigFact::Other(e.to_string()),
        Ok(c) if c.copies.len() == 1 && c.copies[0].size == env_size && c.copies[0].offset == 0 => {
            ConfigFact::Old
        }
        Ok(c) => ConfigFact::Other(format!(
            "{} copies: {}",
            c.copies.len(),
            c.copies
                .iter()
                .map(|l| format!("{} {:#x} {:#x}", l.device.display(), l.offset, l.size))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Replace `path` by `data`: temp file beside it, write, fsync, read back, rename, fsync the
/// directory. `points`: crash points after half the temp file, after its fsync, after the
/// rename ("" for none).
pub fn replace_file(path: &Path, data: &[u8], points: [&str; 3]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TEMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    if !points[0].is_empty() && fault::tear(points[0]) {
        let _ = f.write_all(&data[..data.len() / 2]);
        let _ = f.sync_all();
        fault::point(points[0]);
    }
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io_err("writing", &tmp))?;
    drop(f);
    if !points[1].is_empty() {
        fault::point(points[1]);
    }
    let back = fs::read(&tmp).map_err(io_err("reading back", &tmp))?;
    if back != data {
        return Err(Error::Verify(format!(
            "{} does not read back as written",
            tmp.display()
        )));
    }
    fs::rename(&tmp, path).map_err(io_err("renaming the temporary file over", path))?;
    if !points[2].is_empty() {
        fault::point(points[2]);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory", dir))?;
    Ok(())
}
