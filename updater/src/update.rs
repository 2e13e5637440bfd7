//! The `update` flow: one robot ([`update_one`]) and a fleet ([`update_fleet`], a bounded
//! number at a time). Each robot ends in a [`Report`]; what happens along the way goes to a
//! [`Ui`] (progress bars, plain lines, or nothing), so the flow does not know the terminal.

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
    let r = flow(t, file, o, ui, &mut stages);
    let (outcome, detail) = match r {
        Ok(x) => x,
        Err(e) => (
            match e {
                UpdateError::Refused(_) => Outcome::Refused,
                UpdateError::Agent(_) => Outcome::AgentRefused,
                UpdateError::Auth(_) => Outcome::AuthRefused,
                UpdateError::Unreachable(_) | UpdateError::Timeout(_) => Outcome::Unreachable,
                UpdateError::Local(_) => Outcome::Error,
            },
            e.to_string(),
        ),
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

fn flow(
    t: &Target,
    file: &Path,
    o: &Options,
    ui: &dyn Ui,
    stages: &mut Vec<(Stage, Duration)>,
) -> Result<(Outcome, String), UpdateError> {
    let (host, port) = (t.host.as_str(), t.port);
    let swport = o.swupdate_port.unwrap_or(port);
    let name = t.spec.as_str();
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
    let mut before_rollback = serde_json::Value::Null;
    let probed = client::probe(host, port);
    laps.lap(Stage::Status);
    match probed? {
        Probe::Swupdate => {
            ui.line(
                name,
                &format!("SWUpdate answers on port {port}: the robot is in recovery"),
            );
        }
        Probe::Agent(st) => {
            before_rollback = st["last_rollback"].clone();
            ui.line(
                name,
                &format!(
                    "agent: running {} (version {}); asking for recovery",
                    st["booted_slot"], st["image_version"]
                ),
            );
            let path = o.secrets.path(t).ok_or_else(|| {
                UpdateError::Local(
                    "the robot runs its main system: give --secret FILE or --secret-dir DIR (the robot's agent secret)"
                        .into(),
                )
            })?;
            let s = crate::agent::load_secret(&path)
                .map_err(|e| UpdateError::Local(format!("{name}: {e}")))?;
            client::request_recovery(host, port, &s)?;
            // Down: the agent no longer answers (SWUpdate may already, on the same port).
            client::wait_for(
                o.boot_timeout,
                Duration::from_millis(500),
                "the robot did not go down for recovery",
                || (!matches!(client::probe(host, port), Ok(Probe::Agent(_)))).then_some(()),
            )?;
            laps.lap(Stage::RebootToRecovery);
            client::wait_for(
                o.boot_timeout,
                Duration::from_secs(2),
                "SWUpdate did not come up",
                || matches!(client::probe(host, swport), Ok(Probe::Swupdate)).then_some(()),
            )?;
            laps.lap(Stage::WaitSwupdate);
        }
    }
    // The recovery system's boot: after the install, the robot back in recovery under another
    // boot id means the new system was rolled back (updater/dist/S97zbot-status).
    let recovery = client::recovery_status(host, swport);
    let recovery_boot = recovery
        .as_ref()
        .and_then(|v| v["boot_id"].as_str().map(str::to_string));
    if before_rollback.is_null() {
        // Pushed to a robot already in recovery: the rollback it holds is an old one.
        if let Some(v) = &recovery {
            before_rollback = v["bootcount"]["last_rollback"].clone();
        }
    }
    let mut progress = |sent: u64, total: u64| ui.progress(name, sent, total);
    // SWUpdate's errors and the statuses that matter; not its warnings about hardware the
    // host lacks (MTD), nor the web server's noise about the connection it cut.
    let mut log = |m: &Msg| match m {
        Msg::Message { level, text }
            if *level <= 3 && !crate::events::is_connection_noise(text) =>
        {
            ui.line(name, &format!("swupdate: {}", crate::events::plain(text)))
        }
        Msg::Status(s) if ["START", "SUCCESS", "FAILURE", "DONE"].contains(&s.as_str()) => {
            ui.line(name, &format!("swupdate: {s}"))
        }
        _ => {}
    };
    let inst = client::install(
        host,
        swport,
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
    ui.line(
        name,
        &format!(
            "installed ({} bytes uploaded in {:.1} s, {rate:.1} MB/s)",
            inst.bytes,
            inst.upload.as_secs_f64()
        ),
    );
    if !inst.done {
        // SWUpdate 2022.12 sometimes skips the post-update command: run it ourselves.
        ui.line(
            name,
            "no DONE from SWUpdate: its post-update command did not run; POST /restart",
        );
        client::restart(host, swport, o.who.as_ref())?;
    }
    laps.lap2(Stage::Upload, inst.upload, Stage::Install);
    // Said in the report too (a script reading --json sees it).
    let restarted = if inst.done {
        ""
    } else {
        " (its post-update command did not run: run by POST /restart)"
    };
    if o.no_wait {
        return Ok((
            Outcome::Installed,
            format!("SWUpdate reported success{restarted}; not waiting for the reboot (--no-wait)"),
        ));
    }
    /// Where the robot is after the install.
    enum Back {
        /// The main system: its agent answers, with its status.
        Main(serde_json::Value),
        /// Recovery again, in another boot than the one that installed: rolled back.
        Recovery(serde_json::Value),
    }
    // `settled`: the main system only counts once its trial is closed (the verdict).
    let where_now = |settled: bool| match client::probe(host, port) {
        Ok(Probe::Agent(v)) if !settled || v["trial"].is_null() => Some(Back::Main(v)),
        Ok(Probe::Swupdate) if recovery_boot.is_some() => client::recovery_status(host, swport)
            .filter(|v| v["boot_id"].as_str() != recovery_boot.as_deref())
            .map(Back::Recovery),
        _ => None,
    };
    let rolled_back = |v: serde_json::Value| {
        let rb = &v["bootcount"]["last_rollback"];
        (
            Outcome::RolledBack,
            // A new recovery boot after the install is the rollback; its record may equal the
            // one before (same slot, same reason: nothing in it tells two rollbacks apart).
            if rb.is_null() {
                format!("rolled back: the robot is back in recovery (no new reason recorded){restarted}")
            } else {
                format!("rolled back: {} ({}){restarted}", rb["slot"], rb["reason"])
            },
        )
    };
    let back = client::wait_for(
        o.boot_timeout,
        Duration::from_secs(3),
        "the robot did not come back (neither its agent nor a new recovery boot answers)",
        || where_now(false),
    )?;
    laps.lap(Stage::BackOnline);
    if let Back::Recovery(v) = back {
        return Ok(rolled_back(v));
    }
    let st = match client::wait_for(
        o.boot_timeout,
        Duration::from_secs(3),
        "the robot did not come back with a verdict",
        || where_now(true),
    )? {
        Back::Main(st) => st,
        Back::Recovery(v) => {
            laps.lap(Stage::Verdict);
            return Ok(rolled_back(v));
        }
    };
    laps.lap(Stage::Verdict);
    if !st["last_rollback"].is_null() && st["last_rollback"] != before_rollback {
        return Ok((
            Outcome::RolledBack,
            format!(
                "rolled back: {} ({}){restarted}",
                st["last_rollback"]["slot"], st["last_rollback"]["reason"]
            ),
        ));
    }
    Ok((
        Outcome::Updated,
        format!(
            "running {} version {}{restarted}",
            st["booted_slot"], st["image_version"]
        ),
    ))
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
