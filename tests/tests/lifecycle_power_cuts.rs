//! Scenarios 5 and 7 of issue 13 (and issue 6's scenario 6): power cuts across the network
//! update, on real U-Boot, Linux and SWUpdate under QEMU, with every policy invariant checked
//! after every boot (docs/qemu.md, "Power cuts").
//!
//! The story of a cut: a fresh robot boots rootfs v1, and the host pushes a package with
//! `zbot-updater update` ([`Machine::push_with`]): the agent's one-shot into recovery, SWUpdate
//! installs (pre-update `bootcount install-target`, the raw write, post-update `bootcount
//! trial rootfs --reboot`), the trial boots, the health check commits or rolls back. A cut is
//! drawn from a seed: the package (good, unhealthy, hanging, or not a filesystem) and the
//! window, either a boot of the push (numbered from the first the push powers on):
//! - **anywhere**: a random instant within the boot's usual length;
//! - **U-Boot save**: 0-15 ms after U-Boot prints "Saving Environment to" (its `saveenv`
//!   deletes and rewrites `/uboot.env`; drawn only among the boots that save);
//! - **userspace**: 0-1.5 s after the slot's init starts, where `bootcount` writes (the
//!   commit, `mark-bad`);
//!
//! or an instant after a line of the client (whatever boot runs then):
//! - **request**: 0-2 s after "asking for recovery" (the agent's one-shot write, the reboot);
//! - **upload**: 0-2 s after the first "upload" progress line (the transfer, SWUpdate's
//!   pre-update reservation);
//! - **install**: 0-1.5 s after SWUpdate's "bootcount: install into" (its raw handler writing
//!   rootfs's partition: scenario 5);
//! - **trial**: 0-1.5 s after SWUpdate's "SUCCESS" (the post-update `bootcount trial`, the
//!   reboot into it).
//!
//! After the cut the harness keeps the robot powered until the client exits, then boots it on
//! (typing nothing but the repair of a lost env) until a boot is healthy with no trial pending
//! and a valid environment. If the environment was lost, the device must be in the recovery
//! slot, which repairs it with `bootcount set-primary rootfs` (as scenario 5 of issue 6). After
//! a cut in the upload, install or trial window, a new push of the good package to the settled
//! robot must end with exit 0 and rootfs v2 committed (scenario 5: the robot takes the next
//! push).
//!
//! Checked after **every** boot (those of the pushes too), from the env file as it was at
//! power-on and after:
//! - the slot U-Boot booted is the one the engine (`bootcount::bootloader_step`) picks from what
//!   U-Boot loaded: the file, or the compiled-in default env when the file is missing or torn
//!   (invariant 4: every state boots a slot, and U-Boot follows the contract);
//! - U-Boot saved exactly when the engine says it writes, at most once (invariants 1 and 2);
//! - a healthy boot with nothing to change leaves the file byte for byte unchanged (1) (a
//!   healthy boot during a push is exempt: the client asks it to write);
//! - kernel starts on a trial never exceed the attempt U-Boot recorded, nor the limit (3);
//! - no slot marked bad is booted (5); a recorded rollback always has a reason (6);
//! - after a cut that left rootfs reserved (possibly half-written), the next boot is the
//!   recovery slot;
//! - a boot that shut down cleanly leaves the env filesystem sound (`e2fsck -fn` on the host):
//!   damage an earlier cut left is repaired at boot by `bootcount/dist/fsck-bootenv`;
//!
//! and after each cut: the device settles within a bound of boots (4); a bad update that was
//! tried ends with its rollback reason in `bootcount status` (6).
//!
//! ```sh
//! # the default suite: 5 cuts (install, trial, upload, U-Boot save, request), 7.5 min on the
//! # loaded 2-core host (boots to their verdict 30-45 s there; 4.5 s alone)
//! cargo test -p zbot-tests --test lifecycle_power_cuts
//! # a campaign (docs/qemu.md has its results)
//! ZBOT_CUTS=24 ZBOT_CUT_SEED=7 cargo test -p zbot-tests --test lifecycle_power_cuts -- --nocapture
//! ```
//! `ZBOT_CUT_JOBS` robots run at once (default: 2, at most the host's cores). Every
//! robot's log is `target/zbot-machine/logs/power_cut_<seed>_<n>.log`; the report also goes
//! to `target/zbot-machine/power-cuts.txt`. Cut instants are reproducible from the seed
//! (proptest's ChaCha `TestRng`); where an instant lands in the guest shifts a little with host
//! load, so the counts per outcome vary slightly between runs (the invariants may not).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bootcount::engine::Why;
use bootcount::{bootloader_step, SlotConfig};
use fw_env::codec::uboot_view;
use fw_env::store::parse_defaults_text;
use fw_env::Vars;
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use zbot_tests::bootloop::loaded_vars;
use zbot_tests::machine::{
    work_dir, Boot, Ending, Machine, MachineImage, Outcome, PowerCut, PushCut, Update,
};

