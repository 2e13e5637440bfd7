//! Generates the U-Boot side of the ZBot boot policy from the slot file: the hush boot script
//! (contract section 3, `docs/boot-contract.md`), U-Boot's default environment (the text for
//! `mkenvimage` / `/etc/u-boot-initial-env`), the board header fragment for the vendor U-Boot and
//! a `boot.scr` (legacy `mkimage -T script` image).
//!
//! One source of truth: the slot names, their root arguments, the recovery slot and the default
//! boot limit come from a [`bootcount::SlotConfig`], the same value the Rust engine
//! ([`bootcount::bootloader_step`]) uses. A/B + recovery is a different slot file, not a hand
//! edit of hush. `zbot-tests` runs the generated script in real U-Boot and compares every
//! decision with the engine's.
//!
//! # How the script stays correct in U-Boot's (old) hush
//!
//! U-Boot 2021.10 and 2023.01 both have only the old hush parser. It substitutes variables by
//! flattening the command back into text and parsing it again, so a value is *code* unless
//! care is taken: `"${x}"` is wrapped in single quotes (a `'` in the value is a syntax error,
//! or an injection), an unset `${x}` vanishes from the argument list. The script therefore
//! sets the hush local `HUSH_NO_EVAL=1`, under which substituted text is marked "accept as
//! is", and compares every variable unquoted with a prefix: `test x${next_boot} = xrootfs`.
//! Spaces, quotes, `;`, `$`, `=` in a value then stay inside one argument, and unset/empty
//! gives the argument `x`. What hush still does to a value (measured, see
//! `docs/uboot-scripts.md`): a backslash is removed (and a trailing one reads past the end of
//! the string), a newline becomes a space, and the bytes 0x03/0x04 are hush's own markers.
//! Policy variables are written by `bootcount` and never hold those; the differential test
//! covers every other printable value.
//!
//! Decisions live in hush locals `zb_*` (never saved); counters are validated as strings
//! (`0`..`9`) before any `-lt`; there is one `saveenv` at most, and none on a healthy boot; the
//! script reads nothing from disk.
#![deny(missing_docs)]

pub mod cli;
pub mod hush;
pub mod image;

use bootcount::{Role, SlotConfig};
use std::fmt::Write as _;

/// The variable holding the policy script in the environment (`bootcmd=run zbot-policy`).
pub const VAR_POLICY: &str = "zbot-policy";
/// The variable holding the kernel part: `root`, `bootargs`, then `run zbot-bootm`.
pub const VAR_KERNEL: &str = "zbot-kernel";
/// The final boot command (board: load `boot.sd` and `bootm`; tests: report and stop).
pub const VAR_BOOTM: &str = "zbot-bootm";
/// Seed entry point: boot the first primary slot this once (no policy, no save).
pub const ALIAS_MAIN: &str = "boot-zbot";
/// Seed entry point: boot the recovery slot this once (no policy, no save).
pub const ALIAS_RECOVERY: &str = "boot-ota";

/// Where the board loads its kernel from and what goes before `root=` on the command line.
/// The disk interface and partition are environment variables (`zbot_devtype`, `zbot_devnum`,
/// `zbot_bootpart`), so one script serves the board (`mmc 0`), the sandbox (`host 0`) and
/// QEMU (`virtio 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// `mmc`, `host`, `virtio`.
    pub devtype: String,
    /// Device number.
    pub devnum: u32,
    /// Partition holding the kernel image (`boot.sd`) and `boot.scr`.
    pub bootpart: u32,
    /// Kernel arguments before `${root}` (the board's console settings), the value of the
    /// `bootargs_base` variable; used only when [`Board::cmdline`] names `${bootargs_base}`.
    pub bootargs_base: String,
    /// The kernel command line before ` zbot.slot=<slot>`, as hush text expanded when the
    /// policy sets `bootargs` (under `HUSH_NO_EVAL=1`: values are not re-parsed). It must name
    /// `${root}`, which the kernel part sets to the slot's root arguments. The board keeps the
    /// vendor's line ([`VENDOR_CMDLINE`]); the test boards use [`GENERIC_CMDLINE`].
    pub cmdline: String,
    /// The value of [`VAR_BOOTM`]: what boots the kernel once `bootargs` is set.
    pub bootm: String,
    /// Extra `name=value` pairs of the default environment (e.g. `bootdelay`).
    pub extra_env: Vec<(String, String)>,
    /// The vendor's default environment (`CONFIG_EXTRA_ENV_SETTINGS` of the vendor U-Boot),
    /// kept in the default environment except what the policy replaces ([`REPLACED_VENDOR_VARS`]
    /// and the variables generated here); the board header leaves it to the vendor's header.
    pub vendor_env: Vec<(String, String)>,
}

/// The vendor's kernel command line (its `SD_BOOTM_COMMAND`, `../shared/BOARD.md`), kept as it
/// is; the policy appends ` zbot.slot=<slot>`.
pub const VENDOR_CMDLINE: &str =
    "${reserved_mem} ${root} ${mtdparts} console=$consoledev,$baudrate $othbootargs";
