//! The slot definition: one TOML file shared by `bootcount` and the boot-script generator.
//!
//! Slots are identified by their position in the file ([`SlotId`]); every name that comes from
//! the environment or the command line is resolved against this list once, at the edge.

use crate::state::BootLimit;
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
    /// Default number of attempts of a trial when `zbot_bootlimit` is unset or invalid.
    pub bootlimit: BootLimit,
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

/// The most slots a file may declare (each one is a chain of tests in the boot script).
pub const MAX_SLOTS: usize = 16;

/// The slot file as written, with where each slot starts (for line numbers in errors).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    bootlimit: u8,
    #[serde(rename = "slot", default)]
    slots: Vec<toml::Spanned<Slot>>,
}

/// How a partition is named, normalised so that two spellings of one partition compare equal
/// where that can be decided from the text (and, for `/dev` paths and `PARTUUID=`-style names
/// that exist on this machine, from the symlinks udev made).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DevKey {
    /// A path, `//` and `/./` collapsed, symlinks resolved when it exists.
    Path(String),
    /// `PARTUUID=` or `/dev/disk/by-partuuid/`, lower-cased.
    PartUuid(String),
    /// `PARTLABEL=` or `/dev/disk/by-partlabel/`.
    PartLabel(String),
    /// `UUID=` or `/dev/disk/by-uuid/`, lower-cased.
    Uuid(String),
    /// `LABEL=` or `/dev/disk/by-label/`.
    Label(String),
    /// Anything else (`179:4`, `b304`): compared as written.
    Other(String),
}

fn normalise_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn dev_key(s: &str) -> DevKey {
    let strip_ci = |prefix: &str| {
        s.get(..prefix.len())
            .filter(|h| h.eq_ignore_ascii_case(prefix))
            .map(|_| &s[prefix.len()..])
    };
    let by = |kind: &str, v: &str| {
        let link = format!("/dev/disk/by-{kind}/{v}");
        std::fs::canonicalize(&link)
            .ok()
            .map(|p| DevKey::Path(p.display().to_string()))
    };
    if let Some(v) = strip_ci("PARTUUID=") {
        let v = v.to_ascii_lowercase();
        return by("partuuid", &v).unwrap_or(DevKey::PartUuid(v));
    }
    if let Some(v) = strip_ci("PARTLABEL=") {
        return by("partlabel", v).unwrap_or_else(|| DevKey::PartLabel(v.to_string()));
    }
    if let Some(v) = strip_ci("UUID=") {
        let v = v.to_ascii_lowercase();
        return by("uuid", &v).unwrap_or(DevKey::Uuid(v));
    }
    if let Some(v) = strip_ci("LABEL=") {
        return by("label", v).unwrap_or_else(|| DevKey::Label(v.to_string()));
    }
    if s.starts_with('/') {
        let p = normalise_path(s);
        if let Ok(real) = std::fs::canonicalize(&p) {
            return DevKey::Path(real.display().to_string());
        }
        for (kind, lower) in [
            ("partuuid", true),
            ("partlabel", false),
            ("uuid", true),
            ("label", false),
        ] {
            if let Some(v) = p.strip_prefix(&format!("/dev/disk/by-{kind}/")) {
                let v = if lower {
                    v.to_ascii_lowercase()
                } else {
                    v.to_string()
                };
                return match kind {
                    "partuuid" => DevKey::PartUuid(v),
                    "partlabel" => DevKey::PartLabel(v),
                    "uuid" => DevKey::Uuid(v),
                    _ => DevKey::Label(v),
                };
            }
        }
        return DevKey::Path(p);
    }
    DevKey::Other(s.to_string())
}

/// A `/dev` path that names a partition of a disk (`mmcblk0p4`, `sda2`, `vda4`, `nvme0n1p2`):
/// a slot whose `root=` and `device` are two such different paths boots one partition and
/// installs into another.
fn is_partition_path(k: &DevKey) -> bool {
    let DevKey::Path(p) = k else { return false };
    let Some(n) = p.strip_prefix("/dev/") else {
        return false;
    };
    let digits_tail = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let split = |s: &str, sep: char| {
        s.rsplit_once(sep)
            .map(|(a, b)| (a.to_string(), b.to_string()))
    };
    if let Some(rest) = n.strip_prefix("mmcblk").or_else(|| n.strip_prefix("nvme")) {
        return split(rest, 'p').is_some_and(|(_, b)| digits_tail(&b));
    }
    for pre in ["sd", "vd", "hd", "xvd"] {
        if let Some(rest) = n.strip_prefix(pre) {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            return !letters.is_empty()
                && letters.bytes().all(|b| b.is_ascii_lowercase())
                && letters.len() < rest.len();
        }
    }
    false
}

