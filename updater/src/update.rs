//! The `update` flow: one robot ([`update_one`]) and a fleet ([`update_fleet`], a bounded
//! number at a time). Each robot ends in a [`Report`]; what happens along the way goes to a
//! [`Ui`] (progress bars, plain lines, or nothing), so the flow does not know the terminal.
//!
//! One robot is three steps: into recovery, the install, the robot's return. What the return
//! means is decided by a pure function (`next`: the wait, what answered, what was known before
//! the install -> look again, the next wait, or the outcome), tested by a decision table; the
//! network and the clock stay in the steps around it.

use crate::client::{self, Msg, Probe, UpdateError};
use crate::report::{Outcome, Report, Stage};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A robot on the command line: `HOST` or `HOST:PORT` (`[V6]:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As given (the report's name, and the secret file's).
    pub spec: String,
    /// Host name or address.
    pub host: String,
    /// The agent's port (and SWUpdate's unless `--swupdate-port`).
    pub port: u16,
    /// Whether the port was given with the host.
    pub explicit_port: bool,
}

/// Parse `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`; a bare IPv6 address keeps the default.
pub fn parse_target(spec: &str, default_port: u16) -> Result<Target, String> {
    let bad = || format!("{spec:?}: not HOST or HOST:PORT");
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if spec.matches(':').count() == 1 {
        let (h, p) = spec.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        (spec, None)
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(bad());
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{spec:?}: port {p:?} is not 1-65535"))?,
        ),
        None => None,
    };
    Ok(Target {
        spec: spec.to_string(),
        host: host.to_string(),
        port: port.unwrap_or(default_port),
        explicit_port: port.is_some(),
    })
}

/// Where the robots' agent secrets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secrets {
    /// None given: a robot running its main system cannot be asked into recovery.
    None,
    /// `--secret FILE`: the one robot's secret (or one shared by every robot named).
    File(PathBuf),
    /// `--secret-dir DIR`: `DIR/HOST:PORT.secret` when the port was given, else
    /// `DIR/HOST.secret` (the file name is the robot as written on the command line).
    Dir(PathBuf),
}

impl Secrets {
    /// The secret file for a robot.
    pub fn path(&self, t: &Target) -> Option<PathBuf> {
        match self {
            Secrets::None => None,
            Secrets::File(f) => Some(f.clone()),
            Secrets::Dir(d) => {
                let exact = d.join(format!("{}.secret", t.spec));
                if exact.exists() || !t.explicit_port {
                    Some(exact)
                } else {
                    Some(d.join(format!("{}.secret", t.host)))
                }
            }
        }
    }
}

/// The options every robot of a run shares.
#[derive(Debug, Clone)]
pub struct Options {
    /// SWUpdate's port when it differs from the agent's.
    pub swupdate_port: Option<u16>,
    /// The agent secrets.
    pub secrets: Secrets,
    /// Upload and install, at most.
    pub timeout: Duration,
    /// Each reboot, at most.
    pub boot_timeout: Duration,
    /// SWUpdate's SUCCESS without DONE for this long: run the post-update command ourselves.
    pub done_grace: Duration,
    /// Digest credentials for SWUpdate's web server.
    pub who: Option<crate::digest::Credentials>,
    /// Stop at SWUpdate's success.
    pub no_wait: bool,
}

impl Options {
    /// SWUpdate's port on a robot: the agent's unless `--swupdate-port`.
    fn swport(&self, t: &Target) -> u16 {
        self.swupdate_port.unwrap_or(t.port)
    }
}

/// Where an update's progress goes. Called from several threads in a fleet.
pub trait Ui: Sync {
    /// A line about a robot.
    fn line(&self, host: &str, text: &str);
    /// Upload progress.
    fn progress(&self, host: &str, sent: u64, total: u64);
    /// The robot's update ended.
    fn finish(&self, host: &str, r: &Report);
}

/// A Ui that shows nothing (`--json`).
pub struct Quiet;

impl Ui for Quiet {
    fn line(&self, _: &str, _: &str) {}
    fn progress(&self, _: &str, _: u64, _: u64) {}
    fn finish(&self, _: &str, _: &Report) {}
}

/// Plain lines on stderr (not a terminal): messages as they come, the upload every 10 %.
#[derive(Default)]
pub struct Lines {
    last: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Ui for Lines {
    fn line(&self, host: &str, text: &str) {
        eprintln!("{host}: {text}");
    }
    fn progress(&self, host: &str, sent: u64, total: u64) {
        let pct = sent * 100 / total.max(1);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let l = last.entry(host.to_string()).or_insert(0);
        if pct >= *l + 10 || (sent == total && *l < 100) || (sent > 0 && *l == 0 && pct == 0) {
            *l = pct.max(1);
            if sent == total {
                *l = 100;
            }
            eprintln!("{host}: upload {pct:3}% ({sent} of {total} bytes)");
        }
    }
    fn finish(&self, _: &str, _: &Report) {}
}

/// Update one robot: status, recovery (through the agent), SWUpdate, the upload, the result,
/// the robot's return. Never panics, every wait bounded; the report tells the stages passed.
pub fn update_one(t: &Target, file: &Path, o: &Options, ui: &dyn Ui) -> Report {
    let start = Instant::now();
    let mut stages = Vec::new();
    let (outcome, detail) = match flow(t, file, o, ui, &mut stages) {
        Ok(x) => x,
        Err(e) => (outcome_of(&e), e.to_string()),
    };
    let rep = Report {
        host: t.spec.clone(),
        outcome,
        detail,
        stages,
        total: start.elapsed(),
    };
    ui.finish(&t.spec, &rep);
    rep
}

/// How an update that stopped on an error ended.
fn outcome_of(e: &UpdateError) -> Outcome {
    match e {
        UpdateError::Refused(_) => Outcome::Refused,
        UpdateError::Agent(_) => Outcome::AgentRefused,
        UpdateError::Auth(_) => Outcome::AuthRefused,
        UpdateError::Unreachable(_) | UpdateError::Timeout(_) => Outcome::Unreachable,
        UpdateError::Local(_) => Outcome::Error,
    }
}

/// Times stages: `lap(stage)` closes the stage running since the last lap.
struct Laps<'a> {
    since: Instant,
    stages: &'a mut Vec<(Stage, Duration)>,
}

impl Laps<'_> {
    fn lap(&mut self, s: Stage) {
        let now = Instant::now();
        self.stages.push((s, now - self.since));
        self.since = now;
    }
    /// Close two stages at once, the first of them lasting `first`.
    fn lap2(&mut self, a: Stage, first: Duration, b: Stage) {
        let now = Instant::now();
        let all = now - self.since;
        let first = first.min(all);
        self.stages.push((a, first));
        self.stages.push((b, all - first));
        self.since = now;
    }
}

/// The steps in order: to recovery, install, then the robot's return until the pure core
/// ([`next`]) ends the update.
fn flow(
    t: &Target,
    file: &Path,
    o: &Options,
    ui: &dyn Ui,
    stages: &mut Vec<(Stage, Duration)>,
) -> Result<(Outcome, String), UpdateError> {
    if !file.is_file() {
        return Err(UpdateError::Local(format!(
            "{}: not a file",
            file.display()
        )));
    }
    let mut laps = Laps {
        since: Instant::now(),
        stages,
    };
    let agent_status = to_recovery(t, o, ui, &mut laps)?;
    // The boot that installs: its id and rollback record are the baseline of the return.
    let recovery = client::recovery_status(&t.host, o.swport(t));
    let inst = install(t, file, o, ui, &mut laps)?;
    let before = Before::new(agent_status.as_ref(), recovery.as_ref(), inst.done);
    if o.no_wait {
        return Ok((
            Outcome::Installed,
            format!(
                "SWUpdate reported success{}; not waiting for the reboot (--no-wait)",
                before.note
            ),
        ));
    }
    watch_return(t, o, &before, &mut laps)
}

/// Step 1: what answers, and if it is the agent, the authenticated request into recovery and
/// the waits until SWUpdate answers. The agent's status, if the robot ran its main system.
fn to_recovery(
    t: &Target,
    o: &Options,
    ui: &dyn Ui,
    laps: &mut Laps,
) -> Result<Option<serde_json::Value>, UpdateError> {
    let probed = client::probe(&t.host, t.port);
    laps.lap(Stage::Status);
    let st = match probed? {
        Probe::Swupdate => {
            let line = format!(
                "SWUpdate answers on port {}: the robot is in recovery",
                t.port
            );
            ui.line(&t.spec, &line);
            return Ok(None);
        }
        Probe::Agent(st) => st,
    };
    let line = format!(
        "agent: running {} (version {}); asking for recovery",
        st["booted_slot"], st["image_version"]
    );
    ui.line(&t.spec, &line);
    let secret = agent_secret(t, &o.secrets)?;
    client::request_recovery(&t.host, t.port, &secret)?;
    // Down: the agent no longer answers (SWUpdate may already, on the same port).
    client::wait_for(
        o.boot_timeout,
        Duration::from_millis(500),
        "the robot did not go down for recovery",
        || (!matches!(client::probe(&t.host, t.port), Ok(Probe::Agent(_)))).then_some(()),
    )?;
    laps.lap(Stage::RebootToRecovery);
    client::wait_for(
        o.boot_timeout,
        Duration::from_secs(2),
        "SWUpdate did not come up",
        || matches!(client::probe(&t.host, o.swport(t)), Ok(Probe::Swupdate)).then_some(()),
    )?;
    laps.lap(Stage::WaitSwupdate);
    Ok(Some(st))
}

/// The robot's agent secret, needed only when it runs its main system.
fn agent_secret(t: &Target, secrets: &Secrets) -> Result<Vec<u8>, UpdateError> {
    let path = secrets.path(t).ok_or_else(|| {
        UpdateError::Local(
            "the robot runs its main system: give --secret FILE or --secret-dir DIR (the robot's agent secret)"
                .into(),
        )
    })?;
    crate::agent::load_secret(&path).map_err(|e| UpdateError::Local(format!("{}: {e}", t.spec)))
}

/// Step 2: the upload and SWUpdate's result, its lines shown as they come; POST /restart when
/// SWUpdate skipped its post-update command.
fn install(
    t: &Target,
    file: &Path,
    o: &Options,
    ui: &dyn Ui,
    laps: &mut Laps,
) -> Result<client::Installed, UpdateError> {
    let mut progress = |sent: u64, total: u64| ui.progress(&t.spec, sent, total);
    let mut log = |m: &Msg| {
        if let Some(line) = swupdate_line(m) {
            ui.line(&t.spec, &line);
        }
    };
    let inst = client::install(
        &t.host,
        o.swport(t),
        file,
        o.timeout,
        o.done_grace,
        o.who.as_ref(),
        &mut progress,
        &mut log,
    );
    let inst = match inst {
        Ok(i) => i,
        Err(e) => {
            laps.lap(Stage::Upload);
            return Err(e);
        }
    };
    let rate = inst.bytes as f64 / inst.upload.as_secs_f64().max(1e-3) / 1e6;
    let line = format!(
        "installed ({} bytes uploaded in {:.1} s, {rate:.1} MB/s)",
        inst.bytes,
        inst.upload.as_secs_f64()
    );
    ui.line(&t.spec, &line);
    if !inst.done {
        // SWUpdate 2022.12 sometimes skips the post-update command: run it ourselves.
        ui.line(
            &t.spec,
            "no DONE from SWUpdate: its post-update command did not run; POST /restart",
        );
        client::restart(&t.host, o.swport(t), o.who.as_ref())?;
    }
    laps.lap2(Stage::Upload, inst.upload, Stage::Install);
    Ok(inst)
}

/// The line shown for a SWUpdate event: its errors and the statuses that matter; not its
/// warnings about hardware the host lacks (MTD), nor the web server's noise about the
/// connection it cut.
fn swupdate_line(m: &Msg) -> Option<String> {
    match m {
        Msg::Message { level, text }
            if *level <= 3 && !crate::events::is_connection_noise(text) =>
        {
            Some(format!("swupdate: {}", crate::events::plain(text)))
        }
        Msg::Status(s) if ["START", "SUCCESS", "FAILURE", "DONE"].contains(&s.as_str()) => {
            Some(format!("swupdate: {s}"))
        }
        _ => None,
    }
}

/// Step 3: look at the robot every 3 s, each wait at most the boot timeout, until [`next`] ends
/// the update; each wait closes its stage.
fn watch_return(
    t: &Target,
    o: &Options,
    before: &Before,
    laps: &mut Laps,
) -> Result<(Outcome, String), UpdateError> {
    let mut wait = Wait::BackOnline;
    loop {
        let step = client::wait_for(
            o.boot_timeout,
            Duration::from_secs(3),
            wait.gave_up(),
            || next(wait, &look(t, o, before), before),
        )?;
        laps.lap(wait.stage());
        match step {
            Step::Then(w) => wait = w,
            Step::End(outcome, detail) => return Ok((outcome, detail)),
        }
    }
}

/// One look at the robot's port: the agent's status, or the recovery system's; the status
/// document is fetched only when there is a boot id to compare it with.
fn look(t: &Target, o: &Options, before: &Before) -> Seen {
    match client::probe(&t.host, t.port) {
        Ok(Probe::Agent(st)) => Seen::Agent(st),
        Ok(Probe::Swupdate) if before.recovery_boot.is_some() => {
            client::recovery_status(&t.host, o.swport(t)).map_or(Seen::Nothing, Seen::Recovery)
        }
        _ => Seen::Nothing,
    }
}

/// What the client knew when the install ended: with what it sees, the pure core's input.
#[derive(Debug, Clone, PartialEq)]
struct Before {
    /// The robot's last rollback before this update (null: none): only another one is news.
    rollback: serde_json::Value,
    /// The boot id of the recovery system that installed (updater/dist/S97zbot-status); `None`
    /// when it has none, and then a return to recovery cannot be told from that boot.
    recovery_boot: Option<String>,
    /// The end of every detail: that SWUpdate's post-update command was ours (`POST
    /// /restart`), so a script reading `--json` sees it too; empty when SWUpdate ran it.
    note: &'static str,
}