/// The test boards' command line: `${bootargs_base} ${root}`.
pub const GENERIC_CMDLINE: &str = "${bootargs_base} ${root}";
/// The vendor's FIT configuration of the Duo S SD build (`config-<CVICHIP>_<CVIBOARD>`).
pub const DUOS_FIT_CONFIG: &str = "config-cv1813h_milkv_duos_sd";
/// The vendor's default environment of the Duo S SD build as `../shared/BOARD.md` describes it
/// (`name=value` lines, `#` comments). Values BOARD.md does not give are marked there; a
/// build passes the real one (`make u-boot-initial-env` in the vendor tree) with `--vendor-env`.
pub const DUOS_VENDOR_ENV: &str = include_str!("../vendor/cv1813h_milkv_duos_sd.env");
/// Vendor variables the policy replaces: `bootcmd` (`run zbot-policy`), `sdboot` (the vendor's
/// boot command, now `run zbot-policy` too, so an old `bootcmd=run sdboot` runs the policy),
/// and `first_boot` (the vendor's first-boot `saveenv` marker: nothing reads it any more).
pub const REPLACED_VENDOR_VARS: [&str; 3] = ["bootcmd", "sdboot", "first_boot"];
/// The vendor's boot command variable (`bootcmd=run sdboot`), kept as an alias of the policy.
pub const VAR_SDBOOT: &str = "sdboot";

/// The final command of the board: load the FIT `boot.sd` from the boot partition at the
/// vendor's `${uImage_addr}` and boot its configuration `fit_config`.
pub fn board_bootm(fit_config: &str) -> String {
    format!(
        "fatload ${{zbot_devtype}} ${{zbot_devnum}}:${{zbot_bootpart}} ${{uImage_addr}} boot.sd && bootm ${{uImage_addr}}#{fit_config}"
    )
}

/// Parse a vendor default environment (`name=value` lines as `make u-boot-initial-env` writes
/// them; blank lines and `#` comments skipped). `origin` names the file in errors.
pub fn parse_vendor_env(text: &str, origin: &str) -> Result<Vec<(String, String)>, GenError> {
    let mut v: Vec<(String, String)> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = |why: &str| GenError::VendorEnv(format!("{origin}:{}: {why}", i + 1));
        let (n, val) = l
            .split_once('=')
            .ok_or_else(|| bad("not a name=value line (make u-boot-initial-env writes those)"))?;
        if n.is_empty() || n.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(&format!("{n:?} is not a variable name")));
        }
        if val.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(bad(&format!("the value of {n} has a control character")));
        }
        if v.iter().any(|(m, _)| m == n) {
            return Err(bad(&format!("{n} is defined twice")));
        }
        v.push((n.to_string(), val.to_string()));
    }
    Ok(v)
}

impl Board {
    /// The Milk-V Duo S: SD card `mmc 0`, FAT boot partition 1 with the FIT `boot.sd` loaded
    /// at the vendor's `${uImage_addr}`.
    pub fn milkv_duos() -> Board {
        Board {
            devtype: "mmc".into(),
            devnum: 0,
            bootpart: 1,
            bootargs_base: "console=ttyS0,115200 earlycon=sbi".into(),
            cmdline: VENDOR_CMDLINE.into(),
            bootm: board_bootm(DUOS_FIT_CONFIG),
            extra_env: vec![],
            vendor_env: parse_vendor_env(DUOS_VENDOR_ENV, "the built-in vendor environment")
                .expect("the built-in vendor environment parses"),
        }
    }

    /// The sandbox U-Boot of the tests (`host 0`); the final command reports and stops.
    pub fn sandbox() -> Board {
        Board {
            devtype: "host".into(),
            devnum: 0,
            cmdline: GENERIC_CMDLINE.into(),
            bootm: "echo @@zbot-bootm".into(),
            vendor_env: vec![],
            ..Board::milkv_duos()
        }
    }

    /// The qemu-riscv64 U-Boot of the tests (`virtio 0`): reports the decision on the console
    /// and powers off instead of booting a kernel.
    pub fn qemu() -> Board {
        Board {
            devtype: "virtio".into(),
            devnum: 0,
            cmdline: GENERIC_CMDLINE.into(),
            bootm: "echo @@zbot-boot slot=${zb_slot} bootargs=${bootargs}; poweroff".into(),
            extra_env: vec![("bootdelay".into(), "0".into())],
            vendor_env: vec![],
            ..Board::milkv_duos()
        }
    }

    /// The most a device number may be (`--devnum`).
    pub const MAX_DEVNUM: u32 = 255;
    /// The most a partition number may be (`--bootpart`): a GPT has at most 128 entries here.
    pub const MAX_BOOTPART: u32 = 128;