/// The value of the only `root=` parameter of a slot's `root` arguments.
fn root_device(args: &str) -> Result<String, String> {
    let roots: Vec<String> = crate::cmdline::params(args)
        .into_iter()
        .filter_map(|p| p.strip_prefix("root=").map(str::to_string))
        .collect();
    match roots.as_slice() {
        [] => Err(format!(
            "root = {args:?} has no root= parameter (e.g. \"root=/dev/mmcblk0p4 rootwait rw\")"
        )),
        [r] if r.is_empty() => Err(format!("root = {args:?}: root= is empty")),
        [r] => Ok(r.clone()),
        _ => Err(format!(
            "root = {args:?} has {} root= parameters: give exactly one",
            roots.len()
        )),
    }
}

impl SlotConfig {
    /// The built-in configuration (`rootfs` primary, `otafs` recovery, bootlimit 3).
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_TOML, "<built-in>").expect("built-in slot file is valid")
    }

    /// Load and check a slot file: a regular file (a FIFO or device is refused before it can
    /// block) of at most [`crate::files::MAX_CONFIG_BYTES`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::files::read_small_text(path, crate::files::MAX_CONFIG_BYTES).map_err(
            |source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            },
        )?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and check slot-file text; `origin` names it in errors, with the line of the slot
    /// concerned.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        let lines: Vec<usize> = raw
            .slots
            .iter()
            .map(|s| 1 + text[..s.span().start.min(text.len())].matches('\n').count())
            .collect();
        let bootlimit = BootLimit::new(raw.bootlimit).map_err(|_| ConfigError::Invalid {
            path: origin.to_string(),
            message: format!("bootlimit = {} is out of range: use 1..9", raw.bootlimit),
        })?;
        let cfg = SlotConfig {
            bootlimit,
            slots: raw.slots.into_iter().map(|s| s.into_inner()).collect(),
        };
        cfg.check_at(&lines)
            .map_err(|message| ConfigError::Invalid {
                path: origin.to_string(),
                message,
            })?;
        Ok(cfg)
    }

    /// Check the rules of the contract (section 1) on a configuration built in code.
    pub fn validate(&self) -> Result<(), String> {
        self.check_at(&[])
    }

    fn check_at(&self, lines: &[usize]) -> Result<(), String> {
        let at = |i: usize| match lines.get(i) {
            Some(l) => format!("line {l}: slot {} ({:?})", i + 1, self.slots[i].name),
            None => format!("slot {} ({:?})", i + 1, self.slots[i].name),
        };
        if self.slots.is_empty() {
            return Err("no [[slot]]: declare one recovery slot and at least one primary".into());
        }
        if self.slots.len() > MAX_SLOTS {
            return Err(format!(
                "{} slots declared: at most {MAX_SLOTS} are supported",
                self.slots.len()
            ));
        }
        let mut keys: Vec<(DevKey, DevKey)> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let at = at(i);
            if !valid_name(&s.name) {
                return Err(format!(
                    "{at}: name is invalid: use [a-z][a-z0-9_]*, at most 24 characters"
                ));
            }
            if s.name.starts_with("zbot_")
                || s.name.starts_with("zb_")
                || RESERVED.contains(&s.name.as_str())
            {
                return Err(format!(
                    "{at}: name is reserved (a U-Boot or policy variable)"
                ));
            }
            if let Some(j) = self.slots[..i].iter().position(|o| o.name == s.name) {
                return Err(format!(
                    "{at}: slot {:?} is defined twice (first: {})",
                    s.name,
                    self.at_line(j, lines)
                ));
            }
            if s.root.trim().is_empty() || s.device.trim().is_empty() {
                return Err(format!("{at}: needs non-empty root and device"));
            }
            if s.root.chars().any(char::is_control) {
                return Err(format!(
                    "{at}: root = {:?} holds a control character",
                    s.root
                ));
            }
            if !s.device.starts_with('/')
                || s.device
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
                || normalise_path(&s.device) == "/"
            {
                return Err(format!(
                    "{at}: device = {:?} is not an absolute path without blanks (e.g. \"/dev/mmcblk0p4\")",
                    s.device
                ));
            }
            let root = root_device(&s.root).map_err(|e| format!("{at}: {e}"))?;
            let (dk, rk) = (dev_key(&s.device), dev_key(&root));
            if is_partition_path(&dk) && is_partition_path(&rk) && dk != rk {
                return Err(format!(
                    "{at}: boots root={root} but installs into device = {:?}: they must be the same partition",
                    s.device
                ));
            }
            for (j, (odk, ork)) in keys.iter().enumerate() {
                let clash = if dk == *odk {
                    Some(format!("device {:?} is also the device of", s.device))
                } else if rk == *ork {
                    Some(format!("root={root} is also the root= of"))
                } else if dk == *ork {
                    Some(format!("device {:?} is the root= of", s.device))
                } else if rk == *odk {
                    Some(format!("root={root} is the device of"))
                } else {
                    None
                };
                if let Some(what) = clash {
                    return Err(format!(
                        "{at}: {what} {}: two slots cannot share a partition (an install into one would overwrite the other)",
                        self.at_line(j, lines)
                    ));
                }
            }
            keys.push((dk, rk));
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

    fn at_line(&self, i: usize, lines: &[usize]) -> String {
        match lines.get(i) {
            Some(l) => format!("slot {} ({:?}, line {l})", i + 1, self.slots[i].name),
            None => format!("slot {} ({:?})", i + 1, self.slots[i].name),
        }
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
        let mut v = vec![(crate::state::names::NEXT_BOOT.to_string(), r.name.clone())];
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
        assert_eq!(c.bootlimit.get(), 3);
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

    fn slot(name: &str, role: &str, root: &str, device: &str) -> String {
        format!("\n[[slot]]\nname = \"{name}\"\nrole = \"{role}\"\nroot = \"{root}\"\ndevice = \"{device}\"\n")
    }

    fn two(primary: (&str, &str), recovery: (&str, &str)) -> String {
        format!(
            "bootlimit = 3\n{}{}",
            slot("rootfs", "primary", primary.0, primary.1),
            slot("otafs", "recovery", recovery.0, recovery.1)
        )
    }

    fn err(t: &str) -> String {
        SlotConfig::from_toml(t, "f.toml").unwrap_err().to_string()
    }

    const P4: (&str, &str) = ("root=/dev/mmcblk0p4 rootwait rw", "/dev/mmcblk0p4");
    const P3: (&str, &str) = ("root=/dev/mmcblk0p3 rootwait rw", "/dev/mmcblk0p3");

    #[test]
    fn rejections_name_the_problem() {
        let base = |extra: &str| {
            format!(
                "bootlimit = 3\n{}{extra}",
                slot("otafs", "recovery", P3.0, P3.1)
            )
        };
        let p = |n: &str| slot(n, "primary", P4.0, P4.1);
        assert!(err(&base("")).contains("primary"));
        assert!(err(&base(&p("bootcmd"))).contains("reserved"));
        assert!(err(&base(&p("zbot_x"))).contains("reserved"));
        assert!(err(&base(&p("Rootfs"))).contains("invalid"));
        assert_eq!(
            err(&base(&slot("otafs", "primary", P4.0, P4.1))),
            "slot file f.toml: line 9: slot 2 (\"otafs\"): slot \"otafs\" is defined twice (first: slot 1 (\"otafs\", line 3))"
        );
        assert!(err(&base(&slot("a", "recovery", P4.0, P4.1))).contains("exactly one"));
        assert!(err(&base(&p("a")).replace("bootlimit = 3", "bootlimit = 10")).contains("1..9"));
        assert!(
            err(&base(&p("a")).replace("bootlimit = 3", "bootlimit = 300")).contains("bootlimit")
        );
        assert!(
            err(&base(&p("a")).replace("bootlimit = 3", "bootlimit = -1")).contains("bootlimit")
        );
        assert!(err("bootlimit = 3\n").contains("no [[slot]]"));
        assert!(SlotConfig::from_toml(&base(&p("rootfs")), "f").is_ok());
    }

    /// Regression (issue 10): a primary slot on the recovery slot's partition made
    /// `install-target`, run from otafs, name the running otafs device.
    #[test]
    fn two_slots_on_one_partition_are_refused() {
        let e = err(&two(
            ("root=/dev/mmcblk0p4 rootwait rw", "/dev/mmcblk0p3"),
            P3,
        ));
        assert_eq!(e, "slot file f.toml: line 3: slot 1 (\"rootfs\"): boots root=/dev/mmcblk0p4 but installs into device = \"/dev/mmcblk0p3\": they must be the same partition");
        let cases = [
            // same device
            (
                two(("root=PARTUUID=1234-04 rw", "/dev/mmcblk0p3"), P3),
                "device \"/dev/mmcblk0p3\" is also the device of slot 1",
            ),
            // same root=
            (
                two(
                    ("root=/dev/mmcblk0p3 rw", "/dev/disk/by-partlabel/rootfs"),
                    P3,
                ),
                "root=/dev/mmcblk0p3 is also the root= of slot 1",
            ),
            // same partition, two spellings of a path
            (
                two(P4, ("root=/dev//mmcblk0p4 ro", "/dev/./mmcblk0p4")),
                "is also the device of slot 1",
            ),
            // PARTUUID= in one slot, the by-partuuid link in the other, case folded
            (
                two(
                    ("root=PARTUUID=ABCD-04 rw", "/dev/disk/by-partuuid/abcd-04"),
                    ("root=PARTUUID=abcd-04 rw", "/dev/mmcblk0p3"),
                ),
                "root=PARTUUID=abcd-04 is also the root= of slot 1",
            ),
        ];
        let cases = cases.into_iter().chain([
            // the by-partuuid link as a device, PARTUUID= as the other slot's root=
            (
                two(
                    ("root=/dev/mmcblk0p4 rw", "/dev/disk/by-partuuid/ABCD-03"),
                    ("root=PARTUUID=abcd-03 rw", "/dev/mmcblk0p3"),
                ),
                "root=PARTUUID=abcd-03 is the device of slot 1",
            ),
        ]);
        for (text, want) in cases {
            let e = err(&text);
            assert!(e.contains(want), "{e}");
            assert!(e.contains("two slots cannot share a partition"), "{e}");
            assert!(e.starts_with("slot file f.toml: line "), "{e}");
        }
    }

    #[test]
    fn empty_or_malformed_fields_are_refused() {
        let cases = [
            (two(("", P4.1), P3), "needs non-empty root and device"),
            (two((P4.0, " "), P3), "needs non-empty root and device"),
            (two(("rootwait rw", P4.1), P3), "has no root= parameter"),
            (two(("root= rw", P4.1), P3), "root= is empty"),
            (
                two(("root=/dev/mmcblk0p4 root=/dev/mmcblk0p5", P4.1), P3),
                "2 root= parameters",
            ),
            (two((P4.0, "mmcblk0p4"), P3), "not an absolute path"),
            (two((P4.0, "/dev/mmc blk"), P3), "not an absolute path"),
            (two((P4.0, "/"), P3), "not an absolute path"),
            (
                two(("root=/dev/mmcblk0p4\\nbootcmd=x", P4.1), P3),
                "control character",
            ),
        ];
        for (text, want) in cases {
            let e = err(&text);
            assert!(e.contains(want), "{want}: {e}");
        }
        let many: String = (0..17)
            .map(|i| {
                slot(
                    &format!("s{i}"),
                    "primary",
                    &format!("root=/dev/sda{}", i + 1),
                    &format!("/dev/sda{}", i + 1),
                )
            })
            .collect();
        assert!(err(&format!("bootlimit = 3\n{many}")).contains("at most 16"));
    }

    #[test]
    fn partition_paths_are_recognised() {
        for p in [
            "/dev/mmcblk0p4",
            "/dev/sda2",
            "/dev/vda4",
            "/dev/nvme0n1p2",
            "/dev/xvdb1",
        ] {
            assert!(is_partition_path(&DevKey::Path(p.into())), "{p}");
        }
        for p in [
            "/dev/dm-0",
            "/dev/mmcblk0",
            "/dev/sda",
            "/dev/mapper/root",
            "/dev/root",
        ] {
            assert!(!is_partition_path(&DevKey::Path(p.into())), "{p}");
        }
    }

    proptest::proptest! {
        /// Any text, any numbers: an error naming the file, never a panic.
        #[test]
        fn arbitrary_slot_files_never_panic(
            bootlimit in proptest::prelude::any::<i64>(),
            names in proptest::collection::vec("[a-z_]{0,4}", 0..5),
            devs in proptest::collection::vec("(/dev/)?(mmcblk0p[0-9]|sd[a-b][0-9]|PARTUUID=[a-fA-F0-9]{1,2}|/?|[ .=]{0,2})", 0..5),
        ) {
            let mut t = format!("bootlimit = {bootlimit}\n");
            for (i, n) in names.iter().enumerate() {
                let d = devs.get(i).cloned().unwrap_or_default();
                let role = if i == 0 { "recovery" } else { "primary" };
                t.push_str(&slot(n, role, &format!("root={d} rw"), &d));
            }
            match SlotConfig::from_toml(&t, "p.toml") {
                Ok(c) => {
                    // accepted: names and partitions are pairwise distinct
                    for (i, a) in c.slots.iter().enumerate() {
                        for b in &c.slots[i + 1..] {
                            proptest::prop_assert_ne!(&a.name, &b.name);
                            proptest::prop_assert_ne!(dev_key(&a.device), dev_key(&b.device));
                        }
                    }
                }
                Err(e) => proptest::prop_assert!(e.to_string().starts_with("slot file p.toml")),
            }
        }
    }
}
