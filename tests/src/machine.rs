//! The QEMU lifecycle machine (docs/qemu.md): real U-Boot (32-bit qemu-x86 build with the
//! board's ext4 env backend) booting Debian's amd64 kernel from an SD-card-like disk image with
//! the board's six partitions, each slot a BusyBox system with our `fw-env` and `bootcount`.
//!
//! - [`MachineImage`] runs `qemu/make-image.sh` (disk image, slot images, update packages) and
//!   `qemu/build-uboot.sh qemu-x86` (the ROM, whose compiled-in env matches the image's).
//! - [`Machine`] is one robot: a disk image file that survives "reboots", and a readable log
//!   of every boot (serial console with time stamps, one header per boot).
//! - [`Boot`] is one power-on: wait for console lines, type commands into the root shell on
//!   the serial console, wait for QEMU to end (power-off, reboot, reset, panic) or kill it (a
//!   power cut, or the watchdog of a hung boot).
//!
//! ```no_run
//! use std::time::Duration;
//! use zbot_tests::machine::{MachineImage, Machine, Ending};
//! let image = MachineImage::shared();
//! let mut robot = Machine::new(image, "example").unwrap();
//! let mut boot = robot.boot().unwrap();
//! let verdict = boot.wait_for("bootcount: health run exited with", Duration::from_secs(60)).unwrap();
//! let (code, out) = boot.run("bootcount status --json", Duration::from_secs(10)).unwrap();
//! boot.send_line("poweroff").unwrap();
//! assert_eq!(boot.wait_end(Duration::from_secs(30)).unwrap(), Ending::PowerOff);
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{find_program, parse_env_vars, repo_root, HelperError, Result};

/// The variables of a single-copy env image (`crc | data`), or `None` when the CRC is wrong
/// (U-Boot would use its compiled-in default environment).
pub fn env_image_vars(image: &[u8]) -> Option<Vec<(String, String)>> {
    let d = fw_env::codec::decode(image, fw_env::Layout::Single).ok()?;
    Some(parse_env_vars(&d.entries.join(&0u8)))
}

/// What changed between two env files, one readable line per variable (`name: old -> new`),
/// or a line saying the file appeared, vanished or has a bad CRC.
pub fn env_diff(before: Option<&[u8]>, after: Option<&[u8]>) -> Vec<String> {
    fn view(f: Option<&[u8]>) -> std::result::Result<Vec<(String, String)>, &'static str> {
        match f {
            None => Err("missing"),
            Some(b) => env_image_vars(b).ok_or("bad CRC"),
        }
    }
    if before == after {
        return Vec::new();
    }
    match (view(before), view(after)) {
        (Ok(a), Ok(b)) => {
            let mut out = Vec::new();
            for (n, v) in &a {
                match b.iter().find(|(m, _)| m == n) {
                    None => out.push(format!("{n}: {v:?} -> (unset)")),
                    Some((_, w)) if w != v => out.push(format!("{n}: {v:?} -> {w:?}")),
                    _ => {}
                }
            }
            for (n, w) in &b {
                if !a.iter().any(|(m, _)| m == n) {
                    out.push(format!("{n}: (unset) -> {w:?}"));
                }
            }
            if out.is_empty() {
                out.push("rewritten with the same variables".into());
            }
            out
        }
        (a, b) => vec![format!(
            "/uboot.env: {} -> {}",
            a.map(|_| "valid").unwrap_or_else(|e| e),
            b.map(|_| "valid").unwrap_or_else(|e| e)
        )],
    }
}

/// The output of `qemu/make-image.sh` plus the matching U-Boot ROM.
#[derive(Debug, Clone)]
pub struct MachineImage {
    /// The directory make-image.sh wrote (disk.img, update images, machine.env, ...).
    pub dir: PathBuf,
    /// `u-boot.rom` for `qemu-system-x86_64 -bios`.
    pub rom: PathBuf,
    /// Byte offsets of partitions 1..=6 in `disk.img` (index 0 = p1).
    pub offsets: [u64; 6],
    /// The host's `zbot-updater` (pack, update), built by make-image.sh.
    pub updater: PathBuf,
}

/// The update packages of the lifecycle stories, signed `.swu` files made by make-image.sh
/// (`zbot-updater pack`), pushed with [`Machine::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Update {
    /// `rootfs v2`: boots and passes its health check.
    Good,
    /// Boots, but its required health check fails.
    Unhealthy,
    /// Its init hangs before the health check (the watchdog / harness resets it).
    Hang,
    /// Not a filesystem: the kernel cannot mount root and panics (reboot).
    Garbage,
}

impl Update {
    /// The package's name in the image's `swu/` ([`MachineImage::swu`]).
    pub fn name(self) -> &'static str {
        match self {
            Update::Good => "good",
            Update::Unhealthy => "unhealthy",
            Update::Hang => "hang",
            Update::Garbage => "garbage",
        }
    }
}

fn run_script(cmd: &mut Command, what: &str) -> Result<String> {
    let out = crate::check(cmd, what)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn shell_var(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(name)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('\'').to_string())
    })
}

/// Where the harness keeps its images and logs: `target/zbot-machine` in the repository.
pub fn work_dir() -> PathBuf {
    repo_root().join("target/zbot-machine")
}

