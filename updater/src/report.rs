//! What `update` tells: one typed report per robot (outcome, exit code, how long each stage
//! took), and the crate's one printer for it, human or JSON. Pure: the printer writes to any
//! `Write`, the tests read it back.

use crate::cli::{
    EXIT_AGENT_REFUSED, EXIT_AUTH, EXIT_ROLLED_BACK, EXIT_SWUPDATE_REFUSED, EXIT_UNREACHABLE,
    EXIT_USAGE,
};
use std::io::Write;
use std::time::Duration;

/// How an update of one robot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Committed in the new rootfs.
    Updated,
    /// SWUpdate reported success; not waited for the reboot (`--no-wait`).
    Installed,
    /// SWUpdate refused the package (FAILURE, or it cut the upload).
    Refused,
    /// Installed, but the robot rolled back.
    RolledBack,
    /// Unreachable or timed out.
    Unreachable,
    /// The agent refused the recovery request (secret).
    AgentRefused,
    /// SWUpdate's web server refused the credentials.
    AuthRefused,
    /// A local problem (the package, a secret file).
    Error,
}

impl Outcome {
    /// The exit code (updated/README.md, "Exit codes").
    pub fn exit(self) -> i32 {
        match self {
            Outcome::Updated | Outcome::Installed => 0,
            Outcome::Error => EXIT_USAGE,
            Outcome::Refused => EXIT_SWUPDATE_REFUSED,
            Outcome::RolledBack => EXIT_ROLLED_BACK,
            Outcome::Unreachable => EXIT_UNREACHABLE,
            Outcome::AgentRefused => EXIT_AGENT_REFUSED,
            Outcome::AuthRefused => EXIT_AUTH,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::Installed => "installed",
            Outcome::Refused => "refused",
            Outcome::RolledBack => "rolled-back",
            Outcome::Unreachable => "unreachable",
            Outcome::AgentRefused => "agent-refused",
            Outcome::AuthRefused => "auth-refused",
            Outcome::Error => "error",
        }
    }
}

/// A stage of an update, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Asking what runs on the robot (agent status or SWUpdate).
    Status,
    /// The authenticated request until the main system is down.
    RebootToRecovery,
    /// Until SWUpdate's web server answers.
    WaitSwupdate,
    /// Connect to SWUpdate's reply to the last byte.
    Upload,
    /// From that reply to SWUpdate's SUCCESS and its post-update command (DONE or our restart).
    Install,
    /// Until the agent answers again (the trial boot).
    BackOnline,
    /// Until the trial is closed: committed or rolled back.
    Verdict,
}

impl Stage {
    /// The name in the human output and the JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Status => "status",
            Stage::RebootToRecovery => "reboot-to-recovery",
            Stage::WaitSwupdate => "wait-swupdate",
            Stage::Upload => "upload",
            Stage::Install => "install",
            Stage::BackOnline => "back-online",
            Stage::Verdict => "verdict",
        }
    }
}

/// One robot's update, as told.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The robot as given on the command line (HOST or HOST:PORT).
    pub host: String,
    /// How it ended.
    pub outcome: Outcome,
    /// One line: what happened, or SWUpdate's / the agent's reason.
    pub detail: String,
    /// The stages passed, in order, with their durations.
    pub stages: Vec<(Stage, Duration)>,
    /// From start to end.
    pub total: Duration,
}

impl Report {
    /// The exit code for this robot.
    pub fn exit(&self) -> i32 {
        self.outcome.exit()
    }
    /// The JSON object: `host`, `outcome`, `exit`, `detail`, `seconds`, `stages`
    /// (`{"upload": 0.71, ...}`, only the stages passed).
    pub fn json(&self) -> serde_json::Value {
        let stages: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|(s, d)| (s.name().to_string(), secs(*d).into()))
            .collect();
        serde_json::json!({
            "host": self.host,
            "outcome": self.outcome,
            "exit": self.exit(),
            "detail": self.detail,
            "seconds": secs(self.total),
            "stages": stages,
        })
    }
}

/// Seconds, rounded to milliseconds.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The overall exit code of a run: the largest robot's (0 only when every robot is updated).
pub fn overall_exit(reports: &[Report]) -> i32 {
    reports.iter().map(Report::exit).max().unwrap_or(0)
}