impl Before {
    /// From the agent's status (when the robot ran its main system), the installing recovery
    /// system's status document, and whether SWUpdate said DONE.
    fn new(
        agent: Option<&serde_json::Value>,
        recovery: Option<&serde_json::Value>,
        done: bool,
    ) -> Before {
        let from_agent = agent.map_or(serde_json::Value::Null, |st| st["last_rollback"].clone());
        let rollback = match recovery {
            // Pushed to a robot already in recovery: the rollback it holds is an old one.
            Some(v) if from_agent.is_null() => v["bootcount"]["last_rollback"].clone(),
            _ => from_agent,
        };
        Before {
            rollback,
            recovery_boot: recovery.and_then(|v| v["boot_id"].as_str().map(str::to_string)),
            note: if done {
                ""
            } else {
                " (its post-update command did not run: run by POST /restart)"
            },
        }
    }

    /// Recovery again under another boot id than the one that installed: the new system
    /// was rolled back.
    fn is_new_recovery(&self, status: &serde_json::Value) -> bool {
        self.recovery_boot.is_some() && status["boot_id"].as_str() != self.recovery_boot.as_deref()
    }
}

/// What the client waits for after the install, in order; each is a stage of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Any answer from a boot after the install.
    BackOnline,
    /// The main system's trial closed (committed or rolled back), or recovery again.
    Verdict,
}

