//! A fresh temporary directory per case, with a config, a lock file of its own, and our
//! binaries callable under any name (ripgrep's `rgtest!` idea).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fw_env::codec::{self, Layout};
use fw_env::Vars;

pub const SIZE: usize = 0x4000;

pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a config and return its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let p = self.path("fw_env.config");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Our binary, reachable under `name` (a symlink, so argv[0] dispatch is exercised).
    pub fn bin(&self, name: &str) -> PathBuf {
        let link = self.path(name);
        if !link.exists() {
            std::os::unix::fs::symlink(target_bin("fw-env", env!("CARGO_BIN_EXE_fw-env")), &link)
                .unwrap();
        }
        link
    }

    pub fn cmd(&self, name: &str) -> Command {
        let mut c = target_command(&self.bin(name));
        c.env("FW_ENV_LOCK_FILE", self.path("lock"))
            .env_remove("FW_ENV_TEST_CRASH_AT")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().expect("run")
    }
}

pub use zbot_tests::target::{target_bin, target_command};

pub fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

pub fn image(pairs: &[(&str, &str)], layout: Layout, flags: u8) -> Vec<u8> {
    codec::encode(&vars(pairs), SIZE, layout, flags).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Decode a copy of the file at `offset`, or None if invalid.
pub fn read_copy(path: &Path, offset: usize, layout: Layout) -> Option<codec::DecodedCopy> {
    let bytes = std::fs::read(path).ok()?;
    let end = offset + SIZE;
    if bytes.len() < end {
        return None;
    }
    codec::decode(&bytes[offset..end], layout).ok()
}

/// Whether a peer tool is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
