//! A simulated robot for QEMU boot loops: qemu-riscv64 `virt` + OpenSBI + the ext4-env U-Boot
//! whose compiled-in default environment is the generated one (`qemu-riscv64-zbot`, as the
//! board's U-Boot carries `ZBOT_ENV_SETTINGS`), booting a [`DiskImage`] whose partition 2 holds
//! `/uboot.env`. Instead of `bootm`, the final command (`zbot-bootm`, board preset `qemu`)
//! prints `@@zbot-boot slot=... bootargs=...` and powers off; the harness "reboots" by running
//! QEMU again on the same image. Between boots, "Linux" is `bootcount` (its library CLI, run
//! in-process) on a host copy of `/uboot.env`, written back into the ext4 afterwards.
//!
//! The same robot runs on the recommended raw backend ([`Backend::Raw`], docs/env-backend.md):
//! qemu-x86 + an SD card behind `sdhci-pci` made by partctl from `tests/src/test-card-raw.toml`,
//! the U-Boot `qemu-x86-mmc-zbot` (U-Boot's redundant raw env at the layout's offsets, the
//! generated default env compiled in), the board [`raw_board`] (the `qemu` preset on `mmc 0`,
//! its final command resetting, which `-no-reboot` turns into QEMU's exit). "Linux" is then
//! `bootcount` writing the raw copies in the card image through the layout's emitted two-line
//! `fw_env.config` (`partctl emit fw_env.config`, the device replaced by the image file).

use crate::{repo_root, DiskImage, HelperError, QemuRiscv, Result, UbootRun, BUILD_SCRIPT};
use bootcount::SlotConfig;
use fw_env::codec::{self, uboot_view};
use fw_env::{Layout, Vars};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use uboot_scripts::{Board, Generated};

/// Where the robot keeps its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The field's: the 192 KiB file `/uboot.env` in the ext4 of partition 2 (qemu-riscv64,
    /// virtio disk, `qemu/build-uboot.sh qemu-riscv64-zbot`).
    Ext4,
    /// The recommended one: U-Boot's redundant raw env, two 192 KiB copies at p2 + 0x40000 and
    /// + 0x70000 (qemu-x86, SD card behind `sdhci-pci`, `qemu/build-uboot.sh qemu-x86-mmc-zbot`).
    Raw,
}

impl Backend {
    /// The `build-uboot.sh` target and the variable it prints.
    fn target(self) -> (&'static str, &'static str) {
        match self {
            Backend::Ext4 => ("qemu-riscv64-zbot", "ZBOT_UBOOT_QEMU_RISCV_ZBOT="),
            Backend::Raw => ("qemu-x86-mmc-zbot", "ZBOT_UBOOT_QEMU_X86_MMC_ZBOT="),
        }
    }

    /// The board preset the policy is generated for on this backend.
    pub fn board(self) -> Board {
        match self {
            Backend::Ext4 => Board::qemu(),
            Backend::Raw => raw_board(),
        }
    }
}

/// The board of the raw backend's robot: uboot-scripts' `qemu` preset on `mmc 0` (the SD card),
/// its final command reporting like the preset's and then `reset` (qemu-x86's U-Boot has no
/// `poweroff` for the i440FX; QEMU runs with `-no-reboot`, so the reset ends it).
pub fn raw_board() -> Board {
    Board {
        devtype: "mmc".into(),
        devnum: 0,
        bootm: "echo @@zbot-boot slot=${zb_slot} bootargs=${bootargs}; reset".into(),
        ..Board::qemu()
    }
}

/// Build (or find in the cache) the qemu-riscv64 U-Boot with `env_text` as its compiled-in
/// default environment: `qemu/build-uboot.sh qemu-riscv64-zbot` (about 20 s the first time).
pub fn zbot_qemu_uboot(env_text: &str) -> Result<PathBuf> {
    zbot_uboot(Backend::Ext4, env_text)
}