impl MachineImage {
    /// Build the machine into `dir` (make-image.sh, about 5 s once the static binaries and the
    /// kernel are cached) and find or build the ROM (build-uboot.sh qemu-x86, cached).
    pub fn build(dir: &Path) -> Result<MachineImage> {
        let root = repo_root();
        run_script(
            Command::new("bash")
                .arg(root.join("qemu/make-image.sh"))
                .arg(dir)
                .env("ZBOT_QUIET", "1"),
            "qemu/make-image.sh",
        )?;
        let paths = run_script(
            Command::new("bash")
                .arg(root.join("qemu/build-uboot.sh"))
                .arg("qemu-x86"),
            "qemu/build-uboot.sh qemu-x86",
        )?;
        let rom = shell_var(&paths, "ZBOT_UBOOT_QEMU_X86")
            .map(PathBuf::from)
            .ok_or_else(|| {
                HelperError(format!(
                    "build-uboot.sh printed no ZBOT_UBOOT_QEMU_X86:\n{paths}"
                ))
            })?;
        let menv = std::fs::read_to_string(dir.join("machine.env"))?;
        let mut offsets = [0u64; 6];
        for (i, o) in offsets.iter_mut().enumerate() {
            *o = shell_var(&menv, &format!("ZBOT_P{}_OFFSET", i + 1))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| HelperError(format!("machine.env lacks ZBOT_P{}_OFFSET", i + 1)))?;
        }
        let updater = shell_var(&menv, "ZBOT_UPDATER")
            .map(PathBuf::from)
            .ok_or_else(|| HelperError("machine.env lacks ZBOT_UPDATER".into()))?;
        Ok(MachineImage {
            dir: dir.to_path_buf(),
            rom,
            offsets,
            updater,
        })
    }

    /// One image per test process, built on first use into `target/zbot-machine/run-<pid>`
    /// (directories of processes that are gone are removed). Panics with the build's error.
    pub fn shared() -> &'static MachineImage {
        static IMAGE: OnceLock<MachineImage> = OnceLock::new();
        IMAGE.get_or_init(|| {
            let base = work_dir();
            if let Ok(rd) = std::fs::read_dir(&base) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = name.strip_prefix("run-") {
                        if !Path::new("/proc").join(pid).exists() {
                            let _ = std::fs::remove_dir_all(e.path());
                        }
                    }
                }
            }
            let dir = base.join(format!("run-{}", std::process::id()));
            MachineImage::build(&dir).unwrap_or_else(|e| panic!("building the QEMU machine: {e}"))
        })
    }

    /// [`MachineImage::shared`], checked to boot the boot-counting script generated by
    /// uboot-scripts (`ZBOT_POLICY_ENV` can name another policy). Panics with the fix.
    pub fn with_policy() -> &'static MachineImage {
        let image = MachineImage::shared();
        let env = std::fs::read_to_string(image.dir.join("u-boot-initial-env")).unwrap_or_default();
        assert!(
            env.contains("zbot-policy="),
            "the machine's default env has no zbot-policy (ZBOT_POLICY_ENV names another \
             policy?): unset ZBOT_POLICY_ENV to boot the generated one (uboot-scripts --layout \
             qemu/machine/layout.toml --board qemu default-env), see docs/qemu.md"
        );
        image
    }

    /// The fresh card image.
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.img")
    }

    /// The signed package of an update story (`swu/good.swu`, ...).
    pub fn package(&self, u: Update) -> PathBuf {
        self.swu(u.name())
    }

    /// A signed package made by `zbot-updater pack` in make-image.sh (`swu/NAME.swu`: good,
    /// unhealthy, hang, garbage; refused ones: tampered, other-key, unsigned, wrong-hw,
    /// downgrade).
    pub fn swu(&self, name: &str) -> PathBuf {
        self.dir.join("swu").join(format!("{name}.swu"))
    }
}

/// An ext4 filesystem inside a disk image at a byte offset, read and written with debugfs.
#[derive(Debug, Clone)]
pub struct PartFs {
    image: PathBuf,
    offset: u64,
}

impl PartFs {
    /// The ext4 at `offset` in `image`.
    pub fn new(image: &Path, offset: u64) -> PartFs {
        PartFs {
            image: image.to_path_buf(),
            offset,
        }
    }

    /// Run one debugfs request (`-w` when `write`); returns its output.
    pub fn debugfs(&self, write: bool, request: &str) -> Result<String> {
        let debugfs = find_program("debugfs").ok_or_else(|| {
            HelperError("debugfs not found: run scripts/setup-debian.sh (e2fsprogs)".into())
        })?;
        let mut cmd = Command::new(debugfs);
        if write {
            cmd.arg("-w");
        }
        let target = format!("{}?offset={}", self.image.display(), self.offset);
        let out = cmd
            .arg("-R")
            .arg(request)
            .arg(&target)
            .stdin(Stdio::null())
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
            .collect();
        if !out.status.success() || !errors.is_empty() {
            return Err(HelperError(format!(
                "debugfs {request:?} on {target}: {}",
                errors.join("; ")
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The file `name`, or `None` if it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let dir = tempfile::tempdir()?;
        let dst = dir.path().join("dump");
        match self.debugfs(false, &format!("dump {name} {}", dst.display())) {
            Ok(_) => Ok(Some(std::fs::read(&dst)?)),
            Err(e) if e.0.contains("File not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Copy host file `src` into the filesystem as `name` (replacing it).
    pub fn put(&self, src: &Path, name: &str) -> Result<()> {
        if self.read(name)?.is_some() {
            self.debugfs(true, &format!("rm {name}"))?;
        }
        self.debugfs(true, &format!("write {} {name}", src.display()))?;
        Ok(())
    }

    /// Write `data` as `name`.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = tempfile::NamedTempFile::new()?;
        std::fs::write(tmp.path(), data)?;
        self.put(tmp.path(), name)
    }

    /// Remove `name` (no error if absent).
    pub fn remove(&self, name: &str) -> Result<()> {
        if self.read(name)?.is_some() {
            self.debugfs(true, &format!("rm {name}"))?;
        }
        Ok(())
    }
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Linux powered off (`poweroff`): "reboot: Power down".
    PowerOff,
    /// Linux rebooted (`reboot`, bootcount --reboot): "reboot: Restarting system".
    Reboot,
    /// The kernel panicked and rebooted (panic=1), e.g. no usable root filesystem.
    Panic,
    /// U-Boot reset the machine (`reset`), e.g. the kernel could not be loaded.
    UbootReset,
    /// QEMU ended without any of the messages above.
    Other,
    /// The harness killed QEMU: a power cut, or the watchdog of a boot that hung.
    Killed,
}

#[derive(Default)]
struct Console {
    lines: Vec<(Duration, String)>,
    partial: String,
    closed: bool,
}

/// Remove terminal control sequences (BusyBox ash asks for the cursor position: ESC [ 6 n).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                while let Some(&n) = it.peek() {
                    it.next();
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        }
        out.push(c);
    }
    out
}

/// When a planned power cut (SIGKILL to QEMU) hits a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerCut {
    /// This long after power-on.
    At(Duration),
    /// This long after the console first shows `needle` (even in an unfinished line, so
    /// "Saving Environment to" cuts U-Boot's `saveenv` while it writes). The console reader
    /// itself kills QEMU, spinning for the delay, so the cut lands within microseconds of it;
    /// where that falls in the guest still shifts a little with host load. No cut if the
    /// needle never shows.
    AfterLine {
        /// Text to wait for.
        needle: String,
        /// Delay after it.
        delay: Duration,
    },
}

fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .status()?;
    if !st.success() {
        return Err(HelperError(format!(
            "copying {} to {}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

/// One robot: a disk image that lives across boots, and a log of all of them.
#[derive(Debug)]
pub struct Machine {
    image: MachineImage,
    _dir: tempfile::TempDir,
    disk: PathBuf,
    log: PathBuf,
    boots: usize,
    timeout: Duration,
    cut_plan: Option<PowerCut>,
    port: u16,
    secret: PathBuf,
    /// The QEMU of the boot powered on last and its cut flag: what a [`PushCut::ClientLine`]
    /// kills.
    current: Arc<Mutex<Option<PowerSwitch>>>,
}

/// A boot's QEMU and the flag that says it was cut.
type PowerSwitch = (Arc<Mutex<Child>>, Arc<std::sync::atomic::AtomicBool>);

/// A TCP port on the host's loopback for a robot's forward (QEMU `hostfwd`), free now and not
/// given to another robot of this process.
fn free_port() -> Result<u16> {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..50 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        let mut used = USED.lock().unwrap();
        if !used.contains(&port) {
            used.push(port);
            return Ok(port);
        }
    }
    Err(HelperError("no free port on 127.0.0.1".into()))
}

/// Writes that reached the env partition during one boot, from QEMU's block layer
/// (`-trace blk_co_pwritev`): what the SD card's flash would see, whoever wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvWrites {
    /// Write requests before the kernel started (U-Boot's `saveenv`).
    pub uboot_requests: usize,
    /// Their bytes.
    pub uboot_bytes: u64,
    /// Write requests from Linux (mounting the filesystem, `fw-env` writes, unmounting).
    pub linux_requests: usize,
    /// Their bytes.
    pub linux_bytes: u64,
    /// Of Linux's requests, those to the ext4 superblock only (every read-write mount and
    /// unmount updates it, even when the environment does not change).
    pub linux_superblock: usize,
}

impl std::fmt::Display for EnvWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "U-Boot {} req / {} KiB, Linux {} req / {} KiB ({} superblock)",
            self.uboot_requests,
            self.uboot_bytes.div_ceil(1024),
            self.linux_requests,
            self.linux_bytes.div_ceil(1024),
            self.linux_superblock
        )
    }
}

/// Sum the `blk_co_pwritev` lines of a QEMU trace (`pid@sec.usec:blk_co_pwritev ... offset O
/// bytes N ...`) that fall into `range` (bytes of the disk), split at `kernel` (wall-clock
/// seconds; `None`: all before).
fn parse_write_trace(trace: &str, range: (u64, u64), kernel: Option<f64>) -> EnvWrites {
    let mut w = EnvWrites::default();
    for line in trace.lines() {
        let Some((head, rest)) = line.split_once(":blk_co_pwritev ") else {
            continue;
        };
        let when: Option<f64> = head.split_once('@').and_then(|(_, t)| t.parse().ok());
        let field = |name: &str| -> Option<u64> {
            let mut it = rest.split_whitespace();
            it.find(|w| *w == name)?;
            it.next()?.parse().ok()
        };
        let (Some(off), Some(len)) = (field("offset"), field("bytes")) else {
            continue;
        };
        if off + len <= range.0 || off >= range.1 {
            continue;
        }
        let linux = matches!((when, kernel), (Some(t), Some(k)) if t >= k);
        if linux {
            w.linux_requests += 1;
            w.linux_bytes += len;
            if off == range.0 + 1024 && len == 1024 {
                w.linux_superblock += 1;
            }
        } else {
            w.uboot_requests += 1;
            w.uboot_bytes += len;
        }
    }
    w
}

/// What [`Machine::boot_to_verdict`] saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The slot U-Boot booted (`zbot.slot=` on the kernel command line it printed).
    pub uboot_slot: Option<String>,
    /// The slot Linux reported (`zbot-machine: booted slot=...`), if init got that far.
    pub slot: Option<String>,
    /// The image that booted (`/etc/zbot-image`, e.g. `rootfs v2`).
    pub image: Option<String>,
    /// `bootcount health run`'s exit status, if it ran.
    pub verdict: Option<i32>,
    /// Seconds from power-on to the verdict.
    pub verdict_secs: Option<f64>,
    /// How QEMU ended, if it did (a healthy boot is left running).
    pub ending: Option<Ending>,
}

