//! The robot's agent (`zbot-updater agent`, replaces the seed's `nc -l -p 10000` ota-agent).
//!
//! A line protocol on TCP, one JSON line per answer:
//!
//! | request | answer | auth |
//! |---|---|---|
//! | `discover` | `zbot` (as the seed agent) | none |
//! | `status` | booted slot, image version, next boot, trial, last rollback, health, env validity | none |
//! | `challenge` | `{"nonce":"<32 hex>"}`: single use, expires after `nonce_ttl` | none |
//! | `recovery NONCE MAC` | `{"ok":true,...}`, then `next_boot` once = recovery and reboot | HMAC |
//!
//! `MAC` is the hex HMAC-SHA256, keyed with the robot's secret file, of
//! `zbot-agent-v1 recovery NONCE`: the secret never crosses the network, the MAC is compared in
//! constant time (`hmac`'s `verify_slice`), and a nonce is consumed by the first `recovery` that
//! names it, right or wrong, so a captured request cannot be replayed and each guess costs a
//! round trip. Status is answered without authentication: it is read-only, and the push client
//! needs it before it decides anything (the seed's `discover` was open too). Requests are lines
//! of at most [`MAX_LINE`] bytes, a connection gets [`MAX_REQUESTS`] of them within its deadline,
//! reads and writes time out. No shell: the reboot command is run as an argument vector.

use bootcount::{engine, Op, SlotConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest request line accepted.
pub const MAX_LINE: usize = 256;
/// Requests per connection.
pub const MAX_REQUESTS: usize = 4;
/// Outstanding nonces kept (the oldest is dropped beyond this).
pub const MAX_NONCES: usize = 32;
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;
/// Environment variable overriding the reboot command (split on whitespace, no shell).
pub const REBOOT_VAR: &str = "ZBOT_AGENT_REBOOT_CMD";

type HmacSha256 = Hmac<Sha256>;

/// The message a client MACs for an action and nonce.
pub fn message(action: &str, nonce: &str) -> String {
    format!("zbot-agent-v1 {action} {nonce}")
}

/// The hex MAC a client sends (the client side, also used by tests and `update`).
pub fn mac_hex(secret: &[u8], action: &str, nonce: &str) -> String {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(message(action, nonce).as_bytes());
    crate::hex(&m.finalize().into_bytes())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Read and check the secret file: at least [`MIN_SECRET`] bytes (a trailing newline is not
/// part of it), readable by its owner only.
pub fn load_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "secret file {}: {e} (provision one per robot: head -c 32 /dev/urandom | xxd -p -c 64 > {0}; chmod 600 {0})",
            path.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "secret file {} is readable by group or others (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let mut s = std::fs::read(path).map_err(|e| format!("secret file {}: {e}", path.display()))?;
    while matches!(s.last(), Some(b'\n') | Some(b'\r')) {
        s.pop();
    }
    if s.len() < MIN_SECRET {
        return Err(format!(
            "secret file {} holds {} bytes: at least {MIN_SECRET} are needed",
            path.display(),
            s.len()
        ));
    }
    Ok(s)
}

/// Single-use nonces with an expiry.
pub struct Nonces {
    live: Vec<(String, Instant)>,
    ttl: Duration,
}

impl Nonces {
    /// An empty set whose nonces live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Nonces {
            live: Vec::new(),
            ttl,
        }
    }
    /// A fresh nonce (16 bytes from the kernel's CSPRNG, as hex).
    pub fn issue(&mut self, now: Instant) -> std::io::Result<String> {
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        let n = crate::hex(&b);
        self.live.retain(|(_, t)| now.duration_since(*t) < self.ttl);
        if self.live.len() >= MAX_NONCES {
            self.live.remove(0);
        }
        self.live.push((n.clone(), now));
        Ok(n)
    }
    /// Consume a nonce: true if it was issued, unused and not expired. It is gone afterwards
    /// either way.
    pub fn take(&mut self, nonce: &str, now: Instant) -> bool {
        match self.live.iter().position(|(n, _)| n == nonce) {
            Some(i) => {
                let (_, t) = self.live.remove(i);
                now.duration_since(t) < self.ttl
            }
            None => false,
        }
    }
}

/// Where the agent reads and writes.
#[derive(Debug, Clone)]
pub struct Config {
    /// fw_env.config [default: /etc/fw_env.config].
    pub env_config: Option<PathBuf>,
    /// U-Boot's default environment.
    pub defaults: Option<PathBuf>,
    /// Slot file.
    pub slots: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: PathBuf,
    /// File whose first line is the image version (e.g. /etc/zbot-version).
    pub version_file: PathBuf,
    /// The reboot command as an argument vector.
    pub reboot: Vec<String>,
    /// Nonce lifetime.
    pub nonce_ttl: Duration,
    /// Per-read/write timeout, and a connection's whole deadline is 2x this.
    pub io_timeout: Duration,
}

/// The agent's state.
pub struct Agent {
    secret: Vec<u8>,
    cfg: Config,
    nonces: Nonces,
}