    /// Refuse settings U-Boot would misread: an interface name that is not a plain word,
    /// a device number above [`Board::MAX_DEVNUM`], a partition number outside
    /// 1..=[`Board::MAX_BOOTPART`] (0 is "the whole disk" to U-Boot, not a partition).
    pub fn validate(&self) -> Result<(), GenError> {
        let d = self.devtype.as_bytes();
        if d.is_empty()
            || d.len() > 16
            || !d[0].is_ascii_lowercase()
            || !d
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        {
            return Err(GenError::Board(format!(
                "devtype {:?} is not a U-Boot interface name (e.g. mmc, virtio, host)",
                self.devtype
            )));
        }
        if self.devnum > Self::MAX_DEVNUM {
            return Err(GenError::Board(format!(
                "devnum {} is out of range: 0..={}",
                self.devnum,
                Self::MAX_DEVNUM
            )));
        }
        if !(1..=Self::MAX_BOOTPART).contains(&self.bootpart) {
            return Err(GenError::Board(format!(
                "bootpart {} is out of range: partitions are numbered 1..={} (0 means the whole disk to U-Boot)",
                self.bootpart,
                Self::MAX_BOOTPART
            )));
        }
        if !self.cmdline.contains("${root}") {
            return Err(GenError::Board(format!(
                "the kernel command line {:?} does not name ${{root}}: the slot's root arguments would be lost",
                self.cmdline
            )));
        }
        Ok(())
    }

    /// Whether the command line uses the `bootargs_base` variable (then it is in the env).
    pub fn uses_bootargs_base(&self) -> bool {
        self.cmdline.contains("${bootargs_base}")
    }

    /// A preset by name: `milkv-duos` (alias `board`), `sandbox`, `qemu`.
    pub fn preset(name: &str) -> Option<Board> {
        match name {
            "milkv-duos" | "board" => Some(Board::milkv_duos()),
            "sandbox" => Some(Board::sandbox()),
            "qemu" => Some(Board::qemu()),
            _ => None,
        }
    }
}

/// Why the generator refuses a slot file or board.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenError {
    /// A value would not survive hush single quotes or the environment text formats.
    #[error("{what} {value:?} cannot be put in a hush script: it must not contain ', \\, newlines or control characters")]
    Unquotable {
        /// Which value.
        what: String,
        /// The value.
        value: String,
    },
    /// A slot's name collides with a seed entry point of a different meaning.
    #[error("slot {0:?} collides with the seed entry point boot-{0}: rename the slot")]
    AliasCollision(String),
    /// The slot configuration breaks a rule of the contract (built in code, not loaded).
    #[error("slot configuration: {0}")]
    Slots(String),
    /// A board setting U-Boot would misread.
    #[error("{0}")]
    Board(String),
    /// The vendor environment file cannot be used.
    #[error("vendor environment {0}")]
    VendorEnv(String),
}

fn check_quotable(what: &str, v: &str) -> Result<(), GenError> {
    if !hush::quotable(v) {
        return Err(GenError::Unquotable {
            what: what.into(),
            value: v.into(),
        });
    }
    Ok(())
}

/// The generated artefacts for one slot file and board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The policy (contract step 3.1-3.3, the one `saveenv`), ending with `run zbot-kernel`.
    pub policy: Vec<String>,
    /// The kernel part: `root`, `bootargs`, `run zbot-bootm`.
    pub kernel: Vec<String>,
    /// Manual entry points: (`boot-<slot>` and the seed aliases, body lines).
    pub entries: Vec<(String, Vec<String>)>,
    /// The default environment, in order.
    pub default_env: Vec<(String, String)>,
    /// The board's vendor environment (kept by `env-update`, left to the vendor header).
    pub vendor_env: Vec<(String, String)>,
    origin: String,
}

/// Join script lines into one line for an environment variable: `;` between statements,
/// a blank after `then`/`else`/`do`; comment lines dropped (a `#` would swallow the rest).
pub fn one_line(lines: &[String]) -> String {
    let mut out = String::new();
    for l in lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if !out.is_empty() {
            let prev = out.trim_end();
            if prev.ends_with("then") || prev.ends_with("else") || prev.ends_with("do") {
                out.push(' ');
            } else {
                out.push_str("; ");
            }
        }
        out.push_str(l);
    }
    out
}

/// The hush locals of the policy (never saved). `-` means "none": a local cannot be emptied.
mod zb {
    pub const SLOT: &str = "zb_slot";
    pub const ONCE: &str = "zb_once";
    pub const TRIAL: &str = "zb_trial";
    pub const NEXT: &str = "zb_next";
    pub const PREV: &str = "zb_prev";
    /// Attempts started (validated `zbot_tries`), `-` when invalid.
    pub const N: &str = "zb_n";
    /// The next attempt number.
    pub const M: &str = "zb_m";
    /// The rollback reason, `-` while none.
    pub const WHY: &str = "zb_why";
    pub const ACTIVE: &str = "zb_active";
    pub const SAVE: &str = "zb_save";
    /// Where a failed trial falls back to.
    pub const FALLBACK: &str = "zb_f";
    /// The boot limit (validated `zbot_bootlimit`, else the slot file's).
    pub const LIMIT: &str = "zb_l";
    pub const NONE: &str = "-";
}

