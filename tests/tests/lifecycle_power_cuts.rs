//! Scenario 6 of the lifecycle (docs/qemu.md): power cuts across the update story, on real
//! U-Boot and Linux under QEMU, with every policy invariant checked after every boot.
//!
//! A cut is drawn from a seed: the update package (good, unhealthy, hanging, or not a
//! filesystem), the boot of the story it hits, and the window:
//! - **anywhere**: a random instant within the boot's usual length;
//! - **U-Boot save**: 0-15 ms after U-Boot prints "Saving Environment to" (its `saveenv`
//!   deletes and rewrites `/uboot.env`; drawn only among the boots that save);
//! - **userspace**: 0-1.5 s after the slot's init starts, where `bootcount` and the updater
//!   write the environment (boot-once, install-target, trial, mark-good, mark-bad).
//!
//! The story (no command is typed after the cut): rootfs v1 runs `bootcount boot-once otafs
//! --reboot`; otafs installs the staged package and starts the trial; the trial boots; then the
//! device lives on. After the cut the robot is booted on until a boot is healthy with no trial
//! pending and a valid environment. If the environment was lost, the device must be in the
//! recovery slot, which repairs it with `bootcount set-primary rootfs` (as scenario 5), and
//! boots on under the same checks.
//!
//! Checked after **every** boot, from the env file as it was at power-on and after:
//! - the slot U-Boot booted is the one the engine (`bootcount::bootloader_step`) picks from what
//!   U-Boot loaded: the file, or the compiled-in default env when the file is missing or torn
//!   (invariant 4: every state boots a slot, and U-Boot follows the contract);
//! - U-Boot saved exactly when the engine says it writes, at most once (invariants 1 and 2);
//! - a healthy boot with nothing to change leaves the file byte for byte unchanged (1);
//! - kernel starts on a trial never exceed the attempt U-Boot recorded, nor the limit (3);
//! - no slot marked bad is booted (5); a recorded rollback always has a reason (6);
//! - a boot that shut down cleanly leaves the env filesystem sound (`e2fsck -fn` on the host):
//!   damage an earlier cut left is repaired at boot by `bootcount/dist/fsck-bootenv`;
//!
//! and after each cut: the device settles within a bound of boots (4); a bad update that was
//! tried ends with its rollback reason in `bootcount status` (6).
//!
//! ```sh
//! # the default suite: 4 cuts (one per window, then one more), about 2 min
//! cargo test -p zbot-tests --test lifecycle_power_cuts
//! # the full campaign (docs/qemu.md has its results): about 35 min on 2 cores
//! ZBOT_CUTS=200 ZBOT_CUT_SEED=1 cargo test -p zbot-tests --test lifecycle_power_cuts -- --nocapture
//! ```
//! `ZBOT_CUT_JOBS` robots run at once (default: 2, at most the host's cores). Every
//! robot's log is `target/zbot-machine/logs/power_cut_<seed>_<n>.log`; the report also goes
//! to `target/zbot-machine/power-cuts.txt`. Cut instants are reproducible from the seed; where
//! an instant lands in the guest shifts a little with host load, so the counts per outcome vary
//! slightly between runs (the invariants may not).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bootcount::engine::Why;
use bootcount::{bootloader_step, SlotConfig};
use fw_env::codec::uboot_view;
use fw_env::store::parse_defaults_text;
use fw_env::Vars;
use zbot_tests::bootloop::loaded_vars;
use zbot_tests::machine::{
    work_dir, Boot, Ending, Machine, MachineImage, Outcome, PowerCut, Update,
};

const STEP: Duration = Duration::from_secs(120);
/// The harness's watchdog: a boot with no health verdict by then is power cycled.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Where in a boot a cut is aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Window {
    Anywhere,
    UbootSave,
    Userspace,
}

/// One drawn cut.
#[derive(Debug, Clone)]
struct Plan {
    n: u64,
    update: Update,
    /// The story's boot (1-based) that is cut.
    boot: usize,
    window: Window,
    cut: PowerCut,
}

/// The story of an update, boot by boot, when nothing is cut: 1 rootfs v1 (boot-once otafs),
/// 2 otafs installs and starts the trial, then the trial's boots and the first boot after.
fn story_len(u: Update) -> usize {
    match u {
        Update::Good | Update::Unhealthy => 4,
        Update::Hang | Update::Garbage => 6,
    }
}

