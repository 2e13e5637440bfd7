//! The slot definition: one TOML file shared by `bootcount` and the boot-script generator.
//!
//! Slots are identified by their position in the file ([`SlotId`]); every name that comes from
//! the environment or the command line is resolved against this list once, at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The built-in slot file: the board as it ships today (`rootfs` + `otafs`).
pub const BUILTIN_TOML: &str = include_str!("../dist/slots.toml");

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A normal system: installable, booted on trial before it becomes `next_boot`.
    Primary,
    /// The last resort (`otafs`): booted when nothing else is valid; never on trial, never bad.
    Recovery,
}

/// One bootable root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Its name: the value of `next_boot` that selects it, and the env variable holding its
    /// `root=` arguments.
    pub name: String,
    /// Primary or recovery.
    pub role: Role,
    /// Kernel root arguments used when the env variable named after the slot is unset or empty.
    pub root: String,
    /// The block device an updater writes to install this slot.
    pub device: String,
}

/// The whole slot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// Default number of attempts of a trial (1..=9) when `zbot_bootlimit` is unset or invalid.
    pub bootlimit: u8,
    /// The slots, in order of preference for `install-target`.
    #[serde(rename = "slot")]
    pub slots: Vec<Slot>,
}

/// Index of a slot in its [`SlotConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(pub usize);

/// Why a slot file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Could not read the file.
    #[error("cannot read slot file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML or not the expected shape.
    #[error("slot file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// Valid TOML, but breaks a rule of the contract.
    #[error("slot file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Names a slot cannot take because U-Boot or the contract uses them as variable names.