/// The policy (contract step 3.1-3.3, the one `saveenv`), ending with `run zbot-kernel`. Every
/// environment variable and reason comes from bootcount's definitions (`names`, `REASON_*`).
pub fn policy_script(cfg: &SlotConfig) -> Vec<String> {
    use bootcount::state::{names, REASON_BOOTLIMIT, REASON_TRIES_INVALID};
    use hush::{eq, if_, local, lt, ne, setenv, unset, var};
    let slots: Vec<&str> = cfg.slots.iter().map(|s| s.name.as_str()).collect();
    let rec = cfg.name(cfg.recovery());
    let set = |v: &str, to: &str| local(v, to);
    let mut p = hush::Script::new();
    p.comment("The bootloader step of docs/boot-contract.md, section 3.")
        .comment("Values are compared unquoted with an x prefix under HUSH_NO_EVAL=1: see")
        .comment("uboot-scripts/src/lib.rs. Decisions are hush locals zb_* (never saved).")
        .line(hush::NO_EVAL_ON);
    for (v, init) in [
        (zb::SLOT, rec),
        (zb::ONCE, zb::NONE),
        (zb::TRIAL, zb::NONE),
        (zb::NEXT, zb::NONE),
        (zb::PREV, zb::NONE),
        (zb::N, zb::NONE),
        (zb::M, zb::NONE),
        (zb::WHY, zb::NONE),
        (zb::ACTIVE, "0"),
        (zb::SAVE, "0"),
        (zb::FALLBACK, rec),
    ] {
        p.line(set(v, init));
    }
    p.line(set(zb::LIMIT, &cfg.bootlimit.to_string()));
    p.comment("Which variables name a slot (exact string match, one test per slot).");
    for (env, loc) in [
        (names::ONCE, zb::ONCE),
        (names::TRIAL, zb::TRIAL),
        (names::NEXT_BOOT, zb::NEXT),
        (names::PREV, zb::PREV),
    ] {
        for n in &slots {
            p.line(if_(&eq(env, n), &set(loc, n)));
        }
    }
    p.comment("Counters: single decimal digits, validated as strings.");
    p.line(if_(&eq(names::TRIES, ""), &set(zb::N, "0")));
    for d in (0..=9).map(|d: u8| d.to_string()) {
        p.line(if_(&eq(names::TRIES, &d), &set(zb::N, &d)));
    }
    for d in (1..=9).map(|d: u8| d.to_string()) {
        p.line(if_(&eq(names::BOOTLIMIT, &d), &set(zb::LIMIT, &d)));
    }
    p.comment("A trial is active when zbot_trial is a slot and next_boot names it.");
    p.line(if_(
        &ne(zb::TRIAL, zb::NONE),
        &if_(&eq(zb::TRIAL, &var(zb::NEXT)), &set(zb::ACTIVE, "1")),
    ));
    p.open_if(&ne(zb::ONCE, zb::NONE))
        .comment("1. One-shot: consume zbot_once, save, boot it.")
        .line(set(zb::SLOT, &var(zb::ONCE)))
        .line(unset(names::ONCE))
        .line(set(zb::SAVE, "1"))
        .elif(&eq(zb::ACTIVE, "1"))
        .comment("2. Active trial: attempt n+1 of L, or give up.")
        .open_if(&eq(zb::N, zb::NONE))
        .line(set(zb::WHY, REASON_TRIES_INVALID))
        .elif(&lt(zb::N, zb::LIMIT))
        .line(set(zb::SLOT, &var(zb::TRIAL)))
        .else_()
        .line(set(zb::WHY, REASON_BOOTLIMIT))
        .fi()
        .open_if(&eq(zb::WHY, zb::NONE));
    for d in 0..=8u8 {
        p.line(if_(
            &eq(zb::N, &d.to_string()),
            &set(zb::M, &(d + 1).to_string()),
        ));
    }
    p.line(setenv(names::TRIES, &var(zb::M)))
        .line(set(zb::SAVE, "1"))
        .else_()
        .line(if_(
            &ne(zb::PREV, zb::NONE),
            &if_(
                &ne(zb::PREV, &var(zb::TRIAL)),
                &set(zb::FALLBACK, &var(zb::PREV)),
            ),
        ))
        .line(setenv(names::NEXT_BOOT, &var(zb::FALLBACK)))
        .line(setenv(names::RB_SLOT, &var(zb::TRIAL)))
        .line(setenv(names::RB_REASON, &var(zb::WHY)))
        .line(setenv(&names::bad(&var(zb::TRIAL)), &var(zb::WHY)))
        .line(unset(names::TRIAL))
        .line(unset(names::TRIES))
        .line(unset(names::PREV))
        .line(set(zb::SLOT, &var(zb::FALLBACK)))
        .line(set(zb::SAVE, "1"))
        .fi()
        .else_()
        .comment("3. Normal: resolve(next_boot), write nothing.")
        .line(if_(&ne(zb::NEXT, zb::NONE), &set(zb::SLOT, &var(zb::NEXT))))
        .fi()
        .comment("One saveenv at most, after all changes, before root/bootargs.")
        .line(if_(&eq(zb::SAVE, "1"), "saveenv"))
        .line(format!("run {VAR_KERNEL}"));
    p.into_lines()
}