impl Outcome {
    /// Booted `slot` and passed its health check.
    pub fn healthy_in(&self, slot: &str) -> bool {
        self.slot.as_deref() == Some(slot) && self.verdict == Some(0)
    }
}

impl Machine {
    /// A robot with a fresh copy of the image's card. Its log is
    /// `target/zbot-machine/logs/<name>.log` (replaced), kept after the test for reading.
    pub fn new(image: &MachineImage, name: &str) -> Result<Machine> {
        let dir = tempfile::tempdir()?;
        let disk = dir.path().join("disk.img");
        copy_sparse(&image.disk(), &disk)?;
        let logs = work_dir().join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{name}.log"));
        std::fs::write(
            &log,
            format!(
                "# QEMU lifecycle machine log: {name}\n# image {}\n# rom {}\n",
                image.dir.display(),
                image.rom.display()
            ),
        )?;
        // The robot's agent secret, provisioned per robot on /data (which updates never
        // write), and kept by the "update host" (this harness) in a mode-600 file.
        let secret = dir.path().join("agent.secret");
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&secret)?;
            writeln!(f, "{hex}")?;
        }
        let data = PartFs::new(&disk, image.offsets[4]);
        data.debugfs(true, "mkdir /zbot")?;
        data.put(&secret, "/zbot/agent.secret")?;
        data.debugfs(true, "sif /zbot/agent.secret mode 0100600")?;
        Ok(Machine {
            image: image.clone(),
            _dir: dir,
            disk,
            log,
            boots: 0,
            timeout: Duration::from_secs(120),
            cut_plan: None,
            port: free_port()?,
            secret,
            current: Arc::default(),
        })
    }

    /// The host port forwarded to the robot's port 10000 (the agent in rootfs, SWUpdate's web
    /// server in otafs), on 127.0.0.1 only; the same for all of this robot's boots.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host's copy of the robot's agent secret (mode 600), for `zbot-updater update
    /// --secret`.
    pub fn secret(&self) -> &Path {
        &self.secret
    }

    /// The card image file (change it between boots with [`Machine::part`]).
    pub fn disk(&self) -> &Path {
        &self.disk
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Boots so far.
    pub fn boots(&self) -> usize {
        self.boots
    }

    /// The ext4 filesystem of partition `n` (2 env, 3 otafs, 4 rootfs, 5 data, 6 staging).
    pub fn part(&self, n: usize) -> PartFs {
        PartFs::new(&self.disk, self.image.offsets[n - 1])
    }

    /// `e2fsck -fn` of the env partition between boots: `Ok(())` if the filesystem is sound,
    /// else e2fsck's report.
    pub fn env_fs_check(&self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let (start, end) = (self.image.offsets[1], self.image.offsets[2]);
        let mut f = std::fs::File::open(&self.disk)?;
        f.seek(SeekFrom::Start(start))?;
        let mut fs = vec![0u8; (end - start) as usize];
        f.read_exact(&mut fs)?;
        crate::fsck_bytes(&fs, "the env partition")
    }

    /// `/uboot.env` on the env partition (`None` if missing).
    pub fn env_file(&self) -> Result<Option<Vec<u8>>> {
        self.part(2).read("/uboot.env")
    }

    /// Append a note to the log (scenario steps, checks).
    pub fn note(&self, text: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.log)?;
        writeln!(f, "## {text}")?;
        Ok(())
    }

    /// The QEMU command line for this machine.
    pub fn command(&self) -> Result<Command> {
        let qemu = find_program("qemu-system-x86_64").ok_or_else(|| {
            HelperError(
                "qemu-system-x86_64 not found: run scripts/setup-debian.sh (qemu-system-x86 from bookworm-backports)"
                    .into(),
            )
        })?;
        let mut cmd = Command::new(qemu);
        cmd.args(["-M", "pc", "-m", "256M", "-smp", "1", "-accel", "tcg"])
            .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
            .arg("-no-reboot")
            // The network: QEMU user networking, no way out (restrict=on), one forward from the
            // host's loopback (never another address) to the robot's port 10000.
            .arg("-netdev")
            .arg(format!(
                "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{}-:10000",
                self.port
            ))
            .args(["-device", "virtio-net-pci,netdev=net0", "-bios"])
            .arg(&self.image.rom)
            .arg("-drive")
            // cache=unsafe: no host fsync on guest flushes. Killing QEMU still leaves every
            // completed write in the file (the host page cache), which is what a power cut of
            // the emulated card means here.
            .arg(format!(
                "file={},format=raw,if=none,id=sd,cache=unsafe",
                self.disk.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=sd"]);
        Ok(cmd)
    }

    /// Plan a power cut: the next boot's QEMU is killed `after` its power-on, whatever the
    /// harness is waiting for at that moment (waits then fail with "power cut").
    pub fn cut_power_after(&mut self, after: Duration) {
        self.cut_power(PowerCut::At(after));
    }

    /// Plan a power cut of the next boot (see [`PowerCut`]).
    pub fn cut_power(&mut self, plan: PowerCut) {
        self.cut_plan = Some(plan);
    }

    /// Copy the card to `to` (a snapshot to start other robots from).
    pub fn save_disk(&self, to: &Path) -> Result<()> {
        copy_sparse(&self.disk, to)
    }

    /// Replace the card with a copy of `from` (a snapshot from [`Machine::save_disk`]).
    pub fn load_disk(&self, from: &Path) -> Result<()> {
        copy_sparse(from, &self.disk)
    }

    /// Power on and follow the boot to its health verdict: a healthy boot (verdict 0) is left
    /// running (shell ready) and returned; an unhealthy one reboots by itself; a boot that
    /// reaches no verdict within `watchdog` (hang, panic loop, U-Boot reset) is ended, killed
    /// if needed (the watchdog).
    pub fn boot_to_verdict(&mut self, watchdog: Duration) -> Result<(Boot, Outcome)> {
        let mut boot = self.boot()?;
        let mut o = Outcome::default();
        match boot.wait_for("bootcount: health run exited with", watchdog) {
            Ok(line) => {
                o.verdict = line.rsplit(' ').next().and_then(|c| c.parse().ok());
                o.verdict_secs = boot
                    .time_of("bootcount: health run exited with")
                    .map(|t| t.as_secs_f64());
                if o.verdict != Some(0) {
                    o.ending = Some(boot.wait_end(self.timeout)?);
                }
            }
            // QEMU ended by itself (reboot, panic): let it exit; else the watchdog bites.
            Err(_) if boot.console_closed() => {
                o.ending = Some(boot.wait_end(Duration::from_secs(10))?)
            }
            Err(_) => o.ending = Some(boot.kill()?),
        }
        o.uboot_slot = boot
            .lines()
            .into_iter()
            .find(|l| l.starts_with("Kernel command line:"))
            .and_then(|l| {
                l.split(|c: char| c.is_whitespace() || c == '"')
                    .find_map(|w| w.strip_prefix("zbot.slot="))
                    .map(str::to_string)
            });
        if let Some(line) = boot
            .lines()
            .into_iter()
            .find(|l| l.contains("zbot-machine: booted slot="))
        {
            let rest = &line[line.find("slot=").unwrap_or(0) + 5..];
            o.slot = rest.split_whitespace().next().map(str::to_string);
            o.image = rest
                .find("image=")
                .map(|i| &rest[i + 6..])
                .and_then(|r| r.find(" health=").map(|e| r[..e].to_string()));
        }
        self.note(&format!("outcome of boot {}: {o:?}", self.boots))?;
        Ok((boot, o))
    }

    /// Power on. The boot runs until [`Boot::wait_end`] or [`Boot::kill`] (dropping it kills).
    pub fn boot(&mut self) -> Result<Boot> {
        self.boots += 1;
        let mut log = std::fs::OpenOptions::new().append(true).open(&self.log)?;
        writeln!(log, "\n===== boot {} =====", self.boots)?;
        // Read before power-on: U-Boot may write the file within a tenth of a second.
        let env = self.part(2);
        let env_before = env.read("/uboot.env").ok().flatten();
        let plan = self.cut_plan.take();
        let trace = self._dir.path().join(format!("writes-{}.log", self.boots));
        let child = self
            .command()?
            .args([
                "-trace",
                "enable=blk_co_pwritev",
                "-msg",
                "timestamp=on",
                "-D",
            ])
            .arg(&trace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HelperError(format!("starting qemu-system-x86_64: {e}")))?;
        let start = Instant::now();
        let start_wall = std::time::SystemTime::now();
        let child = Arc::new(Mutex::new(child));
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        *self.current.lock().unwrap() = Some((child.clone(), cut.clone()));
        let mut trigger = match &plan {
            Some(PowerCut::AfterLine { needle, delay }) => Some(CutTrigger {
                needle: needle.as_bytes().to_vec(),
                delay: *delay,
                child: child.clone(),
                cut: cut.clone(),
                seen: Vec::new(),
            }),
            _ => None,
        };
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let log = Arc::new(Mutex::new(log));
        let mut readers = Vec::new();
        let (stdout, stderr) = {
            let mut c = child.lock().unwrap();
            (
                c.stdout.take().expect("piped"),
                c.stderr.take().expect("piped"),
            )
        };
        for (src, tag) in [
            (Box::new(stdout) as Box<dyn Read + Send>, ""),
            (Box::new(stderr), "[qemu] "),
        ] {
            let console = console.clone();
            let log = log.clone();
            let mut trigger = if tag.is_empty() { trigger.take() } else { None };
            readers.push(std::thread::spawn(move || {
                let mut src = src;
                let mut buf = Vec::new();
                loop {
                    let mut byte = [0u8; 512];
                    let n = src.read(&mut byte).unwrap_or(0);
                    if let Some(t) = &mut trigger {
                        if t.fires(&byte[..n]) {
                            trigger = None;
                        }
                    }
                    let (m, cv) = &*console;
                    let mut c = m.lock().unwrap();
                    // A finished console line: to the log with its time, and to the waiters.
                    let push = |c: &mut Console, raw: &[u8]| {
                        let line = strip_ansi(&String::from_utf8_lossy(raw));
                        let t = start.elapsed();
                        let _ =
                            writeln!(log.lock().unwrap(), "[{:7.3}] {tag}{line}", t.as_secs_f64());
                        c.lines.push((t, format!("{tag}{line}")));
                    };
                    if n == 0 {
                        if !buf.is_empty() {
                            push(&mut c, &buf);
                        }
                        if tag.is_empty() {
                            c.closed = true;
                        }
                        cv.notify_all();
                        return;
                    }
                    for &b in &byte[..n] {
                        if b == b'\n' {
                            push(&mut c, &buf);
                            buf.clear();
                        } else {
                            buf.push(b);
                        }
                    }
                    if tag.is_empty() {
                        c.partial = strip_ansi(&String::from_utf8_lossy(&buf));
                    }
                    cv.notify_all();
                }
            }));
        }
        let stdin = child.lock().unwrap().stdin.take();
        Ok(Boot {
            trace,
            start_wall,
            env_range: (self.image.offsets[1], self.image.offsets[2]),
            env,
            env_before,
            env_after: None,
            env_changes: Vec::new(),
            number: self.boots,
            child,
            cut_at: match plan {
                Some(PowerCut::At(d)) => Some(start + d),
                _ => None,
            },
            cut,
            stdin,
            console,
            start,
            readers,
            log,
            next_cmd: 0,
            timeout: self.timeout,
            ended: None,
        })
    }
}

/// One boot during a [`Machine::push`], as measured.
#[derive(Debug, Clone)]
pub struct PushBoot {
    /// The boot's number on this robot.
    pub number: usize,
    /// What [`Machine::boot_to_verdict`] saw.
    pub outcome: Outcome,
    /// How it ended (`None`: still running when the client exited).
    pub ending: Option<Ending>,
    /// Power-on, since the push started.
    pub started: Duration,
    /// The health verdict (or the end without one), since the push started.
    pub settled: Duration,
    /// The policy's env at power-on (`None`: no valid file).
    pub env_before: Option<Vec<u8>>,
    /// Net change of `/uboot.env` over the boot (once ended).
    pub env_changes: Vec<String>,
    /// Writes that reached the env partition (complete once ended).
    pub env_writes: EnvWrites,
    /// U-Boot's `saveenv`s ("Saving Environment to" on the console).
    pub uboot_saves: usize,
    /// The console lines (complete once ended).
    pub console: Vec<String>,
    /// A planned power cut ended it.
    pub cut: bool,
}

/// What `zbot-updater update 127.0.0.1 FILE.swu --port PORT` did, while the harness kept the
/// robot powered (every reboot powered on again, a boot with no verdict within the watchdog
/// power-cycled).
#[derive(Debug)]
pub struct Push {
    /// The client's exit code.
    pub exit: i32,
    /// Its stdout (the outcome line).
    pub stdout: String,
    /// Its stderr lines (progress, stages), with their time since the push started.
    pub stderr: Vec<(Duration, String)>,
    /// The boots the robot went through, in order (the one running at the start first).
    pub boots: Vec<PushBoot>,
    /// From the start of the client to its exit.
    pub duration: Duration,
    /// The boot still running when the client exited (`None`: the robot was off).
    pub boot: Option<Boot>,
    /// When a planned [`PushCut`] cut the power, since the push started (`None`: no cut
    /// planned, or it did not happen: the needle never came, or the robot was off or the
    /// client gone by then).
    pub cut_at: Option<Duration>,
}

/// A power cut planned during a [`Machine::push_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushCut {
    /// In the `n`-th boot the push powers on (1: the first after the running one), as
    /// [`Machine::cut_power`] plans it.
    Boot(usize, PowerCut),
    /// `delay` after the client's first stderr line containing `needle` (its stages:
    /// "asking for recovery", "upload   0%", "swupdate: bootcount: install into", "swupdate:
    /// SUCCESS", ...): whatever boot runs then loses its power. A watcher thread kills QEMU
    /// within about a millisecond of the instant; where that falls in the guest shifts with
    /// host load.
    ClientLine {
        /// Text of the client's line to wait for.
        needle: String,
        /// Delay after it.
        delay: Duration,
    },
}