const STEP: Duration = Duration::from_secs(120);
/// The harness's watchdog: a boot with no health verdict by then is power cycled. 60 s: with
/// two robots, SWUpdate and other engineers' QEMUs and builds on the 2 cores a healthy verdict
/// came at up to 45 s (4.5 s alone); a false watchdog is a boot like any other for the
/// invariants, but a failed attempt for a trial.
const WATCHDOG: Duration = Duration::from_secs(60);
/// One push, from the client's start to its exit, at most.
const PUSH_LIMIT: Duration = Duration::from_secs(900);

/// Where a cut is aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Window {
    Anywhere,
    UbootSave,
    Userspace,
    Request,
    Upload,
    Install,
    Trial,
}

impl Window {
    const ALL: [Window; 7] = [
        Window::Anywhere,
        Window::UbootSave,
        Window::Userspace,
        Window::Request,
        Window::Upload,
        Window::Install,
        Window::Trial,
    ];

    /// A window in SWUpdate's part of the push: after it, the next push must succeed.
    fn swupdate(self) -> bool {
        matches!(self, Window::Upload | Window::Install | Window::Trial)
    }
}

/// One drawn cut.
#[derive(Debug, Clone)]
struct Plan {
    n: u64,
    update: Update,
    window: Window,
    cut: PushCut,
}

/// The boots a push powers on when nothing is cut: 1 otafs (SWUpdate installs, the trial
/// starts), then the trial's boots, then (a bad update) the recovery system.
fn push_len(u: Update) -> usize {
    match u {
        Update::Good => 2,
        Update::Unhealthy => 3,
        Update::Hang | Update::Garbage => 5,
    }
}

/// Whether U-Boot saves the environment in push boot `k` (the one-shot, the trial attempts,
/// the give-up).
fn saves_in(u: Update, k: usize) -> bool {
    match u {
        Update::Good | Update::Unhealthy => k == 1 || k == 2,
        Update::Hang | Update::Garbage => (1..=5).contains(&k),
    }
}

/// Whether push boot `k` reaches the slot's init (an unusable root never does).
fn reaches_userspace(u: Update, k: usize) -> bool {
    !(u == Update::Garbage && (2..=4).contains(&k))
}

/// The seeded generator: proptest's ChaCha RNG, its 32-byte seed from `seed`.
fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

fn pick<T: Copy>(rng: &mut TestRng, from: &[T]) -> T {
    from[rng.random_range(0..from.len())]
}

fn millis(rng: &mut TestRng, below: u64) -> Duration {
    Duration::from_millis(rng.random_range(0..below))
}

/// Draw cut `n`. The first five of a campaign take one window each (the default suite):
/// install, trial and upload (scenario 5), U-Boot save, request.
fn draw(rng: &mut TestRng, n: u64) -> Plan {
    // Weights: good 7, unhealthy 5, unusable root 5, hang 3 (a hung boot costs the watchdog).
    let update = pick(
        rng,
        &[
            Update::Good,
            Update::Good,
            Update::Good,
            Update::Good,
            Update::Good,
            Update::Good,
            Update::Good,
            Update::Unhealthy,
            Update::Unhealthy,
            Update::Unhealthy,
            Update::Unhealthy,
            Update::Unhealthy,
            Update::Garbage,
            Update::Garbage,
            Update::Garbage,
            Update::Garbage,
            Update::Garbage,
            Update::Hang,
            Update::Hang,
            Update::Hang,
        ],
    );
    let window = match n {
        0 => Window::Install,
        1 => Window::Trial,
        2 => Window::Upload,
        3 => Window::UbootSave,
        4 => Window::Request,
        _ => pick(
            rng,
            &[
                Window::Anywhere,
                Window::Anywhere,
                Window::UbootSave,
                Window::UbootSave,
                Window::Userspace,
                Window::Request,
                Window::Upload,
                Window::Install,
                Window::Install,
                Window::Trial,
            ],
        ),
    };
    let boots: Vec<usize> = (1..=push_len(update))
        .filter(|&k| match window {
            Window::UbootSave => saves_in(update, k),
            Window::Userspace => reaches_userspace(update, k),
            _ => true,
        })
        .collect();
    let client = |needle: &str, delay| PushCut::ClientLine {
        needle: needle.into(),
        delay,
    };
    let cut = match window {
        // Within the boot's usual length (verdict at about 4.5 s, power-off by 7 s; an
        // unusable root panics after about 5 s), so that nearly every draw cuts the boot.
        Window::Anywhere => {
            let k = pick(rng, &boots);
            let len = if update == Update::Garbage {
                5000
            } else {
                7000
            };
            PushCut::Boot(
                k,
                PowerCut::At(Duration::from_millis(50) + millis(rng, len)),
            )
        }
        Window::UbootSave => PushCut::Boot(
            pick(rng, &boots),
            PowerCut::AfterLine {
                needle: "Saving Environment to".into(),
                delay: Duration::from_micros(rng.random_range(0..15_000)),
            },
        ),
        Window::Userspace => PushCut::Boot(
            pick(rng, &boots),
            PowerCut::AfterLine {
                needle: "zbot-machine: booted slot=".into(),
                delay: millis(rng, 1500),
            },
        ),
        Window::Request => client("asking for recovery", millis(rng, 2000)),
        Window::Upload => client(": upload ", millis(rng, 2000)),
        Window::Install => client("swupdate: bootcount: install into", millis(rng, 1500)),
        Window::Trial => client("swupdate: SUCCESS", millis(rng, 1500)),
    };
    Plan {
        n,
        update,
        window,
        cut,
    }
}

