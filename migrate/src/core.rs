//! The pure core: what was found on the card ([`Facts`]) becomes the steps still to run
//! ([`plan`]), or a refusal naming what does not fit. No I/O here; `card` gathers the facts and
//! runs the steps.

use fw_env::{Changes, Vars};
use std::fmt;
use std::path::PathBuf;

/// One raw copy of the new env as read from the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFact {
    /// CRC bad (never written, torn, erased): why.
    Invalid(String),
    /// A valid copy.
    Valid {
        /// Its flags byte.
        flags: u8,
        /// Its variables.
        vars: Vars,
    },
}

/// The field env file (`/uboot.env` in the ext4 on p2), read through the old config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldEnv {
    /// Valid: its variables.
    Valid(Vars),
    /// Missing or bad CRC: why.
    Unreadable(String),
}

/// `fip.bin` on the FAT boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fip {
    /// Byte for byte the new U-Boot's image.
    New,
    /// Another image (the vendor's U-Boot).
    Old,
    /// No `fip.bin` at this path.
    Missing(PathBuf),
}

/// The env partition in the GPT, against the field's size and the target layout's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPartition {
    /// The field's 256K, or the target size in a table a cut resize left unfinished.
    Old,
    /// The target layout's size (1M).
    New,
    /// Anything else: what was found.
    Other(String),
}

/// A `fw_env.config` to switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFact {
    /// One copy in a file (the field's `/bootenv/uboot.env 0x0000 0x30000`).
    Old,
    /// Exactly the text emitted from the target layout.
    New,
    /// Neither: why.
    Other(String),
}

/// Everything the plan depends on.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The two raw copies, in config order.
    pub copies: [CopyFact; 2],
    /// The field env file.
    pub old_env: OldEnv,
    /// `fip.bin`.
    pub fip: Fip,
    /// The env partition.
    pub env_partition: EnvPartition,
    /// Each `fw_env.config` to switch, with its path.
    pub configs: Vec<(PathBuf, ConfigFact)>,
}

/// One step, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write both raw copies with these variables (copy 0 flags 1, copy 1 flags 0), read back.
    WriteCopies(Vars),
    /// Replace `fip.bin` by the new U-Boot (temp file, fsync, rename, fsync the directory).
    ReplaceFip,
    /// Grow the env partition to the target layout's size in the GPT (backup, then primary).
    ResizeEnvPartition,
    /// Replace this `fw_env.config` by the emitted one (temp file, fsync, rename, fsync dir).
    SwitchConfig(PathBuf),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::WriteCopies(v) => write!(
                f,
                "write both raw env copies ({} variables: the field env's and the overrides), read them back",
                v.len()
            ),
            Step::ReplaceFip => write!(
                f,
                "replace fip.bin by the new U-Boot (temp file, fsync, rename, fsync the directory)"
            ),
            Step::ResizeEnvPartition => write!(
                f,
                "grow the env partition in the GPT (backup copy, then primary)"
            ),
            Step::SwitchConfig(p) => write!(
                f,
                "switch {} to the raw copies (temp file, fsync, rename)",
                p.display()
            ),
        }
    }
}

/// The result of planning: what is already done and what remains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps still to run, in order.
    pub steps: Vec<Step>,
    /// One line per item found already in its end state.
    pub done: Vec<String>,
}