/// What the server should do after answering.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Keep reading.
    Continue,
    /// Run the reboot command.
    Reboot,
}

fn err_json(msg: &str) -> String {
    serde_json::json!({ "ok": false, "error": msg }).to_string()
}

impl Agent {
    /// An agent holding `secret`.
    pub fn new(secret: Vec<u8>, cfg: Config) -> Self {
        let ttl = cfg.nonce_ttl;
        Agent {
            secret,
            cfg,
            nonces: Nonces::new(ttl),
        }
    }

    /// The environment as bootcount opens it: fw-env's library, the same lock and timeout
    /// variables, and a write from the defaults refused unless they hold the policy's variables.
    fn store(&self, cfg: &SlotConfig) -> Result<fw_env::Store, String> {
        let mut options = fw_env::OpenOptions {
            defaults: self.cfg.defaults.clone(),
            ..fw_env::OpenOptions::default()
        }
        .with_lock_vars(
            std::env::var_os(fw_env::open::LOCK_FILE_VAR),
            std::env::var_os(fw_env::open::LOCK_TIMEOUT_VAR),
        )
        .map_err(|e| format!("environment: {e}"))?;
        if let Some(config) = &self.cfg.env_config {
            options.config = config.clone();
        }
        let store = options.open().map_err(|e| format!("environment: {e}"))?;
        Ok(store.with_required_defaults(
            cfg.default_env().into_iter().map(|(name, _)| name),
            "bootcount's boot policy",
        ))
    }

    fn slots(&self) -> Result<SlotConfig, String> {
        bootcount::cli::load_slots(self.cfg.slots.as_deref()).map_err(|e| e.to_string())
    }

    /// The status, as `bootcount status --json` builds it, plus the image version and the
    /// health verdict readable from the environment.
    pub fn status(&self) -> Result<serde_json::Value, String> {
        let cfg = self.slots()?;
        let snapshot = self.store(&cfg)?.read().map_err(|e| e.to_string())?;
        let vars = fw_env::codec::uboot_view(&snapshot.vars);
        let cmdline = std::fs::read_to_string(&self.cfg.cmdline)
            .map_err(|e| format!("{}: {e}", self.cfg.cmdline.display()))?;
        let booted =
            bootcount::cmdline::booted_slot(&cfg, &vars, &cmdline).map_err(|e| e.to_string())?;
        let st = engine::status(&cfg, &vars, booted);
        // bootcount keeps no verdict file: the environment says whether the running slot's
        // checks are still to pass (its trial is open) or passed (committed), and the last
        // failure is the last rollback.
        let health = match (&st.booted_slot, &st.trial) {
            (Some(b), Some(t)) if *b == t.slot => "pending: on trial, health checks not passed yet",
            (Some(b), _) if *b == st.primary_slot => "good: committed",
            (Some(_), _) => "not the primary slot (recovery or one-shot boot)",
            (None, _) => "unknown: booted slot unknown",
        };
        let version = std::fs::read_to_string(&self.cfg.version_file)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()));
        let mut v = serde_json::to_value(&st).map_err(|e| e.to_string())?;
        v["robot"] = "zbot".into();
        v["image_version"] = version.map_or(serde_json::Value::Null, Into::into);
        v["health"] = health.into();
        v["env_valid"] = snapshot.is_valid().into();
        Ok(v)
    }

    /// Set `next_boot` once to the recovery slot, as `bootcount boot-once otafs` does.
    fn boot_recovery_once(&self) -> Result<String, String> {
        let cfg = self.slots()?;
        let store = self.store(&cfg)?;
        let op = Op::BootOnce(cfg.name(cfg.recovery()).to_string());
        let (message, _report) = store
            .update(|snapshot| {
                let vars = fw_env::codec::uboot_view(&snapshot.vars);
                let out = engine::apply_op(&cfg, &vars, None, &op)
                    .map_err(|e| UpdateError(e.to_string()))?;
                Ok::<_, UpdateError>((out.changes, out.message))
            })
            .map_err(|e| e.0)?;
        Ok(message)
    }
}

/// An error of the one locked read-decide-write, as text for the reply.
struct UpdateError(String);

impl From<fw_env::Error> for UpdateError {
    fn from(e: fw_env::Error) -> UpdateError {
        UpdateError(e.to_string())
    }
}