/// Print the reports: `--json` gives one object for one robot (as before fleets), an array
/// for several; the human form gives each robot's line and its stages, then for several
/// robots a summary table (host, outcome, exit, duration).
pub fn print(reports: &[Report], json: bool, fleet: bool, out: &mut dyn Write) {
    if json {
        let v = if fleet {
            serde_json::Value::Array(reports.iter().map(Report::json).collect())
        } else {
            reports
                .first()
                .map(Report::json)
                .unwrap_or(serde_json::Value::Null)
        };
        let _ = writeln!(out, "{v}");
        return;
    }
    for r in reports {
        let _ = writeln!(out, "{}: {}: {}", r.host, r.outcome.word(), r.detail);
        if !r.stages.is_empty() {
            let st: Vec<String> = r
                .stages
                .iter()
                .map(|(s, d)| format!("{} {:.2} s", s.name(), d.as_secs_f64()))
                .collect();
            let _ = writeln!(
                out,
                "{}: stages: {}; total {:.2} s",
                r.host,
                st.join(", "),
                r.total.as_secs_f64()
            );
        }
    }
    if fleet {
        let w = reports
            .iter()
            .map(|r| r.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:w$}  {:13}  {:>4}  {:>9}",
            "HOST", "OUTCOME", "EXIT", "TIME"
        );
        for r in reports {
            let _ = writeln!(
                out,
                "{:w$}  {:13}  {:>4}  {:>7.1} s",
                r.host,
                r.outcome.word(),
                r.exit(),
                r.total.as_secs_f64()
            );
        }
        let bad = reports.iter().filter(|r| r.exit() != 0).count();
        let _ = writeln!(
            out,
            "{} robots: {} ok, {} not; exit {}",
            reports.len(),
            reports.len() - bad,
            bad,
            overall_exit(reports)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: &str, outcome: Outcome, ms: u64) -> Report {
        Report {
            host: host.into(),
            outcome,
            detail: "d".into(),
            stages: vec![
                (Stage::Status, Duration::from_millis(10)),
                (Stage::Upload, Duration::from_millis(ms)),
            ],
            total: Duration::from_millis(ms + 10),
        }
    }

    #[test]
    fn one_robot_json_is_an_object_several_an_array() {
        let a = r("10.0.0.1", Outcome::Installed, 700);
        let mut o = Vec::new();
        print(std::slice::from_ref(&a), true, false, &mut o);
        let v: serde_json::Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v["outcome"], "installed");
        assert_eq!(v["exit"], 0);
        assert_eq!(v["stages"]["upload"], 0.7);
        assert_eq!(v["seconds"], 0.71);
        let mut o = Vec::new();
        print(
            &[a, r("10.0.0.2:9", Outcome::Unreachable, 5)],
            true,
            true,
            &mut o,
        );
        let v: serde_json::Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["host"], "10.0.0.2:9");
        assert_eq!(v[1]["outcome"], "unreachable");
        assert_eq!(v[1]["exit"], 5);
    }

    #[test]
    fn the_fleet_table_has_a_row_per_robot_and_the_worst_exit() {
        let rs = [
            r("a", Outcome::Installed, 1),
            r("bb", Outcome::Refused, 1),
            r("c", Outcome::Unreachable, 1),
        ];
        assert_eq!(overall_exit(&rs), 5);
        assert_eq!(overall_exit(&rs[..1]), 0);
        assert_eq!(overall_exit(&[]), 0);
        let mut o = Vec::new();
        print(&rs, false, true, &mut o);
        let t = String::from_utf8(o).unwrap();
        assert!(t.contains("bb: refused: d\n"), "{t}");
        assert!(
            t.contains("bb: stages: status 0.01 s, upload 0.00 s"),
            "{t}"
        );
        let rows: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("HOST")).collect();
        assert_eq!(rows.len(), 5, "{t}");
        assert!(
            rows[2].starts_with("bb    refused") && rows[2].contains("   3"),
            "{t}"
        );
        assert!(t.ends_with("3 robots: 1 ok, 2 not; exit 5\n"), "{t}");
    }
}