impl Plan {
    /// True when the card is fully migrated.
    pub fn is_done(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Why a card is refused: neither the field's, nor migrated, nor a state the migration leaves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The env partition is neither 256K nor the target size.
    #[error("the env partition is neither the field's 256K nor the target layout's size: {0}; this is not a ZBot field card nor a migrated one: check the card and the --layout given")]
    EnvPartition(String),
    /// No fip.bin.
    #[error("there is no {} (is the boot partition mounted there?): without it this card does not boot; mount it, or copy the vendor's or the new fip.bin there first", .0.display())]
    FipMissing(PathBuf),
    /// The new U-Boot is in place but no raw copy reads.
    #[error("fip.bin is already the new U-Boot but neither raw env copy reads ({0}; {1}): the new U-Boot boots its built-in env; write the env with `fw_setenv -c NEW_CONFIG` (or put the vendor fip.bin back and rerun)")]
    NoValidCopy(String, String),
    /// The old U-Boot is in place and its env does not read.
    #[error("the field env does not read ({0}) and the vendor U-Boot still boots from it: nothing to carry over; let U-Boot save its env once (boot it, or `fw_setenv` with the old config) and rerun")]
    OldEnvUnreadable(String),
    /// fip.bin is not `--fip` but the GPT is already grown (which the migration does only after
    /// replacing fip.bin): another U-Boot owns the raw copies.
    #[error("fip.bin is not the U-Boot given with --fip, but the env partition is already grown, which the migration does only after replacing fip.bin: this card was migrated (or made from the redundant layout) and runs another U-Boot, whose raw env copies may be newer than the field file; nothing is rewritten: pass the fip.bin the card holds as --fip, or put the --fip one back and rerun")]
    OtherUboot,
    /// A config is neither the field's nor the new one.
    #[error("{path} is neither the field's fw_env.config (one copy in a file, size {size:#x}) nor the one emitted from the layout: {why}; fix or remove it and rerun")]
    Config {
        /// The file.
        path: PathBuf,
        /// The env size expected.
        size: u64,
        /// What it holds.
        why: String,
    },
}

/// The variables the raw copies must hold: the field env's, then the overrides (the new
/// policy's variables) applied on top.
pub fn wanted(old: &Vars, overrides: &Changes) -> Vars {
    let mut v = old.clone();
    // Names were checked when the overrides were parsed; a bad one keeps the old value.
    let _ = v.apply(overrides);
    v
}

/// The steps still to run on a card with these facts. `env_size` is for the messages.
///
/// Rules (docs/env-backend.md, "Migration"):
/// - while `fip.bin` is the vendor's, the field env is the truth: the copies must hold it plus
///   the overrides, rewritten if they differ (the vendor U-Boot or SWUpdate may have saved since);
/// - once `fip.bin` is the new U-Boot, the raw copies are the truth and are never rewritten;
/// - a grown env partition under a `fip.bin` that is not `--fip` is refused: the migration grows
///   p2 only after replacing fip.bin, so another (newer) U-Boot owns the copies;
/// - the GPT and each config are independent: each is grown or switched when still old.
pub fn plan(f: &Facts, overrides: &Changes, env_size: u64) -> Result<Plan, Refusal> {
    let mut steps = Vec::new();
    let mut done = Vec::new();
    if let EnvPartition::Other(why) = &f.env_partition {
        return Err(Refusal::EnvPartition(why.clone()));
    }
    for (path, c) in &f.configs {
        if let ConfigFact::Other(why) = c {
            return Err(Refusal::Config {
                path: path.clone(),
                size: env_size,
                why: why.clone(),
            });
        }
    }
    match &f.fip {
        Fip::Missing(p) => return Err(Refusal::FipMissing(p.clone())),
        Fip::New => {
            let valid = f
                .copies
                .iter()
                .filter(|c| matches!(c, CopyFact::Valid { .. }))
                .count();
            if valid == 0 {
                let why = |c: &CopyFact| match c {
                    CopyFact::Invalid(w) => w.clone(),
                    CopyFact::Valid { .. } => "valid".into(),
                };
                return Err(Refusal::NoValidCopy(
                    format!("copy 0: {}", why(&f.copies[0])),
                    format!("copy 1: {}", why(&f.copies[1])),
                ));
            }
            done.push(format!(
                "raw env copies: {valid} valid, owned by the new U-Boot (not rewritten)"
            ));
            done.push("fip.bin: the new U-Boot".into());
        }
        Fip::Old if f.env_partition == EnvPartition::New => return Err(Refusal::OtherUboot),
        Fip::Old => {
            let old = match &f.old_env {
                OldEnv::Valid(v) => v,
                OldEnv::Unreadable(why) => return Err(Refusal::OldEnvUnreadable(why.clone())),
            };
            let want = wanted(old, overrides);
            let same = f
                .copies
                .iter()
                .all(|c| matches!(c, CopyFact::Valid { vars, .. } if *vars == want));
            if same {
                done.push("raw env copies: both hold the field env and the overrides".into());
            } else {
                steps.push(Step::WriteCopies(want));
            }
            steps.push(Step::ReplaceFip);
        }
    }
    match f.env_partition {
        EnvPartition::New => done.push("env partition: grown".into()),
        _ => steps.push(Step::ResizeEnvPartition),
    }
    for (path, c) in &f.configs {
        match c {
            ConfigFact::New => done.push(format!("{}: switched", path.display())),
            _ => steps.push(Step::SwitchConfig(path.clone())),
        }
    }
    Ok(Plan { steps, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let mut v = Vars::new();
        for (k, x) in pairs {
            v.set(*k, *x).unwrap();
        }
        v
    }

    fn field() -> Facts {
        Facts {
            copies: [
                CopyFact::Invalid("bad CRC".into()),
                CopyFact::Invalid("bad CRC".into()),
            ],
            old_env: OldEnv::Valid(vars(&[("next_boot", "rootfs"), ("first_boot", "1")])),
            fip: Fip::Old,
            env_partition: EnvPartition::Old,
            configs: vec![("/etc/fw_env.config".into(), ConfigFact::Old)],
        }
    }

    fn over() -> Changes {
        Changes::new().set("bootcmd", "run zbot_boot")
    }

    fn names(p: &Plan) -> Vec<&'static str> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::WriteCopies(_) => "copies",
                Step::ReplaceFip => "fip",
                Step::ResizeEnvPartition => "resize",
                Step::SwitchConfig(_) => "config",
            })
            .collect()
    }

    /// Decision table: one row per state the migration (or the field) leaves.
    #[test]
    fn plans_for_every_state_along_the_way() {
        let want = wanted(
            &vars(&[("next_boot", "rootfs"), ("first_boot", "1")]),
            &over(),
        );
        let good = CopyFact::Valid {
            flags: 1,
            vars: want.clone(),
        };
        let stale = CopyFact::Valid {
            flags: 1,
            vars: vars(&[("next_boot", "otafs")]),
        };
        let rows: Vec<(&str, Facts, Vec<&str>)> = vec![
            // The field's card: everything to do.
            ("field", field(), vec!["copies", "fip", "resize", "config"]),
            // Cut after copy 0: copy 1 still bad, rewrite both.
            (
                "one copy",
                Facts {
                    copies: [good.clone(), CopyFact::Invalid("bad CRC".into())],
                    ..field()
                },
                vec!["copies", "fip", "resize", "config"],
            ),
            // Copies written, then the vendor U-Boot or SWUpdate saved the field env: rewrite.
            (
                "stale copies",
                Facts {
                    copies: [stale.clone(), stale.clone()],
                    ..field()
                },
                vec!["copies", "fip", "resize", "config"],
            ),
            // Copies done, cut before the rename of fip.bin.
            (
                "copies done",
                Facts {
                    copies: [good.clone(), good.clone()],
                    ..field()
                },
                vec!["fip", "resize", "config"],
            ),
            // fip.bin replaced: the copies are the new U-Boot's, even when they differ now.
            (
                "fip done",
                Facts {
                    copies: [stale.clone(), CopyFact::Invalid("torn".into())],
                    fip: Fip::New,
                    old_env: OldEnv::Unreadable("irrelevant now".into()),
                    ..field()
                },
                vec!["resize", "config"],
            ),
            (
                "grown",
                Facts {
                    copies: [good.clone(), good.clone()],
                    fip: Fip::New,
                    env_partition: EnvPartition::New,
                    ..field()
                },
                vec!["config"],
            ),
            (
                "migrated",
                Facts {
                    copies: [good.clone(), good.clone()],
                    fip: Fip::New,
                    env_partition: EnvPartition::New,
                    configs: vec![("/etc/fw_env.config".into(), ConfigFact::New)],
                    ..field()
                },
                vec![],
            ),
        ];
        for (what, f, want_steps) in rows {
            let p = plan(&f, &over(), 0x30000).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(names(&p), want_steps, "{what}");
        }
    }

    #[test]
    fn the_copies_carry_the_field_env_and_the_overrides() {
        let p = plan(&field(), &over(), 0x30000).unwrap();
        let Step::WriteCopies(v) = &p.steps[0] else {
            panic!("{p:?}")
        };
        assert_eq!(v.get("next_boot").as_deref(), Some("rootfs"));
        assert_eq!(v.get("first_boot").as_deref(), Some("1"));
        assert_eq!(v.get("bootcmd").as_deref(), Some("run zbot_boot"));
    }

    /// Refusals, one per reason.
    #[test]
    fn refuses_cards_that_are_neither_old_nor_new_nor_mid_migration() {
        let cases: Vec<(Facts, &str)> = vec![
            (
                Facts {
                    env_partition: EnvPartition::Other("p2 is 512K".into()),
                    ..field()
                },
                "neither the field's 256K",
            ),
            (
                Facts {
                    fip: Fip::Missing("/boot/fip.bin".into()),
                    ..field()
                },
                "there is no /boot/fip.bin",
            ),
            // Migrated with another U-Boot (a newer fip.bin than --fip): its copies are the
            // truth, never rewritten from the field file.
            (
                Facts {
                    env_partition: EnvPartition::New,
                    ..field()
                },
                "runs another U-Boot",
            ),
            (
                Facts {
                    fip: Fip::New,
                    ..field()
                },
                "neither raw env copy reads",
            ),
            (
                Facts {
                    old_env: OldEnv::Unreadable("bad CRC".into()),
                    ..field()
                },
                "the field env does not read",
            ),
            (
                Facts {
                    configs: vec![(
                        "/etc/fw_env.config".into(),
                        ConfigFact::Other("/dev/mtd0".into()),
                    )],
                    ..field()
                },
                "neither the field's fw_env.config",
            ),
        ];
        for (f, msg) in cases {
            let e = plan(&f, &over(), 0x30000).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }
}