/// What the campaign shares between robots.
struct Campaign {
    image: &'static MachineImage,
    cfg: SlotConfig,
    /// U-Boot's compiled-in default env, as U-Boot sees it.
    defaults: Vars,
    seed: u64,
}

/// What the harness does in a healthy, running system once it has read `bootcount status`.
enum Next {
    /// `poweroff`.
    Poweroff,
    /// Type this command line (it ends the boot: reboots or powers off).
    Type(String),
    /// Leave it running (the next push goes to it); it is checked when it ends.
    Keep,
}

/// One boot as the campaign saw it.
struct Played {
    o: Outcome,
    /// `bootcount status --json` of a healthy boot.
    status: Option<serde_json::Value>,
    /// The environment at power-on was valid.
    env_valid_before: bool,
    /// How the file changed: "unchanged", "valid", "missing", "corrupt".
    env_after: &'static str,
}

/// What [`Robot::push`] returns: the client's exit code and outcome line, the boot running at
/// its exit as finished, and that boot if it was kept running.
struct Pushed {
    exit: i32,
    outcome: String,
    played: Played,
    running: Option<(Boot, Outcome)>,
}

/// Totals of what a robot wrote to the env partition (QEMU's block layer).
#[derive(Debug, Default, Clone, Copy)]
struct Wear {
    uboot_bytes: u64,
    linux_bytes: u64,
}

/// One robot of the campaign: the state the checks carry from boot to boot (the machine
/// itself is passed alongside, as [`Machine::push_with`] lends it to the checks).
struct Robot<'a> {
    c: &'a Campaign,
    update: Update,
    log: String,
    /// Kernel starts on the current trial so far.
    trial_kernel_boots: u8,
    /// A bad update was booted on trial.
    bad_tried: bool,
    boots_checked: usize,
    uboot_saves: usize,
    wear: Wear,
    /// Boots where fsck-bootenv repaired the env filesystem.
    fs_repairs: usize,
    /// Boots after which the host found the env filesystem unsound (cut or killed ones).
    fs_unsound_boots: usize,
    /// The env file after the cut boot (`None`: no cut yet).
    cut_env: Option<&'static str>,
    /// The cut left rootfs reserved: `zbot_bad_rootfs` set, no trial.
    reserved_at_cut: bool,
    /// The slot U-Boot booted after the cut.
    after_cut_slot: Option<String>,
}