impl Push {
    /// The client's stderr, one string.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// When (since the push started) the first stderr line containing `needle` came.
    pub fn time_of(&self, needle: &str) -> Option<Duration> {
        self.stderr
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// The client's own stage times, from its `HOST: stages: NAME S s, ...; total S s` line on
    /// stdout (updater/src/report.rs), folded into the demo's columns: to recovery (status,
    /// reboot-to-recovery, wait-swupdate), upload, install, back with a verdict (back-online,
    /// verdict), total; seconds. `None` without that line.
    pub fn client_times(&self) -> Option<[f64; 5]> {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.split_once(": stages: ").map(|(_, t)| t.to_string()))?;
        let (stages, total) = line.rsplit_once("; total ")?;
        let total: f64 = total.trim_end_matches(" s").trim().parse().ok()?;
        let mut t = [0f64, 0.0, 0.0, 0.0, total];
        for part in stages.split(", ") {
            let mut w = part.split_whitespace();
            let (name, secs) = (w.next()?, w.next()?.parse::<f64>().ok()?);
            let column = match name {
                "status" | "reboot-to-recovery" | "wait-swupdate" => 0,
                "upload" => 1,
                "install" => 2,
                "back-online" | "verdict" => 3,
                _ => return None,
            };
            t[column] += secs;
        }
        Some(t)
    }
}