/// The kernel part: `root` (the variable named after the slot, else the slot file's default,
/// in memory only), `bootargs`, then `run zbot-bootm`. Roots must be [`hush::quotable`].
pub fn kernel_script(cfg: &SlotConfig, board: &Board) -> Vec<String> {
    use hush::{eq, if_, if_else, quoted, setenv, var};
    let mut k = hush::Script::new();
    k.comment("root = the variable named after the slot, else the slot file's default;")
        .comment("in memory only (after any saveenv).")
        .line(hush::NO_EVAL_ON);
    for s in &cfg.slots {
        k.line(if_(
            &eq(zb::SLOT, &s.name),
            &if_else(
                &eq(&s.name, ""),
                &setenv("root", &quoted(&s.root)),
                &setenv("root", &var(&s.name)),
            ),
        ));
    }
    k.comment("The board's command line (the vendor's on the Duo S), then the slot.")
        .line(format!(
            "setenv bootargs {} zbot.slot={}",
            board.cmdline,
            var(zb::SLOT)
        ))
        .line(hush::NO_EVAL_OFF)
        .line(format!("run {VAR_BOOTM}"));
    k.into_lines()
}

/// The manual entry points: `boot-<slot>` for every slot, then the seed's aliases
/// ([`ALIAS_MAIN`] = the first primary, [`ALIAS_RECOVERY`]) unless a slot already has that name.
pub fn entry_points(cfg: &SlotConfig) -> Result<Vec<(String, Vec<String>)>, GenError> {
    let boot = |slot: &str| vec![hush::local(zb::SLOT, slot), format!("run {VAR_KERNEL}")];
    let names: Vec<&str> = cfg.slots.iter().map(|s| s.name.as_str()).collect();
    let rec = cfg.name(cfg.recovery());
    let main = cfg
        .slots
        .iter()
        .find(|s| s.role == Role::Primary)
        .map(|s| s.name.as_str())
        .expect("checked: one primary");
    let mut entries: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|n| (format!("boot-{n}"), boot(n)))
        .collect();
    for (alias, target) in [(ALIAS_MAIN, main), (ALIAS_RECOVERY, rec)] {
        let slot_named = alias.strip_prefix("boot-").expect("boot- prefix");
        if names.contains(&slot_named) {
            if slot_named != target {
                return Err(GenError::AliasCollision(slot_named.into()));
            }
            continue; // boot-<slot> already is the alias
        }
        entries.push((alias.to_string(), boot(target)));
    }
    Ok(entries)
}

/// The default environment, in order: `bootcmd`, the vendor's variables (but those replaced
/// or generated here), the slot file's part, the board's, then the scripts as one-line
/// variables (and `sdboot=run zbot-policy` when the vendor has `sdboot`).
pub fn default_env(
    cfg: &SlotConfig,
    board: &Board,
    policy: &[String],
    kernel: &[String],
    entries: &[(String, Vec<String>)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("bootcmd".into(), format!("run {VAR_POLICY}"))];
    let mut ours: Vec<(String, String)> = cfg.default_env();
    if board.uses_bootargs_base() {
        ours.push(("bootargs_base".into(), board.bootargs_base.clone()));
    }
    ours.push(("zbot_devtype".into(), board.devtype.clone()));
    // U-Boot reads `dev:part` in hex (`mmc 0:10` is partition 16): write them in hex, so
    // that `--bootpart 10` means partition 10 (0..9 read the same either way).
    ours.push(("zbot_devnum".into(), format!("{:x}", board.devnum)));
    ours.push(("zbot_bootpart".into(), format!("{:x}", board.bootpart)));
    ours.extend(board.extra_env.iter().cloned());
    ours.push((VAR_POLICY.into(), one_line(policy)));
    ours.push((VAR_KERNEL.into(), one_line(kernel)));
    ours.push((VAR_BOOTM.into(), board.bootm.clone()));
    for (name, body) in entries {
        ours.push((name.clone(), one_line(body)));
    }
    if board.vendor_env.iter().any(|(n, _)| n == VAR_SDBOOT) {
        ours.push((VAR_SDBOOT.into(), format!("run {VAR_POLICY}")));
    }
    env.extend(
        board
            .vendor_env
            .iter()
            .filter(|(n, _)| {
                !REPLACED_VENDOR_VARS.contains(&n.as_str()) && !ours.iter().any(|(m, _)| m == n)
            })
            .cloned(),
    );
    env.extend(ours);
    env
}