/// Build (or find in the cache) the U-Boot of `backend` with `env_text` as its compiled-in
/// default environment (`qemu-riscv64-zbot` or `qemu-x86-mmc-zbot`; a minute or two the
/// first time for each env, then cached).
pub fn zbot_uboot(backend: Backend, env_text: &str) -> Result<PathBuf> {
    let (target, var) = backend.target();
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), env_text)?;
    let out = Command::new(repo_root().join(BUILD_SCRIPT))
        .arg(target)
        .env("ZBOT_DEFAULT_ENV", tmp.path())
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().find_map(|l| {
        l.strip_prefix(var)
            .map(|p| p.trim_matches('\'').to_string())
    });
    match path {
        Some(p) if out.status.success() => Ok(PathBuf::from(p)),
        _ => Err(HelperError(format!(
            "{BUILD_SCRIPT} {target} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// The copy U-Boot 2023.01 loads from two raw redundant copies (`env_import_redund`): the one
/// whose CRC is good; both good: the higher flags, except that 0 follows 255; equal flags: the
/// first. Returns (index, flags, variables as U-Boot sees them), `None` when neither is valid
/// (U-Boot then uses its compiled-in default).
pub fn uboot_choice(c0: &[u8], c1: &[u8]) -> Option<(usize, u8, Vars)> {
    let d = |c: &[u8]| codec::decode(c, Layout::Redundant).ok();
    let pick = match (d(c0), d(c1)) {
        (None, None) => return None,
        (Some(a), None) => (0, a),
        (None, Some(b)) => (1, b),
        (Some(a), Some(b)) => {
            let (f0, f1) = (a.flags.unwrap_or(0), b.flags.unwrap_or(0));
            if (f0 == 255 && f1 == 0) || (!(f1 == 255 && f0 == 0) && f1 > f0) {
                (1, b)
            } else {
                (0, a)
            }
        }
    };
    Some((pick.0, pick.1.flags.unwrap_or(0), uboot_view(&pick.1.vars)))
}

/// One boot as the console showed it.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The slot the script chose (`None`: the script did not reach its final command).
    pub slot: Option<String>,
    /// `bootargs` handed to the kernel.
    pub bootargs: Option<String>,
    /// `saveenv` calls.
    pub saves: usize,
    /// Whether `/uboot.env` was loaded (false: U-Boot used its compiled-in default).
    pub env_loaded: bool,
    /// The whole console output.
    pub output: String,
}

impl Boot {
    fn parse(run: &UbootRun) -> Boot {
        let out = &run.output;
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("@@zbot-boot slot="));
        let (slot, bootargs) = match line.and_then(|l| l.split_once(" bootargs=")) {
            Some((s, b)) => (Some(s.to_string()), Some(b.to_string())),
            None => (None, None),
        };
        Boot {
            slot,
            bootargs,
            saves: out.matches("Saving Environment to").count(),
            env_loaded: out.contains("Loading Environment from EXT4... OK")
                || (out.contains("Loading Environment from MMC...")
                    && !out.contains("using default environment")),
            output: out.clone(),
        }
    }
}

/// The state of `/uboot.env` after a power cut, relative to the save that was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileState {
    /// The old file, byte for byte (the cut came before the delete reached the disk).
    Old,
    /// A valid file with exactly the new content (the save completed).
    New,
    /// No `/uboot.env` (deleted, the new one not yet created).
    Missing,
    /// A file that does not load: wrong size or CRC (partly written).
    Corrupt,
    /// A valid file that is neither old nor new: must never happen.
    Other,
}

/// The robot: disk, U-Boot build, slot file and the "Linux" side.
pub struct Robot {
    /// Scratch directory (disk image, env copies, configs).
    pub dir: tempfile::TempDir,
    /// The disk.
    pub disk: DiskImage,
    /// The `u-boot.bin` with the generated default env compiled in.
    pub uboot: PathBuf,
    /// The slots.
    pub cfg: SlotConfig,
    /// The generated script and default env (board preset `qemu`, or [`raw_board`]).
    pub gen: Generated,
    /// Where the env lives.
    pub backend: Backend,
    /// [`Backend::Raw`]: the card offsets of the two copies (`partctl::emit::raw_copies`).
    pub copies: Option<[u64; 2]>,
    slots_file: PathBuf,
}

impl Robot {
    /// A robot for the slot file `slots_toml`, its env file holding the generated default env
    /// with `overrides` applied (`None` deletes).
    pub fn new(slots_toml: &str, overrides: &[(&str, Option<&str>)]) -> Result<Robot> {
        Robot::with_backend(Backend::Ext4, slots_toml, overrides)
    }

    /// The same robot on `backend`. [`Backend::Raw`]: both copies hold the env (copy 0 flags 1,
    /// copy 1 flags 0, as `partctl create` and the migration leave them), so U-Boot loads copy 0
    /// and its first save goes to copy 1.
    pub fn with_backend(
        backend: Backend,
        slots_toml: &str,
        overrides: &[(&str, Option<&str>)],
    ) -> Result<Robot> {
        let cfg = SlotConfig::from_toml(slots_toml, "slots.toml")
            .map_err(|e| HelperError(e.to_string()))?;
        let gen = Generated::new(&cfg, &backend.board(), "slots.toml")
            .map_err(|e| HelperError(e.to_string()))?;
        let uboot = zbot_uboot(backend, &gen.default_env_text())?;
        let dir = tempfile::tempdir()?;
        let (disk, copies, config) = match backend {
            Backend::Ext4 => (
                DiskImage::create(dir.path().join("disk.img"))?,
                None,
                format!(
                    "{} 0x0 {:#x}\n",
                    dir.path().join("uboot.env").display(),
                    crate::ENV_SIZE
                ),
            ),
            Backend::Raw => {
                let card = raw_card();
                let disk = DiskImage::create_from(dir.path().join("disk.img"), &card)?;
                let copies = partctl::emit::raw_copies(&card)
                    .ok_or_else(|| HelperError("test-card-raw.toml: no raw env".into()))?;
                // The layout's own fw_env.config, the card's device being the image file.
                let text = partctl::emit::emit(&card, partctl::emit::EmitKind::FwEnvConfig)
                    .replace(&card.disk.linux_device, &disk.path().display().to_string());
                (disk, Some(copies), text)
            }
        };
        let slots_file = dir.path().join("slots.toml");
        std::fs::write(&slots_file, slots_toml)?;
        std::fs::write(
            dir.path().join("u-boot-initial-env"),
            gen.default_env_text(),
        )?;
        std::fs::write(dir.path().join("fw_env.config"), config)?;
        let r = Robot {
            dir,
            disk,
            uboot,
            cfg,
            gen,
            backend,
            copies,
            slots_file,
        };
        let mut vars = r.default_vars();
        for (n, v) in overrides {
            match v {
                Some(v) => vars.set(n.as_bytes().to_vec(), v.as_bytes().to_vec()),
                None => {
                    vars.remove(n);
                    Ok(())
                }
            }
            .map_err(|e| HelperError(e.to_string()))?;
        }
        r.write_env(&vars)?;
        Ok(r)
    }

    /// The generated default environment as variables.
    pub fn default_vars(&self) -> Vars {
        self.gen
            .default_env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// Write `vars` as `/uboot.env` (what `saveenv` or fw-env would write). Raw: both copies,
    /// copy 0 with flags 1 and copy 1 with flags 0 (U-Boot loads copy 0).
    pub fn write_env(&self, vars: &Vars) -> Result<()> {
        let Some(copies) = self.copies else {
            let img = codec::encode(vars, crate::ENV_SIZE, Layout::Single, 0)
                .map_err(|e| HelperError(e.to_string()))?;
            return self.disk.write_file("/uboot.env", &img);
        };
        for (off, flags) in copies.into_iter().zip([1u8, 0]) {
            let c = codec::encode(vars, crate::ENV_SIZE, Layout::Redundant, flags)
                .map_err(|e| HelperError(e.to_string()))?;
            self.write_at(off, &c)?;
        }
        Ok(())
    }

    /// Write `bytes` at byte offset `off` of the card image.
    pub fn write_at(&self, off: u64, bytes: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.disk.path())?;
        f.seek(SeekFrom::Start(off))?;
        f.write_all(bytes)?;
        Ok(())
    }

    /// [`Backend::Raw`]: the two copies as they are on the card.
    pub fn raw_copies(&self) -> Result<[Vec<u8>; 2]> {
        let c = self
            .copies
            .ok_or_else(|| HelperError("not a raw-backend robot".into()))?;
        let img = std::fs::read(self.disk.path())?;
        let at = |o: u64| img[o as usize..o as usize + crate::ENV_SIZE].to_vec();
        Ok([at(c[0]), at(c[1])])
    }

    /// The env's bytes: `/uboot.env` if present; raw: both copies, one after the other.
    pub fn env_bytes(&self) -> Result<Option<Vec<u8>>> {
        match self.backend {
            Backend::Ext4 => self.disk.read_file("/uboot.env"),
            Backend::Raw => Ok(Some(self.raw_copies()?.concat())),
        }
    }

    /// The variables U-Boot would load (`None`: missing or invalid: it uses the default).
    pub fn env_vars(&self) -> Result<Option<Vars>> {
        match self.backend {
            Backend::Ext4 => Ok(self.env_bytes()?.as_deref().and_then(loaded_vars)),
            Backend::Raw => {
                let [a, b] = self.raw_copies()?;
                Ok(uboot_choice(&a, &b).map(|(_, _, v)| v))
            }
        }
    }

    /// What U-Boot starts from: the loaded env, or its compiled-in default.
    pub fn effective_vars(&self) -> Result<Vars> {
        Ok(self
            .env_vars()?
            .unwrap_or_else(|| uboot_view(&self.default_vars())))
    }

    fn qemu(&self) -> QemuRiscv<'_> {
        QemuRiscv::new(&self.disk)
            .uboot(&self.uboot)
            .timeout(Duration::from_secs(60))
    }

    /// The QEMU command line of a power-on.
    pub fn command(&self) -> Result<Command> {
        match self.backend {
            Backend::Ext4 => self.qemu().command(),
            Backend::Raw => {
                let qemu = crate::find_program("qemu-system-x86_64").ok_or_else(|| {
                    HelperError("qemu-system-x86_64 not found (scripts/setup-debian.sh)".into())
                })?;
                let mut cmd = Command::new(qemu);
                cmd.args(["-M", "pc", "-m", "256M", "-smp", "1", "-accel", "tcg"])
                    .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
                    .args(["-no-reboot", "-nic", "none", "-bios"])
                    .arg(&self.uboot)
                    .args(["-device", "sdhci-pci", "-drive"])
                    .arg(format!(
                        "if=none,id=sd,format=raw,file={}",
                        self.disk.path().display()
                    ))
                    .args(["-device", "sd-card,drive=sd"]);
                Ok(cmd)
            }
        }
    }

    fn run(&self) -> Result<UbootRun> {
        match self.backend {
            Backend::Ext4 => self.qemu().run(),
            // qemu-x86 TCG boots in 1-3 s; generous for a loaded 2-core host.
            Backend::Raw => crate::run_with_timeout(&mut self.command()?, Duration::from_secs(120)),
        }
    }

    /// Power on, let the script run to its final command, parse the console.
    pub fn boot(&self) -> Result<Boot> {
        let run = self.run()?;
        if !run.success() {
            return Err(HelperError(format!(
                "QEMU did not power off{}:\n{}",
                if run.timed_out {
                    " (timed out: a busy host? rerun)"
                } else {
                    ""
                },
                run.output
            )));
        }
        Ok(Boot::parse(&run))
    }

    /// Power on and return the console output (QEMU must power off by itself).
    pub fn boot_raw(&self) -> Result<String> {
        let run = self.run()?;
        if !run.success() {
            return Err(HelperError(format!(
                "QEMU did not power off:\n{}",
                run.output
            )));
        }
        Ok(run.output)
    }

    /// Run `bootcount ARGS` as Linux booted with `bootargs` would, on a host copy of
    /// `/uboot.env` (written back when it changed). Returns (exit code, stdout, stderr).
    /// Raw: `bootcount` writes the copies in the card image itself, through the layout's
    /// two-line `fw_env.config`.
    pub fn bootcount(&self, bootargs: &str, args: &[&str]) -> Result<(i32, String, String)> {
        let host = self.dir.path().join("uboot.env");
        let before = match self.backend {
            Backend::Ext4 => self.env_bytes()?,
            Backend::Raw => None,
        };
        match &before {
            Some(b) => std::fs::write(&host, b)?,
            None => {
                let _ = std::fs::remove_file(&host);
            }
        }
        let cmdline = self.dir.path().join("cmdline");
        std::fs::write(&cmdline, format!("{bootargs}\n"))?;
        let p = |f: &str| self.dir.path().join(f).display().to_string();
        let mut argv: Vec<std::ffi::OsString> = vec![
            "bootcount".into(),
            "-c".into(),
            p("fw_env.config").into(),
            "-f".into(),
            p("u-boot-initial-env").into(),
            "--slots".into(),
            self.slots_file.clone().into(),
            "--cmdline".into(),
            cmdline.into(),
        ];
        argv.extend(args.iter().map(Into::into));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut reboot = || Ok(());
        let code = bootcount::cli::main_with(
            argv,
            &mut bootcount::cli::Ctx {
                out: &mut out,
                err: &mut err,
                reboot: &mut reboot,
            },
        );
        let after = std::fs::read(&host).ok();
        if self.backend == Backend::Ext4 && after.is_some() && after != before {
            self.disk
                .write_file("/uboot.env", after.as_deref().expect("some"))?;
        }
        Ok((
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        ))
    }

    /// Power on and cut the power `delay` after U-Boot starts `saveenv` (SIGKILL to QEMU:
    /// every write QEMU issued so far is in the image, nothing after). Returns whether the
    /// save started and whether the kill came before QEMU powered off by itself.
    pub fn boot_and_cut(&self, delay: Duration) -> Result<Cut> {
        let mut child = self
            .command()?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut so = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel::<Instant>();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let mut sent = false;
            while let Ok(n) = so.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if !sent && find(&seen, b"Saving Environment to") {
                    let _ = tx.send(Instant::now());
                    sent = true;
                }
            }
            String::from_utf8_lossy(&seen).replace('\r', "")
        });
        let started = rx.recv_timeout(Duration::from_secs(30)).ok();
        let mut killed = false;
        if let Some(t) = started {
            let until = t + delay;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            killed = child.try_wait()?.is_none();
            let _ = child.kill();
        } else {
            let _ = child.kill();
        }
        child.wait()?;
        let output = reader.join().unwrap_or_default();
        Ok(Cut {
            save_started: started.is_some(),
            killed,
            output,
        })
    }

    /// Classify `/uboot.env` (see [`classify`]).
    pub fn file_state(&self, old: &[u8], old_vars: &Vars, new: &Vars) -> Result<FileState> {
        Ok(classify(self.env_bytes()?.as_deref(), old, old_vars, new))
    }

    /// `e2fsck -fn` of partition 2: `None` if clean, else the report.
    pub fn fsck(&self) -> Option<String> {
        self.disk.fsck_p2().err().map(|e| e.0)
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What a [`Robot::boot_and_cut`] did.
#[derive(Debug, Clone)]
pub struct Cut {
    /// U-Boot printed "Saving Environment to".
    pub save_started: bool,
    /// QEMU was still running when killed (false: the boot had already finished).
    pub killed: bool,
    /// Console output up to the cut.
    pub output: String,
}

/// The variables U-Boot loads from these file bytes (`None`: too short or bad CRC, so it
/// uses its compiled-in default).
pub fn loaded_vars(bytes: &[u8]) -> Option<Vars> {
    (bytes.len() >= crate::ENV_SIZE)
        .then(|| codec::decode(&bytes[..crate::ENV_SIZE], Layout::Single).ok())
        .flatten()
        .map(|d| uboot_view(&d.vars))
}

/// Classify the env file after a cut save, against the old bytes and the expected new
/// variables. U-Boot also saves what it adds at run time (`fdtcontroladdr`, `stdin`, ...), so
/// "new" means: every variable of `new` with its value, and every variable of `old_vars` that
/// `new` lacks absent.
pub fn classify(file: Option<&[u8]>, old: &[u8], old_vars: &Vars, new: &Vars) -> FileState {
    let Some(b) = file else {
        return FileState::Missing;
    };
    if b == old {
        return FileState::Old;
    }
    match loaded_vars(b) {
        None => FileState::Corrupt,
        Some(v)
            if new.iter().all(|(n, x)| v.get_bytes(n) == Some(x))
                && old_vars
                    .iter()
                    .all(|(n, _)| new.get_bytes(n).is_some() || v.get_bytes(n).is_none()) =>
        {
            FileState::New
        }
        Some(_) => FileState::Other,
    }
}

/// The test kit's raw card (`tests/src/test-card-raw.toml`).
pub fn raw_card() -> partctl::layout::Layout {
    partctl::layout::Layout::from_toml(crate::TEST_CARD_RAW_LAYOUT)
        .expect("tests/src/test-card-raw.toml is valid")
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