impl Machine {
    /// Wait until something answers on the robot's forwarded port: SWUpdate (HTTP) or the
    /// agent (a JSON line), at most `timeout`. QEMU accepts the host side of a forward even
    /// when nothing listens in the guest (then it resets the connection at once).
    pub fn wait_port_answers(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let answered = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    s.write_all(b"GET /zbot-status.json HTTP/1.0\r\n\r\nstatus\n")?;
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b)?;
                    Ok(())
                })
                .is_ok();
            if answered {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HelperError(format!(
                    "nothing answered on 127.0.0.1:{} within {timeout:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Push `package` with the real client, `zbot-updater update 127.0.0.1 PACKAGE --port
    /// PORT --secret SECRET [extra]`, and keep the robot powered meanwhile: `running` is the
    /// boot in progress and what [`Machine::boot_to_verdict`] saw of it (or `None`: power on
    /// now); every boot that ends (a reboot: QEMU runs
    /// with `-no-reboot`) is followed by the next power-on; a boot with no health verdict
    /// within `watchdog` is power-cycled (the watchdog). Returns when the client exits, at the
    /// latest after `limit` (then the client is killed and this is an error).
    pub fn push(
        &mut self,
        running: Option<(Boot, Outcome)>,
        package: &Path,
        extra: &[&str],
        watchdog: Duration,
        limit: Duration,
    ) -> Result<Push> {
        self.push_with(
            running,
            package,
            extra,
            watchdog,
            limit,
            None,
            &mut |_, _, _| Ok(()),
        )
    }

    /// [`Machine::push`] with a planned power cut (`cut`), and `after_boot` called for every
    /// boot of the push that ends, before the next power-on (the robot is off then: check its
    /// card), with what [`Machine::boot_to_verdict`] saw of it; an error from it ends the push
    /// (the client is killed) with that error. The boot still running when the client exits
    /// is not passed: it is [`Push::boot`].
    #[allow(clippy::too_many_arguments)]
    pub fn push_with(
        &mut self,
        running: Option<(Boot, Outcome)>,
        package: &Path,
        extra: &[&str],
        watchdog: Duration,
        limit: Duration,
        cut: Option<PushCut>,
        after_boot: &mut dyn FnMut(&Machine, &Boot, &Outcome) -> std::result::Result<(), String>,
    ) -> Result<Push> {
        if let Some(c) = &cut {
            self.note(&format!("push: power cut planned: {c:?}"))?;
        }
        self.note(&format!(
            "push: zbot-updater update 127.0.0.1 {} --port {} {}",
            package.display(),
            self.port,
            extra.join(" ")
        ))?;
        if running.is_some() {
            // A user pushes to a robot that is up: wait until its port answers (the agent in
            // rootfs, SWUpdate in otafs; both start after the health verdict can come).
            self.wait_port_answers(Duration::from_secs(60))?;
        }
        let mut child = Command::new(&self.image.updater)
            .arg("update")
            .arg("127.0.0.1")
            .arg(package)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--secret")
            .arg(&self.secret)
            .args(["--boot-timeout", "300", "--timeout", "300"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HelperError(format!("starting {}: {e}", self.image.updater.display())))?;
        let start = Instant::now();
        let lines: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
        let client_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut_at: Arc<Mutex<Option<Duration>>> = Arc::default();
        let (boot_cut, line_cut) = match cut {
            Some(PushCut::Boot(n, p)) => (Some((n, p)), None),
            Some(PushCut::ClientLine { needle, delay }) => (None, Some((needle, delay))),
            None => (None, None),
        };
        // The client-line cut: a watcher polls the client's lines, then cuts whatever runs.
        let cutter = line_cut.map(|(needle, delay)| {
            let lines = lines.clone();
            let done = client_done.clone();
            let current = self.current.clone();
            let cut_at = cut_at.clone();
            let log = self.log.clone();
            std::thread::spawn(move || {
                use std::sync::atomic::Ordering;
                let seen = loop {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some((t, _)) = lines
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(_, l)| l.contains(&needle))
                    {
                        break *t;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                };
                let at = start + seen + delay;
                while Instant::now() < at {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                if let Some((child, flag)) = current.lock().unwrap().as_ref() {
                    let mut c = child.lock().unwrap();
                    if c.try_wait().ok().flatten().is_none() {
                        flag.store(true, Ordering::SeqCst);
                        let _ = c.kill();
                        let t = start.elapsed();
                        *cut_at.lock().unwrap() = Some(t);
                        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                            let _ = writeln!(
                                f,
                                "## push {:7.3}: POWER CUT ({:.3} s after the client's {needle:?})",
                                t.as_secs_f64(),
                                (t - seen).as_secs_f64()
                            );
                        }
                    }
                }
            })
        });
        let err_reader = {
            let mut src = child.stderr.take().expect("piped");
            let lines = lines.clone();
            let log = self.log.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let flush = |buf: &mut Vec<u8>| {
                    if buf.is_empty() {
                        return;
                    }
                    let line = String::from_utf8_lossy(buf).into_owned();
                    let t = start.elapsed();
                    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                        let _ = writeln!(f, "[push {:7.3}] {line}", t.as_secs_f64());
                    }
                    lines.lock().unwrap().push((t, line));
                    buf.clear();
                };
                loop {
                    let n = src.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        flush(&mut buf);
                        return;
                    }
                    for &b in &chunk[..n] {
                        if b == b'\n' || b == b'\r' {
                            flush(&mut buf);
                        } else {
                            buf.push(b);
                        }
                    }
                }
            })
        };
        let out_reader = {
            let mut src = child.stdout.take().expect("piped");
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = src.read_to_string(&mut s);
                s
            })
        };
        let mut boots: Vec<PushBoot> = Vec::new();
        let (mut boot, first) = match running {
            Some((b, o)) => (Some(b), Some(o)),
            None => (None, None),
        };
        let record = |b: &Boot, o: Outcome, started: Duration| PushBoot {
            number: b.number,
            outcome: o,
            ending: b.ended,
            started,
            settled: start.elapsed(),
            env_before: b.env_before.clone(),
            env_changes: b.env_changes.clone(),
            env_writes: b.env_writes(),
            uboot_saves: b
                .lines()
                .iter()
                .filter(|l| l.contains("Saving Environment to"))
                .count(),
            console: b.lines(),
            cut: b.was_cut(),
        };
        let mut current_outcome = first.clone();
        if let (Some(b), Some(o)) = (&boot, first) {
            boots.push(record(b, o, Duration::ZERO));
        }
        let mut powered = 0;
        let stop_client = |child: &mut Child, done: &std::sync::atomic::AtomicBool| {
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = child.kill();
            let _ = child.wait();
        };
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if start.elapsed() > limit {
                stop_client(&mut child, &client_done);
                return Err(HelperError(format!(
                    "zbot-updater update did not end within {limit:?}; its last lines:\n{}",
                    lines
                        .lock()
                        .unwrap()
                        .iter()
                        .rev()
                        .take(10)
                        .map(|(_, l)| l.clone())
                        .collect::<Vec<_>>()
                        .join("\n")
                )));
            }
            match &mut boot {
                None => {
                    let started = start.elapsed();
                    powered += 1;
                    if let Some((n, p)) = &boot_cut {
                        if *n == powered {
                            self.cut_power(p.clone());
                        }
                    }
                    let (b, o) = self.boot_to_verdict(watchdog)?;
                    let ended = o.ending.is_some();
                    boots.push(record(&b, o.clone(), started));
                    if ended {
                        if let Err(e) = after_boot(self, &b, &o) {
                            stop_client(&mut child, &client_done);
                            return Err(HelperError(e));
                        }
                    }
                    current_outcome = Some(o);
                    boot = (!ended).then_some(b);
                }
                Some(b) if b.console_closed() => {
                    b.wait_end(Duration::from_secs(30))?;
                    if let Some(o) = &current_outcome {
                        if let Err(e) = after_boot(self, b, o) {
                            stop_client(&mut child, &client_done);
                            return Err(HelperError(e));
                        }
                    }
                    if let Some(last) = boots.last_mut() {
                        if last.number == b.number {
                            last.ending = b.ended;
                            last.env_changes = b.env_changes.clone();
                            last.env_writes = b.env_writes();
                            last.uboot_saves = b
                                .lines()
                                .iter()
                                .filter(|l| l.contains("Saving Environment to"))
                                .count();
                            last.console = b.lines();
                            last.cut = b.was_cut();
                        }
                    }
                    boot = None;
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let duration = start.elapsed();
        client_done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(c) = cutter {
            let _ = c.join();
        }
        let _ = err_reader.join();
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = std::mem::take(&mut *lines.lock().unwrap());
        let exit = status.code().unwrap_or(-1);
        let cut_at = *cut_at.lock().unwrap();
        self.note(&format!(
            "push ended: exit {exit} after {:.1} s: {}",
            duration.as_secs_f64(),
            stdout.trim()
        ))?;
        Ok(Push {
            exit,
            stdout,
            stderr,
            boots,
            duration,
            boot,
            cut_at,
        })
    }
}