impl Robot<'_> {
    fn fail(&self, what: String) -> String {
        format!("{what}\n    log: {}", self.log)
    }

    /// The variables U-Boot works with, given the file at power-on: the file, or its default
    /// env when the file is missing or fails its CRC.
    fn loaded(&self, file: Option<&[u8]>) -> (Vars, bool) {
        match file.and_then(loaded_vars) {
            Some(v) => (v, true),
            None => (self.c.defaults.clone(), false),
        }
    }

    /// Power on (with an optional cut) and follow the boot to its verdict, then
    /// [`Robot::finish`] it.
    fn play(
        &mut self,
        m: &mut Machine,
        cut: Option<PowerCut>,
        then: &dyn Fn(&serde_json::Value) -> Next,
    ) -> Result<(Played, Option<(Boot, Outcome)>), String> {
        if let Some(p) = cut {
            m.cut_power(p);
        }
        let (boot, o) = m
            .boot_to_verdict(WATCHDOG)
            .map_err(|e| self.fail(e.to_string()))?;
        self.finish(m, boot, o, then)
    }

    /// A boot in progress: in a healthy system read `bootcount status` and do what `then`
    /// answers for it; let it end and check the invariants on it (with [`Next::Keep`]: return
    /// it running, unchecked, with what `status` said).
    fn finish(
        &mut self,
        m: &mut Machine,
        mut boot: Boot,
        o: Outcome,
        then: &dyn Fn(&serde_json::Value) -> Next,
    ) -> Result<(Played, Option<(Boot, Outcome)>), String> {
        let mut status = None;
        let mut typed = false;
        if o.ending.is_none() && !boot.was_cut() {
            // Healthy and running: read the status, then the story's command or poweroff.
            match boot.status(STEP) {
                Ok(s) => {
                    let next = then(&s);
                    status = Some(s);
                    match next {
                        Next::Poweroff => boot.send_line("poweroff"),
                        Next::Type(cmd) => {
                            typed = true;
                            boot.send_line(&cmd)
                        }
                        Next::Keep => {
                            let played = Played {
                                o: o.clone(),
                                status,
                                env_valid_before: self.loaded(boot.env_before()).1,
                                env_after: "unchanged",
                            };
                            return Ok((played, Some((boot, o))));
                        }
                    }
                    .map_err(|e| self.fail(e.to_string()))?;
                }
                // A power cut, or the system went down by itself (the updater reboots while
                // the health check may already have passed).
                Err(_) if boot.was_cut() || boot.console_closed() => {}
                Err(e) => return Err(self.fail(e.to_string())),
            }
        }
        let ending = boot.wait_end(STEP).map_err(|e| self.fail(e.to_string()))?;
        let cut = boot.was_cut();
        let played = self.check(m, &boot, o, ending, cut, typed, status)?;
        Ok((played, None))
    }

    /// Push `package` to the running robot with `cut` planned, every boot of the push checked
    /// as it ends; the boot still running at the client's exit is finished with `then`.
    fn push(
        &mut self,
        m: &mut Machine,
        running: (Boot, Outcome),
        package: &std::path::Path,
        cut: Option<PushCut>,
        then: &dyn Fn(&serde_json::Value) -> Next,
    ) -> Result<Pushed, String> {
        let mut p = m
            .push_with(
                Some(running),
                package,
                &[],
                WATCHDOG,
                PUSH_LIMIT,
                cut,
                &mut |m, b, o| {
                    // A healthy boot during a push was asked by the client to write (the
                    // agent's one-shot, SWUpdate's install): "typed".
                    let typed = o.verdict == Some(0);
                    let ending = b.ending().unwrap_or(Ending::Other);
                    self.check(m, b, o.clone(), ending, b.was_cut(), typed, None)
                        .map(|_| ())
                },
            )
            .map_err(|e| self.fail(e.to_string()))?;
        let outcome = p.stdout.lines().next().unwrap_or("").trim().to_string();
        let (played, running) = match p.boot.take() {
            Some(boot) => {
                let o = p.boots.last().expect("a boot").outcome.clone();
                self.finish(m, boot, o, then)?
            }
            None => {
                // The robot was off at the client's exit: power it on.
                self.play(m, None, then)?
            }
        };
        Ok(Pushed {
            exit: p.exit,
            outcome,
            played,
            running,
        })
    }

    /// The per-boot invariants (see the module doc).
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        m: &Machine,
        boot: &Boot,
        o: Outcome,
        ending: Ending,
        cut: bool,
        typed: bool,
        status: Option<serde_json::Value>,
    ) -> Result<Played, String> {
        self.boots_checked += 1;
        let cfg = &self.c.cfg;
        let n = m.boots();
        let (v0, valid0) = self.loaded(boot.env_before());
        let d = bootloader_step(cfg, &v0);
        let want = cfg.name(d.slot);
        let lines = boot.lines();
        let saves = lines
            .iter()
            .filter(|l| l.contains("Saving Environment to"))
            .count();
        self.uboot_saves += saves;
        let writes = !d.changes.is_empty();
        let wear = boot.env_writes();
        self.wear.uboot_bytes += wear.uboot_bytes;
        self.wear.linux_bytes += wear.linux_bytes;
        match o.uboot_slot.as_deref() {
            Some(slot) => {
                if slot != want {
                    return Err(self.fail(format!(
                        "boot {n}: U-Boot booted {slot}, the engine picks {want} ({}) from the \
                         env it loaded (file valid: {valid0})",
                        d.explain(cfg)
                    )));
                }
                if saves != usize::from(writes) || (wear.uboot_requests > 0) != writes {
                    return Err(self.fail(format!(
                        "boot {n}: U-Boot saved {saves} time(s) ({wear}); the engine writes {:?}",
                        d.changes
                    )));
                }
                for id in cfg.ids() {
                    let name = cfg.name(id);
                    let bad = v0
                        .get(&format!("zbot_bad_{name}"))
                        .is_some_and(|r| !r.is_empty());
                    if bad && id != cfg.recovery() && slot == name {
                        return Err(self.fail(format!(
                            "boot {n}: U-Boot booted {name}, marked bad in the env"
                        )));
                    }
                }
                match d.why {
                    Why::TrialAttempt { attempt, limit } => {
                        self.trial_kernel_boots += 1;
                        if self.trial_kernel_boots > attempt || attempt > limit {
                            return Err(self.fail(format!(
                                "boot {n}: kernel start {} of a trial, U-Boot counted attempt \
                                 {attempt} of {limit}",
                                self.trial_kernel_boots
                            )));
                        }
                        self.bad_tried |= self.update != Update::Good;
                    }
                    _ => self.trial_kernel_boots = 0,
                }
            }
            None if !cut => {
                return Err(self.fail(format!(
                    "boot {n}: no kernel started and no power cut (the engine picks {want})"
                )))
            }
            None => {
                if saves > 1 {
                    return Err(self.fail(format!("boot {n}: {saves} saves before the cut")));
                }
            }
        }
        let after = boot.env_after();
        // bootcount/dist/fsck-bootenv repaired the env filesystem before mounting it.
        let fs_repaired = lines.iter().any(|l| l.contains("fsck-bootenv:"));
        self.fs_repairs += usize::from(fs_repaired);
        if !cut
            && !typed
            && !fs_repaired
            && !writes
            && o.verdict == Some(0)
            && (after != boot.env_before() || wear.linux_requests != wear.linux_superblock)
        {
            return Err(self.fail(format!(
                "boot {n}: a healthy boot with nothing to change wrote the env: {:?} ({wear})",
                boot.env_changes()
            )));
        }
        let v1 = after.and_then(loaded_vars);
        if let Some(v1) = &v1 {
            let rb = v1.get("zbot_rb_slot").is_some_and(|s| !s.is_empty());
            let reason = v1.get("zbot_rb_reason").is_some_and(|s| !s.is_empty());
            if rb && !reason {
                return Err(self.fail(format!("boot {n}: a rollback without a reason")));
            }
        }
        // A clean shutdown (init's unmount) leaves the env filesystem sound: nothing Linux
        // writes, and no damage an earlier cut left (fsck-bootenv repairs it at boot).
        let fs = m.env_fs_check();
        if fs.is_err() {
            self.fs_unsound_boots += 1;
        }
        if let (Err(e), false, Ending::PowerOff | Ending::Reboot) = (&fs, cut, ending) {
            if o.uboot_slot.is_some() {
                return Err(self.fail(format!(
                    "boot {n}: shut down cleanly ({ending:?}) but the env filesystem is \
                     unsound: {e}"
                )));
            }
        }
        // Scenario 5: where a cut left the slot reserved (the pre-update reservation written,
        // no trial yet: the slot may be half-written), the next boot must be the recovery
        // slot, U-Boot refusing rootfs.
        if !cut && self.cut_env.is_some() && self.after_cut_slot.is_none() {
            self.after_cut_slot = Some(o.uboot_slot.clone().unwrap_or_default());
            if self.reserved_at_cut && o.uboot_slot.as_deref() != Some("otafs") {
                return Err(self.fail(format!(
                    "boot {n}: the cut left rootfs reserved (half-written), but U-Boot booted \
                     {:?}",
                    o.uboot_slot
                )));
            }
        }
        let env_after = if after == boot.env_before() {
            "unchanged"
        } else if after.is_none() {
            "missing"
        } else if v1.is_some() {
            "valid"
        } else {
            "corrupt"
        };
        if cut {
            self.cut_env = Some(env_after);
            self.reserved_at_cut = v1.as_ref().is_some_and(|v| {
                v.get("zbot_bad_rootfs").is_some_and(|b| !b.is_empty())
                    && !v.get("zbot_trial").is_some_and(|t| !t.is_empty())
            });
        }
        Ok(Played {
            o,
            status,
            env_valid_before: valid0,
            env_after,
        })
    }
}

