//! Exhaustive enumeration of a device's life under the policy, with power cuts.
//!
//! The model: the environment (through the real engine), the content of each slot (healthy,
//! fails its health check, hangs before it), and where the device is (off, running a slot,
//! running with an image just written). Every transition the device can take is explored:
//! the bootloader step, the booted system's behaviour (hang -> reset; unhealthy -> mark-bad and
//! reboot; healthy -> mark-good), the user's operations (install into the install target and
//! start its trial, boot-once, set-primary, ack, reboot), and a power cut at every point: a
//! write through fw-env is atomic, so a cut means it was applied or not; writing an image cut
//! short leaves a slot that hangs. Optionally U-Boot's delete-then-write `saveenv` may also lose
//! the whole environment (the board's ext4 backend), after which U-Boot uses its defaults.
//!
//! Ghost variables (not on the device) remember what the policy promised, and every reachable
//! state is checked against the six invariants.

use crate::engine::{apply_op, bootloader_step, install_target, Booted, Op, OpError, Why};
use crate::slots::{SlotConfig, SlotId};
use crate::state::{names, BootState, Reason};
use fw_env::{Changes, Vars};
use std::collections::{BTreeSet, HashSet, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Image {
    Healthy,
    Unhealthy,
    Hang,
}
const KINDS: [Image; 3] = [Image::Healthy, Image::Unhealthy, Image::Hang];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Off,
    Running(SlotId),
    /// Running `booted`; the image of `target` has just been written, the trial not yet started.
    Installed {
        booted: SlotId,
        target: SlotId,
    },
}

/// What the policy promised about an ongoing trial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TrialGhost {
    slot: SlotId,
    attempts: u8,
    limit: u8,
    fallback: SlotId,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Dev {
    env: Vec<(String, String)>,
    images: Vec<Image>,
    phase: Phase,
    installs: u8,
    // ghosts
    trial: Option<TrialGhost>,
    bad: BTreeSet<SlotId>,
    rollback: Option<(String, String)>,
    /// U-Boot lost the environment at least once on the way here (statistics only).
    lost: bool,
}

struct Model {
    cfg: SlotConfig,
    default_env: Vars,
    max_installs: u8,
    env_loss: bool,
    seen: HashSet<Dev>,
    queue: VecDeque<Dev>,
    transitions: usize,
}

/// A write that may be cut: the state with it applied, and (if it writes anything) `cut`.
fn written(d: &Dev, c: &Changes, then: impl Fn(Dev) -> Dev, cut: Dev) -> Vec<Dev> {
    let after = with_env(d, &applied(&vars_of(d), c));
    let mut v = vec![then(after)];
    if !c.is_empty() {
        v.push(cut);
    }
    v
}

fn start_trial_ghost(cfg: &SlotConfig, x: &mut Dev, t: SlotId) {
    let st = BootState::parse(cfg, &vars_of(x));
    x.bad.remove(&t);
    x.trial = Some(TrialGhost {
        slot: t,
        attempts: 0,
        limit: st.bootlimit.get(),
        fallback: st.fallback_from(t),
    });
}

fn vars_of(d: &Dev) -> Vars {
    d.env.iter().cloned().collect()
}

fn with_env(d: &Dev, v: &Vars) -> Dev {
    let mut n = d.clone();
    n.env = v
        .iter()
        .map(|(a, b)| {
            (
                String::from_utf8_lossy(a).into_owned(),
                String::from_utf8_lossy(b).into_owned(),
            )
        })
        .collect();
    n
}

fn applied(v: &Vars, c: &Changes) -> Vars {
    let mut v = v.clone();
    v.apply(c).unwrap();
    v
}

impl Model {
    fn push(&mut self, d: Dev) {
        self.transitions += 1;
        self.check(&d);
        if self.seen.insert(d.clone()) {
            self.queue.push_back(d);
        }
    }

    /// Invariants that hold in every state.
    fn check(&self, d: &Dev) {
        let vars = vars_of(d);
        // 6. the rollback the policy made is readable until acknowledged
        if let Some((slot, reason)) = &d.rollback {
            let rb = BootState::parse(&self.cfg, &vars).rollback;
            assert_eq!(
                rb.map(|r| (r.slot, r.reason)),
                Some((slot.clone(), reason.clone())),
                "{d:?}"
            );
        }
        // 4. left alone, the device gets back to a working system
        self.assert_recovers(d);
    }