/// A [`PowerCut::AfterLine`] armed in the console reader.
struct CutTrigger {
    needle: Vec<u8>,
    delay: Duration,
    child: Arc<Mutex<Child>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    /// The console so far (raw bytes), searched for the needle.
    seen: Vec<u8>,
}

impl CutTrigger {
    /// Feed console bytes; once the needle shows, wait the delay and kill QEMU. True when
    /// done (the cut happened, or QEMU's output ended first).
    fn fires(&mut self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let from = self.seen.len().saturating_sub(self.needle.len());
        self.seen.extend_from_slice(bytes);
        if !self.seen[from..]
            .windows(self.needle.len())
            .any(|w| w == self.needle.as_slice())
        {
            return false;
        }
        let at = Instant::now() + self.delay;
        // Sleep most of a long delay, spin the last bit: precise without burning a core.
        if let Some(d) = self.delay.checked_sub(Duration::from_millis(3)) {
            std::thread::sleep(d);
        }
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        let mut c = self.child.lock().unwrap();
        if c.try_wait().ok().flatten().is_none() {
            let _ = c.kill();
            self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        true
    }
}

/// One power-on of a [`Machine`].
pub struct Boot {
    trace: PathBuf,
    start_wall: std::time::SystemTime,
    env_range: (u64, u64),
    env: PartFs,
    env_before: Option<Vec<u8>>,
    env_after: Option<Vec<u8>>,
    env_changes: Vec<String>,
    number: usize,
    child: Arc<Mutex<Child>>,
    cut_at: Option<Instant>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<Console>, Condvar)>,
    start: Instant,
    readers: Vec<std::thread::JoinHandle<()>>,
    log: Arc<Mutex<std::fs::File>>,
    next_cmd: usize,
    timeout: Duration,
    ended: Option<Ending>,
}