/// What one cut found, for the report.
#[derive(Debug)]
struct CutResult {
    plan: Plan,
    landed: bool,
    /// The env file after the cut boot.
    env_after_cut: &'static str,
    /// The cut left rootfs reserved (the slot possibly half-written).
    reserved_at_cut: bool,
    /// The slot U-Boot booted after the cut.
    after_cut_slot: Option<String>,
    /// The client's exit code and outcome line in the cut push.
    client_exit: i32,
    client_outcome: String,
    settled: String,
    boots_after: usize,
    repaired: bool,
    /// The exit code of the good package pushed after settling (windows of SWUpdate's part).
    repush: Option<i32>,
    boots_checked: usize,
    uboot_saves: usize,
    wear: Wear,
    fs_repairs: usize,
    fs_unsound_boots: usize,
}

/// What the harness does in a healthy boot after the cut: repair a lost env, keep a settled
/// robot running (for the next push or the end), power off one with a trial pending.
fn settle(s: &serde_json::Value) -> Next {
    if s["env_valid"] == false {
        Next::Type("bootcount set-primary rootfs && reboot".into())
    } else if s["trial"].is_null() {
        Next::Keep
    } else {
        Next::Poweroff
    }
}

fn run_cut(c: &Campaign, plan: Plan) -> Result<CutResult, String> {
    let name = format!("power_cut_{}_{}", c.seed, plan.n);
    let mut m = Machine::new(c.image, &name).map_err(|e| e.to_string())?;
    let log = m.log_path().display().to_string();
    let mut r = Robot {
        c,
        update: plan.update,
        log,
        trial_kernel_boots: 0,
        bad_tried: false,
        boots_checked: 0,
        uboot_saves: 0,
        wear: Wear::default(),
        fs_repairs: 0,
        fs_unsound_boots: 0,
        cut_env: None,
        reserved_at_cut: false,
        after_cut_slot: None,
    };
    let u = plan.update;
    m.note(&format!(
        "cut {}: {u:?} update, {:?} window: {:?}",
        plan.n, plan.window, plan.cut
    ))
    .map_err(|e| e.to_string())?;
    // Boot 1: rootfs v1, healthy, running for the push.
    let (p1, running) = r.play(&mut m, None, &|_| Next::Keep)?;
    let running = match running {
        Some(b) if p1.o.healthy_in("rootfs") => b,
        _ => return Err(r.fail(format!("boot 1 is not a healthy rootfs: {:?}", p1.o))),
    };
    let Pushed {
        exit: client_exit,
        outcome: client_outcome,
        played: mut last,
        mut running,
    } = r.push(
        &mut m,
        running,
        &c.image.package(u),
        Some(plan.cut.clone()),
        &settle,
    )?;
    // Boot on, typing nothing (but the repair of a lost env), until settled.
    let limit = usize::from(c.cfg.bootlimit);
    let budget = 2 * (limit + 4);
    let mut boots_after = 0;
    let mut repaired = false;
    let settled = loop {
        if let Some(s) = &last.status {
            if s["env_valid"] == false {
                if last.o.slot.as_deref() != Some("otafs") || last.env_valid_before {
                    return Err(r.fail(format!(
                        "cut {}: the env was lost but {:?} booted",
                        plan.n, last.o.slot
                    )));
                }
                if last.env_after != "valid" {
                    return Err(r.fail(format!(
                        "cut {}: `bootcount set-primary rootfs` left the env {}",
                        plan.n, last.env_after
                    )));
                }
                repaired = true;
            } else if s["trial"].is_null() {
                if r.bad_tried && !repaired {
                    let rb = &s["last_rollback"];
                    if rb["slot"] != "rootfs" || rb["reason"].as_str().unwrap_or("").is_empty() {
                        return Err(r.fail(format!(
                            "cut {}: the bad update was tried, but status shows no rollback: {s}",
                            plan.n
                        )));
                    }
                }
                break format!(
                    "{} ({})",
                    last.o.slot.as_deref().unwrap_or("?"),
                    last.o.image.as_deref().unwrap_or("?")
                );
            }
        }
        boots_after += 1;
        if boots_after > budget {
            return Err(r.fail(format!("cut {}: not settled after {budget} boots", plan.n)));
        }
        (last, running) = r.play(&mut m, None, &settle)?;
    };
    let mut running = running.ok_or_else(|| r.fail("settled but not running".into()))?;
    // Scenario 5: the robot takes the next push (the good package), to the end.
    let mut repush = None;
    if plan.window.swupdate() && last.o.image.as_deref() != Some("rootfs v2") {
        r.update = Update::Good;
        let Pushed {
            exit,
            outcome,
            played: done,
            running: kept,
        } = r.push(
            &mut m,
            running,
            &c.image.package(Update::Good),
            None,
            &|_| Next::Keep,
        )?;
        repush = Some(exit);
        if exit != 0 || !done.o.healthy_in("rootfs") || done.o.image.as_deref() != Some("rootfs v2")
        {
            return Err(r.fail(format!(
                "cut {}: after the cut, a push of the good package ended with exit {exit} \
                 ({outcome}) in {:?}",
                plan.n, done.o
            )));
        }
        running = kept.ok_or_else(|| r.fail("rootfs v2 not running".into()))?;
        last = done;
    }
    // The end: power cut in a quiet moment, checked like every boot.
    let (mut boot, o) = running;
    boot.kill().map_err(|e| r.fail(e.to_string()))?;
    r.check(&m, &boot, o, Ending::Killed, false, false, last.status)?;
    Ok(CutResult {
        plan,
        // Whichever boot it hit: one of the push's, or the one running at the client's exit.
        landed: r.cut_env.is_some(),
        env_after_cut: r.cut_env.unwrap_or("(no cut)"),
        reserved_at_cut: r.reserved_at_cut,
        after_cut_slot: r.after_cut_slot.clone(),
        client_exit,
        client_outcome,
        settled,
        boots_after,
        repaired,
        repush,
        boots_checked: r.boots_checked,
        uboot_saves: r.uboot_saves,
        wear: r.wear,
        fs_repairs: r.fs_repairs,
        fs_unsound_boots: r.fs_unsound_boots,
    })
}