    /// Power cycles only, no cut during writes, no user: a healthy slot must be reached.
    fn assert_recovers(&self, d: &Dev) {
        if let Phase::Running(_) = d.phase {
            return;
        }
        let mut vars = vars_of(d);
        for _ in 0..30 {
            let b = bootloader_step(&self.cfg, &vars);
            vars = applied(&vars, &b.changes);
            let booted = Some(Booted {
                slot: b.slot,
                legacy: false,
            });
            match d.images[b.slot.0] {
                Image::Healthy => return,
                Image::Hang => {}
                Image::Unhealthy => {
                    let out = apply_op(
                        &self.cfg,
                        &vars,
                        booted,
                        &Op::MarkBad {
                            reason: Reason::parse("health").unwrap(),
                        },
                    )
                    .expect("an unhealthy slot is never the recovery slot");
                    vars = applied(&vars, &out.changes);
                }
            }
        }
        panic!("device never reaches a working slot from {d:?}");
    }

    /// Explore every state a write may leave (see [`written`]).
    fn write(&mut self, next: Vec<Dev>) {
        for x in next {
            self.push(x);
        }
    }

    fn off(d: &Dev) -> Dev {
        Dev {
            phase: Phase::Off,
            ..d.clone()
        }
    }

    fn boot(&mut self, d: &Dev) {
        let vars = vars_of(d);
        let st = BootState::parse(&self.cfg, &vars);
        let b = bootloader_step(&self.cfg, &vars);
        // 1. a boot with no one-shot and no active trial writes nothing
        if st.once.slot().is_none() && st.active_trial().is_none() {
            assert!(b.changes.is_empty(), "{d:?}");
        }
        // 2. the bootloader writes at most once per boot: `b.changes` is saved with one saveenv
        let mut n = with_env(d, &applied(&vars, &b.changes));
        // 5. never a slot the policy gave up, marked bad or is installing
        assert!(
            !d.bad.contains(&b.slot),
            "booted bad {} from {d:?}",
            self.cfg.name(b.slot)
        );
        match &b.why {
            Why::TrialAttempt { .. } => {
                if let Some(g) = n.trial.as_mut() {
                    assert_eq!(g.slot, b.slot);
                    g.attempts += 1;
                }
            }
            Why::GaveUp { failed, reason } => {
                // 3. given up after exactly bootlimit attempts, landing on the last good slot or recovery
                let g = d.trial.as_ref().expect("a trial the policy started");
                assert_eq!((g.slot, reason), (*failed, &Reason::LimitReached));
                assert_eq!(g.attempts, g.limit, "{d:?}");
                assert!(
                    b.slot == g.fallback || b.slot == self.cfg.recovery(),
                    "{d:?}"
                );
                n.trial = None;
                n.bad.insert(*failed);
                n.rollback = Some((self.cfg.name(*failed).to_string(), reason.to_string()));
            }
            _ => {}
        }
        if !b.changes.is_empty() && self.env_loss {
            // U-Boot's ext4 saveenv deleted the file and the power went: defaults next time
            // The policy's memory restarts from the defaults: so do the ghosts, and every
            // invariant is checked again from there.
            let mut lost = with_env(d, &self.default_env);
            lost.lost = true;
            lost.phase = Phase::Off;
            lost.trial = None;
            lost.bad.clear();
            lost.rollback = None;
            self.push(lost);
        }
        // the cut before the write is the state we came from: nothing new
        let slot = b.slot;
        let booted = Some(Booted {
            slot,
            legacy: false,
        });
        let nvars = vars_of(&n);
        match n.images[slot.0] {
            Image::Hang => self.push(Self::off(&n)),
            Image::Unhealthy => {
                let reason = Reason::parse("health: required check failed").unwrap();
                let out = apply_op(
                    &self.cfg,
                    &nvars,
                    booted,
                    &Op::MarkBad {
                        reason: reason.clone(),
                    },
                )
                .unwrap();
                let name = self.cfg.name(slot).to_string();
                let cut = Self::off(&n);
                let next = written(
                    &n,
                    &out.changes,
                    |mut x| {
                        x.phase = Phase::Off; // reboot
                        x.bad.insert(slot);
                        if x.trial.as_ref().is_some_and(|g| g.slot == slot) {
                            x.trial = None;
                        }
                        x.rollback = Some((name.clone(), reason.to_string()));
                        x
                    },
                    cut,
                );
                self.write(next);
            }
            Image::Healthy => match apply_op(&self.cfg, &nvars, booted, &Op::MarkGood) {
                Ok(out) => {
                    let cut = Self::off(&n);
                    let next = written(
                        &n,
                        &out.changes,
                        |mut x| {
                            assert_eq!(x.trial.as_ref().map(|g| g.slot).unwrap_or(slot), slot);
                            x.trial = None;
                            x.phase = Phase::Running(slot);
                            x
                        },
                        cut,
                    );
                    self.write(next);
                }
                Err(OpError::NothingToCommit(_)) => {
                    let mut x = n.clone();
                    x.phase = Phase::Running(slot);
                    self.push(x);
                }
                Err(e) => panic!("health check on {}: {e}", self.cfg.name(slot)),
            },
        }
    }