impl std::fmt::Debug for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boot")
            .field("number", &self.number)
            .finish()
    }
}

impl Boot {
    /// Time since power-on.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// All console lines so far (ANSI sequences and `\r` removed).
    pub fn lines(&self) -> Vec<String> {
        let c = self.console.0.lock().unwrap();
        c.lines.iter().map(|(_, l)| l.clone()).collect()
    }

    /// The whole console output so far, one string.
    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// When (since power-on) the first line containing `needle` appeared.
    pub fn time_of(&self, needle: &str) -> Option<Duration> {
        let c = self.console.0.lock().unwrap();
        c.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Console) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.console;
        let mut c = m.lock().unwrap();
        loop {
            if let Some(v) = f(&c) {
                return Ok(v);
            }
            if self.cut_now() {
                return Err(HelperError(format!(
                    "boot {}: power cut at {:.2} s while waiting for {what}",
                    self.number,
                    self.start.elapsed().as_secs_f64()
                )));
            }
            let now = Instant::now();
            // Wake up for a planned power cut.
            let deadline = match self.cut_at {
                Some(t) if t < deadline => t.max(now),
                _ => deadline,
            };
            if c.closed || now >= deadline {
                let tail: Vec<&str> = c
                    .lines
                    .iter()
                    .rev()
                    .take(15)
                    .map(|(_, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(HelperError(format!(
                    "boot {}: {} while waiting for {what} (after {:.1} s); last lines:\n{}",
                    self.number,
                    if c.closed { "QEMU ended" } else { "timed out" },
                    self.start.elapsed().as_secs_f64(),
                    tail.join("\n")
                )));
            }
            c = cv.wait_timeout(c, deadline - now).unwrap().0;
        }
    }

    /// Wait for a console line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_until(timeout, &format!("{needle:?}"), |c| {
            c.lines
                .iter()
                .find(|(_, l)| l.contains(needle))
                .map(|(_, l)| l.clone())
        })
    }

    /// Wait for the first line containing any of `needles`; returns (index, line).
    pub fn wait_for_any(&self, needles: &[&str], timeout: Duration) -> Result<(usize, String)> {
        self.wait_until(timeout, &format!("any of {needles:?}"), |c| {
            c.lines.iter().find_map(|(_, l)| {
                needles
                    .iter()
                    .position(|n| l.contains(n))
                    .map(|i| (i, l.clone()))
            })
        })
    }

    /// Type a line into the serial console.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| HelperError("console input closed".into()))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Wait until the root shell on the console shows its prompt (init finished `sysinit`).
    pub fn wait_shell(&self, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, "the shell prompt", |c| {
            let banner = c
                .lines
                .iter()
                .any(|(_, l)| l.contains("Enter 'help' for a list of built-in commands."));
            (banner
                && (c.partial.ends_with("# ") || c.lines.iter().any(|(_, l)| l.contains(":/# "))))
            .then_some(())
        })
    }

    /// Run `cmd` in the console's root shell; returns its exit status and output lines
    /// (between markers, so kernel or service messages printed meanwhile may be mixed in).
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        self.wait_shell(timeout)?;
        self.next_cmd += 1;
        let n = self.next_cmd;
        let (begin, end) = (format!("@@B{n}@@"), format!("@@E{n}@@"));
        // The markers are printed by `echo` from pieces, so the typed line (echoed by the
        // tty) never contains them.
        self.send_line(&format!("echo @@B{n}''@@; {cmd}; echo @@E{n}''@@$?"))?;
        let (code, text) = self.wait_until(timeout, &format!("the end of `{cmd}`"), |c| {
            let b = c.lines.iter().position(|(_, l)| l.starts_with(&begin))?;
            let e = c.lines[b..].iter().position(|(_, l)| l.starts_with(&end))? + b;
            let code = c.lines[e].1[end.len()..].trim().parse().unwrap_or(-1);
            let text = c.lines[b + 1..e]
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            Some((code, text))
        })?;
        Ok((code, text))
    }

    /// `bootcount status --json` in the root shell, parsed. Kernel or service messages that
    /// land among its lines are skipped: the JSON is the text from the first `{` to the last `}`.
    pub fn status(&mut self, timeout: Duration) -> Result<serde_json::Value> {
        let (code, out) = self.run("bootcount status --json 2>/dev/null", timeout)?;
        let json = match (out.find('{'), out.rfind('}')) {
            (Some(b), Some(e)) if code == 0 && b < e => &out[b..=e],
            _ => {
                return Err(HelperError(format!(
                    "boot {}: bootcount status --json exited {code}:\n{out}",
                    self.number
                )))
            }
        };
        serde_json::from_str(json).map_err(|e| {
            HelperError(format!(
                "boot {}: bootcount status --json printed no JSON ({e}):\n{out}",
                self.number
            ))
        })
    }

    /// Wait for QEMU to end by itself; on timeout kill it (the watchdog) and return
    /// [`Ending::Killed`].
    pub fn wait_end(&mut self, timeout: Duration) -> Result<Ending> {
        if let Some(e) = self.ended {
            return Ok(e);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if self.cut_now() {
                return self.kill();
            }
            let exited = self.child.lock().unwrap().try_wait()?.is_some();
            if exited {
                if self.cut_now() {
                    return self.kill();
                }
                break;
            }
            if Instant::now() >= deadline {
                return self.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish_readers();
        let out = self.output();
        let ending = if out.contains("reboot: Power down") {
            Ending::PowerOff
        } else if out.contains("Kernel panic") {
            Ending::Panic
        } else if out.contains("reboot: Restarting system") {
            Ending::Reboot
        } else if out.contains("resetting ...") {
            Ending::UbootReset
        } else {
            Ending::Other
        };
        self.log_end(ending);
        self.ended = Some(ending);
        Ok(ending)
    }

    /// Cut the power now (SIGKILL to QEMU).
    pub fn kill(&mut self) -> Result<Ending> {
        if let Some(e) = self.ended {
            return Ok(e);
        }
        {
            let mut c = self.child.lock().unwrap();
            let _ = c.kill();
            let _ = c.wait();
        }
        self.finish_readers();
        self.log_end(Ending::Killed);
        self.ended = Some(Ending::Killed);
        Ok(Ending::Killed)
    }

    /// If a power cut is planned ([`Machine::cut_power_after`]) and due: kill QEMU now (once)
    /// and return true.
    fn cut_now(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.cut.load(Ordering::SeqCst) {
            return true;
        }
        match self.cut_at {
            Some(t) if Instant::now() >= t => {
                if !self.cut.swap(true, Ordering::SeqCst) {
                    let mut c = self.child.lock().unwrap();
                    let _ = c.kill();
                    let _ = c.wait();
                }
                true
            }
            _ => false,
        }
    }

    /// True once QEMU has closed its console (it ended or is ending).
    pub fn console_closed(&self) -> bool {
        self.console.0.lock().unwrap().closed
    }

    /// How the boot ended (`None`: still running, or not yet waited for).
    pub fn ending(&self) -> Option<Ending> {
        self.ended
    }

    /// True if this boot was ended by a planned power cut.
    pub fn was_cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn finish_readers(&mut self) {
        self.stdin = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    fn log_end(&mut self, e: Ending) {
        let after = self.env.read("/uboot.env").ok().flatten();
        self.env_changes = env_diff(self.env_before.as_deref(), after.as_deref());
        self.env_after = after;
        let mut log = self.log.lock().unwrap();
        let _ = writeln!(
            log,
            "===== boot {} ended: {e:?} after {:.2} s =====",
            self.number,
            self.start.elapsed().as_secs_f64()
        );
        if self.env_changes.is_empty() {
            let _ = writeln!(log, "env: unchanged");
        }
        let _ = writeln!(log, "env partition writes: {}", self.env_writes());
        for c in &self.env_changes {
            let _ = writeln!(log, "env: {c}");
        }
    }

    /// The writes that reached the env partition so far (complete once the boot has ended).
    pub fn env_writes(&self) -> EnvWrites {
        let trace = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let kernel = self.time_of("Starting kernel").map(|t| {
            (self.start_wall + t)
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        parse_write_trace(&trace, self.env_range, kernel)
    }

    /// `/uboot.env` as it was at power-on (`None`: missing).
    pub fn env_before(&self) -> Option<&[u8]> {
        self.env_before.as_deref()
    }

    /// `/uboot.env` once the boot has ended (`None`: missing, or the boot has not ended).
    pub fn env_after(&self) -> Option<&[u8]> {
        self.env_after.as_deref()
    }

    /// How `/uboot.env` changed during this boot (empty: byte for byte unchanged), once the
    /// boot has ended ([`Boot::wait_end`] or [`Boot::kill`]).
    pub fn env_changes(&self) -> &[String] {
        &self.env_changes
    }

    /// The per-step default timeout of this boot (120 s; TCG on a loaded 2-core host).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        if self.ended.is_none() {
            let _ = self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_trace_is_split_at_the_kernel_and_limited_to_the_partition() {
        let t = "\
7@100.5:blk_co_pwritev blk 0x1 bs 0x2 offset 2048 bytes 4096 flags 0x0
7@100.6:blk_co_pwritev blk 0x1 bs 0x2 offset 9000 bytes 10 flags 0x0
7@101.0:blk_co_pwritev blk 0x1 bs 0x2 offset 2048 bytes 1024 flags 0x8
7@101.1:blk_co_pwritev blk 0x1 bs 0x2 offset 4096 bytes 512 flags 0x8
7@101.2:blk_co_pwritev blk 0x1 bs 0x2 offset 512 bytes 1024 flags 0x8
7@101.3:virtio_blk_handle_write vdev 0x1 req 0x2 sector 4 nsectors 1
";
        let w = parse_write_trace(t, (1024, 8192), Some(100.9));
        assert_eq!(
            w,
            EnvWrites {
                uboot_requests: 1,
                uboot_bytes: 4096,
                linux_requests: 3,
                linux_bytes: 2560,
                linux_superblock: 1,
            }
        );
        assert_eq!(parse_write_trace(t, (1024, 8192), None).uboot_requests, 4);
    }

    #[test]
    fn env_diff_names_changed_variables() {
        let img = |vars: &str| {
            let mut data = vars.replace(';', "\0").into_bytes();
            data.resize(64, 0);
            let mut out = fw_env::codec::crc32(&data).to_le_bytes().to_vec();
            out.extend(data);
            out
        };
        let a = img("a=1;b=2;");
        let b = img("a=1;b=3;c=4;");
        assert_eq!(
            env_diff(Some(&a), Some(&b)),
            vec!["b: \"2\" -> \"3\"", "c: (unset) -> \"4\""]
        );
        assert!(env_diff(Some(&a), Some(&a)).is_empty());
        assert_eq!(
            env_diff(Some(&a), None),
            vec!["/uboot.env: valid -> missing"]
        );
        let mut bad = b.clone();
        bad[10] ^= 1;
        assert_eq!(
            env_diff(Some(&a), Some(&bad)),
            vec!["/uboot.env: valid -> bad CRC"]
        );
    }

    #[test]
    fn strip_ansi_removes_cursor_query_and_cr() {
        assert_eq!(
            strip_ansi("zbot:/# \u{1b}[6nbootcount: x\r"),
            "zbot:/# bootcount: x"
        );
    }

    #[test]
    fn shell_var_reads_quoted_assignments() {
        let t = "# c\nZBOT_UBOOT_QEMU_X86='/a/b/u-boot.rom'\nZBOT_P1_OFFSET=1048576\n";
        assert_eq!(
            shell_var(t, "ZBOT_UBOOT_QEMU_X86").as_deref(),
            Some("/a/b/u-boot.rom")
        );
        assert_eq!(shell_var(t, "ZBOT_P1_OFFSET").as_deref(), Some("1048576"));
        assert_eq!(shell_var(t, "ZBOT_P1"), None);
    }
}