const RESERVED: &[&str] = &[
    "root",
    "next_boot",
    "first_boot",
    "bootargs",
    "bootcmd",
    "bootdelay",
    "baudrate",
    "stdin",
    "stdout",
    "stderr",
    "loadaddr",
    "fdtcontroladdr",
    "ver",
    "arch",
    "board",
    "cpu",
    "soc",
    "vendor",
    "bootcount",
    "bootlimit",
    "altbootcmd",
    "upgrade_available",
    "preboot",
];

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 24
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl SlotConfig {
    /// The built-in configuration (`rootfs` primary, `otafs` recovery, bootlimit 3).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_TOML, "<built-in>").expect("built-in slot file is valid")
    }

    /// Load and check a slot file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and check slot-file text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: SlotConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.check().map_err(|message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.bootlimit) {
            return Err(format!(
                "bootlimit = {} is out of range: use 1..9",
                self.bootlimit
            ));
        }
        for (i, s) in self.slots.iter().enumerate() {
            if !valid_name(&s.name) {
                return Err(format!(
                    "slot name {:?} is invalid: use [a-z][a-z0-9_]*, at most 24 characters",
                    s.name
                ));
            }
            if s.name.starts_with("zbot_")
                || s.name.starts_with("zb_")
                || RESERVED.contains(&s.name.as_str())
            {
                return Err(format!(
                    "slot name {:?} is reserved (a U-Boot or policy variable)",
                    s.name
                ));
            }
            if self.slots[..i].iter().any(|o| o.name == s.name) {
                return Err(format!("slot {:?} is defined twice", s.name));
            }
            if s.root.trim().is_empty() || s.device.trim().is_empty() {
                return Err(format!("slot {:?} needs non-empty root and device", s.name));
            }
        }
        let recoveries = self
            .slots
            .iter()
            .filter(|s| s.role == Role::Recovery)
            .count();
        if recoveries != 1 {
            return Err(format!(
                "exactly one slot must have role = \"recovery\", found {recoveries}"
            ));
        }
        if !self.slots.iter().any(|s| s.role == Role::Primary) {
            return Err("at least one slot must have role = \"primary\"".into());
        }
        Ok(())
    }

    /// The slot with this name, if any (exact byte comparison, as hush's `test =`).
    pub fn find(&self, name: &str) -> Option<SlotId> {
        self.slots.iter().position(|s| s.name == name).map(SlotId)
    }

    /// The slot behind an id.
    pub fn slot(&self, id: SlotId) -> &Slot {
        &self.slots[id.0]
    }

    /// The slot's name.
    pub fn name(&self, id: SlotId) -> &str {
        &self.slots[id.0].name
    }

    /// The recovery slot.
    pub fn recovery(&self) -> SlotId {
        SlotId(
            self.slots
                .iter()
                .position(|s| s.role == Role::Recovery)
                .expect("checked"),
        )
    }

    /// All slot ids in file order.
    pub fn ids(&self) -> impl Iterator<Item = SlotId> + '_ {
        (0..self.slots.len()).map(SlotId)
    }

    /// The policy's part of U-Boot's compiled-in default environment: `next_boot` = the
    /// recovery slot, each slot's root arguments under its name, and `root` = the recovery
    /// slot's (as the seed's default). No `zbot_*` variable: their defaults are "unset".
    pub fn default_env(&self) -> Vec<(String, String)> {
        let r = self.slot(self.recovery());
        let mut v = vec![("next_boot".to_string(), r.name.clone())];
        v.extend(self.slots.iter().map(|s| (s.name.clone(), s.root.clone())));
        v.push(("root".to_string(), r.root.clone()));
        v
    }

    /// The slot names, for error messages.
    pub fn names(&self) -> String {
        self.slots
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Recovery => "recovery",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_the_seed_board() {
        let c = SlotConfig::builtin();
        assert_eq!(c.names(), "rootfs, otafs");
        assert_eq!(c.name(c.recovery()), "otafs");
        assert_eq!(
            c.slot(c.find("rootfs").unwrap()).root,
            "root=/dev/mmcblk0p4 rootwait rw"
        );
        assert_eq!(c.bootlimit, 3);
    }

    #[test]
    fn default_env_boots_recovery() {
        let c = SlotConfig::builtin();
        let env: Vec<_> = c.default_env();
        assert_eq!(env[0], ("next_boot".to_string(), "otafs".to_string()));
        assert!(env.contains(&(
            "rootfs".to_string(),
            "root=/dev/mmcblk0p4 rootwait rw".to_string()
        )));
        assert!(env.contains(&(
            "root".to_string(),
            "root=/dev/mmcblk0p3 rootwait rw".to_string()
        )));
    }

    #[test]
    fn ab_example_is_valid() {
        let c = SlotConfig::from_toml(include_str!("../dist/slots-ab.toml"), "ab").unwrap();
        assert_eq!(c.names(), "rootfs_a, rootfs_b, otafs");
    }

    #[test]
    fn rejections_name_the_problem() {
        let base = |extra: &str| {
            format!(
                "bootlimit = 3\n[[slot]]\nname=\"otafs\"\nrole=\"recovery\"\nroot=\"r\"\ndevice=\"d\"\n{extra}"
            )
        };
        let err = |t: &str| SlotConfig::from_toml(t, "f").unwrap_err().to_string();
        assert!(err(&base("")).contains("primary"));
        let p = |n: &str| {
            format!("[[slot]]\nname=\"{n}\"\nrole=\"primary\"\nroot=\"r\"\ndevice=\"d\"\n")
        };
        assert!(err(&base(&p("bootcmd"))).contains("reserved"));
        assert!(err(&base(&p("zbot_x"))).contains("reserved"));
        assert!(err(&base(&p("Rootfs"))).contains("invalid"));
        assert!(err(&base(&p("otafs"))).contains("twice"));
        assert!(err(&base(&p("a").replace("primary", "recovery"))).contains("exactly one"));
        assert!(err(&base(&p("a")).replace("bootlimit = 3", "bootlimit = 10")).contains("1..9"));
        assert!(SlotConfig::from_toml(&base(&p("rootfs")), "f").is_ok());
    }
}