/// Whether U-Boot saves the environment in story boot `k` (the one-shot, the trial attempts,
/// the give-up).
fn saves_in(u: Update, k: usize) -> bool {
    match u {
        Update::Good | Update::Unhealthy => k == 2 || k == 3,
        Update::Hang | Update::Garbage => (2..=6).contains(&k),
    }
}

/// Whether story boot `k` reaches the slot's init (an unusable root never does).
fn reaches_userspace(u: Update, k: usize) -> bool {
    !(u == Update::Garbage && (3..=5).contains(&k))
}

/// A small deterministic generator (xorshift64*), so a campaign is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Draw cut `n`. The first three of a campaign take one window each, so that even the quick
/// run covers all three.
fn draw(rng: &mut Rng, n: u64) -> Plan {
    // Weights: good 7, unhealthy 5, unusable root 5, hang 3 (a hung boot costs the watchdog).
    let update = rng.pick(&[
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
    ]);
    let window = match n {
        0 => Window::UbootSave,
        1 => Window::Userspace,
        2 => Window::Anywhere,
        _ => rng.pick(&[
            Window::Anywhere,
            Window::Anywhere,
            Window::UbootSave,
            Window::UbootSave,
            Window::Userspace,
        ]),
    };
    let boots: Vec<usize> = (1..=story_len(update))
        .filter(|&k| match window {
            Window::Anywhere => true,
            Window::UbootSave => saves_in(update, k),
            Window::Userspace => reaches_userspace(update, k),
        })
        .collect();
    let boot = rng.pick(&boots);
    let cut = match window {
        // Within the boot's usual length (verdict at about 4.5 s, power-off by 7 s; an
        // unusable root panics after about 5 s), so that nearly every draw cuts the boot.
        Window::Anywhere => PowerCut::At(Duration::from_millis(
            50 + rng.below(if update == Update::Garbage {
                5000
            } else {
                7000
            }),
        )),
        Window::UbootSave => PowerCut::AfterLine {
            needle: "Saving Environment to".into(),
            delay: Duration::from_micros(rng.below(15_000)),
        },
        Window::Userspace => PowerCut::AfterLine {
            needle: "zbot-machine: booted slot=".into(),
            delay: Duration::from_millis(rng.below(1500)),
        },
    };
    Plan {
        n,
        update,
        boot,
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
    /// Card snapshots at the start of story boot k of update u (no cut before), so that a cut
    /// in boot k does not replay boots 1..k.
    snapshots: Mutex<HashMap<(Update, usize), PathBuf>>,
    snapshot_dir: tempfile::TempDir,
}

/// What the harness does in a healthy, running system once it has read `bootcount status`.
enum Next {
    /// `poweroff`.
    Poweroff,
    /// Type this command line (it ends the boot: reboots or powers off).
    Type(String),
    /// The robot's life ends here: QEMU is killed (a quiet moment: the health run is over).
    Stop,
}

/// One boot as the campaign saw it.
struct Played {
    o: Outcome,
    cut: bool,
    /// `bootcount status --json` of a healthy boot.
    status: Option<serde_json::Value>,
    /// The environment at power-on was valid.
    env_valid_before: bool,
    /// How the file changed: "unchanged", "valid", "missing", "corrupt".
    env_after: &'static str,
}

/// Totals of what a robot wrote to the env partition (QEMU's block layer).
#[derive(Debug, Default, Clone, Copy)]
struct Wear {
    uboot_bytes: u64,
    linux_bytes: u64,
}

/// One robot of the campaign, with the state the checks carry from boot to boot.
struct Robot<'a> {
    c: &'a Campaign,
    update: Update,
    m: Machine,
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

    /// Power on (with an optional cut), follow the boot to its verdict; in a healthy system
    /// read `bootcount status` and type what `then` answers for it (default `poweroff`). Then
    /// check the invariants on this boot.
    fn play(
        &mut self,
        cut: Option<PowerCut>,
        then: &dyn Fn(&serde_json::Value) -> Next,
    ) -> Result<Played, String> {
        if let Some(p) = cut {
            self.m.cut_power(p);
        }
        let (mut boot, o) = self
            .m
            .boot_to_verdict(WATCHDOG)
            .map_err(|e| self.fail(e.to_string()))?;
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
                        Next::Stop => boot.kill().map(|_| ()),
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
        let played = self.check(&boot, o, ending, cut, typed, status)?;
        Ok(played)
    }

    /// The per-boot invariants (see the module doc).
    fn check(
        &mut self,
        boot: &Boot,
        o: Outcome,
        ending: Ending,
        cut: bool,
        typed: bool,
        status: Option<serde_json::Value>,
    ) -> Result<Played, String> {
        self.boots_checked += 1;
        let cfg = &self.c.cfg;
        let n = self.m.boots();
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
        let updater_ran = lines.iter().any(|l| l.contains("zbot-update:"));
        // bootcount/dist/fsck-bootenv repaired the env filesystem before mounting it.
        let fs_repaired = lines.iter().any(|l| l.contains("fsck-bootenv:"));
        self.fs_repairs += usize::from(fs_repaired);
        if !cut
            && !typed
            && !fs_repaired
            && !writes
            && o.verdict == Some(0)
            && !updater_ran
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
        let fs = self.m.env_fs_check();
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
        let env_after = if after == boot.env_before() {
            "unchanged"
        } else if after.is_none() {
            "missing"
        } else if v1.is_some() {
            "valid"
        } else {
            "corrupt"
        };
        Ok(Played {
            o,
            cut,
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
    settled: String,
    boots_after: usize,
    repaired: bool,
    boots_checked: usize,
    uboot_saves: usize,
    wear: Wear,
    fs_repairs: usize,
    fs_unsound_boots: usize,
}

/// What the harness does in a healthy story boot `k`.
fn story_step(k: usize) -> Next {
    if k == 1 {
        Next::Type("bootcount boot-once otafs --reboot".into())
    } else {
        Next::Poweroff
    }
}

fn run_cut(c: &Campaign, plan: Plan) -> Result<CutResult, String> {
    let name = format!("power_cut_{}_{}", c.seed, plan.n);
    let m = Machine::new(c.image, &name).map_err(|e| e.to_string())?;
    let log = m.log_path().display().to_string();
    let mut r = Robot {
        c,
        update: plan.update,
        m,
        log,
        trial_kernel_boots: 0,
        bad_tried: false,
        boots_checked: 0,
        uboot_saves: 0,
        wear: Wear::default(),
        fs_repairs: 0,
        fs_unsound_boots: 0,
    };
    let u = plan.update;
    r.m.note(&format!(
        "cut {}: {u:?} update, {:?} window, story boot {}: {:?}",
        plan.n, plan.window, plan.boot, plan.cut
    ))
    .map_err(|e| e.to_string())?;
    // Start from the deepest snapshot of this story at or before the cut boot.
    let start = {
        let snaps = c.snapshots.lock().unwrap();
        let k = (1..=plan.boot).rev().find(|k| snaps.contains_key(&(u, *k)));
        match k {
            Some(k) => {
                r.m.load_disk(&snaps[&(u, k)]).map_err(|e| e.to_string())?;
                k
            }
            None => 1,
        }
    };
    if start == 1 {
        r.m.stage_update(u).map_err(|e| e.to_string())?;
    } else {
        r.m.note(&format!(
            "(story boots 1..{start} replayed from a snapshot)"
        ))
        .map_err(|e| e.to_string())?;
        // A trial may be running at the snapshot: count its earlier kernel starts as the
        // snapshot's robot did (they are in the env: attempts = zbot_tries).
        let (v, _) = r.loaded(r.m.env_file().ok().flatten().as_deref());
        r.trial_kernel_boots = v
            .get("zbot_tries")
            .and_then(|t| t.parse().ok())
            .filter(|_| v.get("zbot_trial").is_some_and(|t| !t.is_empty()))
            .unwrap_or(0);
        r.bad_tried = u != Update::Good && start > 3;
    }
    let mut landed = false;
    let mut env_after_cut = "unchanged";
    for k in start..=plan.boot {
        {
            let mut snaps = c.snapshots.lock().unwrap();
            if let std::collections::hash_map::Entry::Vacant(e) = snaps.entry((u, k)) {
                let p = c.snapshot_dir.path().join(format!("{u:?}-{k}.img"));
                r.m.save_disk(&p).map_err(|e| e.to_string())?;
                e.insert(p);
            }
        }
        let cut = (k == plan.boot).then(|| plan.cut.clone());
        let p = r.play(cut, &|_| story_step(k))?;
        if k == 1 && !p.cut && !p.o.healthy_in("rootfs") {
            return Err(r.fail(format!("story boot 1 is not a healthy rootfs: {:?}", p.o)));
        }
        if p.cut {
            landed = true;
            env_after_cut = p.env_after;
            break;
        }
        if k == plan.boot {
            env_after_cut = p.env_after;
        }
    }
    // Boot on, typing nothing (but the repair of a lost env), until settled.
    let limit = usize::from(c.cfg.bootlimit);
    let budget = 2 * (limit + 4);
    let mut boots_after = 0;
    let mut repaired = false;
    let settled = loop {
        boots_after += 1;
        if boots_after > budget {
            return Err(r.fail(format!("cut {}: not settled after {budget} boots", plan.n)));
        }
        let p = r.play(None, &|s| {
            if s["env_valid"] == false {
                Next::Type("bootcount set-primary rootfs && reboot".into())
            } else if s["trial"].is_null() {
                Next::Stop // settled
            } else {
                Next::Poweroff
            }
        })?;
        let Some(s) = p.status else { continue };
        if s["env_valid"] == false {
            if p.o.slot.as_deref() != Some("otafs") || p.env_valid_before {
                return Err(r.fail(format!(
                    "cut {}: the env was lost but {:?} booted",
                    plan.n, p.o.slot
                )));
            }
            if p.env_after != "valid" {
                return Err(r.fail(format!(
                    "cut {}: `bootcount set-primary rootfs` left the env {}",
                    plan.n, p.env_after
                )));
            }
            repaired = true;
            continue;
        }
        if !s["trial"].is_null() {
            continue;
        }
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
            p.o.slot.as_deref().unwrap_or("?"),
            p.o.image.as_deref().unwrap_or("?")
        );
    };
    Ok(CutResult {
        plan,
        landed,
        env_after_cut,
        settled,
        boots_after,
        repaired,
        boots_checked: r.boots_checked,
        uboot_saves: r.uboot_saves,
        wear: r.wear,
        fs_repairs: r.fs_repairs,
        fs_unsound_boots: r.fs_unsound_boots,
    })
}

/// Scenario 6 (see the module doc).
#[test]
fn power_cuts() {
    let image = MachineImage::with_policy();
    let cuts = zbot_tests::env_number::<u64>("ZBOT_CUTS", 4);
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
        snapshots: Mutex::new(HashMap::new()),
        snapshot_dir: tempfile::tempdir().unwrap(),
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
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
                        "cut {n}: {:?} update, {:?} window, boot {}: {}; env after the cut \
                         boot {}; settled in {} after {} boot(s){}",
                        c.plan.update,
                        c.plan.window,
                        c.plan.boot,
                        if c.landed {
                            "cut"
                        } else {
                            "not cut (ended first)"
                        },
                        c.env_after_cut,
                        c.settled,
                        c.boots_after,
                        if c.repaired { ", env repaired" } else { "" }
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
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for c in &ok {
        *by.entry(format!(
            "{:<9} {:<10} env after the cut: {:<9} settled: {}{}",
            format!("{:?}", c.plan.update),
            format!("{:?}", c.plan.window),
            if c.landed {
                c.env_after_cut
            } else {
                "(no cut)"
            },
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
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        (0..50).map(|n| draw(&mut rng, n)).collect::<Vec<_>>()
    };
    let a = plans(1);
    assert_eq!(format!("{a:?}"), format!("{:?}", plans(1)));
    assert_ne!(format!("{a:?}"), format!("{:?}", plans(2)));
    for w in [Window::Anywhere, Window::UbootSave, Window::Userspace] {
        assert!(a.iter().any(|p| p.window == w), "{w:?}");
    }
    for p in &a {
        assert!((1..=story_len(p.update)).contains(&p.boot), "{p:?}");
        if p.window == Window::UbootSave {
            assert!(saves_in(p.update, p.boot), "{p:?}");
        }
        if p.window == Window::Userspace {
            assert!(reaches_userspace(p.update, p.boot), "{p:?}");
        }
    }
}