impl Agent {
    /// Answer one request line.
    pub fn handle(&mut self, line: &str, now: Instant) -> (String, After) {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            ["discover"] => ("zbot".into(), After::Continue),
            ["status"] => match self.status() {
                Ok(v) => (v.to_string(), After::Continue),
                Err(e) => (err_json(&e), After::Continue),
            },
            ["challenge"] => match self.nonces.issue(now) {
                Ok(n) => (
                    serde_json::json!({ "nonce": n }).to_string(),
                    After::Continue,
                ),
                Err(e) => (err_json(&format!("no randomness: {e}")), After::Continue),
            },
            ["recovery", nonce, mac] => {
                // Consume the nonce first: right or wrong, it is never good again.
                if !self.nonces.take(nonce, now) {
                    return (
                        err_json("unknown, used or expired nonce: ask for a new challenge"),
                        After::Continue,
                    );
                }
                let ok = unhex(mac).is_some_and(|m| {
                    let mut h = HmacSha256::new_from_slice(&self.secret).expect("any key length");
                    h.update(message("recovery", nonce).as_bytes());
                    h.verify_slice(&m).is_ok()
                });
                if !ok {
                    return (err_json("authentication failed"), After::Continue);
                }
                match self.boot_recovery_once() {
                    Ok(m) => (
                        serde_json::json!({ "ok": true, "message": m, "rebooting": true })
                            .to_string(),
                        After::Reboot,
                    ),
                    Err(e) => (err_json(&e), After::Continue),
                }
            }
            ["ota"] => (
                err_json(
                    "`ota` without authentication is gone: `challenge`, then `recovery NONCE MAC`",
                ),
                After::Continue,
            ),
            _ => (
                err_json("unknown request (discover, status, challenge, recovery NONCE MAC)"),
                After::Continue,
            ),
        }
    }

    /// Serve one connection: at most [`MAX_REQUESTS`] lines within the deadline.
    pub fn serve_conn(&mut self, stream: TcpStream) -> After {
        let t = self.cfg.io_timeout;
        let _ = stream.set_read_timeout(Some(t));
        let _ = stream.set_write_timeout(Some(t));
        let deadline = Instant::now() + 2 * t;
        let Ok(mut w) = stream.try_clone() else {
            return After::Continue;
        };
        let mut r = BufReader::new(stream);
        for _ in 0..MAX_REQUESTS {
            if Instant::now() > deadline {
                break;
            }
            let mut buf = Vec::new();
            match (&mut r)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.len() > MAX_LINE || !buf.ends_with(b"\n") {
                let _ = writeln!(
                    w,
                    "{}",
                    err_json("request too long or not ended by a newline")
                );
                break;
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            let (answer, after) = self.handle(&line, Instant::now());
            let _ = writeln!(w, "{answer}").and_then(|_| w.flush());
            if after == After::Reboot {
                let _ = w.shutdown(std::net::Shutdown::Both);
                return After::Reboot;
            }
        }
        After::Continue
    }

    /// Run the reboot command (no shell), waiting at most a minute for it.
    pub fn reboot(&self) -> Result<(), String> {
        let Some((prog, args)) = self.cfg.reboot.split_first() else {
            return Err("empty reboot command".into());
        };
        let mut child = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("reboot command {prog}: {e}"))?;
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(format!("reboot command {prog}: {s}")),
                Ok(None) if start.elapsed() > Duration::from_secs(60) => {
                    let _ = child.kill();
                    return Err(format!("reboot command {prog}: still running after 60 s"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("reboot command {prog}: {e}")),
            }
        }
    }

    /// Accept connections one at a time, for ever.
    pub fn run(&mut self, listener: TcpListener, log: &mut dyn Write) -> ! {
        loop {
            let Ok((s, peer)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            if self.serve_conn(s) == After::Reboot {
                let _ = writeln!(
                    log,
                    "zbot-updater agent: {peer} authenticated: rebooting into recovery"
                );
                if let Err(e) = self.reboot() {
                    let _ = writeln!(log, "zbot-updater agent: {e}");
                }
            }
        }
    }
}

/// The default reboot command: `$ZBOT_AGENT_REBOOT_CMD` split on whitespace, else `reboot`.
pub fn default_reboot() -> Vec<String> {
    std::env::var(REBOOT_VAR)
        .unwrap_or_else(|_| "reboot".into())
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_and_expire() {
        let t0 = Instant::now();
        let mut n = Nonces::new(Duration::from_secs(30));
        let a = n.issue(t0).unwrap();
        let b = n.issue(t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(n.take(&a, t0 + Duration::from_secs(1)));
        assert!(!n.take(&a, t0 + Duration::from_secs(1)), "replay accepted");
        assert!(
            !n.take(&b, t0 + Duration::from_secs(31)),
            "expired nonce accepted"
        );
        assert!(!n.take("00", t0));
        // Bounded: the oldest drop out.
        let first = n.issue(t0).unwrap();
        for _ in 0..MAX_NONCES {
            n.issue(t0).unwrap();
        }
        assert!(!n.take(&first, t0));
    }

    #[test]
    fn mac_is_bound_to_action_and_nonce() {
        let s = b"0123456789abcdef0123";
        assert_eq!(mac_hex(s, "recovery", "aa"), mac_hex(s, "recovery", "aa"));
        assert_ne!(mac_hex(s, "recovery", "aa"), mac_hex(s, "recovery", "ab"));
        assert_ne!(mac_hex(s, "recovery", "aa"), mac_hex(s, "status", "aa"));
        assert_ne!(
            mac_hex(s, "recovery", "aa"),
            mac_hex(b"0123456789abcdef0124", "recovery", "aa")
        );
        assert_eq!(unhex("0aff"), Some(vec![10, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