    fn running(&mut self, d: &Dev, s: SlotId) {
        let cfg = self.cfg.clone();
        let vars = vars_of(d);
        let booted = Some(Booted {
            slot: s,
            legacy: false,
        });
        self.push(Self::off(d)); // reboot or power cut
        let mut ops = vec![
            Op::Ack,
            Op::MarkBad {
                reason: Reason::parse("by hand").unwrap(),
            },
        ];
        for x in self.cfg.ids() {
            ops.push(Op::SetPrimary(self.cfg.name(x).into()));
            ops.push(Op::BootOnce(self.cfg.name(x).into()));
        }
        for op in ops {
            let Ok(out) = apply_op(&self.cfg, &vars, booted, &op) else {
                continue;
            };
            let cut = Self::off(d);
            let next = written(
                d,
                &out.changes,
                |mut x| {
                    match &op {
                        Op::Ack => x.rollback = None,
                        Op::MarkBad { reason } => {
                            x.bad.insert(s);
                            if x.trial.as_ref().is_some_and(|g| g.slot == s) {
                                x.trial = None;
                            }
                            x.rollback = Some((cfg.name(s).to_string(), reason.to_string()));
                        }
                        Op::SetPrimary(name) => {
                            let t = cfg.find(name).unwrap();
                            let st = BootState::parse(&cfg, &vars_of(&x));
                            if st.active_trial() == Some(t)
                                && x.trial.as_ref().map(|g| g.slot) != Some(t)
                            {
                                let before = BootState::parse(&cfg, &vars);
                                x.trial = Some(TrialGhost {
                                    slot: t,
                                    attempts: 0,
                                    limit: st.bootlimit.get(),
                                    fallback: before.last_good(),
                                });
                                let fb = st.fallback_from(t);
                                x.trial.as_mut().unwrap().fallback = fb;
                            } else if st.active_trial().is_none() {
                                x.trial = None;
                            }
                        }
                        _ => {}
                    }
                    x
                },
                cut,
            );
            self.write(next);
        }
        if d.installs < self.max_installs {
            if let Ok((t, out)) = install_target(&self.cfg, &vars, booted) {
                let reserved = applied(&vars, &out.changes);
                let mut base = with_env(d, &reserved);
                base.bad.insert(t);
                if base.trial.as_ref().is_some_and(|g| g.slot == t) {
                    base.trial = None;
                }
                base.installs += 1;
                // cut before the reservation: nothing happened
                // cut while writing the image: a slot that hangs
                let mut cut = Self::off(&base);
                cut.images[t.0] = Image::Hang;
                self.push(cut);
                for k in KINDS {
                    let mut x = base.clone();
                    x.images[t.0] = k;
                    x.phase = Phase::Installed {
                        booted: s,
                        target: t,
                    };
                    self.push(x);
                }
            }
        }
    }

    fn installed(&mut self, d: &Dev, booted: SlotId, t: SlotId) {
        let cfg = self.cfg.clone();
        let vars = vars_of(d);
        let b = Some(Booted {
            slot: booted,
            legacy: false,
        });
        let out = apply_op(
            &self.cfg,
            &vars,
            b,
            &Op::Trial {
                slot: self.cfg.name(t).into(),
                limit: None,
            },
        )
        .unwrap();
        let cut = Self::off(d);
        let next = written(
            d,
            &out.changes,
            |mut x| {
                start_trial_ghost(&cfg, &mut x, t);
                x.phase = Phase::Off; // --reboot
                x
            },
            cut,
        );
        self.write(next);
    }

