//! Which slot is running, from the kernel command line (contract section 5).

use crate::engine::Booted;
use crate::slots::SlotConfig;
use fw_env::Vars;

/// The command line names a slot that the slot file does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the kernel command line says zbot.slot={name}, which is not a slot ({known}): the boot script and the slot file disagree")]
pub struct UnknownBootedSlot {
    /// The name found.
    pub name: String,
    /// The configured slots.
    pub known: String,
}

/// Split a kernel command line into parameters (double quotes group, as the kernel does).
pub(crate) fn params(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn last_value(params: &[String], key: &str) -> Option<String> {
    params
        .iter()
        .rev()
        .find_map(|p| p.strip_prefix(key).map(str::to_string))
}

/// The running slot: the last `zbot.slot=`; without one (the old boot script), the slot whose
/// `root=` device (from its env variable, else the slot file) equals the command line's, marked
/// legacy; `None` if neither tells.
pub fn booted_slot(
    cfg: &SlotConfig,
    vars: &Vars,
    cmdline: &str,
) -> Result<Option<Booted>, UnknownBootedSlot> {
    let params = params(cmdline);
    if let Some(name) = last_value(&params, "zbot.slot=") {
        return match cfg.find(&name) {
            Some(slot) => Ok(Some(Booted {
                slot,
                legacy: false,
            })),
            None => Err(UnknownBootedSlot {
                name,
                known: cfg.names(),
            }),
        };
    }
    let Some(root) = last_value(&params, "root=") else {
        return Ok(None);
    };
    for id in cfg.ids() {
        let slot = cfg.slot(id);
        let args = vars
            .get(&slot.name)
            .filter(|v| !v.is_empty())
            .map(|v| v.into_owned())
            .unwrap_or_else(|| slot.root.clone());
        if last_value(&crate::cmdline::params(&args), "root=").as_deref() == Some(root.as_str()) {
            return Ok(Some(Booted {
                slot: id,
                legacy: true,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_util::env;

    #[test]
    fn zbot_slot_wins_and_the_last_one_counts() {
        let cfg = SlotConfig::builtin();
        let b = booted_slot(
            &cfg,
            &env(&[]),
            "console=ttyS0,115200 root=/dev/mmcblk0p3 rootwait rw zbot.slot=otafs",
        )
        .unwrap()
        .unwrap();
        assert_eq!((cfg.name(b.slot), b.legacy), ("otafs", false));
        let b = booted_slot(
            &cfg,
            &env(&[]),
            "zbot.slot=otafs root=/dev/mmcblk0p4 zbot.slot=rootfs\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.name(b.slot), "rootfs");
    }

    #[test]
    fn old_boot_script_is_recognised_by_root() {
        let cfg = SlotConfig::builtin();
        let b = booted_slot(
            &cfg,
            &env(&[]),
            "console=ttyS0,115200 root=/dev/mmcblk0p4 rootwait rw",
        )
        .unwrap()
        .unwrap();
        assert_eq!((cfg.name(b.slot), b.legacy), ("rootfs", true));
        // the env's root arguments win over the slot file's
        let v = env(&[("rootfs", "root=/dev/sda2 ro")]);
        let b = booted_slot(&cfg, &v, "root=/dev/sda2 ro").unwrap().unwrap();
        assert_eq!(cfg.name(b.slot), "rootfs");
        assert_eq!(booted_slot(&cfg, &env(&[]), "root=/dev/nfs").unwrap(), None);
        assert_eq!(booted_slot(&cfg, &env(&[]), "").unwrap(), None);
    }

    #[test]
    fn unknown_slot_is_an_error_naming_both_sides() {
        let cfg = SlotConfig::builtin();
        let e = booted_slot(&cfg, &env(&[]), "zbot.slot=rootfs_b").unwrap_err();
        assert!(e.to_string().contains("rootfs_b") && e.to_string().contains("rootfs, otafs"));
    }

    #[test]
    fn quotes_group_a_parameter() {
        assert_eq!(params("a \"b c\" d=\"e f\""), vec!["a", "b c", "d=e f"]);
    }
}