impl Wait {
    fn stage(self) -> Stage {
        match self {
            Wait::BackOnline => Stage::BackOnline,
            Wait::Verdict => Stage::Verdict,
        }
    }
    /// The timeout's message.
    fn gave_up(self) -> &'static str {
        match self {
            Wait::BackOnline => {
                "the robot did not come back (neither its agent nor a new recovery boot answers)"
            }
            Wait::Verdict => "the robot did not come back with a verdict",
        }
    }
}

/// One look at the robot's port after the install.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// The main system's agent, with its status.
    Agent(serde_json::Value),
    /// The recovery system, with its status document.
    Recovery(serde_json::Value),
    /// Nothing to go on: down, booting, or recovery without a status document.
    Nothing,
}

/// What a look decided, when it decided anything.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// This wait is over; the next one starts.
    Then(Wait),
    /// The update ended so.
    End(Outcome, String),
}

/// The pure core of the return: given the wait, what was seen and what was known before,
/// the next step, or `None` to look again.
fn next(wait: Wait, seen: &Seen, before: &Before) -> Option<Step> {
    match seen {
        Seen::Recovery(v) if before.is_new_recovery(v) => {
            // The new recovery boot is the rollback; its record may equal the one before
            // (same slot, same reason: nothing in it tells two rollbacks apart).
            let detail = match &v["bootcount"]["last_rollback"] {
                serde_json::Value::Null => format!(
                    "rolled back: the robot is back in recovery (no new reason recorded){}",
                    before.note
                ),
                rb => rollback_detail(rb, before.note),
            };
            Some(Step::End(Outcome::RolledBack, detail))
        }
        Seen::Agent(_) if wait == Wait::BackOnline => Some(Step::Then(Wait::Verdict)),
        // The main system counts once its trial is closed. A failed trial's agent may still
        // answer between its mark-bad and the reboot: its new rollback record is the verdict.
        Seen::Agent(st) if st["trial"].is_null() => {
            let rb = &st["last_rollback"];
            Some(if !rb.is_null() && *rb != before.rollback {
                Step::End(Outcome::RolledBack, rollback_detail(rb, before.note))
            } else {
                let detail = format!(
                    "running {} version {}{}",
                    st["booted_slot"], st["image_version"], before.note
                );
                Step::End(Outcome::Updated, detail)
            })
        }
        _ => None,
    }
}