/// Scenarios 5 and 7 (see the module doc).
#[test]
fn power_cuts() {
    let image = MachineImage::with_policy();
    let cuts = zbot_tests::env_number::<u64>("ZBOT_CUTS", 5);
    let seed = zbot_tests::env_number::<u64>("ZBOT_CUT_SEED", 1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let jobs = zbot_tests::env_number::<u64>("ZBOT_CUT_JOBS", 2)
        .clamp(1, cores.max(1))
        .min(cuts.max(1));
    let cfg = zbot_tests::machine_slots();
    let defaults_text = std::fs::read(image.dir.join("u-boot-initial-env")).unwrap();
    let campaign = Campaign {
        image,
        cfg,
        defaults: uboot_view(&parse_defaults_text(&defaults_text)),
        seed,
    };
    let mut rng = rng(seed);
    let plans: Vec<Plan> = (0..cuts).map(|n| draw(&mut rng, n)).collect();
    let queue = Mutex::new(plans.into_iter());
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let Some(plan) = queue.lock().unwrap().next() else {
                    return;
                };
                let n = plan.n;
                let r = run_cut(&campaign, plan);
                match &r {
                    Ok(c) => eprintln!(
                        "cut {n}: {:?} update, {:?} window: {}; env after the cut boot {}{}; \
                         client exit {} ({}); settled in {} after {} boot(s){}{}",
                        c.plan.update,
                        c.plan.window,
                        if c.landed {
                            "cut"
                        } else {
                            "not cut (ended first)"
                        },
                        c.env_after_cut,
                        if c.reserved_at_cut {
                            format!(
                                ", rootfs reserved, next boot {}",
                                c.after_cut_slot.as_deref().unwrap_or("-")
                            )
                        } else {
                            String::new()
                        },
                        c.client_exit,
                        c.client_outcome,
                        c.settled,
                        c.boots_after,
                        if c.repaired { ", env repaired" } else { "" },
                        match c.repush {
                            Some(e) => format!("; the next push: exit {e}"),
                            None => String::new(),
                        }
                    ),
                    Err(e) => eprintln!("cut {n}: FAILED: {e}"),
                }
                results.lock().unwrap().push((n, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(n, _)| *n);
    let report = report(seed, jobs, started.elapsed(), &results);
    eprintln!("{report}");
    let _ = std::fs::write(work_dir().join("power-cuts.txt"), &report);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("cut {n}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {cuts} cuts broke an invariant:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The campaign's report: totals, then counts per update, window and outcome.
fn report(
    seed: u64,
    jobs: u64,
    took: Duration,
    results: &[(u64, Result<CutResult, String>)],
) -> String {
    let ok: Vec<&CutResult> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let failed = results.len() - ok.len();
    let landed = ok.iter().filter(|c| c.landed).count();
    let boots: usize = ok.iter().map(|c| c.boots_checked).sum();
    let saves: usize = ok.iter().map(|c| c.uboot_saves).sum();
    let max_after = ok.iter().map(|c| c.boots_after).max().unwrap_or(0);
    let uboot_kib: u64 = ok.iter().map(|c| c.wear.uboot_bytes).sum::<u64>() / 1024;
    let linux_kib: u64 = ok.iter().map(|c| c.wear.linux_bytes).sum::<u64>() / 1024;
    let unsound: usize = ok.iter().map(|c| c.fs_unsound_boots).sum();
    let repairs: usize = ok.iter().map(|c| c.fs_repairs).sum();
    let mut out = format!(
        "power-cut campaign: seed {seed}, {} cuts ({landed} landed, {} ended before the \
         instant), {failed} failed; {boots} boots checked against every invariant; {saves} \
         U-Boot saves; settled within {max_after} boot(s) after a cut; {:.1} min with {jobs} \
         robot(s) at once; written to the env partition: U-Boot {uboot_kib} KiB, Linux \
         {linux_kib} KiB; env filesystem left unsound by {unsound} boot(s) (cut or killed), \
         repaired by fsck-bootenv at {repairs} boot(s)\n",
        results.len(),
        ok.len() - landed,
        took.as_secs_f64() / 60.0
    );
    let reserved = ok.iter().filter(|c| c.reserved_at_cut).count();
    let reserved_otafs = ok
        .iter()
        .filter(|c| c.reserved_at_cut && c.after_cut_slot.as_deref() == Some("otafs"))
        .count();
    let repushed = ok.iter().filter(|c| c.repush.is_some()).count();
    let repushed_ok = ok.iter().filter(|c| c.repush == Some(0)).count();
    out.push_str(&format!(
        "cuts that left rootfs reserved (half-written or not yet written): {reserved}, the next \
         boot in otafs: {reserved_otafs}; good package pushed after a cut in SWUpdate's part: \
         {repushed}, exit 0: {repushed_ok}\n"
    ));
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for c in &ok {
        *by.entry(format!(
            "{:<9} {:<9} env after the cut: {:<9}{} client exit {} settled: {}{}",
            format!("{:?}", c.plan.update),
            format!("{:?}", c.plan.window),
            if c.landed {
                c.env_after_cut
            } else {
                "(no cut)"
            },
            if c.reserved_at_cut { " (reserved)" } else { "" },
            c.client_exit,
            c.settled,
            if c.repaired { ", after repair" } else { "" }
        ))
        .or_default() += 1;
    }
    out.push_str(" cuts  update    window     outcome\n");
    for (k, n) in &by {
        out.push_str(&format!("{n:5}  {k}\n"));
    }
    for (n, r) in results {
        if let Err(e) = r {
            out.push_str(&format!("cut {n} FAILED: {e}\n"));
        }
    }
    out
}

#[test]
fn draws_are_reproducible_and_cover_every_window() {
    let plans = |seed: u64| {
        let mut rng = rng(seed);
        (0..60).map(|n| draw(&mut rng, n)).collect::<Vec<_>>()
    };
    let a = plans(1);
    assert_eq!(format!("{a:?}"), format!("{:?}", plans(1)));
    assert_ne!(format!("{a:?}"), format!("{:?}", plans(2)));
    // The default suite's five cuts take five windows, SWUpdate's three first.
    let first: Vec<Window> = a[..5].iter().map(|p| p.window).collect();
    assert_eq!(
        first,
        [
            Window::Install,
            Window::Trial,
            Window::Upload,
            Window::UbootSave,
            Window::Request
        ]
    );
    for w in Window::ALL {
        assert!(a[5..].iter().any(|p| p.window == w), "{w:?}");
    }
    for u in [
        Update::Good,
        Update::Unhealthy,
        Update::Hang,
        Update::Garbage,
    ] {
        assert!(a.iter().any(|p| p.update == u), "{u:?}");
    }
    for p in &a {
        match &p.cut {
            PushCut::Boot(k, cut) => {
                assert!((1..=push_len(p.update)).contains(k), "{p:?}");
                match (p.window, cut) {
                    (Window::Anywhere, PowerCut::At(d)) => {
                        assert!(*d >= Duration::from_millis(50) && *d < Duration::from_secs(8))
                    }
                    (Window::UbootSave, PowerCut::AfterLine { needle, delay }) => {
                        assert!(saves_in(p.update, *k), "{p:?}");
                        assert!(needle.contains("Saving Environment"));
                        assert!(*delay < Duration::from_millis(15));
                    }
                    (Window::Userspace, PowerCut::AfterLine { delay, .. }) => {
                        assert!(reaches_userspace(p.update, *k), "{p:?}");
                        assert!(*delay < Duration::from_millis(1500));
                    }
                    _ => panic!("{p:?}"),
                }
            }
            PushCut::ClientLine { delay, .. } => {
                assert!(
                    matches!(
                        p.window,
                        Window::Request | Window::Upload | Window::Install | Window::Trial
                    ),
                    "{p:?}"
                );
                assert!(*delay < Duration::from_secs(2), "{p:?}");
            }
        }
    }
}