impl Generated {
    /// Generate everything for `cfg` on `board`. `origin` names the slot file in comments.
    pub fn new(cfg: &SlotConfig, board: &Board, origin: &str) -> Result<Generated, GenError> {
        cfg.validate().map_err(GenError::Slots)?;
        board.validate()?;
        for s in &cfg.slots {
            check_quotable(&format!("root of slot {}", s.name), &s.root)?;
        }
        check_quotable("bootargs_base", &board.bootargs_base)?;
        check_quotable("bootm", &board.bootm)?;
        check_quotable("the kernel command line", &board.cmdline)?;
        let policy = policy_script(cfg);
        let kernel = kernel_script(cfg, board);
        let entries = entry_points(cfg)?;
        let default_env = default_env(cfg, board, &policy, &kernel, &entries);
        Ok(Generated {
            policy,
            kernel,
            entries,
            default_env,
            vendor_env: board.vendor_env.clone(),
            origin: origin.into(),
        })
    }

    /// The standalone script for `boot.scr` (`source`): policy, kernel part and final command,
    /// with comments. Needs only `bootargs_base` and `zbot-bootm` in the environment.
    pub fn boot_cmd(&self) -> String {
        let mut s = format!(
            "# ZBot boot script, generated by uboot-scripts from {}: do not edit.\n",
            self.origin
        );
        for l in self
            .policy
            .iter()
            .filter(|l| *l != &format!("run {VAR_KERNEL}"))
        {
            s.push_str(l);
            s.push('\n');
        }
        for l in &self.kernel {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// `u-boot-initial-env` text: `name=value` lines (input of `mkenvimage`, `fw-env
    /// --defaults`, libubootenv's `/etc/u-boot-initial-env`).
    pub fn default_env_text(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.default_env {
            let _ = writeln!(s, "{n}={v}");
        }
        s
    }

    /// The script variables of the default environment: everything but the policy's part
    /// (`next_boot`, the slots' root arguments, `root`) and the vendor's variables (the robot
    /// keeps its own `uImage_addr`, `othbootargs`, ...). Written once into an existing
    /// environment (robots whose `/uboot.env` still holds the seed's `bootcmd`), it installs
    /// the policy without changing the robot's state: `uboot-scripts env-update | fw_setenv -s -`.
    /// `bootcmd` and `sdboot` both become `run zbot-policy`; `first_boot` is left alone (only
    /// the vendor's `sdboot` read it, and it is gone).
    pub fn script_vars(&self, cfg: &SlotConfig) -> Vec<(String, String)> {
        let policy: Vec<String> = cfg.default_env().into_iter().map(|(n, _)| n).collect();
        self.default_env
            .iter()
            .filter(|(n, _)| !policy.contains(n))
            .filter(|(n, _)| {
                REPLACED_VENDOR_VARS.contains(&n.as_str())
                    || !self.vendor_env.iter().any(|(m, _)| m == n)
            })
            .cloned()
            .collect()
    }

    /// The C fragment for the vendor U-Boot's board header: `ZBOT_ENV_SETTINGS` to put into
    /// `CONFIG_EXTRA_ENV_SETTINGS` in place of `SD_BOOTM_COMMAND`, plus the defconfig lines.
    pub fn board_header(&self) -> String {
        // The vendor's header keeps its own variables: only what is new or different here.
        let ours: Vec<&(String, String)> = self
            .default_env
            .iter()
            .filter(|(n, _)| n != "bootcmd")
            .filter(|kv| !self.vendor_env.contains(kv) || kv.0 == VAR_SDBOOT)
            .collect();
        let also: Vec<&str> = ours
            .iter()
            .filter(|(n, _)| n != VAR_SDBOOT && self.vendor_env.iter().any(|(m, _)| m == n))
            .map(|(n, _)| n.as_str())
            .collect();
        let vendor = if self.vendor_env.is_empty() {
            String::new()
        } else {
            format!(
                "* Delete the vendor's \"sdboot=\" SD_BOOTM_COMMAND line{}: ZBOT_ENV_SETTINGS\n \
                 * defines it (sdboot=run {VAR_POLICY}); keep every other vendor variable.\n ",
                if also.is_empty() {
                    String::new()
                } else {
                    format!(" and its lines for {}", also.join(", "))
                }
            )
        };
        let mut s = format!(
            "/* Generated by uboot-scripts from {}: do not edit; regenerate with\n \
             * `uboot-scripts board-header --slots SLOTS.toml`.\n \
             * Use: CONFIG_EXTRA_ENV_SETTINGS ... ZBOT_ENV_SETTINGS (replaces SD_BOOTM_COMMAND),\n \
             {vendor}* and in the defconfig:\n \
             *   CONFIG_USE_BOOTCOMMAND=y\n \
             *   CONFIG_BOOTCOMMAND=\"run {VAR_POLICY}\"\n \
             *   CONFIG_HUSH_PARSER=y\n \
             * The board must define uImage_addr (the vendor environment does). */\n\
             #ifndef ZBOT_ENV_SETTINGS_H\n#define ZBOT_ENV_SETTINGS_H\n#define ZBOT_ENV_SETTINGS \\\n",
            self.origin
        );
        for (n, v) in ours {
            let _ = writeln!(s, "\t\"{}={}\\0\" \\", c_escape(n), c_escape(v));
        }
        s.push_str("\t\"\"\n#endif\n");
        s
    }
}

fn c_escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Generated {
        Generated::new(&SlotConfig::builtin(), &Board::milkv_duos(), "slots.toml").unwrap()
    }

    #[test]
    fn policy_reads_no_disk_and_saves_once_at_most() {
        let g = builtin();
        let text = g.boot_cmd();
        for cmd in ["load", "fatload", "ext4load", "read", "env load"] {
            assert!(
                !text.split_whitespace().any(|w| w == cmd),
                "{cmd} in the policy:\n{text}"
            );
        }
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert_eq!(code.matches("saveenv").count(), 1, "{text}");
        assert!(text.contains("if test x${zb_save} = x1; then saveenv; fi"));
    }

    #[test]
    fn one_line_joins_statements_and_drops_comments() {
        let l: Vec<String> = ["# c", "if a; then", "  b", "else", "c", "fi", "d"]
            .map(String::from)
            .to_vec();
        assert_eq!(one_line(&l), "if a; then b; else c; fi; d");
    }

    #[test]
    fn default_env_starts_from_the_slot_files_policy_part() {
        let g = builtin();
        let cfg = SlotConfig::builtin();
        for kv in cfg.default_env() {
            assert!(g.default_env.contains(&kv), "{kv:?}");
        }
        assert!(g
            .default_env
            .contains(&("bootcmd".into(), "run zbot-policy".into())));
        let names: Vec<_> = g.default_env.iter().map(|(n, _)| n.as_str()).collect();
        for n in [
            "boot-zbot",
            "boot-ota",
            "boot-rootfs",
            "boot-otafs",
            "zbot-kernel",
            "zbot-bootm",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        // Every value is one line: the text formats of mkenvimage and libubootenv need that.
        assert!(g.default_env.iter().all(|(_, v)| !v.contains('\n')));
        // Under 8 KiB: room to spare in the field's 192 KiB environment, and small enough that
        // fw-env's sparse temporary copy (its non-zero blocks) fits beside /uboot.env.
        assert!(
            g.default_env_text().len() < 0x4000 / 2,
            "{}",
            g.default_env_text().len()
        );
    }

    #[test]
    fn script_vars_leave_the_robots_state_alone() {
        let cfg = SlotConfig::builtin();
        let v = builtin().script_vars(&cfg);
        let names: Vec<_> = v.iter().map(|(n, _)| n.as_str()).collect();
        for n in ["next_boot", "rootfs", "otafs", "root"] {
            assert!(!names.contains(&n), "{n}");
        }
        for n in ["bootcmd", "zbot-policy", "zbot-kernel", "boot-ota"] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn ab_slot_file_generates_three_slots() {
        let cfg = SlotConfig::from_toml(
            include_str!("../../bootcount/dist/slots-ab.toml"),
            "slots-ab.toml",
        )
        .unwrap();
        let g = Generated::new(&cfg, &Board::milkv_duos(), "slots-ab.toml").unwrap();
        let t = g.boot_cmd();
        for n in ["rootfs_a", "rootfs_b", "otafs"] {
            assert!(t.contains(&format!(
                "if test x${{next_boot}} = x{n}; then zb_next={n}; fi"
            )));
        }
        let alias = g.entries.iter().find(|(n, _)| n == "boot-zbot").unwrap();
        assert_eq!(alias.1[0], "zb_slot=rootfs_a");
    }

    #[test]
    fn unquotable_root_is_refused() {
        let mut cfg = SlotConfig::builtin();
        cfg.slots[0].root = "root=/dev/x it's".into();
        let e = Generated::new(&cfg, &Board::milkv_duos(), "f").unwrap_err();
        assert!(e.to_string().contains("root of slot rootfs"), "{e}");
    }

    #[test]
    fn slot_named_like_an_alias_must_mean_the_same() {
        let mut cfg = SlotConfig::builtin();
        cfg.slots[1].name = "ota".into(); // the recovery slot named ota: boot-ota is that slot
        assert!(Generated::new(&cfg, &Board::milkv_duos(), "f").is_ok());
        let mut cfg = SlotConfig::builtin();
        cfg.slots[0].name = "ota".into(); // a primary named ota: boot-ota would be ambiguous
        assert_eq!(
            Generated::new(&cfg, &Board::milkv_duos(), "f").unwrap_err(),
            GenError::AliasCollision("ota".into())
        );
    }

    /// Issue 10: absurd board numbers are refused, not written into the environment; and
    /// numbers are written as U-Boot reads them (hex).
    #[test]
    fn board_numbers_are_checked_and_written_in_hex() {
        let cfg = SlotConfig::builtin();
        for (b, want) in [
            (
                Board {
                    bootpart: 0,
                    ..Board::milkv_duos()
                },
                "bootpart 0 is out of range",
            ),
            (
                Board {
                    bootpart: 129,
                    ..Board::milkv_duos()
                },
                "bootpart 129",
            ),
            (
                Board {
                    bootpart: u32::MAX,
                    ..Board::milkv_duos()
                },
                "out of range",
            ),
            (
                Board {
                    devnum: 256,
                    ..Board::milkv_duos()
                },
                "devnum 256",
            ),
            (
                Board {
                    devtype: "mmc; reset".into(),
                    ..Board::milkv_duos()
                },
                "not a U-Boot interface name",
            ),
            (
                Board {
                    devtype: "".into(),
                    ..Board::milkv_duos()
                },
                "not a U-Boot interface name",
            ),
        ] {
            let e = Generated::new(&cfg, &b, "f").unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let g = Generated::new(
            &cfg,
            &Board {
                bootpart: 10,
                devnum: 11,
                ..Board::milkv_duos()
            },
            "f",
        )
        .unwrap();
        let t = g.default_env_text();
        assert!(t.lines().any(|l| l == "zbot_bootpart=a"), "{t}");
        assert!(t.lines().any(|l| l == "zbot_devnum=b"), "{t}");
    }

    #[test]
    fn an_unchecked_slot_configuration_is_an_error_not_a_panic() {
        let mut cfg = SlotConfig::builtin();
        cfg.slots.retain(|s| s.role == Role::Recovery);
        let e = Generated::new(&cfg, &Board::milkv_duos(), "f").unwrap_err();
        assert!(e.to_string().contains("primary"), "{e}");
        let mut cfg = SlotConfig::builtin();
        cfg.slots[0].device = cfg.slots[1].device.clone();
        assert!(Generated::new(&cfg, &Board::milkv_duos(), "f").is_err());
    }

    #[test]
    fn the_board_keeps_the_vendors_command_line_fit_configuration_and_variables() {
        let g = builtin();
        let kernel = one_line(&g.kernel);
        assert!(
            kernel.contains(
                "setenv bootargs ${reserved_mem} ${root} ${mtdparts} console=$consoledev,$baudrate $othbootargs zbot.slot=${zb_slot}"
            ),
            "{kernel}"
        );
        let env = g.default_env_text();
        assert!(env.contains(
            "\nzbot-bootm=fatload ${zbot_devtype} ${zbot_devnum}:${zbot_bootpart} ${uImage_addr} boot.sd && bootm ${uImage_addr}#config-cv1813h_milkv_duos_sd\n"
        ));
        assert!(!env.contains("bootargs_base"), "unused on the board");
        for l in [
            "othbootargs=earlycon=sbi riscv.fwsz=",
            "consoledev=ttyS0",
            "uImage_addr=",
        ] {
            assert!(env.lines().any(|x| x.starts_with(l)), "{l}");
        }
        assert!(env.contains("\nsdboot=run zbot-policy\n"));
        assert_eq!(
            env.matches("\nroot=").count(),
            1,
            "one root, not the vendor's and ours"
        );
        // A board line without ${root} would lose the slot's root arguments.
        let b = Board {
            cmdline: "console=ttyS0".into(),
            ..Board::milkv_duos()
        };
        let e = Generated::new(&SlotConfig::builtin(), &b, "f").unwrap_err();
        assert!(e.to_string().contains("does not name ${root}"), "{e}");
    }

    #[test]
    fn a_bad_vendor_environment_is_refused_with_file_and_line() {
        for (text, want) in [
            (
                "netdev=eth0\nno equals sign\n",
                "v.env:2: not a name=value line",
            ),
            ("a=1\na=2\n", "v.env:2: a is defined twice"),
            (
                "bad name=1\n",
                "v.env:1: \"bad name\" is not a variable name",
            ),
            (
                "x=a\rb\n",
                "v.env:1: the value of x has a control character",
            ),
        ] {
            let e = parse_vendor_env(text, "v.env").unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(
            parse_vendor_env("# c\n\nmtdparts=\n", "v").unwrap(),
            vec![("mtdparts".to_string(), String::new())]
        );
    }

    #[test]
    fn board_header_is_c_string_escaped() {
        let h = builtin().board_header();
        // The vendor's header defines next_boot, otafs, rootfs, root with these values: the
        // fragment leaves them there and replaces only sdboot.
        assert!(!h.contains("\t\"next_boot="), "{h}");
        assert!(h.contains("\t\"sdboot=run zbot-policy\\0\" \\\n"), "{h}");
        assert!(
            h.contains("Delete the vendor's \"sdboot=\" SD_BOOTM_COMMAND line:"),
            "{h}"
        );
        let sandbox = Generated::new(&SlotConfig::builtin(), &Board::sandbox(), "s").unwrap();
        let h = sandbox.board_header();
        assert!(h.contains("\t\"next_boot=otafs\\0\" \\\n"), "{h}");
        let h = builtin().board_header();
        assert!(h.contains("\"zbot-bootm=fatload ${zbot_devtype}"), "{h}");
        assert!(
            !h.contains("\"bootcmd="),
            "bootcmd comes from CONFIG_BOOTCOMMAND"
        );
    }
}