/// `rolled back: "SLOT" ("REASON")` from bootcount's rollback record.
fn rollback_detail(rb: &serde_json::Value, note: &str) -> String {
    format!("rolled back: {} ({}){note}", rb["slot"], rb["reason"])
}

/// Update several robots, at most `jobs` at a time; the reports in the order given.
pub fn update_fleet(
    targets: &[Target],
    file: &Path,
    o: &Options,
    jobs: usize,
    ui: &dyn Ui,
) -> Vec<Report> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Report>>> = targets
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, targets.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(t) = targets.get(i) else { break };
                let r = update_one(t, file, o, ui);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .zip(targets)
        .map(|(m, t)| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Report {
                    host: t.spec.clone(),
                    outcome: Outcome::Error,
                    detail: "not run".into(),
                    stages: vec![],
                    total: Duration::ZERO,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn targets() {
        let t = parse_target("192.168.42.1", 10000).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.explicit_port),
            ("192.168.42.1", 10000, false)
        );
        let t = parse_target("127.0.0.1:18081", 10000).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.explicit_port),
            ("127.0.0.1", 18081, true)
        );
        let t = parse_target("[fe80::1]:9", 10000).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 9));
        let t = parse_target("fe80::1", 10000).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 10000));
        assert_eq!(parse_target("robot-7", 1).unwrap().host, "robot-7");
        for bad in [
            "", ":80", "h:0", "h:70000", "h:x", "[::1", "[::1]x", "a b", "a/b:1",
        ] {
            assert!(parse_target(bad, 10000).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn secret_files_per_robot() {
        let d = tempfile::tempdir().unwrap();
        let s = Secrets::Dir(d.path().to_path_buf());
        let t = parse_target("robot-7", 10000).unwrap();
        assert_eq!(s.path(&t).unwrap(), d.path().join("robot-7.secret"));
        // With a port: HOST:PORT.secret if present, else HOST.secret.
        let t = parse_target("10.0.0.7:10001", 10000).unwrap();
        assert_eq!(s.path(&t).unwrap(), d.path().join("10.0.0.7.secret"));
        std::fs::write(d.path().join("10.0.0.7:10001.secret"), "x").unwrap();
        assert_eq!(s.path(&t).unwrap(), d.path().join("10.0.0.7:10001.secret"));
        assert_eq!(Secrets::None.path(&t), None);
    }

    /// The agent's status as `zbot-updater agent` answers it.
    fn agent(trial: serde_json::Value, rollback: serde_json::Value) -> Seen {
        Seen::Agent(serde_json::json!({
            "robot": "zbot", "booted_slot": "rootfs", "image_version": "2.0",
            "trial": trial, "last_rollback": rollback,
        }))
    }

    /// The recovery system's status document (updater/dist/S97zbot-status).
    fn recovery(boot_id: &str, rollback: serde_json::Value) -> Seen {
        Seen::Recovery(serde_json::json!({
            "boot_id": boot_id, "bootcount": { "last_rollback": rollback },
        }))
    }

    fn rb(slot: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({ "slot": slot, "reason": reason })
    }

    fn before(rollback: serde_json::Value, recovery_boot: Option<&str>, done: bool) -> Before {
        Before {
            rollback,
            recovery_boot: recovery_boot.map(str::to_string),
            note: Before::new(None, None, done).note,
        }
    }

    fn end(outcome: Outcome, detail: &str) -> Option<Step> {
        Some(Step::End(outcome, detail.to_string()))
    }

    /// The return's decision table: one row per case, what it means first.
    #[test]
    fn return_decisions() {
        use serde_json::Value::Null;
        use Outcome::{RolledBack, Updated};
        use Wait::{BackOnline, Verdict};
        let bad = || rb("rootfs", "unhealthy");
        let trial = || serde_json::Value::from("rootfs");
        let (b1, without_done) = (Some("b1"), false);
        #[rustfmt::skip]
        let rows: Vec<(&str, Wait, Seen, Before, Option<Step>)> = vec![
            ("nothing answers yet: look again",
             BackOnline, Seen::Nothing, before(Null, b1, true), None),
            ("the trial boot's agent answers: back online, now wait for the verdict",
             BackOnline, agent(trial(), Null), before(Null, b1, true), Some(Step::Then(Verdict))),
            ("an agent whose trial is already closed is still only back online",
             BackOnline, agent(Null, Null), before(Null, b1, true), Some(Step::Then(Verdict))),
            ("the recovery boot that installed still answers: look again",
             BackOnline, recovery("b1", bad()), before(Null, b1, true), None),
            ("a new recovery boot instead of the agent: rolled back, with its reason",
             BackOnline, recovery("b2", bad()), before(Null, b1, true),
             end(RolledBack, r#"rolled back: "rootfs" ("unhealthy")"#)),
            ("a new recovery boot whose record equals the one before: still the rollback",
             Verdict, recovery("b2", bad()), before(bad(), b1, true),
             end(RolledBack, r#"rolled back: "rootfs" ("unhealthy")"#)),
            ("a new recovery boot with no record",
             Verdict, recovery("b2", Null), before(Null, b1, true),
             end(RolledBack, "rolled back: the robot is back in recovery (no new reason recorded)")),
            ("recovery, but no boot id from the install to compare: look again",
             Verdict, recovery("b2", bad()), before(Null, None, true), None),
            ("the trial still open: look again",
             Verdict, agent(trial(), Null), before(Null, b1, true), None),
            ("the trial committed: updated, with the slot and version",
             Verdict, agent(Null, Null), before(Null, b1, true),
             end(Updated, r#"running "rootfs" version "2.0""#)),
            ("committed, the rollback record the one from before: updated",
             Verdict, agent(Null, bad()), before(bad(), b1, true),
             end(Updated, r#"running "rootfs" version "2.0""#)),
            ("the race: a failed trial's agent answers between its mark-bad and the reboot; \
              its new record is the verdict",
             Verdict, agent(Null, bad()), before(Null, b1, true),
             end(RolledBack, r#"rolled back: "rootfs" ("unhealthy")"#)),
            ("a record other than the one from before: rolled back",
             Verdict, agent(Null, rb("rootfs", "bootlimit")), before(bad(), None, true),
             end(RolledBack, r#"rolled back: "rootfs" ("bootlimit")"#)),
            ("our POST /restart ran the post-update command: every detail says so",
             Verdict, agent(Null, Null), before(Null, b1, without_done),
             end(Updated, r#"running "rootfs" version "2.0" (its post-update command did not run: run by POST /restart)"#)),
            ("... and a rollback's too",
             Verdict, recovery("b2", bad()), before(Null, b1, without_done),
             end(RolledBack, r#"rolled back: "rootfs" ("unhealthy") (its post-update command did not run: run by POST /restart)"#)),
        ];
        for (what, wait, seen, before, want) in rows {
            assert_eq!(next(wait, &seen, &before), want, "{what}");
        }
    }

    #[test]
    fn baseline_before_the_install() {
        use serde_json::{json, Value::Null};
        let old = rb("rootfs", "bootlimit");
        let status = json!({ "boot_id": "b1", "bootcount": { "last_rollback": old } });
        let main = json!({ "last_rollback": rb("rootfs", "unhealthy") });
        let main_clean = json!({ "last_rollback": Null });
        // Pushed from the main system: its agent's record is the one to compare with.
        let b = Before::new(Some(&main), Some(&status), true);
        assert_eq!(
            (b.rollback, b.recovery_boot.as_deref(), b.note),
            (rb("rootfs", "unhealthy"), Some("b1"), "")
        );
        // The main system had none: the recovery system's record is taken.
        assert_eq!(
            Before::new(Some(&main_clean), Some(&status), true).rollback,
            old
        );
        // Pushed to a robot already in recovery: the record it holds is an old one.
        assert_eq!(Before::new(None, Some(&status), true).rollback, old);
        // A recovery system without a status document: no boot id, no record.
        let b = Before::new(None, None, false);
        assert_eq!((b.rollback, b.recovery_boot), (Null, None));
        assert!(b.note.contains("POST /restart"));
    }

    #[test]
    fn swupdate_lines_shown() {
        let msg = |level, text: &str| Msg::Message {
            level,
            text: text.into(),
        };
        let status = |s: &str| Msg::Status(s.into());
        for s in ["START", "SUCCESS", "FAILURE", "DONE"] {
            assert_eq!(swupdate_line(&status(s)), Some(format!("swupdate: {s}")));
        }
        assert_eq!(swupdate_line(&status("RUN")), None);
        assert_eq!(swupdate_line(&status("IDLE")), None);
        // Errors are shown, warnings and debug lines are not.
        assert_eq!(
            swupdate_line(&msg(3, "Image invalid or corrupted")).as_deref(),
            Some("swupdate: Image invalid or corrupted")
        );
        assert_eq!(
            swupdate_line(&msg(3, "ERROR core/x.c : f : 187 : bad hash")).as_deref(),
            Some("swupdate: bad hash")
        );
        // The web server's noise about the upload connection it cut is not the reason.
        let noise = "ERROR mongoose.c : f : 9 : Writing to IPC fails due to Broken pipe";
        assert_eq!(swupdate_line(&msg(3, noise)), None);
        assert_eq!(swupdate_line(&msg(4, "MTD not found")), None);
        assert_eq!(swupdate_line(&msg(6, "Installing")), None);
    }

    #[test]
    fn errors_become_outcomes() {
        let rows = [
            (UpdateError::Refused("x".into()), Outcome::Refused),
            (UpdateError::Agent("x".into()), Outcome::AgentRefused),
            (UpdateError::Auth("x".into()), Outcome::AuthRefused),
            (UpdateError::Unreachable("x".into()), Outcome::Unreachable),
            (UpdateError::Timeout("x".into()), Outcome::Unreachable),
            (UpdateError::Local("x".into()), Outcome::Error),
        ];
        for (e, want) in rows {
            assert_eq!(outcome_of(&e), want, "{e}");
        }
    }

    proptest! {
        #[test]
        fn target_parser_never_panics(s in ".{0,40}") {
            let _ = parse_target(&s, 10000);
        }

        #[test]
        fn host_port_roundtrip(h in "[a-z][a-z0-9.-]{0,20}", p in 1u16..) {
            let t = parse_target(&format!("{h}:{p}"), 10000).unwrap();
            prop_assert_eq!((t.host, t.port), (h, p));
        }
    }
}