    fn run(
        cfg: SlotConfig,
        initial: Vars,
        images: Vec<Image>,
        max_installs: u8,
        env_loss: bool,
    ) -> (usize, usize) {
        let default_env: Vars = cfg.default_env().into_iter().collect();
        let mut m = Model {
            cfg,
            default_env,
            max_installs,
            env_loss,
            seen: HashSet::new(),
            queue: VecDeque::new(),
            transitions: 0,
        };
        let start = Dev {
            env: Vec::new(),
            images,
            phase: Phase::Off,
            installs: 0,
            trial: None,
            bad: BTreeSet::new(),
            rollback: None,
            lost: false,
        };
        m.push(with_env(&start, &initial));
        while let Some(d) = m.queue.pop_front() {
            match d.phase {
                Phase::Off => m.boot(&d),
                Phase::Running(s) => m.running(&d, s),
                Phase::Installed { booted, target } => m.installed(&d, booted, target),
            }
        }
        (m.seen.len(), m.transitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_util::{ab, env};

    fn seed(limit: Option<&str>) -> Vars {
        let mut v = env(&[
            ("next_boot", "rootfs"),
            ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
            ("otafs", "root=/dev/mmcblk0p3 rootwait rw"),
            ("root", "root=/dev/mmcblk0p4 rootwait rw"),
            ("first_boot", "1"),
        ]);
        if let Some(l) = limit {
            v.set(names::BOOTLIMIT, l).unwrap();
        }
        v
    }

    #[test]
    fn seed_board_every_limit_with_power_cuts() {
        for limit in ["1", "2", "3"] {
            let (states, transitions) = Model::run(
                SlotConfig::builtin(),
                seed(Some(limit)),
                vec![Image::Healthy, Image::Healthy],
                2,
                false,
            );
            eprintln!(
                "rootfs+otafs, bootlimit {limit}: {states} states, {transitions} transitions"
            );
            assert!(states > 100);
        }
    }

    #[test]
    fn seed_board_with_uboot_losing_the_environment() {
        let (states, transitions) = Model::run(
            SlotConfig::builtin(),
            seed(Some("2")),
            vec![Image::Healthy, Image::Healthy],
            2,
            true,
        );
        eprintln!("rootfs+otafs, env loss: {states} states, {transitions} transitions");
    }

    /// Every environment of a bounded space of values (unset, empty, every slot, garbage,
    /// every digit, wrapped and out-of-range counters), bootloader alone: healthy boots write
    /// nothing, every boot picks a slot, and the device settles within bootlimit+1 boots.
    #[test]
    fn every_env_of_the_bounded_space_settles() {
        let cfg = SlotConfig::builtin();
        let slot: &[Option<&str>] = &[None, Some(""), Some("rootfs"), Some("otafs"), Some("x")];
        let tries: &[Option<&str>] = &[
            None,
            Some(""),
            Some("0"),
            Some("1"),
            Some("2"),
            Some("3"),
            Some("8"),
            Some("9"),
            Some("a"),
            Some("10"),
            Some("03"),
            Some("-1"),
        ];
        let limits: &[Option<&str>] = &[
            None,
            Some("0"),
            Some("1"),
            Some("3"),
            Some("9"),
            Some("a"),
            Some("10"),
        ];
        let mut count = 0;
        for nb in slot {
            for once in slot {
                for trial in slot {
                    for t in tries {
                        for l in limits {
                            for prev in slot {
                                let mut v = seed(None);
                                v.remove("next_boot");
                                for (k, val) in [
                                    (names::NEXT_BOOT, nb),
                                    (names::ONCE, once),
                                    (names::TRIAL, trial),
                                    (names::TRIES, t),
                                    (names::BOOTLIMIT, l),
                                    (names::PREV, prev),
                                ] {
                                    if let Some(val) = val {
                                        v = v
                                            .iter()
                                            .map(|(a, b)| (a.to_vec(), b.to_vec()))
                                            .chain([(
                                                k.as_bytes().to_vec(),
                                                val.as_bytes().to_vec(),
                                            )])
                                            .collect();
                                    }
                                }
                                count += 1;
                                let mut boots = 0;
                                loop {
                                    let st = BootState::parse(&cfg, &v);
                                    let d = bootloader_step(&cfg, &v);
                                    assert!(d.slot.0 < cfg.slots.len());
                                    let quiet =
                                        st.once.slot().is_none() && st.active_trial().is_none();
                                    assert_eq!(quiet, d.changes.is_empty(), "{v:?}");
                                    if quiet {
                                        break;
                                    }
                                    if let Why::GaveUp { failed, .. } = d.why {
                                        assert_ne!(
                                            Some(d.slot),
                                            Some(failed).filter(|&f| f != cfg.recovery())
                                        );
                                    }
                                    v.apply(&d.changes).unwrap();
                                    boots += 1;
                                    assert!(boots <= 11, "never settles: {v:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(count, 5 * 5 * 5 * 12 * 7 * 5);
    }

    #[test]
    fn ab_board_with_an_empty_b_slot() {
        let mut v = seed(Some("2"));
        v.set("next_boot", "rootfs_a").unwrap();
        let (states, transitions) = Model::run(
            ab(),
            v,
            vec![Image::Healthy, Image::Hang, Image::Healthy],
            2,
            false,
        );
        eprintln!("A/B+recovery: {states} states, {transitions} transitions");
    }
}
