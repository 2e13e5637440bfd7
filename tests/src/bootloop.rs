//! A simulated robot for QEMU boot loops: qemu-riscv64 `virt` + OpenSBI + the ext4-env U-Boot
//! whose compiled-in default environment is the generated one (`qemu-riscv64-zbot`, as the
//! board's U-Boot carries `ZBOT_ENV_SETTINGS`), booting a [`DiskImage`] whose partition 2 holds
//! `/uboot.env`. Instead of `bootm`, the final command (`zbot-bootm`, board preset `qemu`)
//! prints `@@zbot-boot slot=... bootargs=...` and powers off; the harness "reboots" by running
//! QEMU again on the same image. Between boots, "Linux" is `bootcount` (its library CLI, run
//! in-process) on a host copy of `/uboot.env`, written back into the ext4 afterwards.

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

/// Build (or find in the cache) the qemu-riscv64 U-Boot with `env_text` as its compiled-in
/// default environment: `qemu/build-uboot.sh qemu-riscv64-zbot` (about 20 s the first time).
pub fn zbot_qemu_uboot(env_text: &str) -> Result<PathBuf> {
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), env_text)?;
    let out = Command::new(repo_root().join(BUILD_SCRIPT))
        .arg("qemu-riscv64-zbot")
        .env("ZBOT_DEFAULT_ENV", tmp.path())
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().find_map(|l| {
        l.strip_prefix("ZBOT_UBOOT_QEMU_RISCV_ZBOT=")
            .map(|p| p.trim_matches('\'').to_string())
    });
    match path {
        Some(p) if out.status.success() => Ok(PathBuf::from(p)),
        _ => Err(HelperError(format!(
            "{BUILD_SCRIPT} qemu-riscv64-zbot failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
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
            env_loaded: out.contains("Loading Environment from EXT4... OK"),
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
    /// The generated script and default env (board preset `qemu`).
    pub gen: Generated,
    slots_file: PathBuf,
}

impl Robot {
    /// A robot for the slot file `slots_toml`, its env file holding the generated default env
    /// with `overrides` applied (`None` deletes).
    pub fn new(slots_toml: &str, overrides: &[(&str, Option<&str>)]) -> Result<Robot> {
        let cfg = SlotConfig::from_toml(slots_toml, "slots.toml")
            .map_err(|e| HelperError(e.to_string()))?;
        let gen = Generated::new(&cfg, &Board::qemu(), "slots.toml")
            .map_err(|e| HelperError(e.to_string()))?;
        let uboot = zbot_qemu_uboot(&gen.default_env_text())?;
        let dir = tempfile::tempdir()?;
        let disk = DiskImage::create(dir.path().join("disk.img"))?;
        let slots_file = dir.path().join("slots.toml");
        std::fs::write(&slots_file, slots_toml)?;
        std::fs::write(
            dir.path().join("u-boot-initial-env"),
            gen.default_env_text(),
        )?;
        std::fs::write(
            dir.path().join("fw_env.config"),
            format!(
                "{} 0x0 {:#x}\n",
                dir.path().join("uboot.env").display(),
                crate::ENV_SIZE
            ),
        )?;
        let r = Robot {
            dir,
            disk,
            uboot,
            cfg,
            gen,
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

    /// Write `vars` as `/uboot.env` (what `saveenv` or fw-env would write).
    pub fn write_env(&self, vars: &Vars) -> Result<()> {
        let img = codec::encode(vars, crate::ENV_SIZE, Layout::Single, 0)
            .map_err(|e| HelperError(e.to_string()))?;
        self.disk.write_file("/uboot.env", &img)
    }

    /// The raw `/uboot.env`, if present.
    pub fn env_bytes(&self) -> Result<Option<Vec<u8>>> {
        self.disk.read_file("/uboot.env")
    }

    /// The variables U-Boot would load (`None`: missing or invalid: it uses the default).
    pub fn env_vars(&self) -> Result<Option<Vars>> {
        Ok(self.env_bytes()?.as_deref().and_then(loaded_vars))
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

    /// Power on, let the script run to its final command, parse the console.
    pub fn boot(&self) -> Result<Boot> {
        let run = self.qemu().run()?;
        if !run.success() {
            return Err(HelperError(format!(
                "QEMU did not power off:\n{}",
                run.output
            )));
        }
        Ok(Boot::parse(&run))
    }

    /// Power on and return the console output (QEMU must power off by itself).
    pub fn boot_raw(&self) -> Result<String> {
        let run = self.qemu().run()?;
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
    pub fn bootcount(&self, bootargs: &str, args: &[&str]) -> Result<(i32, String, String)> {
        let host = self.dir.path().join("uboot.env");
        let before = self.env_bytes()?;
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
        if after.is_some() && after != before {
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
            .qemu()
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

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
